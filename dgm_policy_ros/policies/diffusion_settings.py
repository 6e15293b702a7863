# SPDX-License-Identifier: Apache-2.0
"""The settings every diffusion policy shares, with their checks in one place."""
from __future__ import annotations

import dataclasses

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.diffusion.schedule import PREDICTIONS, SCHEDULES
from dgm_policy_ros.training.algorithm import AlgoConfig


@dataclasses.dataclass
class DiffusionSettings(AlgoConfig):
    """Noise schedule, sampler and denoiser settings of a diffusion policy. A config that has
    another base too lists this one first (``DiffusionBCConfig(DiffusionSettings,
    ChunkConfig)``), so both bases' fields and checks join it."""

    diffusion_steps: int = 100  # T of the training schedule
    sampling_steps: int = 10  # DDIM steps at inference: a deploy-time choice
    schedule: str = 'cosine'
    # What the denoiser predicts: 'sample' (the clean action or chunk, x_0) or 'epsilon' (the
    # noise).
    prediction: str = 'sample'
    time_embed: int = 32  # width of the sinusoidal timestep features
    # Decay of an exponential moving average of the denoiser's weights that samples at
    # inference and is exported (policies/denoiser_ema.py); 0: the trained weights themselves.
    inference_ema: float = 0.0
    # Standard deviation of the initial noise at inference (a deploy-time choice, recorded
    # with the noise input in the bundle): 1 samples the learned distribution; below 1 draws
    # lean towards its densest actions, 0 gives one deterministic action per observation.
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        if not 1 <= self.sampling_steps <= self.diffusion_steps:
            raise ConfigError(f'{name}: need 1 <= sampling_steps <= diffusion_steps, got '
                              f'{self.sampling_steps} and {self.diffusion_steps}')
        if self.schedule not in SCHEDULES:
            raise ConfigError(f'{name}.schedule must be one of {SCHEDULES}')
        if self.prediction not in PREDICTIONS:
            raise ConfigError(f'{name}.prediction must be one of {PREDICTIONS}')
        if self.time_embed < 2 or self.time_embed % 2:
            raise ConfigError(f'{name}.time_embed must be even and >= 2')
        if not 0.0 <= self.inference_ema < 1.0:
            raise ConfigError(f'{name}.inference_ema must be in [0, 1)')
        if not 0.0 <= self.temperature <= 10.0:
            raise ConfigError(f'{name}.temperature must be in [0, 10], got {self.temperature}')
