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
        if self.distribution not in ('normal', 'uniform', 'zeros'):
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
        return self.path / name


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Read and check a bundle: manifest fields, format version, file hashes."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f'{path} is not a model bundle: {MANIFEST} not found')
    try:
        manifest = yaml.safe_load(manifest_path.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f'{manifest_path} is not valid YAML: {exc}') from exc
    if not isinstance(manifest, dict):
        raise BundleError(f'{manifest_path} must be a mapping')
    missing = [k for k in ('format_version', 'kind', 'algorithm', 'observation', 'action',
                           'chunk_size', 'n_action_steps', 'graphs', 'files', 'inputs',
                           'outputs') if k not in manifest]
    if missing:
        raise BundleError(f'{manifest_path} lacks {missing}')
    if manifest['format_version'] > FORMAT_VERSION:
        raise BundleError(f'{path}: bundle format {manifest["format_version"]} is newer than '
                          f'this runtime understands ({FORMAT_VERSION}); upgrade dgm_policy_ros')
    bundle = Bundle(path, manifest)
    if verify:
        for name, expected in manifest['files'].items():
            file = path / name
            if not file.is_file():
                raise BundleError(f'{path}: {name} is listed in the manifest but missing')
            if sha256_file(file) != expected:
                raise BundleError(f'{path}: {name} fails its sha256 check (corrupt or edited '
                                  'after export); re-export the bundle')
        for key, name in manifest['graphs'].items():
            if name not in manifest['files']:
                raise BundleError(f'{path}: graph {key} ({name}) has no hash in the manifest')
    try:
        bundle.history
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f'{path}: bad history section in the manifest: {exc}') from exc
    low, high = bundle.act_low, bundle.act_high
    if low.shape != (bundle.act_size,) or high.shape != (bundle.act_size,) or \
            not np.all(low <= high):
        raise BundleError(f'{path}: action bounds do not match the action size')
    return bundle
