# SPDX-License-Identifier: Apache-2.0
"""``PolicyRunner``: a bundle made callable, safely.

Two entry points: ``infer(obs_batch)`` (stateless: validate, draw noise, run, clip; for
evaluation and benchmarks) and ``act(obs)`` (one robot: the same plus the action-chunk queue;
for the ROS node). Observations that are the wrong size or not finite raise
:class:`ObservationError` before they reach the model; actions never leave non-finite.
"""
from __future__ import annotations

import collections
from pathlib import Path
import time

import numpy as np

from dgm_policy_ros.runtime.action_queue import ActionQueue
from dgm_policy_ros.runtime.backends import Backend, make_backend
from dgm_policy_ros.runtime.bundle import Bundle, BundleError, load_bundle


class ObservationError(ValueError):
    """An observation the policy must not see; ``reason`` is short, for diagnostics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f'{reason}: {detail}')
        self.reason = reason


class PolicyRunner:
    def __init__(self, bundle: Bundle | str | Path, backend: str = 'auto', seed: int = 0,
                 threads: int = 1, engine_path: Path | None = None,
                 force_engine_update: bool = False, precision: str = 'fp32',
                 latency_window: int = 10_000) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        graphs = self.bundle.manifest['graphs']
        fp16 = self.bundle.file('policy_fp16') if 'policy_fp16' in graphs else None
        self.backend: Backend = make_backend(self.bundle.file('policy'), backend, threads,
                                             engine_path, force_engine_update,
                                             precision=precision, fp16_onnx_path=fp16)
        self._check_graph()
        self.rng = np.random.default_rng(seed)
        self.queue = ActionQueue(self.bundle.n_action_steps)
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=latency_window)
        self.low, self.high = self.bundle.act_low, self.bundle.act_high
        self._obs_name = self.bundle.manifest['inputs'][0]['name']

    def _check_graph(self) -> None:
        """The manifest must describe the graph it ships with: names and fixed sizes."""
        declared = {i['name']: i['shape'] for i in self.bundle.manifest['inputs']}
        if self.backend.input_names() != list(declared):
            raise BundleError(f'{self.bundle.path}: the manifest lists inputs {list(declared)} '
                              f'but the graph has {self.backend.input_names()}')
        shapes = getattr(self.backend, 'input_shapes', lambda: {})()
        for name, shape in shapes.items():
            want = declared[name][1:]
            got = list(shape)[1:]
            if [int(d) for d in want] != [d if isinstance(d, int) else -1 for d in got]:
                raise BundleError(f'{self.bundle.path}: input {name} is {got} (after the batch '
                                  f'dimension) in the graph but {want} in the manifest')
        obs_shape = next(iter(declared.values()))[1:]
        if obs_shape != [self.bundle.obs_size]:
            raise BundleError(f'{self.bundle.path}: observation size {self.bundle.obs_size} '
                              f'disagrees with its input shape {obs_shape}')

    # ------------------------------------------------------------------ checks
    def validate(self, obs) -> np.ndarray:
        try:
            arr = np.asarray(obs, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ObservationError('not numeric', str(exc)) from exc
        size = self.bundle.obs_size
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != size:
            raise ObservationError('wrong size', f'expected {size} values, got shape '
                                   f'{tuple(np.shape(obs))}')
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise ObservationError('non-finite', f'observation element {int(bad[-1])} is '
                                   f'{arr[tuple(bad)]}')
        return arr

    # ------------------------------------------------------------------ inference
    def infer(self, obs) -> np.ndarray:
        """(B, obs) or (obs,) -> action chunks (B, H, A), clipped to the action bounds."""
        return self._infer(self.validate(obs))

    def _infer(self, arr: np.ndarray) -> np.ndarray:
        feeds = {self._obs_name: arr}
        for spec in self.bundle.noise_inputs:
            feeds[spec.name] = spec.draw(arr.shape[0], self.rng)
        started = time.perf_counter()
        out = self.backend.run(feeds)
        self.latencies_ms.append((time.perf_counter() - started) * 1e3)
        out = np.asarray(out, dtype=np.float32).reshape(arr.shape[0], self.bundle.chunk_size,
                                                        self.bundle.act_size)
        if not np.isfinite(out).all():
            raise FloatingPointError(f'{self.bundle.path}: the model produced a non-finite '
                                     'action from a finite observation')
        return np.clip(out, self.low, self.high)

    def act(self, obs) -> np.ndarray:
        """One control step of one robot: the next action (A,) from the chunk queue."""
        arr = self.validate(obs)  # a bad observation is refused even between inferences
        if self.queue.needs_refill:
            self.queue.refill(self._infer(arr)[0])
        return self.queue.pop()

    def reset(self) -> None:
        """Start of an episode (or after a fault): forget queued actions."""
        self.queue.clear()

    def latency_percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {'p50_ms': float('nan'), 'p99_ms': float('nan'), 'max_ms': float('nan')}
        lat = np.asarray(self.latencies_ms)
        return {'p50_ms': float(np.percentile(lat, 50)), 'p99_ms': float(np.percentile(lat, 99)),
                'max_ms': float(lat.max())}
