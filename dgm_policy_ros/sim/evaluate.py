# SPDX-License-Identifier: Apache-2.0
"""Episodes of a policy in Gymnasium MuJoCo, scored with the project's normalized score.

One episode loop for everything that is evaluated: the exported bundle through the deployment
runner (during training, in `dgm eval` and in the benchmarks), and the d3rlpy peers the
benchmarks compare with. A policy here is any callable
``(B, obs_dim) observations -> (B, H, A) action chunks``; each environment keeps its own
``ActionQueue`` (the runtime's), exactly as the ROS node does. A sequence policy (``history``
given) is called with a batch of history windows instead, each environment keeping its own
``HistoryBuffer`` (the runtime's again, with frames for a policy that sees images). A policy
that sees images (``cameras`` given) is called with ``{'obs': its state elements,
'images/<camera>': frames}``, rendered as it was trained.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.episodes import IMAGES_KEY, STATE_KEY
from dgm_policy_ros.data.scores import has_reference, normalized_score
from dgm_policy_ros.data.transitions import IMAGE_PREFIX
from dgm_policy_ros.runtime.action_queue import ActionQueue
from dgm_policy_ros.runtime.history import HistoryBuffer, HistorySpec, stack_feeds

ChunkPolicy = Callable[[np.ndarray], np.ndarray]
# The deployment runner's backend runs are scored with (training records it in result.json).
EVAL_BACKEND = 'onnxruntime-cpu'
# Environments that render side by side: each holds a GL context and its frame buffers.
MAX_RENDERING_ENVS = 10


@dataclasses.dataclass(frozen=True)
class Cameras:
    """What a policy that sees images is given: the views to render (``sim.cameras``) and the
    state elements beside them (None: the whole state)."""

    views: tuple
    state_indices: tuple | None = None

    def inputs(self, observations: list[dict]) -> dict[str, np.ndarray]:
        """Environment observations ``{'state', 'images'}`` -> the policy's batch of inputs."""
        state = np.stack([o[STATE_KEY] for o in observations]).astype(np.float32)
        if self.state_indices is not None:
            state = state[:, list(self.state_indices)]
        feeds = {'obs': state}
        for camera in observations[0][IMAGES_KEY]:
            feeds[IMAGE_PREFIX + camera] = np.stack([o[IMAGES_KEY][camera] for o in observations])
        return feeds


@dataclasses.dataclass
class EvalResult:
    env_id: str
    returns: np.ndarray
    lengths: np.ndarray
    # Per episode, whether the task reported success (info['success']) at any step; None for
    # tasks that report none (locomotion). Where present, the success rate is the metric.
    successes: np.ndarray | None = None

    @property
    def scores(self) -> np.ndarray | None:
        return normalized_score(self.env_id, self.returns) if has_reference(self.env_id) \
            else None

    def summary(self) -> dict[str, float]:
        out = {'return_mean': float(self.returns.mean()), 'return_std': float(self.returns.std()),
               'length_mean': float(self.lengths.mean())}
        if self.scores is not None:
            out.update(score_mean=float(np.mean(self.scores)),
                       score_std=float(np.std(self.scores)))
        if self.successes is not None:
            out['success_rate'] = float(np.mean(self.successes))
        return out


def evaluate(policy: ChunkPolicy, env_id: str, episodes: int = 10, seed: int = 0,
             n_action_steps: int = 1, parallel: bool = True,
             history: HistorySpec | None = None, cameras: Cameras | None = None) -> EvalResult:
    """Run ``episodes`` episodes; environment i is reset with seed ``seed + i``.

    ``parallel``: all episodes side by side, one batched policy call per control step (fast;
    with cameras, up to ``MAX_RENDERING_ENVS`` at a time); otherwise one after the other at
    batch 1, bit for bit what a single robot's node computes.
    """
    if episodes < 1 or n_action_steps < 1:
        raise ConfigError('episodes and n_action_steps must be >= 1')
    width = 1 if not parallel else MAX_RENDERING_ENVS if cameras else episodes
    groups = [list(range(i, min(i + width, episodes))) for i in range(0, episodes, width)]
    parts = [_run(policy, env_id, group, seed, n_action_steps, history, cameras)
             for group in groups]
    if len(parts) == 1:
        return parts[0]
    successes = None if parts[0].successes is None else \
        np.concatenate([p.successes for p in parts])
    return EvalResult(env_id, np.concatenate([p.returns for p in parts]),
                      np.concatenate([p.lengths for p in parts]), successes)


def evaluate_runner(runner, env_id: str | None = None, episodes: int = 10,
                    seed: int | None = None, parallel: bool = True) -> EvalResult:
    """Score an exported bundle through the deployment runner (what ships is what is scored):
    its chunking, and its history window with the runner's target return. The environment
    and its seeds default to the bundle's own (its training run's evaluation)."""
    env_id = env_id or runner.bundle.env_id
    if not env_id:
        raise ConfigError('the bundle names no environment: pass one (dgm eval --env)')
    seed = runner.bundle.eval_env_seed if seed is None else seed
    cameras = bundle_cameras(runner.bundle, env_id) if runner.bundle.image_inputs else None
    history = None
    if runner.history is not None:
        history = dataclasses.replace(runner.history.spec,
                                      target_return=runner.history.target_return)
    return evaluate(runner.infer, env_id, episodes, seed=seed,
                    n_action_steps=runner.bundle.n_action_steps, parallel=parallel,
                    history=history, cameras=cameras)


def bundle_cameras(bundle, env_id: str) -> Cameras:
    """The cameras a bundle was trained with, rendered in ``env_id`` (its views, else the
    task's default views at the bundle's image sizes)."""
    from dgm_policy_ros.sim.cameras import CameraView, default_views

    views = [CameraView.from_dict(v) for v in bundle.camera_views]
    if not views:
        sizes = {name.split('/', 1)[1]: shape for name, shape in bundle.image_inputs.items()}
        views = [view.replace(height=sizes[view.camera][0], width=sizes[view.camera][1])
                 for view in default_views(env_id) if view.camera in sizes]
    missing = {name.split('/', 1)[1] for name in bundle.image_inputs} - {v.camera for v in views}
    if missing:
        raise ConfigError(f'{bundle.path}: no view to render camera(s) {sorted(missing)} in '
                          f'{env_id}')
    indices = bundle.state_indices
    return Cameras(tuple(views), tuple(indices) if indices else None)


def _run(policy: ChunkPolicy, env_id: str, indices: list[int], seed: int,
         n_action_steps: int, history: HistorySpec | None,
         cameras: Cameras | None = None) -> EvalResult:
    from dgm_policy_ros.sim.environments import make_env

    envs = [make_env(env_id, list(cameras.views) if cameras else None) for _ in indices]
    try:
        obs = [env.reset(seed=seed + i)[0] for i, env in zip(indices, envs)]
        queues = [ActionQueue(n_action_steps) for _ in envs]

        def observed(o):
            """One environment's observation as (the policy's state vector, its frames)."""
            if cameras is None:
                return o, None
            feeds = cameras.inputs([o])
            return feeds.pop('obs')[0], {name: frames[0] for name, frames in feeds.items()}

        windows = []
        for env, o in zip(envs, obs) if history else ():
            state, frames = observed(o)
            windows.append(HistoryBuffer(history, state.shape[0], env.action_space.shape[0],
                                         frame_shapes={name: f.shape for name, f in
                                                       (frames or {}).items()}))
        returns = np.zeros(len(envs))
        lengths = np.zeros(len(envs), dtype=np.int64)
        successes = np.zeros(len(envs), dtype=bool)
        reports_success = False
        running = list(range(len(envs)))
        while running:
            for i in running if history else ():
                windows[i].push(*observed(obs[i]))
            need = [i for i in running if queues[i].needs_refill]
            if need:
                if history:
                    inputs = stack_feeds([windows[i].feeds() for i in need])
                elif cameras:
                    inputs = cameras.inputs([obs[i] for i in need])
                else:
                    inputs = np.stack([obs[i] for i in need]).astype(np.float32)
                chunks = np.asarray(policy(inputs))
                if chunks.ndim != 3 or chunks.shape[0] != len(need):
                    raise ValueError(f'policy returned shape {chunks.shape}, expected '
                                     f'({len(need)}, H, act_dim)')
                for row, i in enumerate(need):
                    queues[i].refill(chunks[row])
            still = []
            for i in running:
                action = queues[i].pop()
                obs[i], reward, term, trunc, info = envs[i].step(action)
                if 'success' in info:
                    reports_success = True
                    successes[i] |= bool(info['success'])
                if history:
                    windows[i].record_action(action)
                    windows[i].record_reward(reward)
                returns[i] += reward
                lengths[i] += 1
                if term or trunc:
                    queues[i].clear()
                else:
                    still.append(i)
            running = still
        return EvalResult(env_id, returns, lengths, successes if reports_success else None)
    finally:
        for env in envs:
            env.close()
