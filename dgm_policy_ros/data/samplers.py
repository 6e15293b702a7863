# SPDX-License-Identifier: Apache-2.0
"""Seeded batch samplers: random transitions, return-conditioned sequences, action chunks.

All three draw from the same flat arrays (see :mod:`transitions`), are vectorized numpy
gathers (no Python loop per sample), and expose their RNG state so a resumed training run
draws exactly the batches an uninterrupted run would have drawn.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.episodes import Episode
from dgm_policy_ros.data.transitions import (
    Transitions,
    flatten_episodes,
    flatten_images,
    returns_to_go,
)

Batch = dict[str, np.ndarray]


class _Seeded:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def get_state(self) -> dict[str, Any]:
        """JSON-serializable RNG state (for checkpoints)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


class TransitionSampler(_Seeded):
    """Uniform random (s, a, r, s', terminal, timeout) batches; with cameras, each step's
    frames as ``images/<camera>`` (B, H, W, C) uint8."""

    def __init__(self, data: Transitions | Sequence[Episode], batch_size: int,
                 seed: int = 0) -> None:
        super().__init__(seed)
        self.data = data if isinstance(data, Transitions) else flatten_episodes(data)
        self.images = {} if isinstance(data, Transitions) else flatten_images(data)
        if batch_size < 1:
            raise ConfigError(f'batch_size must be >= 1, got {batch_size}')
        self.batch_size = batch_size

    def at(self, indices: np.ndarray) -> Batch:
        d = self.data
        return {
            **{key: frames[indices] for key, frames in self.images.items()},
            'observations': d.observations[indices],
            'actions': d.actions[indices],
            'rewards': d.rewards[indices],
            'next_observations': d.next_observations[indices],
            'terminals': d.terminals[indices].astype(np.float32),
            'timeouts': d.timeouts[indices].astype(np.float32),
        }

    def sample(self) -> Batch:
        return self.at(self.rng.integers(0, len(self.data), size=self.batch_size))


class SequenceSampler(_Seeded):
    """Windows of ``context`` steps for Decision-Transformer-style models.

    Each window ends at a uniformly drawn step and holds the history before it, so training
    sees exactly what the deployed history buffer holds at run time. Windows that reach back
    past the episode start are left-padded with zeros and ``mask`` = 0.
    """

    def __init__(self, episodes: Sequence[Episode], context: int, batch_size: int,
                 seed: int = 0, gamma: float = 1.0) -> None:
        super().__init__(seed)
        if context < 1:
            raise ConfigError(f'context must be >= 1, got {context}')
        self.context, self.batch_size = context, batch_size
        self.data = flatten_episodes(episodes)
        self.rtg = np.concatenate([returns_to_go(ep.rewards, gamma) for ep in episodes])
        self.timesteps = self.data.step_in_episode
        self._first = np.repeat(self.data.episode_starts, self.data.episode_lengths)

    def ending_at(self, ends: np.ndarray) -> Batch:
        ends = np.asarray(ends, dtype=np.int64)
        idx = ends[:, None] - (self.context - 1) + np.arange(self.context)[None, :]
        valid = idx >= self._first[ends][:, None]
        idx = np.where(valid, idx, self._first[ends][:, None])
        keep = valid[..., None].astype(np.float32)
        return {
            'observations': self.data.observations[idx] * keep,
            'actions': self.data.actions[idx] * keep,
            'returns_to_go': self.rtg[idx][..., None] * keep,
            'rewards': self.data.rewards[idx] * valid,
            'timesteps': np.where(valid, self.timesteps[idx], 0).astype(np.int64),
            'mask': valid.astype(np.float32),
        }

    def sample(self) -> Batch:
        return self.ending_at(self.rng.integers(0, len(self.data), size=self.batch_size))


class ChunkSampler(_Seeded):
    """Observation histories and future action chunks, Diffusion-Policy / ACT style.

    For a step t: ``observations`` holds the ``n_obs_steps`` observations ending at t (the
    first observation repeated before the episode start), ``actions`` the ``horizon`` actions
    from t on (the last action repeated past the episode end), ``action_mask`` which of those
    are real. With cameras, ``images/<camera>`` holds the frames of the same observation
    steps, (B, n_obs_steps, H, W, C) uint8.
    """

    def __init__(self, episodes: Sequence[Episode], horizon: int, batch_size: int,
                 n_obs_steps: int = 1, seed: int = 0) -> None:
        super().__init__(seed)
        if horizon < 1 or n_obs_steps < 1:
            raise ConfigError(f'horizon and n_obs_steps must be >= 1, got {horizon}, '
                             f'{n_obs_steps}')
        self.horizon, self.n_obs_steps, self.batch_size = horizon, n_obs_steps, batch_size
        self.data = flatten_episodes(episodes)
        self.images = flatten_images(episodes)
        self._first = np.repeat(self.data.episode_starts, self.data.episode_lengths)
        lengths = np.repeat(self.data.episode_lengths, self.data.episode_lengths)
        self._last = self._first + lengths - 1

    def starting_at(self, starts: np.ndarray) -> Batch:
        starts = np.asarray(starts, dtype=np.int64)
        obs_idx = starts[:, None] - (self.n_obs_steps - 1) + np.arange(self.n_obs_steps)
        obs_idx = np.maximum(obs_idx, self._first[starts][:, None])
        act_idx = starts[:, None] + np.arange(self.horizon)[None, :]
        valid = act_idx <= self._last[starts][:, None]
        act_idx = np.minimum(act_idx, self._last[starts][:, None])
        return {
            'observations': self.data.observations[obs_idx],
            **{key: frames[obs_idx] for key, frames in self.images.items()},
            'actions': self.data.actions[act_idx],
            'action_mask': valid.astype(np.float32),
        }

    def sample(self) -> Batch:
        return self.starting_at(self.rng.integers(0, len(self.data), size=self.batch_size))


class MixedSampler:
    """Batches of which a fixed fraction comes from a second (e.g. synthetic) transition set:
    ``ratio`` of each batch from ``extra``, the rest from ``base``."""

    def __init__(self, base: TransitionSampler, extra: TransitionSampler, ratio: float) -> None:
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f'the synthetic ratio must be in (0, 1), got {ratio}')
        size = base.batch_size
        self.n_extra = max(1, min(size - 1, round(ratio * size)))
        self.base, self.extra = base, extra
        self.base.batch_size, self.extra.batch_size = size - self.n_extra, self.n_extra

    def sample(self) -> Batch:
        a, b = self.base.sample(), self.extra.sample()
        return {k: np.concatenate([a[k], b[k]]) for k in a}

    def get_state(self) -> dict[str, Any]:
        return {'base': self.base.get_state(), 'extra': self.extra.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.base.set_state(state['base'])
        self.extra.set_state(state['extra'])


def transitions_from_arrays(arrays: dict[str, np.ndarray]) -> Transitions:
    """Loose transitions (model rollouts, synthetic samples) in the sampler's format: each is
    its own one-step episode; terminals as given, never a timeout."""
    n = len(arrays['rewards'])
    return Transitions(
        observations=np.asarray(arrays['observations'], np.float32),
        actions=np.asarray(arrays['actions'], np.float32),
        rewards=np.asarray(arrays['rewards'], np.float32),
        next_observations=np.asarray(arrays['next_observations'], np.float32),
        terminals=np.asarray(arrays['terminals']) > 0.5, timeouts=np.zeros(n, bool),
        episode_starts=np.arange(n), episode_lengths=np.ones(n, np.int64))
