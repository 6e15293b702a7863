# SPDX-License-Identifier: Apache-2.0
"""Launch files, checked statically (ros2 launch is not installable here): every executable,
argument, shared file and parameter they name exists."""
import ast
from pathlib import Path
import re

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))


def _console_scripts():
    setup = (ROOT / 'setup.py').read_text()
    return set(re.findall(r"'(\w+) = dgm_policy_ros\.[\w.]+:main'", setup))


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        getattr(n.func, 'id', None) == name or getattr(n.func, 'attr', None) == name)]


def _kw(call, key):
    for kw in call.keywords:
        if kw.arg == key and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def test_every_launch_file_is_known():
    assert {p.name for p in LAUNCH_FILES} == {'policy.launch.py', 'sim_in_the_loop.launch.py',
                                              'world_model.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_only_what_exists(path):
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
               for n in tree.body)
    nodes = _calls(tree, 'Node') + _calls(tree, 'LifecycleNode')
    assert nodes
    for node in nodes:
        assert _kw(node, 'package') == 'dgm_policy_ros'
        assert _kw(node, 'executable') in _console_scripts()
    declared = {n.args[0].value for n in _calls(tree, 'DeclareLaunchArgument')}
    used = {n.args[0].value for n in _calls(tree, 'LaunchConfiguration')}
    assert used <= declared, f'undeclared launch arguments {used - declared}'
    for join in _calls(tree, 'PathJoinSubstitution'):
        parts = [e.value for e in join.args[0].elts if isinstance(e, ast.Constant)]
        assert (ROOT / Path(*parts)).exists(), f'{path.name} names missing {parts}'
        assert parts[0] in ('config', 'models', 'launch', 'sim')  # installed under share/


def test_config_parameters_are_declared_by_their_nodes():
    from dgm_policy_ros.ros.mujoco_sim_node import PARAMETERS as SIM
    from dgm_policy_ros.ros.policy_node import PARAMETERS as POLICY
    from dgm_policy_ros.ros.world_model_node import PARAMETERS as WORLD_MODEL

    declared = {'dgm_policy': set(POLICY) | {'use_sim_time'},
                'mujoco_sim': set(SIM) | {'use_sim_time'},
                'dgm_world_model': set(WORLD_MODEL) | {'use_sim_time'}}
    for path in (ROOT / 'config').glob('*.yaml'):
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):  # observation specs are lists of sources
            from dgm_policy_ros.runtime.observation_spec import load_observation_spec

            assert load_observation_spec(path)
            continue
        if 'observation' in data:  # a recording spec (dgm record / bag2minari)
            from dgm_policy_ros.bags.topics import RecordingSpec

            assert RecordingSpec.load(path).topics()
            continue
        for node, body in data.items():
            params = set(body['ros__parameters'])
            assert params <= declared[node], f'{path.name}: {node} has undeclared ' \
                                             f'{params - declared[node]}'
