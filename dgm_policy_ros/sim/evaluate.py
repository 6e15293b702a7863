# SPDX-License-Identifier: Apache-2.0
"""Episodes of a policy in Gymnasium MuJoCo, scored with the project's normalized score.

One episode loop for everything that is evaluated: the exported bundle through the deployment
runner (during training, in `dgm eval` and in the benchmarks), and the d3rlpy peers the
benchmarks compare with. A policy here is any callable
``(B, obs_dim) observations -> (B, H, A) action chunks``; each environment keeps its own
``ActionQueue`` (the runtime's), exactly as the ROS node does. A sequence policy (``history``
given) is called with a batch of history windows instead, each environment keeping its own
``HistoryBuffer`` (the runtime's again).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.scores import has_reference, normalized_score
from dgm_policy_ros.runtime.action_queue import ActionQueue
from dgm_policy_ros.runtime.history import HistoryBuffer, HistorySpec, stack_feeds

ChunkPolicy = Callable[[np.ndarray], np.ndarray]
# The deployment runner's backend runs are scored with (training records it in result.json).
EVAL_BACKEND = 'onnxruntime-cpu'


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
             history: HistorySpec | None = None) -> EvalResult:
    """Run ``episodes`` episodes; environment i is reset with seed ``seed + i``.

    ``parallel``: all episodes side by side, one batched policy call per control step (fast);
    otherwise one after the other at batch 1, bit for bit what a single robot's node computes.
    """
    if episodes < 1 or n_action_steps < 1:
        raise ConfigError('episodes and n_action_steps must be >= 1')
    if parallel:
        return _run(policy, env_id, list(range(episodes)), seed, n_action_steps, history)
    parts = [_run(policy, env_id, [i], seed, n_action_steps, history)
             for i in range(episodes)]
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
    history = None
    if runner.history is not None:
        history = dataclasses.replace(runner.history.spec,
                                      target_return=runner.history.target_return)
    return evaluate(runner.infer, env_id, episodes, seed=seed,
                    n_action_steps=runner.bundle.n_action_steps, parallel=parallel,
                    history=history)


def _run(policy: ChunkPolicy, env_id: str, indices: list[int], seed: int,
         n_action_steps: int, history: HistorySpec | None) -> EvalResult:
    from dgm_policy_ros.sim.environments import make_env

    envs = [make_env(env_id) for _ in indices]
    try:
        obs = [env.reset(seed=seed + i)[0] for i, env in zip(indices, envs)]
        queues = [ActionQueue(n_action_steps) for _ in envs]
        windows = [HistoryBuffer(history, env.observation_space.shape[0],
                                 env.action_space.shape[0]) for env in envs] if history else []
        returns = np.zeros(len(envs))
        lengths = np.zeros(len(envs), dtype=np.int64)
        successes = np.zeros(len(envs), dtype=bool)
        reports_success = False
        running = list(range(len(envs)))
        while running:
            for i in running if history else ():
                windows[i].push(obs[i])
            need = [i for i in running if queues[i].needs_refill]
            if need:
                inputs = stack_feeds([windows[i].feeds() for i in need]) if history else \
                    np.stack([obs[i] for i in need]).astype(np.float32)
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
