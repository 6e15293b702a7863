# SPDX-License-Identifier: Apache-2.0
"""``cvae_bc``: conditional-VAE behaviour cloning with action chunking (ACT-style, without the
transformer): the encoder sees the state and the next H actions, the decoder produces the whole
chunk from the state and a latent; at inference the latent is the prior mean (zero), so the
deployed policy is deterministic and needs no noise input. On a dataset with cameras, state and
images go through the shared image encoder first, as in ACT.
"""
from __future__ import annotations

import dataclasses

import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.policies.bcq import ConditionalVAE
from dgm_policy_ros.training.algorithm import (
    ChunkConfig,
    ChunkedAlgorithm,
    DataSpec,
    VisionSettings,
)


@dataclasses.dataclass
class CVAEBCConfig(VisionSettings, ChunkConfig):
    latent_dim: int = 16
    kl_weight: float = 0.1

    def validate(self) -> None:
        super().validate()
        if self.latent_dim < 1 or self.kl_weight < 0:
            raise ConfigError('CVAEBCConfig: latent_dim must be >= 1 and kl_weight >= 0')


class CVAEBC(ChunkedAlgorithm):
    name = 'cvae_bc'
    family = 'vae'
    config_class = CVAEBCConfig
    sees_images = True

    def __init__(self, cfg: CVAEBCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.vae = ConditionalVAE(self.observed_dim, cfg.horizon * spec.act_dim,
                                  cfg.latent_dim, cfg.hidden)
        self.opt = torch.optim.Adam([*self.vae.parameters(), *self.vision_parameters()],
                                    lr=cfg.lr)

    def act(self, obs: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        obs_n = self.observe(obs, images)
        z = torch.zeros(obs.shape[0], self.cfg.latent_dim, dtype=obs.dtype,
                        device=obs.device)  # prior mean
        chunk = self.vae.decode(obs_n, z).view(obs.shape[0], self.cfg.horizon, -1)
        return self.act_scale.from_unit(chunk)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        obs, chunk, mask = self.chunk_targets(batch)
        loss, recon, kl = self.vae.loss(obs, chunk, self.cfg.kl_weight, mask)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {'loss': loss.item(), 'recon': recon.item(), 'kl': kl.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'vae': self.opt}
