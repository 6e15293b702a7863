# SPDX-License-Identifier: Apache-2.0
"""``wm_cvae``: a conditional-VAE world model: q(z | x, y) and p(y | x, z), x = (s, a),
y = (observation change, reward). Inference decodes ``samples`` latent draws (an explicit
noise input); their mean is the prediction and their spread the uncertainty."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.networks import mlp
from dgm_policy_ros.training.algorithm import DataSpec, NoiseSpec
from dgm_policy_ros.world_models.base import WorldModel, WorldModelConfig


@dataclasses.dataclass
class CVAEWorldModelConfig(WorldModelConfig):
    latent_dim: int = 8
    kl_weight: float = 0.05
    samples: int = 8  # latent draws per prediction

    def validate(self) -> None:
        super().validate()
        if self.latent_dim < 1 or self.samples < 1 or self.kl_weight < 0:
            raise ConfigError('CVAEWorldModelConfig: latent_dim, samples >= 1, kl_weight >= 0')


class CVAEWorldModel(WorldModel):
    name = 'wm_cvae'
    family = 'vae'
    config_class = CVAEWorldModelConfig

    def __init__(self, cfg: CVAEWorldModelConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.encoder = mlp(self.in_dim + self.out_dim, 2 * cfg.latent_dim, cfg.hidden,
                           activation=nn.SiLU)
        self.decoder = mlp(self.in_dim + cfg.latent_dim, self.out_dim, cfg.hidden,
                           activation=nn.SiLU)
        self.opt = torch.optim.Adam(self.parameters(), lr=cfg.lr)

    def noise_specs(self) -> list[NoiseSpec]:
        return [NoiseSpec('latent', (self.cfg.samples, self.cfg.latent_dim), 'normal')]

    def sample_y(self, x: torch.Tensor, latent: torch.Tensor):
        b, k, d = latent.shape
        xs = x.unsqueeze(1).expand(b, k, x.shape[-1])
        ys = self.decoder(torch.cat([xs, latent], -1))  # (B, K, O+1)
        return ys.mean(1), ys.std(1, unbiased=False).norm(dim=-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        x, y = self.inputs(batch['observations'], batch['actions']), self.targets(batch)
        mean, log_std = self.encoder(torch.cat([x, y], -1)).chunk(2, -1)
        log_std = log_std.clamp(-6.0, 2.0)
        z = mean + log_std.exp() * torch.randn_like(mean)
        recon = ((self.decoder(torch.cat([x, z], -1)) - y) ** 2).mean()
        kl = -0.5 * (1 + 2 * log_std - mean ** 2 - (2 * log_std).exp()).sum(-1).mean()
        loss = recon + self.cfg.kl_weight * kl
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {'loss': loss.item(), 'recon': recon.item(), 'kl': kl.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'model': self.opt}
