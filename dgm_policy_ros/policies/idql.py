# SPDX-License-Identifier: Apache-2.0
"""``idql``: Implicit Diffusion Q-learning (Hansen-Estruch et al. 2023).

Two parts trained side by side and independently: an IQL critic (expectile value V, twin Q,
Kostrikov et al. 2022) and a diffusion behaviour model of the dataset's actions. At inference
the diffusion model proposes ``n_candidates`` actions per observation and the critic picks one
(``QGuidedDiffusion``); the policy never trains against the critic, so the critic's errors on
unseen actions cannot pull it out of the data's support.

The pick (``selection``) is by default the candidate of highest Q; ``expectile`` is the
paper's implicit policy, drawing a candidate with weight ``expectile`` where Q(s, a) > V(s) and
``1 - expectile`` elsewhere. At 5000 steps argmax scored 49.2 +- 0.8 against 48.1 +- 0.6 on
halfcheetah medium and the same 25.5 on hopper medium (3 seeds; bench/results/idql_fit.md).

The denoiser predicts the clean action (``prediction: sample``) over IDQL's short chain of 5
noise levels, at bc's learning rate (1e-3): after 5000 steps the mean of its draws is as close
to the data as bc's regression (MSE 0.019 against 0.017, where 100 noise levels at 3e-4 left
0.048), and idql scored 25.5 +- 2.8 against 22.1 +- 2.9 on hopper medium
(bench/results/behaviour_fit.md, idql_fit.md). Five DDIM steps instead of ten also cut an
inference from 101 MFLOP to 55 (bench/results/latency.md, now and at commit 155f7a4).

``denoiser: resnet``, the paper's LN-ResNet, scored 27.2 +- 2.2 against the MLP's 24.2 +- 4.2
on hopper medium (5 seeds) and level on halfcheetah medium (bench/results/idql_resnet*.md),
but at 9.4x the arithmetic per inference: 24 ms at p99 on one CPU thread against the MLP's
3.3 ms (bench/results/latency.md), past a 50 Hz control period. The MLP stays the default.
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
    # advantage weighting), so the model leans towards the better actions in the data. At
    # 5000 steps on hopper medium, with 100 noise levels at lr 3e-4, 3.0 scored 17.1 +- 2.0
    # against 22.1 +- 2.9 without (bench/results/idql_awr.md): by then the critic has learned
    # only about 25 steps of return (bench/results/q_selection.md), too little to weight
    # actions by. At 50,000 steps, where it sees the whole return, 3.0 with today's settings
    # still moved nothing: 24.4 +- 1.9 against 25.4 +- 1.5 (4 seeds,
    # bench/results/idql_50k_awr.md).
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
