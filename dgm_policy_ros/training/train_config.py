# SPDX-License-Identifier: Apache-2.0
"""``TrainConfig``: what one training run is (algorithm, dataset, budget, evaluation, device),
saved as a run folder's ``config.yaml``."""
from __future__ import annotations

import dataclasses
from typing import Optional

from dgm_policy_ros.config import Config, ConfigError
from dgm_policy_ros.training.registry import get_algorithm


@dataclasses.dataclass
class TrainConfig(Config):
    algo: str  # algorithm or world-model name
    dataset: str  # Minari id or dataset folder
    out: str  # run folder, e.g. runs/hopper-medium-bc
    steps: int = 100_000  # gradient steps
    seed: int = 0
    eval_every: int = 10_000  # gradient steps between evaluations; 0: only at the end; -1: never
    eval_episodes: int = 10  # episodes per evaluation
    eval_env: Optional[str] = None  # default: the dataset's environment
    checkpoint_every: int = 5_000  # gradient steps between checkpoints
    log_every: int = 250
    val_fraction: float = 0.0  # held-out episodes (validation loss; world models' metrics)
    threads: int = 1  # torch intra-op threads per process
    device: str = 'cpu'  # cpu, cuda, cuda:N, or auto (the GPU when torch sees one)
    tensorboard: bool = True
    progress: bool = True
    algo_config: dict = dataclasses.field(default_factory=dict)
    # Fine-tuning: start from this trained model (a run folder, or a bundle's training/
    # folder), keeping its normalization and action bounds.
    init_from: Optional[str] = None
    # Augmentation: synthetic transitions (a file from dgm augment-mopo / augment-synther)
    # mixed into the batches.
    extra_transitions: Optional[str] = None

    # The fraction of each batch from extra_transitions (None: in proportion to the sizes).
    synthetic_ratio: Optional[float] = None

    def validate(self) -> None:
        get_algorithm(self.algo)  # unknown names fail here, with the list of known ones
        for name in ('steps', 'checkpoint_every', 'log_every', 'eval_episodes', 'threads'):
            if getattr(self, name) < 1:
                raise ConfigError(f'TrainConfig.{name} must be >= 1, got {getattr(self, name)}')
        if self.eval_every < -1:
            raise ConfigError('TrainConfig.eval_every must be >= -1')
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError('TrainConfig.val_fraction must be in [0, 1)')
        if self.synthetic_ratio is not None and not 0.0 < self.synthetic_ratio < 1.0:
            raise ConfigError('TrainConfig.synthetic_ratio must be in (0, 1)')
        if self.synthetic_ratio is not None and not self.extra_transitions:
            raise ConfigError('TrainConfig.synthetic_ratio needs extra_transitions')
        from dgm_policy_ros.training.device import check_device_name  # imports torch

        check_device_name(self.device)

    def algorithm_config(self, saved: bool = False):
        """The algorithm's typed config. ``saved``: ``algo_config`` was read from a run folder,
        which may predate some settings; those take the value the run was trained with
        (``AlgoConfig.legacy``) rather than today's default."""
        cls = get_algorithm(self.algo).config_class
        return cls.from_saved(self.algo_config) if saved else cls.from_dict(self.algo_config)
