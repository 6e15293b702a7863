# SPDX-License-Identifier: Apache-2.0
"""The package's layers import one way (next to the torch-free runtime check in
test_export_runtime.py): every import of one subpackage by another, at module level or
inside a function, must go down this table (or sideways where the table says so)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'dgm_policy_ros'

# Lower layers know nothing of higher ones.
LAYERS = [
    {'__init__', 'errors', 'config', 'utils', 'resources'},  # foundations
    {'data', 'networks', 'diffusion'},
    {'runtime'},  # the torch-free deployment runtime (bundles, runner, observation spec)
    {'training', 'policies', 'world_models', 'augment'},
    {'export'},
    {'sim', 'bags'},
    {'workflows'},  # what crosses layers: export-and-score, retrain, sim-loop, demo
    {'cli', 'ros'},
]
# Imports within a layer, one way only.
SIDEWAYS = {('config', 'errors'), ('config', 'utils'), ('resources', 'utils'),
            ('policies', 'training'), ('world_models', 'training'),
            ('world_models', 'policies'), ('augment', 'training'), ('augment', 'world_models'),
            ('augment', 'policies')}
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _package(module: str) -> str:
    parts = module.split('.')
    return parts[1].removesuffix('.py') if len(parts) > 1 else '__init__'


def import_edges() -> dict[tuple[str, str], set[str]]:
    edges: dict[tuple[str, str], set[str]] = {}
    for path in PACKAGE.rglob('*.py'):
        relative = path.relative_to(PACKAGE.parent).with_suffix('')
        source = _package('.'.join(relative.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                    node.module.split('.')[0] == 'dgm_policy_ros':
                targets = [node.module] if node.module != 'dgm_policy_ros' else \
                    [f'dgm_policy_ros.{a.name}' for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith('dgm_policy_ros.')]
            for target in targets:
                edge = (source, _package(target))
                if edge[0] != edge[1]:
                    edges.setdefault(edge, set()).add(f'{relative}.py:{node.lineno}')
    return edges


def test_every_subpackage_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                if (p.suffix == '.py' or (p / '__init__.py').is_file())}
    assert packages <= set(RANK), f'give {sorted(packages - set(RANK))} a layer in LAYERS'


def test_layers_import_one_way():
    wrong = {f'{a} -> {b}': sorted(where) for (a, b), where in import_edges().items()
             if RANK[b] > RANK[a] or (RANK[b] == RANK[a] and (a, b) not in SIDEWAYS)}
    assert not wrong, f'imports against the layer table: {wrong}'


def test_the_table_catches_an_upward_import():
    """The check itself: an upward edge (training -> export, the old cycle) is reported."""
    edges = import_edges()
    edges[('training', 'export')] = {'training/trainer.py:1'}
    upward = [(a, b) for a, b in edges if RANK[b] > RANK[a]]
    assert upward == [('training', 'export')]
