# SPDX-License-Identifier: Apache-2.0
"""Normalization statistics and the train/validation split, computed once and persisted.

The statistics are computed on the training episodes only and saved next to the dataset (and
later inside every model bundle), so training, evaluation and the deployed runner all normalize
with the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from dgm_policy_ros.data.episodes import DatasetError, Episode
from dgm_policy_ros.utils.atomic import atomic_write_json

# Dimensions with (near) zero spread are left unscaled instead of being blown up.
MIN_STD = 1e-6
SPLIT_DIR = 'dgm'


@dataclass(frozen=True)
class NormalizationStats:
    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray
    act_low: np.ndarray
    act_high: np.ndarray

    @classmethod
    def from_episodes(cls, episodes: Sequence[Episode]) -> 'NormalizationStats':
        if not episodes:
            raise DatasetError('cannot compute normalization statistics of zero episodes')
        obs = np.concatenate([ep.observations[:-1] for ep in episodes]).astype(np.float64)
        act = np.concatenate([ep.actions for ep in episodes]).astype(np.float64)
        return cls(
            obs_mean=obs.mean(0).astype(np.float32),
            obs_std=np.maximum(obs.std(0), MIN_STD).astype(np.float32),
            act_mean=act.mean(0).astype(np.float32),
            act_std=np.maximum(act.std(0), MIN_STD).astype(np.float32),
            act_low=act.min(0).astype(np.float32),
            act_high=act.max(0).astype(np.float32),
        )

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        return ((obs - self.obs_mean) / self.obs_std).astype(np.float32)

    def denormalize_obs(self, obs: np.ndarray) -> np.ndarray:
        return (obs * self.obs_std + self.obs_mean).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> 'NormalizationStats':
        try:
            fields = {k: np.asarray(data[k], dtype=np.float32) for k in cls.__dataclass_fields__}
        except KeyError as exc:
            raise DatasetError(f'normalization statistics miss field {exc.args[0]!r}') from exc
        for name, value in fields.items():
            if not np.isfinite(value).all():
                raise DatasetError(f'normalization statistics field {name} is not finite')
        return cls(**fields)


@dataclass(frozen=True)
class DatasetSplit:
    """Which episodes train and which validate, and the statistics of the training part."""

    train_episodes: tuple[int, ...]
    val_episodes: tuple[int, ...]
    stats: NormalizationStats
    seed: int
    val_fraction: float

    @classmethod
    def create(cls, episodes: Sequence[Episode], val_fraction: float = 0.1,
               seed: int = 0) -> 'DatasetSplit':
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
        order = np.random.default_rng(seed).permutation(len(episodes))
        n_val = int(round(val_fraction * len(episodes)))
        if len(episodes) - n_val < 1:
            n_val = len(episodes) - 1
        val = tuple(sorted(int(i) for i in order[:n_val]))
        train = tuple(sorted(int(i) for i in order[n_val:]))
        stats = NormalizationStats.from_episodes([episodes[i] for i in train])
        return cls(train, val, stats, seed, float(val_fraction))

    @classmethod
    def load_or_create(cls, dataset_path: Path, episodes: Sequence[Episode],
                       val_fraction: float = 0.1, seed: int = 0) -> 'DatasetSplit':
        """Reuse the split saved with the dataset, or compute and save it (atomically)."""
        path = Path(dataset_path) / SPLIT_DIR / f'split-seed{seed}-val{val_fraction:g}.json'
        if path.is_file():
            split = cls.from_dict(json.loads(path.read_text()))
            if max(split.train_episodes + split.val_episodes) < len(episodes) and \
                    len(split.train_episodes) + len(split.val_episodes) == len(episodes):
                return split
        split = cls.create(episodes, val_fraction, seed)
        try:
            atomic_write_json(path, split.to_dict())
        except OSError:  # read-only dataset folder: the split is still valid in memory
            pass
        return split

    def to_dict(self) -> dict:
        return {'train_episodes': list(self.train_episodes),
                'val_episodes': list(self.val_episodes), 'seed': self.seed,
                'val_fraction': self.val_fraction, 'stats': self.stats.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> 'DatasetSplit':
        return cls(tuple(data['train_episodes']), tuple(data['val_episodes']),
                   NormalizationStats.from_dict(data['stats']), int(data['seed']),
                   float(data['val_fraction']))
