# SPDX-License-Identifier: Apache-2.0
"""``td3bc``: TD3+BC (Fujimoto & Gu 2021), the offline-RL baseline."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.networks import mlp
from dgm_policy_ros.policies.critics import (
    TwinQ,
    make_target,
    soft_update,
    td3_critic_loss,
    td3bc_actor_loss,
)
from dgm_policy_ros.training.algorithm import AlgoConfig, Algorithm, DataSpec


@dataclasses.dataclass
class TD3BCConfig(AlgoConfig):
    alpha: float = 2.5
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2

    def validate(self) -> None:
        super().validate()
        if not 0 < self.gamma <= 1 or not 0 < self.tau <= 1:
            raise ConfigError('TD3BCConfig: gamma and tau must be in (0, 1]')
        if self.policy_freq < 1:
            raise ConfigError('TD3BCConfig.policy_freq must be >= 1')


class TD3BC(Algorithm):
    name = 'td3bc'
    family = 'baseline'
    config_class = TD3BCConfig
    monitored_loss = 'bc_loss'

    def __init__(self, cfg: TD3BCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.actor = mlp(spec.obs_dim, spec.act_dim, cfg.hidden, out_activation=nn.Tanh)
        self.critic = TwinQ(spec.obs_dim, spec.act_dim, cfg.hidden)
        self.actor_target = make_target(self.actor)
        self.critic_target = make_target(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act_scale.from_unit(self.actor(self.obs_norm(obs))).unsqueeze(1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        obs = self.obs_norm(batch['observations'])
        next_obs = self.obs_norm(batch['next_observations'])
        act = self.unit_actions(batch['actions'])
        critic_loss = td3_critic_loss(self.critic, self.critic_target, obs, act, next_obs,
                                      self.actor_target, batch, cfg.gamma, cfg.policy_noise,
                                      cfg.noise_clip)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        out = {'critic_loss': critic_loss.item()}
        self.steps += 1
        if int(self.steps) % cfg.policy_freq == 0:
            pi = self.actor(obs)
            q1, _ = self.critic(obs, pi)
            actor_loss, extra = td3bc_actor_loss(q1, pi, act, cfg.alpha)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            out.update(actor_loss=actor_loss.item(), **extra)
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'actor': self.actor_opt, 'critic': self.critic_opt}
