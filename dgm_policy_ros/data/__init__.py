# SPDX-License-Identifier: Apache-2.0
"""Data layer: Minari datasets in, episodes/transitions/batches out; one scoring metric.

Everything that trains reads data through this package, so every algorithm sees the same
episodes, the same normalization and the same normalized score.
"""
from dgm_policy_ros.data.episodes import DatasetError, Episode, validate_episode
from dgm_policy_ros.data.normalization import DatasetSplit, NormalizationStats
from dgm_policy_ros.data.samplers import ChunkSampler, SequenceSampler, TransitionSampler
from dgm_policy_ros.data.scores import normalized_score, reference_returns
from dgm_policy_ros.data.transitions import Transitions, flatten_episodes

__all__ = [
    'ChunkSampler', 'DatasetError', 'DatasetSplit', 'Episode', 'NormalizationStats',
    'SequenceSampler', 'TransitionSampler', 'Transitions', 'flatten_episodes',
    'normalized_score', 'reference_returns', 'validate_episode',
]
