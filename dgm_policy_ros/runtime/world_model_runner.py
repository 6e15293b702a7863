# SPDX-License-Identifier: Apache-2.0
"""``WorldModelRunner``: a world-model bundle made callable, torch-free (numpy + ONNX Runtime
or TensorRT, through the same backends as policies).

``predict(obs, action)`` gives the next observation, reward and the model's uncertainty;
``anomaly(obs, action, next_obs)`` scores what actually happened against the prediction: the
residual (in units of each observation dimension's spread) divided by what the model expects,
its held-out median residual plus its own uncertainty. Around 1 in familiar conditions; a
robot that no longer behaves like its data (a slipping wheel, a heavier payload, a different
system) scores well above.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dgm_policy_ros.runtime.backends import make_backend
from dgm_policy_ros.runtime.bundle import Bundle, BundleError, load_bundle
from dgm_policy_ros.runtime.runner import ObservationError, check_vectors


class WorldModelRunner:
    def __init__(self, bundle: Bundle | str | Path, backend: str = 'auto', seed: int = 0,
                 threads: int = 1) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        if self.bundle.manifest['kind'] != 'world_model':
            raise BundleError(f'{self.bundle.path} is a {self.bundle.manifest["kind"]} bundle, '
                              'not a world model')
        self.backend = make_backend(self.bundle.file('world_model'), backend, threads)
        declared = [i['name'] for i in self.bundle.manifest['inputs']]
        if self.backend.input_names() != declared:
            raise BundleError(f'{self.bundle.path}: the manifest lists inputs {declared} but '
                              f'the graph has {self.backend.input_names()}')
        self.rng = np.random.default_rng(seed)
        self.obs_std = np.asarray(self.bundle.manifest['normalization']['obs_std'], np.float32)
        self.residual_scale = float(self.bundle.manifest['residual_scale'])

    def predict(self, obs, action) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(next observations (B, O), rewards (B,), uncertainties (B,))."""
        obs = check_vectors(obs, self.bundle.obs_size)
        action = check_vectors(action, self.bundle.act_size, 'action')
        if len(obs) != len(action):
            raise ObservationError('wrong size', f'{len(obs)} observations, {len(action)} '
                                   'actions')
        action = np.clip(action, self.bundle.act_low, self.bundle.act_high)
        feeds = {'obs': obs, 'action': action}
        for spec in self.bundle.noise_inputs:
            feeds[spec.name] = spec.draw(len(obs), self.rng)
        out = np.asarray(self.backend.run(feeds), np.float32)
        o = self.bundle.obs_size
        return out[:, :o], out[:, o], out[:, o + 1]

    def anomaly(self, obs, action, next_obs) -> np.ndarray:
        """How surprising ``next_obs`` is after ``action`` in ``obs`` (B,); ~1 is normal."""
        predicted, _, uncertainty = self.predict(obs, action)
        observed = check_vectors(next_obs, self.bundle.obs_size, 'next observation')
        residual = np.linalg.norm((observed - predicted) / self.obs_std, axis=1)
        return residual / (self.residual_scale + uncertainty)
