# SPDX-License-Identifier: Apache-2.0
"""``idql``: Implicit Diffusion Q-learning (Hansen-Estruch et al. 2023).

Two parts trained side by side and independently: an IQL critic (expectile value V, twin Q,
Kostrikov et al. 2022) and a diffusion behaviour model of the dataset's actions. At inference
the diffusion model proposes ``n_candidates`` actions per observation and the critic picks
one. The pick is the argmax of Q (the deterministic variant; the paper's importance
resampling would need one more random input per step for the same ranking signal), so the
deployed graph is deterministic given its explicit candidate noise: the whole sampler, the
critic and the selection are one ONNX graph.
"""
from __future__ import annotations

import dataclasses

import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.diffusion import DDIMSampler, NoiseSchedule
from dgm_policy_ros.networks.denoisers import MLPDenoiser
from dgm_policy_ros.policies.critics import (
    TwinQ,
    ValueNet,
    iql_q_loss,
    iql_value_loss,
    make_target,
    soft_update,
)
from dgm_policy_ros.training.algorithm import AlgoConfig, Algorithm, DataSpec, NoiseSpec


@dataclasses.dataclass
class IDQLConfig(AlgoConfig):
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256, 256])
    critic_hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    diffusion_steps: int = 100
    sampling_steps: int = 10
    schedule: str = 'cosine'
    time_embed: int = 32
    n_candidates: int = 32
    expectile: float = 0.7
    gamma: float = 0.99
    tau: float = 0.005
    critic_lr: float = 3e-4
    reward_scale: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.sampling_steps <= self.diffusion_steps:
            raise ConfigError('IDQLConfig: need 1 <= sampling_steps <= diffusion_steps')
        if self.schedule not in ('cosine', 'linear'):
            raise ConfigError("IDQLConfig.schedule must be 'cosine' or 'linear'")
        if self.n_candidates < 1:
            raise ConfigError('IDQLConfig.n_candidates must be >= 1')
        if not 0.5 <= self.expectile < 1.0:
            raise ConfigError('IDQLConfig.expectile must be in [0.5, 1)')
        if not 0 < self.gamma <= 1 or not 0 < self.tau <= 1:
            raise ConfigError('IDQLConfig: gamma and tau must be in (0, 1]')
        if self.time_embed < 2 or self.time_embed % 2:
            raise ConfigError('IDQLConfig.time_embed must be even and >= 2')


class IDQL(Algorithm):
    name = 'idql'
    family = 'diffusion'
    config_class = IDQLConfig
    monitored_loss = 'loss'  # the diffusion (behaviour) loss
    test_overrides = {'diffusion_steps': 20, 'sampling_steps': 5, 'n_candidates': 4,
                      'critic_hidden': [64, 64]}

    def __init__(self, cfg: IDQLConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.denoiser = MLPDenoiser(spec.obs_dim, spec.act_dim, cfg.hidden, cfg.time_embed)
        self.schedule = NoiseSchedule(cfg.diffusion_steps, cfg.schedule)
        self.sampler = DDIMSampler(self.schedule, cfg.sampling_steps)
        self.critic = TwinQ(spec.obs_dim, spec.act_dim, cfg.critic_hidden)
        self.critic_target = make_target(self.critic)
        self.value = ValueNet(spec.obs_dim, cfg.critic_hidden)
        self.actor_opt = torch.optim.AdamW(self.denoiser.parameters(), lr=cfg.lr,
                                           weight_decay=1e-6)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=cfg.critic_lr)

    def noise_specs(self) -> list[NoiseSpec]:
        return [NoiseSpec('candidate_noise', (self.cfg.n_candidates, self.spec.act_dim),
                          'normal')]

    def act(self, obs: torch.Tensor, candidate_noise: torch.Tensor) -> torch.Tensor:
        b, n, a = candidate_noise.shape
        obs_n = self.obs_norm(obs).unsqueeze(1).expand(b, n, obs.shape[-1]).reshape(b * n, -1)
        noise = candidate_noise.reshape(b * n, a)
        candidates = self.sampler(lambda x, t: self.denoiser(x, t, obs_n), noise).clamp(-1, 1)
        q = self.critic.q_min(obs_n, candidates).view(b, n)
        best = q.argmax(dim=1).view(b, 1, 1).expand(b, 1, a)
        chosen = torch.gather(candidates.view(b, n, a), 1, best)  # (B, 1, A)
        return self.act_scale.from_unit(chosen)

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
        loss = self.schedule.training_loss(lambda x, t: self.denoiser(x, t, obs), act)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        return {'loss': loss.item(), 'value_loss': value_loss.item(),
                'critic_loss': q_loss.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'denoiser': self.actor_opt, 'critic': self.critic_opt, 'value': self.value_opt}
