# SPDX-License-Identifier: Apache-2.0
"""Episodes flattened to (s, a, r, s', terminal, timeout) transitions, plus index helpers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dgm_policy_ros.data.episodes import DatasetError, Episode


@dataclass(frozen=True)
class Transitions:
    """Flat arrays over all steps of all episodes, in episode order.

    ``terminals`` are true terminal states; ``timeouts`` mark the last step of an episode that
    ended for any other reason (time limit, collection budget, end of a recording): the value
    of ``next_observations`` there should be bootstrapped, not zeroed.
    """

    observations: np.ndarray  # (N, obs_dim)
    actions: np.ndarray  # (N, act_dim)
    rewards: np.ndarray  # (N,)
    next_observations: np.ndarray  # (N, obs_dim)
    terminals: np.ndarray  # (N,) bool
    timeouts: np.ndarray  # (N,) bool
    episode_starts: np.ndarray  # (E,) index of each episode's first step
    episode_lengths: np.ndarray  # (E,)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def episode_index(self) -> np.ndarray:
        """(N,) the episode each step belongs to."""
        return np.repeat(np.arange(len(self.episode_lengths)), self.episode_lengths)

    @property
    def step_in_episode(self) -> np.ndarray:
        """(N,) the step's timestep within its episode (0 at the first step)."""
        return np.arange(len(self)) - np.repeat(self.episode_starts, self.episode_lengths)


IMAGE_PREFIX = 'images/'  # batch keys and graph inputs of camera frames: images/<camera>


def flatten_images(episodes: Sequence[Episode]) -> dict[str, np.ndarray]:
    """Each camera's frames of every step, (N, H, W, C) uint8 in the order of
    :func:`flatten_episodes`' observations, keyed ``images/<camera>``; empty without cameras."""
    cameras = list(episodes[0].images or {}) if episodes else []
    return {IMAGE_PREFIX + camera: np.concatenate([ep.images[camera][:-1] for ep in episodes])
            for camera in cameras}


def flatten_episodes(episodes: Sequence[Episode]) -> Transitions:
    if not episodes:
        raise DatasetError('no episodes to flatten')
    lengths = np.array([len(ep) for ep in episodes], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    terminals = np.concatenate([ep.terminations for ep in episodes])
    timeouts = np.concatenate([ep.truncations for ep in episodes])
    # An episode whose last step is neither terminal nor truncated (a recording that just
    # stopped) still ends there: treat it as a timeout so nothing bootstraps across episodes.
    ends = starts + lengths - 1
    timeouts[ends] |= ~terminals[ends]
    return Transitions(
        observations=np.concatenate([ep.observations[:-1] for ep in episodes]),
        actions=np.concatenate([ep.actions for ep in episodes]),
        rewards=np.concatenate([ep.rewards for ep in episodes]),
        next_observations=np.concatenate([ep.observations[1:] for ep in episodes]),
        terminals=terminals,
        timeouts=timeouts,
        episode_starts=starts,
        episode_lengths=lengths,
    )


def returns_to_go(rewards: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Discounted sum of future rewards from each step of one episode (inclusive)."""
    rtg = np.zeros(len(rewards), dtype=np.float64)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + gamma * acc
        rtg[t] = acc
    return rtg.astype(np.float32)
