# SPDX-License-Identifier: Apache-2.0
"""``gan_bc``: a conditional generator pi(a | s, z) trained against a discriminator D(s, a)
(non-saturating GAN loss) plus a behaviour-cloning term, with optional Q-guidance: a TD3-style
twin critic whose value the generator also maximizes (weight ``q_weight``, scaled as in TD3+BC).

The latent z is an explicit graph input; the runner feeds zeros (the prior's mode) by default or
standard-normal samples when ``inference_noise: normal``.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
import torch.nn.functional as F

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.networks import mlp
from dgm_policy_ros.policies.critics import TwinQ, make_target, soft_update, td3_critic_loss
from dgm_policy_ros.training.algorithm import AlgoConfig, Algorithm, DataSpec, NoiseSpec


@dataclasses.dataclass
class GANBCConfig(AlgoConfig):
    latent_dim: int = 8
    bc_weight: float = 1.0
    adv_weight: float = 0.1
    q_weight: float = 0.0  # > 0 turns on Q-guidance
    disc_lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 0.005
    inference_noise: str = 'zeros'

    def validate(self) -> None:
        super().validate()
        if self.latent_dim < 1:
            raise ConfigError('GANBCConfig.latent_dim must be >= 1')
        if min(self.bc_weight, self.adv_weight, self.q_weight) < 0:
            raise ConfigError('GANBCConfig: loss weights must be >= 0')
        if self.inference_noise not in ('zeros', 'normal'):
            raise ConfigError("GANBCConfig.inference_noise must be 'zeros' or 'normal'")


class GANBC(Algorithm):
    name = 'gan_bc'
    family = 'gan'
    config_class = GANBCConfig
    monitored_loss = 'bc_loss'

    def __init__(self, cfg: GANBCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.generator = mlp(spec.obs_dim + cfg.latent_dim, spec.act_dim, cfg.hidden,
                             out_activation=nn.Tanh)
        self.discriminator = mlp(spec.obs_dim + spec.act_dim, 1, cfg.hidden)
        self.gen_opt = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr)
        self.disc_opt = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.disc_lr)
        if cfg.q_weight > 0:
            self.critic = TwinQ(spec.obs_dim, spec.act_dim, cfg.hidden)
            self.critic_target = make_target(self.critic)
            self.generator_target = make_target(self.generator)
            self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)

    def noise_specs(self) -> list[NoiseSpec]:
        return [NoiseSpec('latent', (self.cfg.latent_dim,), self.cfg.inference_noise)]

    def _generate(self, generator, obs_n, z):
        return generator(torch.cat([obs_n, z], -1))

    def act(self, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        unit = self._generate(self.generator, self.obs_norm(obs), latent)
        return self.act_scale.from_unit(unit).unsqueeze(1)

    def _disc(self, obs_n, act):
        return self.discriminator(torch.cat([obs_n, act], -1)).squeeze(-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        obs = self.obs_norm(batch['observations'])
        act = self.unit_actions(batch['actions'])
        z = torch.randn(len(obs), cfg.latent_dim, device=obs.device)
        fake = self._generate(self.generator, obs, z)

        real_logit, fake_logit = self._disc(obs, act), self._disc(obs, fake.detach())
        disc_loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                     + F.binary_cross_entropy_with_logits(fake_logit,
                                                          torch.zeros_like(fake_logit)))
        self.disc_opt.zero_grad(set_to_none=True)
        disc_loss.backward()
        self.disc_opt.step()

        out = {'disc_loss': disc_loss.item()}
        if cfg.q_weight > 0:
            next_obs = self.obs_norm(batch['next_observations'])
            target_policy = lambda o: self._generate(  # noqa: E731
                self.generator_target, o, torch.zeros(len(o), cfg.latent_dim, device=o.device))
            critic_loss = td3_critic_loss(self.critic, self.critic_target, obs, act, next_obs,
                                          target_policy, batch, cfg.gamma)
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_opt.step()
            out['critic_loss'] = critic_loss.item()

        gen_logit = self._disc(obs, fake)
        adv = F.binary_cross_entropy_with_logits(gen_logit, torch.ones_like(gen_logit))
        bc = F.mse_loss(fake, act)
        gen_loss = cfg.adv_weight * adv + cfg.bc_weight * bc
        if cfg.q_weight > 0:
            q = self.critic(obs, fake)[0]
            gen_loss = gen_loss - cfg.q_weight * q.mean() / q.abs().mean().detach().clamp(1e-6)
        self.gen_opt.zero_grad(set_to_none=True)
        gen_loss.backward()
        self.gen_opt.step()
        if cfg.q_weight > 0:
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.generator_target, self.generator, cfg.tau)
        out.update(gen_loss=gen_loss.item(), adv_loss=adv.item(), bc_loss=bc.item())
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {'generator': self.gen_opt, 'discriminator': self.disc_opt}
        if self.cfg.q_weight > 0:
            opts['critic'] = self.critic_opt
        return opts
