# SPDX-License-Identifier: Apache-2.0
"""Roll a behaviour policy out in N Gymnasium environments with batched action queries.

Batching the policy over several environments amortizes the per-call cost of the network;
the environments themselves are stepped in this process (MuJoCo steps are microseconds, a
subprocess vector env would only add IPC). Deterministic for a given seed and ``n_envs``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.episodes import IMAGES_KEY, STATE_KEY, Episode
from dgm_policy_ros.sim.agents import BehaviourPolicy


class _EpisodeBuffer:
    def __init__(self, first_obs) -> None:
        self.obs: list[np.ndarray] = []
        self.images: dict[str, list[np.ndarray]] = {}
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terms: list[bool] = []
        self.truncs: list[bool] = []
        self._observe(first_obs)

    def _observe(self, obs) -> None:
        """A state vector, or the state and camera frames of an environment with cameras."""
        if isinstance(obs, dict):
            for camera, frame in obs[IMAGES_KEY].items():
                self.images.setdefault(camera, []).append(frame)
            obs = obs[STATE_KEY]
        self.obs.append(np.asarray(obs, np.float32))

    def add(self, action, obs, reward, term, trunc) -> None:
        self.actions.append(np.asarray(action, np.float32))
        self._observe(obs)
        self.rewards.append(float(reward))
        self.terms.append(bool(term))
        self.truncs.append(bool(trunc))

    def to_episode(self, episode_id: int, cut: bool = False) -> Episode:
        truncs = list(self.truncs)
        if cut:  # stopped by the collection budget: a truncation, never a terminal
            truncs[-1] = True
        return Episode(episode_id, np.stack(self.obs), np.stack(self.actions),
                       np.asarray(self.rewards, np.float32), np.asarray(self.terms, bool),
                       np.asarray(truncs, bool),
                       {c: np.stack(f) for c, f in self.images.items()} or None)


def rollout(make_env: Callable[[], object], policy: BehaviourPolicy, *, steps: int | None = None,
            episodes: int | None = None, n_envs: int = 8, seed: int = 0,
            progress: bool = True) -> tuple[list[Episode], int]:
    """Collect ``steps`` transitions or ``episodes`` whole episodes.

    Returns (episodes, number of episodes cut short by the step budget; those come last and
    end in a truncation).
    """
    if (steps is None) == (episodes is None):
        raise ConfigError('give exactly one of steps or episodes')
    budget = steps if steps is not None else episodes
    if budget is None or budget < 1:
        raise ConfigError(f'the budget must be >= 1, got {budget}')
    if episodes is not None:
        n_envs = min(n_envs, episodes)
    envs = [make_env() for _ in range(n_envs)]
    bar = _progress(steps if steps is not None else episodes,
                    'steps' if steps is not None else 'episodes', progress)
    try:
        buffers = [_EpisodeBuffer(env.reset(seed=seed + i)[0]) for i, env in enumerate(envs)]
        active = list(range(n_envs))
        finished: list[Episode] = []
        started = n_envs
        total = 0
        while active:
            obs = np.stack([buffers[i].obs[-1] for i in active])
            actions = policy.act(obs)
            still_active = []
            for row, i in enumerate(active):
                next_obs, reward, term, trunc, _info = envs[i].step(actions[row])
                buffers[i].add(actions[row], next_obs, reward, term, trunc)
                total += 1
                if steps is not None:
                    bar.update(1)
                if term or trunc:
                    finished.append(buffers[i].to_episode(len(finished)))
                    if episodes is not None:
                        bar.update(1)
                    if episodes is not None and started >= episodes:
                        buffers[i] = None
                        continue
                    started += 1
                    buffers[i] = _EpisodeBuffer(envs[i].reset()[0])
                if steps is not None and total >= steps:
                    break
                still_active.append(i)
            if steps is not None and total >= steps:
                break
            active = still_active
        cut = 0
        if steps is not None:
            for buf in buffers:
                if buf is not None and buf.actions:
                    finished.append(buf.to_episode(len(finished), cut=True))
                    cut += 1
        return finished, cut
    finally:
        bar.close()
        for env in envs:
            env.close()


def _progress(total: int, unit: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5)
