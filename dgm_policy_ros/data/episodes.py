# SPDX-License-Identifier: Apache-2.0
"""One episode of experience, as Minari stores it, with validation that names what is wrong."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgm_policy_ros.errors import DgmError

REQUIRED_FIELDS = ('observations', 'actions', 'rewards', 'terminations', 'truncations')


class DatasetError(DgmError, ValueError):
    """A dataset is malformed; the message names the dataset, episode and field."""


@dataclass(frozen=True)
class Episode:
    """T steps: ``observations`` has T+1 rows (the last is the final next-observation).

    ``terminations[t]`` marks a true terminal state (no bootstrapping), ``truncations[t]`` a
    time limit or collection cut (bootstrap from the next observation). They are kept apart
    because conflating them biases every value-based learner.
    """

    id: int
    observations: np.ndarray  # (T+1, obs_dim) float32
    actions: np.ndarray  # (T, act_dim) float32
    rewards: np.ndarray  # (T,) float32
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))

    @classmethod
    def from_arrays(cls, episode_id: int, data: dict, source: str = 'dataset') -> 'Episode':
        """Build and validate an episode from a mapping of arrays (e.g. Minari EpisodeData)."""
        missing = [f for f in REQUIRED_FIELDS if data.get(f) is None]
        if missing:
            raise DatasetError(f'{source}: episode {episode_id} is missing field(s) {missing}')
        obs = data['observations']
        if isinstance(obs, dict):
            raise DatasetError(
                f'{source}: episode {episode_id} field observations is a dict space '
                f'(keys {sorted(obs)}); flatten it to a Box before training')
        episode = cls(
            id=int(episode_id),
            observations=_as_2d(obs, np.float32),
            actions=_as_2d(data['actions'], np.float32),
            rewards=np.asarray(data['rewards'], dtype=np.float32).reshape(-1),
            terminations=np.asarray(data['terminations'], dtype=bool).reshape(-1),
            truncations=np.asarray(data['truncations'], dtype=bool).reshape(-1),
        )
        validate_episode(episode, source)
        return episode


def _as_2d(value, dtype) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    return arr.reshape(arr.shape[0], -1) if arr.ndim != 2 else arr


def validate_episode(episode: Episode, source: str = 'dataset') -> None:
    """Raise :class:`DatasetError` naming the episode and field of the first problem found."""
    where = f'{source}: episode {episode.id}'
    steps = len(episode)
    if steps == 0:
        raise DatasetError(f'{where} has no steps')
    expected = {
        'observations': steps + 1,
        'actions': steps,
        'terminations': steps,
        'truncations': steps,
    }
    for field, rows in expected.items():
        got = getattr(episode, field).shape[0]
        if got != rows:
            raise DatasetError(
                f'{where} field {field} has {got} rows, expected {rows} '
                f'(rewards has {steps} steps)')
    for field in ('observations', 'actions', 'rewards'):
        values = getattr(episode, field)
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            raise DatasetError(f'{where} field {field} has a non-finite value at step {row}')
    if episode.terminations[:-1].any() or episode.truncations[:-1].any():
        field = 'terminations' if episode.terminations[:-1].any() else 'truncations'
        row = int(np.argmax(getattr(episode, field)[:-1]))
        raise DatasetError(f'{where} field {field} ends the episode early, at step {row}')
