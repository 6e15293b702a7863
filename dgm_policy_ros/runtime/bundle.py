# SPDX-License-Identifier: Apache-2.0
"""Model bundles: a folder with ``manifest.yaml``, ``policy.onnx`` and optional extra graphs.

The manifest is self-describing (what the graph expects and returns, how to draw its noise,
how many actions each inference yields, the control rate, where the model came from) and lists
the sha256 of every file. A bundle whose files fail their hashes, or whose manifest disagrees
with its graph, is refused before anything runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dgm_policy_ros.errors import DgmError
from dgm_policy_ros.runtime.history import HistorySpec
from dgm_policy_ros.utils.hashing import sha256_file

FORMAT_VERSION = 1
MANIFEST = 'manifest.yaml'
NOISE_DISTRIBUTIONS = ('normal', 'uniform', 'zeros')  # how a NoiseInput may be drawn


class BundleError(DgmError, RuntimeError):
    """A bundle is missing, corrupt, or inconsistent."""



@dataclasses.dataclass(frozen=True)
class NoiseInput:
    """An explicit noise input of a graph (shape without the batch dimension).

    ``distribution`` says how it is drawn: ``normal`` (standard normal, clipped to ``clip``
    when set, then times ``scale``: a diffusion policy's sampling temperature), ``uniform``
    (on [0, 1): the draw of a categorical choice inside the graph) or ``zeros`` (the
    distribution's mode; deterministic). Training (``predict``) and the
    runtime draw through this one class, so they agree.
    """

    name: str
    shape: tuple[int, ...]
    distribution: str = 'normal'
    clip: float | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.distribution not in NOISE_DISTRIBUTIONS:
            raise ValueError(f'noise {self.name}: unknown distribution {self.distribution!r}')
        if not (np.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f'noise {self.name}: scale must be finite and >= 0, '
                             f'got {self.scale}')

    def to_dict(self) -> dict[str, Any]:
        return {'name': self.name, 'shape': list(self.shape),
                'distribution': self.distribution, 'clip': self.clip, 'scale': self.scale}

    def draw(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        shape = (batch, *self.shape)
        if self.distribution == 'zeros':
            return np.zeros(shape, np.float32)
        if self.distribution == 'uniform':
            return rng.random(shape, dtype=np.float32)
        noise = rng.standard_normal(shape).astype(np.float32)
        if self.clip:
            noise = np.clip(noise, -self.clip, self.clip)
        return noise * np.float32(self.scale) if self.scale != 1.0 else noise


@dataclasses.dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]

    @property
    def obs_size(self) -> int:
        return int(self.manifest['observation']['size'])

    @property
    def act_size(self) -> int:
        return int(self.manifest['action']['size'])

    @property
    def act_low(self) -> np.ndarray:
        return np.asarray(self.manifest['action']['low'], np.float32)

    @property
    def act_high(self) -> np.ndarray:
        return np.asarray(self.manifest['action']['high'], np.float32)

    @property
    def chunk_size(self) -> int:
        return int(self.manifest['chunk_size'])

    @property
    def n_action_steps(self) -> int:
        return int(self.manifest['n_action_steps'])

    @property
    def noise_inputs(self) -> list[NoiseInput]:
        return [NoiseInput(n['name'], tuple(n['shape']), n['distribution'], n.get('clip'),
                           float(n.get('scale', 1.0)))
                for n in self.manifest.get('noise_inputs', [])]

    @property
    def history(self) -> HistorySpec | None:
        """The observation window a sequence policy consumes (None: the current one only)."""
        data = self.manifest.get('history')
        return HistorySpec.from_dict(data) if data else None

    @property
    def input_names(self) -> list[str]:
        """Graph inputs the caller provides (all but the noise, which the runner draws)."""
        noise = {n.name for n in self.noise_inputs}
        return [i['name'] for i in self.manifest['inputs'] if i['name'] not in noise]

    @property
    def input_shapes(self) -> dict[str, tuple]:
        """Every graph input's shape after the batch dimension, by name."""
        return {i['name']: tuple(i['shape'][1:]) for i in self.manifest['inputs']}

    @property
    def image_inputs(self) -> dict[str, tuple[int, int, int]]:
        """Camera inputs, ``images/<camera>`` -> (H, W, C) of its uint8 frames (a history
        window of them is (K, H, W, C) after the batch dimension in the graph)."""
        return {i['name']: tuple(int(d) for d in i['shape'][-3:])
                for i in self.manifest['inputs'] if i.get('dtype') == 'uint8'}

    @property
    def state_indices(self) -> list[int] | None:
        """Which elements of the simulator's state ``obs`` holds (None: all of them)."""
        return self.manifest['observation'].get('state_indices')

    @property
    def camera_views(self) -> list[dict[str, Any]]:
        """The camera views (``sim.cameras.CameraView``) the policy was trained with."""
        images = self.manifest['observation'].get('images') or {}
        return [entry['view'] for entry in images.values() if entry.get('view')]

    @property
    def control_rate_hz(self) -> float:
        return float(self.manifest.get('control_rate_hz') or 0.0)

    @property
    def env_id(self) -> str | None:
        return self.manifest.get('training', {}).get('env_id')

    @property
    def eval_env_seed(self) -> int:
        """The first environment seed of the training run's evaluation (0 if it had none),
        so a bundle scored later is scored on the episodes its training was."""
        return int(self.manifest.get('training', {}).get('eval_env_seed') or 0)

    @property
    def sha256(self) -> str:
        """The bundle's identity: the hash of its manifest (which hashes every file)."""
        return sha256_file(self.path / MANIFEST)

    def file(self, key: str = 'policy') -> Path:
        name = self.manifest['graphs'][key]
        return inside(self.path, name, f'graphs.{key}')


MAX_MANIFEST_BYTES = 16 << 20
INPUT_DTYPES = ('float32', 'uint8')  # uint8: camera frames (B, [K,] H, W, C)
KINDS = ('policy', 'world_model')


def inside(folder: Path, name: Any, what: str) -> Path:
    """``folder / name``, refused unless ``name`` is a relative path that stays (after
    following links) inside ``folder``: a bundle only ever uses its own files."""
    if not isinstance(name, str) or not name:
        raise BundleError(f'{folder}: {what} must be a file name, got {name!r}')
    relative = Path(name)
    if relative.is_absolute() or '..' in relative.parts:
        raise BundleError(f'{folder}: {what} {name!r} must be a path inside the bundle folder')
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise BundleError(f'{folder}: {what} {name!r} leads outside the bundle folder (to '
                          f'{target})')
    return folder / relative


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Read and check a bundle: its manifest against the schema, every file inside the
    folder, file hashes. Any failure is a :class:`BundleError` naming the field."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f'{path} is not a model bundle: no such folder')
    manifest_path = inside(path, MANIFEST, 'the manifest')
    if not manifest_path.is_file():
        raise BundleError(f'{path} is not a model bundle: {MANIFEST} not found')
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f'{manifest_path} is larger than {MAX_MANIFEST_BYTES} bytes')
    try:
        manifest = yaml.safe_load(manifest_path.read_bytes().decode('utf-8'))
    except UnicodeDecodeError as exc:
        raise BundleError(f'{manifest_path} is not text (UTF-8): {exc.reason} at byte '
                          f'{exc.start}') from exc
    except yaml.YAMLError as exc:
        raise BundleError(f'{manifest_path} is not valid YAML: {exc}') from exc
    validate_manifest(manifest, manifest_path)
    bundle = Bundle(path, manifest)
    for name in manifest['files']:
        inside(path, name, f'files: {name!r}')
    for key, name in manifest['graphs'].items():
        inside(path, name, f'graphs.{key}')
        if name not in manifest['files']:
            raise BundleError(f'{path}: graph {key} ({name}) has no hash in the manifest')
    if verify:
        for name, expected in manifest['files'].items():
            file = path / name
            if not file.is_file():
                raise BundleError(f'{path}: {name} is listed in the manifest but missing')
            if sha256_file(file) != expected:
                raise BundleError(f'{path}: {name} fails its sha256 check (corrupt or edited '
                                  'after export); re-export the bundle')
    return bundle


class _Schema:
    """Checks of one manifest; each failure names the field and what was expected."""

    def __init__(self, manifest: Any, where: Path) -> None:
        self.m, self.where = manifest, where

    def fail(self, field: str, expected: str, got: Any) -> None:
        shown = repr(got)
        shown = shown if len(shown) <= 80 else shown[:77] + '...'
        raise BundleError(f'{self.where}: {field} must be {expected}, got {shown}')

    def get(self, field: str, required: bool = True) -> Any:
        value: Any = self.m
        for part in field.split('.'):
            if not isinstance(value, dict) or part not in value:
                if required:
                    raise BundleError(f'{self.where}: {field} is missing')
                return None
            value = value[part]
        return value

    def integer(self, field: str, low: int = 0, high: int | None = None,
                required: bool = True) -> int | None:
        value = self.get(field, required)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low or \
                (high is not None and value > high):
            self.fail(field, f'an integer in [{low}, {high if high is not None else "inf"}]',
                      value)
        return value

    def number(self, field: str, value: Any, low: float = -np.inf) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not np.isfinite(value) or value < low:
            self.fail(field, f'a finite number >= {low}', value)
        return float(value)

    def numbers(self, field: str, size: int) -> np.ndarray:
        value = self.get(field)
        if not isinstance(value, list) or len(value) != size:
            self.fail(field, f'a list of {size} numbers', value)
        return np.array([self.number(f'{field}[{i}]', v) for i, v in enumerate(value)])

    def mapping(self, field: str, required: bool = True) -> dict | None:
        value = self.get(field, required)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            self.fail(field, 'a mapping', value)
        return value

    def text(self, field: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.get(field)
        if not isinstance(value, str) or (choices and value not in choices):
            self.fail(field, f'one of {choices}' if choices else 'a string', value)
        return value


def validate_manifest(manifest: Any, where: Path) -> None:
    """The manifest schema: types, shapes, finiteness and required keys."""
    if not isinstance(manifest, dict):
        raise BundleError(f'{where} must be a mapping, got {type(manifest).__name__}')
    check = _Schema(manifest, where)
    version = check.integer('format_version', 1)
    if version > FORMAT_VERSION:
        raise BundleError(f'{where}: bundle format {version} is newer than this runtime '
                          f'understands ({FORMAT_VERSION}); upgrade dgm_policy_ros')
    kind = check.text('kind', KINDS)
    check.text('algorithm')
    obs = check.integer('observation.size', 1)
    act = check.integer('action.size', 1)
    low, high = check.numbers('action.low', act), check.numbers('action.high', act)
    if np.any(low > high):
        check.fail('action.low', f'<= action.high ({high.tolist()})', low.tolist())
    trained = check.mapping('action.trained', required=False)
    if trained is not None:  # the bounds of the actions the model was trained on
        t_low = check.numbers('action.trained.low', act)
        t_high = check.numbers('action.trained.high', act)
        if np.any(low < t_low - 1e-6) or np.any(high > t_high + 1e-6):
            raise BundleError(f'{where}: action bounds [{low.tolist()}, {high.tolist()}] '
                              f'exceed the range the model was trained on '
                              f'[{t_low.tolist()}, {t_high.tolist()}] (edited after export?)')
    chunk = check.integer('chunk_size', 1)
    check.integer('n_action_steps', 1, chunk)
    for key in ('graphs', 'files'):
        table = check.mapping(key)
        if not table:
            check.fail(key, 'a non-empty mapping', table)
        for name, value in table.items():
            if not isinstance(name, str) or not isinstance(value, str):
                check.fail(f'{key}.{name}', 'a string', value)
    graph = 'policy' if kind == 'policy' else 'world_model'
    if graph not in manifest['graphs']:
        raise BundleError(f'{where}: graphs.{graph} is missing')
    for name, digest in manifest['files'].items():
        if len(digest) != 64 or any(c not in '0123456789abcdef' for c in digest):
            check.fail(f'files.{name}', 'a sha256 hex digest', digest)
    for key in ('inputs', 'outputs'):
        entries = check.get(key)
        if not isinstance(entries, list) or not entries:
            check.fail(key, 'a non-empty list', entries)
        for i, entry in enumerate(entries):
            field = f'{key}[{i}]'
            if not isinstance(entry, dict) or not isinstance(entry.get('name'), str):
                check.fail(field, 'a mapping with a name', entry)
            shape = entry.get('shape')
            if not isinstance(shape, list) or not shape or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 1
                    for d in shape[1:]):
                check.fail(f'{field}.shape', "['batch', sizes >= 1 ...]", shape)
            if entry.get('dtype', 'float32') not in INPUT_DTYPES:
                check.fail(f'{field}.dtype', f'one of {INPUT_DTYPES}', entry.get('dtype'))
            if entry.get('dtype') == 'uint8' and (len(shape) not in (4, 5) or
                                                  shape[-1] not in (1, 3)):
                check.fail(f'{field}.shape', "camera frames ['batch', H, W, 1 or 3] (or a "
                           "window of them, ['batch', K, H, W, 1 or 3])", shape)
    noise = manifest.get('noise_inputs') or []
    if not isinstance(noise, list):
        check.fail('noise_inputs', 'a list', noise)
    for i, entry in enumerate(noise):
        field = f'noise_inputs[{i}]'
        if not isinstance(entry, dict) or not isinstance(entry.get('name'), str):
            check.fail(field, 'a mapping with a name', entry)
        if entry.get('distribution') not in NOISE_DISTRIBUTIONS:
            check.fail(f'{field}.distribution', f'one of {NOISE_DISTRIBUTIONS}',
                       entry.get('distribution'))
        shape = entry.get('shape')
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            check.fail(f'{field}.shape', 'a list of sizes >= 1', shape)
        if entry.get('clip') is not None:
            check.number(f'{field}.clip', entry['clip'], 0.0)
        check.number(f'{field}.scale', entry.get('scale', 1.0), 0.0)
    rate = manifest.get('control_rate_hz')
    if rate is not None:
        check.number('control_rate_hz', rate, 0.0)
    normalization = check.mapping('normalization', required=False)
    if normalization:
        for key in ('obs_mean', 'obs_std'):
            if key in normalization:
                check.numbers(f'normalization.{key}', obs)
    if kind == 'world_model':
        check.number('residual_scale', check.get('residual_scale'), 0.0)
        check.numbers('normalization.obs_std', obs)
    history = manifest.get('history')
    if history is not None:
        if not isinstance(history, dict):
            check.fail('history', 'a mapping or null', history)
        try:
            length = HistorySpec.from_dict(history).length
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f'{where}: bad history section: {exc}') from exc
    else:
        length = None
    for i, entry in enumerate(manifest['inputs']):
        if entry.get('dtype') == 'uint8' and len(entry['shape']) == 5 and \
                entry['shape'][1] != length:
            check.fail(f'inputs[{i}].shape', f'a window of the history length {length}',
                       entry['shape'])
    sampler = check.mapping('sampler', required=False)
    if sampler is not None:
        steps = sampler.get('steps')
        if not isinstance(steps, list) or not steps:
            check.fail('sampler.steps', 'a non-empty list', steps)
        try:
            finite = np.isfinite(np.asarray(steps, dtype=np.float64)).all()
        except (TypeError, ValueError):
            finite = False
        if not finite:
            check.fail('sampler.steps', 'a table of finite numbers', steps)
        check.text('sampler.noise_input')
