# SPDX-License-Identifier: Apache-2.0
"""``bc``: deterministic MLP behaviour cloning with an MSE loss; the baseline every generative
policy has to match."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
import torch.nn.functional as F

from dgm_policy_ros.networks import mlp
from dgm_policy_ros.training.algorithm import AlgoConfig, Algorithm, DataSpec


@dataclasses.dataclass
class BCConfig(AlgoConfig):
    weight_decay: float = 0.0


class BC(Algorithm):
    name = 'bc'
    family = 'baseline'
    config_class = BCConfig
    ddp_modules = ('actor',)

    def __init__(self, cfg: BCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.actor = mlp(spec.obs_dim, spec.act_dim, cfg.hidden, out_activation=nn.Tanh)
        self.opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr,
                                    weight_decay=cfg.weight_decay)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act_scale.from_unit(self.actor(self.obs_norm(obs))).unsqueeze(1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        pred = self.wrapped('actor')(self.obs_norm(batch['observations']))
        loss = F.mse_loss(pred, self.unit_actions(batch['actions']))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {'loss': loss.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'actor': self.opt}
