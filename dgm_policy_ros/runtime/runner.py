# SPDX-License-Identifier: Apache-2.0
"""``PolicyRunner``: a bundle made callable, safely.

Two entry points: ``infer(inputs)`` (stateless: validate, draw noise, run, clip; for
evaluation and benchmarks) and ``act(obs)`` (one robot: the same plus the action-chunk queue
and, for sequence policies, the history window; for the ROS node). A policy that sees images
takes ``{'obs': state, 'images/<camera>': uint8 (H, W, C) frames, ...}``; the bundle's graph
does the image preprocessing. Observations that are the wrong size, type or not finite raise
:class:`ObservationError` before they reach the model; actions never leave non-finite.
"""
from __future__ import annotations

import collections
from pathlib import Path
import time

import numpy as np

from dgm_policy_ros.errors import DgmError
from dgm_policy_ros.runtime.action_queue import ActionQueue
from dgm_policy_ros.runtime.backends import Backend, make_backend
from dgm_policy_ros.runtime.bundle import Bundle, BundleError, load_bundle
from dgm_policy_ros.runtime.history import HistoryBuffer

# Std floor (in observation units) when measuring how far outside the training data a value is.
MIN_OBS_SCALE = 1e-3


class ObservationError(DgmError, ValueError):
    """An observation the policy must not see; ``reason`` is short, for diagnostics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f'{reason}: {detail}')
        self.reason = reason


def check_vectors(values, size: int, name: str = 'observation') -> np.ndarray:
    """(size,) or (B, size) finite numbers as a float32 (B, size) batch, or ObservationError."""
    try:
        arr = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ObservationError('not numeric', f'{name}: {exc}') from exc
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != size:
        raise ObservationError('wrong size', f'{name}: expected {size} values, got shape '
                               f'{tuple(np.shape(values))}')
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ObservationError('non-finite', f'{name} element {int(bad[-1])} is '
                               f'{arr[tuple(bad)]}')
    return arr


def check_frames(values, shape: tuple[int, ...], name: str) -> np.ndarray:
    """(H, W, C) or (B, H, W, C) uint8 frames of exactly ``shape``, or ObservationError."""
    arr = np.asarray(values)
    if arr.dtype != np.uint8:
        raise ObservationError('wrong encoding', f'{name}: expected uint8 frames, got '
                               f'{arr.dtype}')
    if arr.ndim == len(shape):
        arr = arr[None]
    if arr.shape[1:] != tuple(shape):
        raise ObservationError('wrong size', f'{name}: expected frames of {tuple(shape)} '
                               f'(H, W, C), got {tuple(np.shape(values))}')
    return arr


class PolicyRunner:
    def __init__(self, bundle: Bundle | str | Path, backend: str = 'auto', seed: int = 0,
                 threads: int = 1, engine_path: Path | None = None,
                 force_engine_update: bool = False, precision: str = 'fp32',
                 latency_window: int = 10_000, target_return: float | None = None,
                 sampling: str = 'graph', max_obs_sigma: float = 0.0) -> None:
        """``sampling``: for diffusion bundles, ``graph`` runs the whole unrolled sampling loop
        as one graph; ``runner`` loops here over a one-step graph (bench/diffusion_steps.py
        measures which is faster where). ``max_obs_sigma`` > 0 refuses observations with an
        element further than that many training standard deviations from the training mean
        (needs the manifest's normalization; 0: off)."""
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        if self.bundle.manifest['kind'] != 'policy':
            raise BundleError(f'{self.bundle.path} is a {self.bundle.manifest["kind"]} bundle, '
                              'not a policy')
        graphs = self.bundle.manifest['graphs']
        fp16 = self.bundle.file('policy_fp16') if 'policy_fp16' in graphs else None
        self.backend: Backend = make_backend(self.bundle.file('policy'), backend, threads,
                                             engine_path, force_engine_update,
                                             precision=precision, fp16_onnx_path=fp16)
        self._check_graph()
        self._loop = None
        if sampling == 'runner':
            if 'sampler' not in self.bundle.manifest:
                raise BundleError(f'{self.bundle.path} has no one-step sampler graphs')
            self._loop = [make_backend(self.bundle.file(key), backend, threads, None, False,
                                       precision=precision)
                          for key in ('denoise_step', 'decode')]
            self._coef = np.asarray(self.bundle.manifest['sampler']['steps'], np.float32)
        elif sampling != 'graph':
            raise ValueError(f"sampling must be 'graph' or 'runner', got {sampling!r}")
        self.rng = np.random.default_rng(seed)
        self.queue = ActionQueue(self.bundle.n_action_steps)
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=latency_window)
        self.low, self.high = self.bundle.act_low, self.bundle.act_high
        spec = self.bundle.history
        self.history = HistoryBuffer(spec, self.bundle.obs_size, self.bundle.act_size,
                                     target_return, self.bundle.image_inputs) if spec else None
        self._shapes = self.bundle.input_shapes
        self.max_obs_sigma = float(max_obs_sigma)
        self._obs_mean, self._obs_scale = self._training_range()

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
        history = self.bundle.history
        want = [history.length, self.bundle.obs_size] if history else [self.bundle.obs_size]
        if obs_shape != want:
            raise BundleError(f'{self.bundle.path}: observation size {self.bundle.obs_size} '
                              f'disagrees with its input shape {obs_shape}')

    def _training_range(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The training mean and a floored std per observation element (None: unknown)."""
        norm = self.bundle.manifest.get('normalization') or {}
        try:
            mean = np.asarray(norm['obs_mean'], np.float64).reshape(self.bundle.obs_size)
            std = np.asarray(norm['obs_std'], np.float64).reshape(self.bundle.obs_size)
        except (KeyError, TypeError, ValueError):
            return None, None
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            return None, None
        # A dimension constant in the data (std ~ 0) must not fault on sensor noise.
        return mean, np.maximum(std, MIN_OBS_SCALE)

    @property
    def knows_training_range(self) -> bool:
        """Whether the bundle records its training observations' mean and std."""
        return self._obs_mean is not None

    # ------------------------------------------------------------------ checks
    def validate(self, obs) -> np.ndarray:
        arr = check_vectors(obs, self.bundle.obs_size)
        if self.max_obs_sigma > 0:
            if self._obs_mean is None:
                raise ObservationError('no training range', f'{self.bundle.path} records no '
                                       'observation normalization: set max_obs_sigma to 0')
            z = np.abs(arr.astype(np.float64) - self._obs_mean) / self._obs_scale
            if np.any(z > self.max_obs_sigma):
                bad = np.argwhere(z > self.max_obs_sigma)[0]
                raise ObservationError(
                    'out of training range', f'observation element {int(bad[-1])} is '
                    f'{float(arr[tuple(bad)]):.4g}, {float(z[tuple(bad)]):.3g} standard '
                    f'deviations from the training mean (max_obs_sigma {self.max_obs_sigma:g})')
        return arr

    def validate_images(self, inputs) -> dict[str, np.ndarray]:
        """The state and every camera's frames of a policy that sees images, checked."""
        if not isinstance(inputs, dict):
            raise ObservationError('missing images', f'{self.bundle.path} sees images: pass '
                                   f'{{name: array}} for {self.bundle.input_names}')
        if 'obs' not in inputs:
            raise ObservationError('missing input', 'obs is missing')
        feeds = {'obs': self.validate(inputs['obs'])}
        for name, shape in self.bundle.image_inputs.items():
            if name not in inputs:
                raise ObservationError('missing input', f'{name} is missing')
            feeds[name] = check_frames(inputs[name], shape, name)
            if feeds[name].shape[0] != feeds['obs'].shape[0]:
                raise ObservationError('wrong size', f'{name}: {feeds[name].shape[0]} frames '
                                       f"for {feeds['obs'].shape[0]} observations")
        return feeds

    def validate_window(self, inputs) -> dict[str, np.ndarray]:
        """A batch of history windows {input name: (B, ...)} checked like observations."""
        if not isinstance(inputs, dict):
            raise ObservationError('not a history window', f'{self.bundle.path} is a sequence '
                                   f'policy: pass {{name: array}} for {self.bundle.input_names}')
        feeds, batch = {}, None
        for name in self.bundle.input_names:
            if name not in inputs:
                raise ObservationError('missing input', f'{name} is missing')
            if name in self.bundle.image_inputs:  # windows of camera frames
                feeds[name] = check_frames(inputs[name], self._shapes[name], name)
                if batch not in (None, feeds[name].shape[0]):
                    raise ObservationError('wrong size', f'{name}: {feeds[name].shape[0]} '
                                           f'windows for {batch}')
                batch = feeds[name].shape[0]
                continue
            try:
                arr = np.asarray(inputs[name], dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise ObservationError('not numeric', f'{name}: {exc}') from exc
            if arr.shape[1:] != self._shapes[name] or batch not in (None, arr.shape[0]):
                raise ObservationError('wrong size', f'{name}: expected (batch, '
                                       f'{", ".join(map(str, self._shapes[name]))}), got '
                                       f'{arr.shape}')
            if not np.isfinite(arr).all():
                raise ObservationError('non-finite', f'{name} holds non-finite values')
            feeds[name], batch = arr, arr.shape[0]
        return feeds

    def zero_inputs(self, batch: int = 1):
        """Valid inputs of the right shapes (warm-up, benchmarks): all zeros, or the training
        mean of the observation where the bundle records it (zeros may lie outside the
        training range the runner is told to refuse)."""
        obs = np.zeros((batch, self.bundle.obs_size), np.float32)
        if self._obs_mean is not None:
            obs[:] = self._obs_mean
        if self.history is None and not self.bundle.image_inputs:
            return obs
        feeds = {name: np.zeros((batch, *self._shapes[name]),
                                np.uint8 if name in self.bundle.image_inputs else np.float32)
                 for name in self.bundle.input_names}
        feeds['obs'][:] = obs[:, None] if self.history is not None else obs
        return feeds

    # ------------------------------------------------------------------ inference
    def infer(self, inputs) -> np.ndarray:
        """(B, obs) or (obs,) -> action chunks (B, H, A), clipped to the action bounds.

        A sequence policy takes a batch of history windows, ``{input name: (B, ...)}``; a
        policy that sees images, ``{'obs': (B, obs), 'images/<camera>': (B, H, W, C)}``.
        """
        if self.history is not None:
            return self._infer(self.validate_window(inputs))
        if self.bundle.image_inputs:
            return self._infer(self.validate_images(inputs))
        return self._infer({'obs': self.validate(inputs)})

    def _infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        batch = next(iter(feeds.values())).shape[0]
        for spec in self.bundle.noise_inputs:
            feeds[spec.name] = spec.draw(batch, self.rng)
        started = time.perf_counter()
        out = self.backend.run(feeds) if self._loop is None else self._run_loop(feeds)
        self.latencies_ms.append((time.perf_counter() - started) * 1e3)
        out = np.asarray(out, dtype=np.float32).reshape(batch, self.bundle.chunk_size,
                                                        self.bundle.act_size)
        if not np.isfinite(out).all():
            raise FloatingPointError(f'{self.bundle.path}: the model produced a non-finite '
                                     'action from a finite observation')
        return np.clip(out, self.low, self.high)

    def _run_loop(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        step, decode = self._loop
        x = feeds[self.bundle.manifest['sampler']['noise_input']]
        batch = x.shape[0]
        for coef in self._coef:
            x = step.run({'obs': feeds['obs'], 'x': x, 'coef': np.tile(coef, (batch, 1))})
        return decode.run({'x': x})

    def act(self, obs) -> np.ndarray:
        """One control step of one robot: the next action (A,) from the chunk queue."""
        # A bad observation is refused even between inferences.
        feeds = self.validate_images(obs) if self.bundle.image_inputs else None
        arr = feeds['obs'] if feeds else self.validate(obs)
        if arr.shape[0] != 1:
            raise ObservationError('wrong size', 'act() takes one observation')
        if self.history is not None:
            self.history.push(arr[0], {name: feeds[name][0] for name in
                                       self.bundle.image_inputs} if feeds else None)
        if self.queue.needs_refill:
            if self.history is not None:
                feeds = {k: v[None] for k, v in self.history.feeds().items()}
            elif feeds is None:
                feeds = {'obs': arr}
            self.queue.refill(self._infer(feeds)[0])
        action = self.queue.pop()
        if self.history is not None:
            self.history.record_action(action)
        return action

    def record_action(self, action) -> None:
        """The action actually sent, where it differs from the one ``act`` returned
        (exploration noise, tighter limits): a sequence policy's history must hold what the
        robot did, as its training data did."""
        if self.history is not None:
            self.history.record_action(np.asarray(action, np.float32))

    def record_reward(self, reward: float) -> None:
        """The reward of the last step (return-conditioned policies count it down)."""
        if self.history is not None:
            self.history.record_reward(reward)

    def reset(self, target_return: float | None = None) -> None:
        """Start of an episode (or after a fault): forget queued actions and the history."""
        self.queue.clear()
        if self.history is not None:
            self.history.reset(target_return)

    def latency_percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {'p50_ms': float('nan'), 'p99_ms': float('nan'), 'max_ms': float('nan')}
        lat = np.asarray(self.latencies_ms)
        return {'p50_ms': float(np.percentile(lat, 50)), 'p99_ms': float(np.percentile(lat, 99)),
                'max_ms': float(lat.max())}
