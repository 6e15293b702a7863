# SPDX-License-Identifier: Apache-2.0
"""Episodes of a policy in Gymnasium MuJoCo, scored with the project's normalized score.

One episode loop for everything that is evaluated: the torch policy during training and,
later, the exported bundle through the deployment runner. A policy here is any callable
``(B, obs_dim) observations -> (B, H, A) action chunks``; each environment keeps its own
queue of the chunk's first ``n_action_steps`` actions, exactly as the ROS node will.
"""
from __future__ import annotations

from collections import deque
import dataclasses
from typing import Callable

import numpy as np

from dgm_policy_ros.data.scores import has_reference, normalized_score

ChunkPolicy = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class EvalResult:
    env_id: str
    returns: np.ndarray
    lengths: np.ndarray

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
        return out


def evaluate(policy: ChunkPolicy, env_id: str, episodes: int = 10, seed: int = 0,
             n_action_steps: int = 1, reset_hook: Callable[[int], None] | None = None
             ) -> EvalResult:
    """Run ``episodes`` episodes side by side (one batched policy call per control step).

    Environment i is reset with seed ``seed + i``, so results are reproducible.
    """
    import gymnasium as gym

    if episodes < 1 or n_action_steps < 1:
        raise ValueError('episodes and n_action_steps must be >= 1')
    envs = [gym.make(env_id) for _ in range(episodes)]
    try:
        obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
        queues: list[deque] = [deque() for _ in envs]
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        running = list(range(episodes))
        if reset_hook is not None:
            for i in running:
                reset_hook(i)
        while running:
            need = [i for i in running if not queues[i]]
            if need:
                chunks = np.asarray(policy(np.stack([obs[i] for i in need]).astype(np.float32)))
                if chunks.ndim != 3 or chunks.shape[0] != len(need):
                    raise ValueError(f'policy returned shape {chunks.shape}, expected '
                                     f'({len(need)}, H, act_dim)')
                for row, i in enumerate(need):
                    queues[i].extend(chunks[row, :n_action_steps])
            still = []
            for i in running:
                obs[i], reward, term, trunc, _ = envs[i].step(queues[i].popleft())
                returns[i] += reward
                lengths[i] += 1
                if term or trunc:
                    queues[i].clear()
                else:
                    still.append(i)
            running = still
        return EvalResult(env_id, returns, lengths)
    finally:
        for env in envs:
            env.close()
