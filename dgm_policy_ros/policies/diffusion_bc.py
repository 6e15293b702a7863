# SPDX-License-Identifier: Apache-2.0
"""``diffusion_bc``: Diffusion Policy (Chi et al. 2023) for offline imitation, with action
chunking: a denoiser predicts the noise on an H-step action chunk given the observation; at
inference a DDIM loop of ``sampling_steps`` (a deploy-time choice) turns noise into a chunk, of
which ``n_action_steps`` are executed.

The model (an MLP denoiser with a sinusoidal timestep embedding) is separate from the noise
schedule and sampler (``dgm_policy_ros.diffusion``). The whole fixed-step sampling loop is one
exported graph; its initial noise (and, with ``eta > 0``, its per-step noise) are explicit
inputs, so the deployed policy is deterministic given them.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.diffusion import DDIMSampler, NoiseSchedule
from dgm_policy_ros.networks import mlp
from dgm_policy_ros.training.algorithm import ChunkConfig, ChunkedAlgorithm, DataSpec, NoiseSpec


@dataclasses.dataclass
class DiffusionBCConfig(ChunkConfig):
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256, 256])
    horizon: int = 8
    n_action_steps: int = 4
    diffusion_steps: int = 100  # T of the training schedule
    sampling_steps: int = 10  # DDIM steps at inference
    schedule: str = 'cosine'
    eta: float = 0.0  # 0: deterministic DDIM given the initial noise
    time_embed: int = 32

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.sampling_steps <= self.diffusion_steps:
            raise ConfigError('DiffusionBCConfig: need 1 <= sampling_steps <= diffusion_steps')
        if self.schedule not in ('cosine', 'linear'):
            raise ConfigError("DiffusionBCConfig.schedule must be 'cosine' or 'linear'")
        if self.eta < 0 or self.time_embed < 2 or self.time_embed % 2:
            raise ConfigError('DiffusionBCConfig: eta >= 0 and an even time_embed >= 2')


class ChunkDenoiser(nn.Module):
    """epsilon(x_t, t | obs) for a flattened action chunk."""

    def __init__(self, obs_dim: int, chunk_dim: int, hidden, time_embed: int) -> None:
        super().__init__()
        half = time_embed // 2
        self.register_buffer('freqs', torch.exp(-math.log(10_000.0) * torch.arange(half) / half))
        self.net = mlp(obs_dim + chunk_dim + time_embed, chunk_dim, hidden, activation=nn.Mish)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None, :]
        return self.net(torch.cat([obs, x, torch.sin(angles), torch.cos(angles)], -1))


class DiffusionBC(ChunkedAlgorithm):
    name = 'diffusion_bc'
    family = 'diffusion'
    config_class = DiffusionBCConfig
    test_overrides = {'horizon': 4, 'n_action_steps': 2, 'diffusion_steps': 20,
                      'sampling_steps': 5}

    def __init__(self, cfg: DiffusionBCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.chunk_dim = cfg.horizon * spec.act_dim
        self.denoiser = ChunkDenoiser(spec.obs_dim, self.chunk_dim, cfg.hidden, cfg.time_embed)
        self.schedule = NoiseSchedule(cfg.diffusion_steps, cfg.schedule)
        self.sampler = DDIMSampler(self.schedule, cfg.sampling_steps, eta=cfg.eta)
        self.opt = torch.optim.AdamW(self.denoiser.parameters(), lr=cfg.lr, weight_decay=1e-6)

    def noise_specs(self) -> list[NoiseSpec]:
        specs = [NoiseSpec('initial_noise', (self.chunk_dim,), 'normal')]
        if self.cfg.eta > 0:
            specs.append(NoiseSpec('step_noise', (self.cfg.sampling_steps, self.chunk_dim),
                                   'normal'))
        return specs

    def act(self, obs: torch.Tensor, initial_noise: torch.Tensor,
            step_noise: torch.Tensor | None = None) -> torch.Tensor:
        obs_n = self.obs_norm(obs)
        per_step = step_noise.transpose(0, 1) if step_noise is not None else None
        x = self.sampler(lambda x, t: self.denoiser(x, t, obs_n), initial_noise, per_step)
        chunk = x.clamp(-1.0, 1.0).view(obs.shape[0], self.cfg.horizon, -1)
        return self.act_scale.from_unit(chunk)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        obs_n, chunk, mask = self.chunk_targets(batch)
        loss = self.schedule.training_loss(lambda x, t: self.denoiser(x, t, obs_n), chunk,
                                           mask=mask)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {'loss': loss.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'denoiser': self.opt}
