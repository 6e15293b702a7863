# SPDX-License-Identifier: Apache-2.0
"""``idql``: Implicit Diffusion Q-learning (Hansen-Estruch et al. 2023).

Two parts trained side by side and independently: an IQL critic (expectile value V, twin Q,
Kostrikov et al. 2022) and a diffusion behaviour model of the dataset's actions. At inference
the diffusion model proposes ``n_candidates`` actions per observation and the critic picks one
(``QGuidedDiffusion``); the policy never trains against the critic, so the critic's errors on
unseen actions cannot pull it out of the data's support.

The pick (``selection``) is by default the candidate of highest Q; ``expectile`` is the
paper's implicit policy, drawing a candidate with weight ``expectile`` where Q(s, a) > V(s) and
``1 - expectile`` elsewhere. The denoiser predicts the clean action over IDQL's short chain of
5 noise levels at bc's learning rate, which fits the data as closely as bc's regression; the
MLP denoiser is the default because the LN-ResNet (``denoiser: resnet``) costs 9.4x the
arithmetic per inference. Measurements: docs/algorithms/idql.md.
"""
from __future__ import annotations

import dataclasses

import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.policies.critics import (
    ValueNet,
    awr_weights,
    iql_q_loss,
    iql_value_loss,
    soft_update,
)
from dgm_policy_ros.policies.q_diffusion import QDiffusionConfig, QGuidedDiffusion
from dgm_policy_ros.training.algorithm import DataSpec


@dataclasses.dataclass
class IDQLConfig(QDiffusionConfig):
    expectile: float = 0.7
    reward_scale: float = 1.0
    # 0: the behaviour model imitates every dataset action alike (the paper's IDQL). > 0: each
    # action's denoising term is weighted exp(awr_temperature * (Q - V)), clipped at 100 (IQL's
    # advantage weighting); it has not helped at the budgets measured (docs/algorithms).
    awr_temperature: float = 0.0

    selections = ('argmax', 'expectile')

    def validate(self) -> None:
        super().validate()
        if not 0.5 <= self.expectile < 1.0:
            raise ConfigError('IDQLConfig.expectile must be in [0.5, 1)')
        if self.awr_temperature < 0:
            raise ConfigError('IDQLConfig.awr_temperature must be >= 0')


class IDQL(QGuidedDiffusion):
    name = 'idql'
    config_class = IDQLConfig

    def __init__(self, cfg: IDQLConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.value = ValueNet(spec.obs_dim, cfg.critic_hidden)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=cfg.critic_lr)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        obs = self.obs_norm(batch['observations'])
        next_obs = self.obs_norm(batch['next_observations'])
        act = self.unit_actions(batch['actions'])
        value_loss = iql_value_loss(self.value, self.critic_target, obs, act, cfg.expectile)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()
        q_loss = iql_q_loss(self.critic, self.value, obs, act, next_obs, batch, cfg.gamma,
                            cfg.reward_scale)
        self.critic_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        weights = awr_weights(self.critic_target, self.value, obs, act, cfg.awr_temperature) \
            if cfg.awr_temperature > 0 else None
        loss = self.behaviour_loss(obs, act, weights)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        self.update_denoiser_ema()
        return {'loss': loss.item(), 'value_loss': value_loss.item(),
                'critic_loss': q_loss.item()}

    def selection_weights(self, obs_n: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        tau = self.cfg.expectile
        return torch.where(q > self.value(obs_n).unsqueeze(1), tau, 1.0 - tau)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'denoiser': self.actor_opt, 'critic': self.critic_opt, 'value': self.value_opt}
