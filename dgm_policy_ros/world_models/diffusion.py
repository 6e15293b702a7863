# SPDX-License-Identifier: Apache-2.0
"""``wm_diffusion``: a diffusion world model: a denoiser of y = (observation change, reward)
conditioned on (s, a), trained with the DDPM objective and sampled with DDIM, the schedule and
sampler shared with the diffusion policies. ``samples`` draws per prediction (explicit initial
noise): their mean is the prediction, their spread the uncertainty."""
from __future__ import annotations

import dataclasses

import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.diffusion import DDIMSampler, NoiseSchedule
from dgm_policy_ros.networks.denoisers import MLPDenoiser
from dgm_policy_ros.training.algorithm import DataSpec, NoiseSpec
from dgm_policy_ros.world_models.base import WorldModel, WorldModelConfig


@dataclasses.dataclass
class DiffusionWorldModelConfig(WorldModelConfig):
    diffusion_steps: int = 50
    sampling_steps: int = 10
    samples: int = 8
    time_embed: int = 32

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.sampling_steps <= self.diffusion_steps or self.samples < 1:
            raise ConfigError('DiffusionWorldModelConfig: 1 <= sampling_steps <= '
                              'diffusion_steps and samples >= 1')


class DiffusionWorldModel(WorldModel):
    name = 'wm_diffusion'
    family = 'diffusion'
    config_class = DiffusionWorldModelConfig

    def __init__(self, cfg: DiffusionWorldModelConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.denoiser = MLPDenoiser(self.in_dim, self.out_dim, cfg.hidden, cfg.time_embed)
        # Targets are in data-spread units, not [-1, 1]: no clipping of the x0 estimate.
        self.schedule = NoiseSchedule(cfg.diffusion_steps, 'cosine')
        self.sampler = DDIMSampler(self.schedule, cfg.sampling_steps, clip=None)
        self.opt = torch.optim.AdamW(self.denoiser.parameters(), lr=cfg.lr, weight_decay=1e-6)

    def noise_specs(self) -> list[NoiseSpec]:
        return [NoiseSpec('initial_noise', (self.cfg.samples, self.out_dim), 'normal')]

    def sample_y(self, x: torch.Tensor, initial_noise: torch.Tensor):
        b, k, d = initial_noise.shape
        xs = x.unsqueeze(1).expand(b, k, x.shape[-1]).reshape(b * k, -1)
        ys = self.sampler(lambda y, t: self.denoiser(y, t, xs),
                          initial_noise.reshape(b * k, d)).view(b, k, d)
        return ys.mean(1), ys.std(1, unbiased=False).norm(dim=-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        x, y = self.inputs(batch['observations'], batch['actions']), self.targets(batch)
        loss = self.schedule.training_loss(lambda y_t, t: self.denoiser(y_t, t, x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {'loss': loss.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'model': self.opt}
