# SPDX-License-Identifier: Apache-2.0
"""``bc``: deterministic MLP behaviour cloning with an MSE loss; the baseline every generative
policy has to match. On a dataset with cameras it sees the images through the shared encoder
(``networks/image_encoder.py``), trained with it."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
import torch.nn.functional as F

from dgm_policy_ros.networks import mlp
from dgm_policy_ros.training.algorithm import Algorithm, DataSpec, VisionSettings


@dataclasses.dataclass
class BCConfig(VisionSettings):
    weight_decay: float = 0.0


class BC(Algorithm):
    name = 'bc'
    family = 'baseline'
    config_class = BCConfig
    sees_images = True
    ddp_modules = ('actor',)

    def __init__(self, cfg: BCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.actor = mlp(self.observed_dim, spec.act_dim, cfg.hidden, out_activation=nn.Tanh)
        self.opt = torch.optim.Adam([*self.actor.parameters(), *self.vision_parameters()],
                                    lr=cfg.lr, weight_decay=cfg.weight_decay)

    def act(self, obs: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        return self.act_scale.from_unit(self.actor(self.observe(obs, images))).unsqueeze(1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        pred = self.wrapped('actor')(self.observe(batch['observations'],
                                                  self.batch_images(batch)))
        loss = F.mse_loss(pred, self.unit_actions(batch['actions']))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {'loss': loss.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'actor': self.opt}
