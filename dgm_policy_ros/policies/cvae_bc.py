# SPDX-License-Identifier: Apache-2.0
"""``cvae_bc``: conditional-VAE behaviour cloning with action chunking (ACT-style, without the
transformer): the encoder sees the state and the next H actions, the decoder produces the whole
chunk from the state and a latent; at inference the latent is the prior mean (zero), so the
deployed policy is deterministic and needs no noise input.
"""
from __future__ import annotations

import dataclasses

import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.policies.bcq import ConditionalVAE
from dgm_policy_ros.training.algorithm import AlgoConfig, Algorithm, DataSpec


@dataclasses.dataclass
class CVAEBCConfig(AlgoConfig):
    horizon: int = 4  # actions per chunk (H)
    n_action_steps: int = 2  # actions executed per inference
    latent_dim: int = 16
    kl_weight: float = 0.1

    def validate(self) -> None:
        super().validate()
        if self.horizon < 1 or not 1 <= self.n_action_steps <= self.horizon:
            raise ConfigError('CVAEBCConfig: need horizon >= 1 and '
                              '1 <= n_action_steps <= horizon')
        if self.latent_dim < 1 or self.kl_weight < 0:
            raise ConfigError('CVAEBCConfig: latent_dim must be >= 1 and kl_weight >= 0')


class CVAEBC(Algorithm):
    name = 'cvae_bc'
    family = 'vae'
    config_class = CVAEBCConfig
    sampler_kind = 'chunks'

    def __init__(self, cfg: CVAEBCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.vae = ConditionalVAE(spec.obs_dim, cfg.horizon * spec.act_dim, cfg.latent_dim,
                                  cfg.hidden)
        self.opt = torch.optim.Adam(self.vae.parameters(), lr=cfg.lr)

    @property
    def chunk_size(self) -> int:
        return self.cfg.horizon

    @property
    def n_action_steps(self) -> int:
        return self.cfg.n_action_steps

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        obs_n = self.obs_norm(obs)
        z = torch.zeros(obs.shape[0], self.cfg.latent_dim, dtype=obs.dtype)  # prior mean
        chunk = self.vae.decode(obs_n, z).view(obs.shape[0], self.cfg.horizon, -1)
        return self.act_scale.from_unit(chunk)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        obs = self.obs_norm(batch['observations'][:, -1])
        chunk = self.unit_actions(batch['actions'])  # (B, H, A)
        b, h, a = chunk.shape
        mask = batch['action_mask'].unsqueeze(-1).expand(b, h, a).reshape(b, h * a)
        loss, recon, kl = self.vae.loss(obs, chunk.reshape(b, -1), self.cfg.kl_weight, mask)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {'loss': loss.item(), 'recon': recon.item(), 'kl': kl.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'vae': self.opt}
