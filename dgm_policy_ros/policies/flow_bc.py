# SPDX-License-Identifier: Apache-2.0
"""``flow_bc``: a conditional normalizing flow over actions (RealNVP affine couplings) trained
by exact log-likelihood; the policy acts at the base distribution's mode (z = 0).

Written by hand rather than with zuko/nflows: their transforms are built on
``torch.distributions`` and (for autoregressive flows) iterative inverses, which do not trace
to a static ONNX graph; an affine coupling is a handful of Linear/Tanh/Exp ops that ONNX
Runtime and TensorRT run as-is, in both directions.

Actions are mapped to the unit box and through atanh, so the flow's support is the action
bounds. ``log_prob(obs, action)`` is the density in the robot's units: the deployed node uses it
to flag out-of-distribution (state, action) pairs.

Optional Q-guidance in latent space (CNF-style, ``q_weight > 0``): a latent policy
z = b * tanh(f(s)) chooses where in the (bounded) latent space to act, trained to maximize a
TD3-style critic through the frozen-gradient flow decoder, so actions stay on the data manifold.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.networks import mlp
from dgm_policy_ros.policies.critics import TwinQ, make_target, soft_update, td3_critic_loss
from dgm_policy_ros.training.algorithm import AlgoConfig, Algorithm, DataSpec, NoiseSpec

UNIT_EPS = 1e-4  # actions exactly at the bounds map to atanh(1 - eps), not infinity


def atanh(u: torch.Tensor) -> torch.Tensor:
    """atanh as log ops: the TorchScript ONNX exporter has no symbolic for aten::atanh."""
    return 0.5 * torch.log((1 + u) / (1 - u))


@dataclasses.dataclass
class FlowBCConfig(AlgoConfig):
    n_couplings: int = 6
    scale_clamp: float = 2.0  # soft bound on log-scales, for stable training
    weight_decay: float = 0.0
    q_weight: float = 0.0  # > 0: CNF-style latent policy maximizing Q
    latent_bound: float = 1.0
    gamma: float = 0.99
    tau: float = 0.005

    def validate(self) -> None:
        super().validate()
        if self.n_couplings < 1:
            raise ConfigError('FlowBCConfig.n_couplings must be >= 1')
        if self.scale_clamp <= 0 or self.latent_bound <= 0 or self.q_weight < 0:
            raise ConfigError('FlowBCConfig: scale_clamp and latent_bound must be > 0, '
                              'q_weight >= 0')


class AffineCoupling(nn.Module):
    """x_m' = x_m * exp(s(x_~m, obs)) + t(x_~m, obs) on the masked dims m, identity elsewhere.

    With a single action dimension the mask covers it and the layer is conditioned on the
    observation alone.
    """

    def __init__(self, act_dim: int, cond_dim: int, hidden, mask: torch.Tensor,
                 scale_clamp: float) -> None:
        super().__init__()
        self.register_buffer('mask', mask.float())
        self.net = mlp(act_dim + cond_dim, 2 * act_dim, hidden)
        nn.init.zeros_(self.net[-1].weight)  # start as the identity map
        nn.init.zeros_(self.net[-1].bias)
        self.scale_clamp = scale_clamp

    def _params(self, x, cond):
        log_s, t = self.net(torch.cat([x * (1 - self.mask), cond], -1)).chunk(2, -1)
        log_s = torch.tanh(log_s / self.scale_clamp) * self.scale_clamp
        return log_s * self.mask, t * self.mask

    def forward(self, x, cond):
        log_s, t = self._params(x, cond)
        return x * torch.exp(log_s) + t, log_s.sum(-1)

    def inverse(self, z, cond):
        log_s, t = self._params(z, cond)
        return (z - t) * torch.exp(-log_s)


class ConditionalFlow(nn.Module):
    def __init__(self, act_dim: int, cond_dim: int, hidden, n_couplings: int,
                 scale_clamp: float) -> None:
        super().__init__()
        layers = []
        for i in range(n_couplings):
            if act_dim == 1:
                mask = torch.ones(1)
            else:
                mask = (torch.arange(act_dim) % 2 == i % 2).float()
            layers.append(AffineCoupling(act_dim, cond_dim, hidden, mask, scale_clamp))
        self.layers = nn.ModuleList(layers)

    def forward(self, x, cond):
        """Data -> latent, with the log-determinant of the Jacobian."""
        logdet = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, ld = layer(x, cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z, cond):
        for layer in reversed(self.layers):
            z = layer.inverse(z, cond)
        return z

    def log_prob(self, x, cond):
        z, logdet = self(x, cond)
        base = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        return base + logdet


class FlowBC(Algorithm):
    name = 'flow_bc'
    family = 'flow'
    config_class = FlowBCConfig
    extra_graphs = frozenset({'log_prob'})  # the node's out-of-distribution guard
    monitored_loss = 'nll'

    def __init__(self, cfg: FlowBCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.flow = ConditionalFlow(spec.act_dim, spec.obs_dim, cfg.hidden, cfg.n_couplings,
                                    cfg.scale_clamp)
        self.flow_opt = torch.optim.Adam(self.flow.parameters(), lr=cfg.lr,
                                         weight_decay=cfg.weight_decay)
        if cfg.q_weight > 0:
            self.latent_actor = mlp(spec.obs_dim, spec.act_dim, cfg.hidden,
                                    out_activation=nn.Tanh)
            nn.init.zeros_(self.latent_actor[-2].weight)  # start at the flow's mode
            nn.init.zeros_(self.latent_actor[-2].bias)
            self.latent_actor_target = make_target(self.latent_actor)
            self.critic = TwinQ(spec.obs_dim, spec.act_dim, cfg.hidden)
            self.critic_target = make_target(self.critic)
            self.actor_opt = torch.optim.Adam(self.latent_actor.parameters(), lr=cfg.lr)
            self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)

    def noise_specs(self) -> list[NoiseSpec]:
        return [NoiseSpec('latent', (self.spec.act_dim,), 'zeros')]

    def _latent(self, actor, obs_n):
        if self.cfg.q_weight > 0:
            return self.cfg.latent_bound * actor(obs_n)
        return torch.zeros(obs_n.shape[0], self.spec.act_dim, dtype=obs_n.dtype,
                           device=obs_n.device)

    def _decode(self, obs_n, z):
        return torch.tanh(self.flow.inverse(z, obs_n))

    def act(self, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        obs_n = self.obs_norm(obs)
        z = self._latent(getattr(self, 'latent_actor', None), obs_n) + latent
        return self.act_scale.from_unit(self._decode(obs_n, z)).unsqueeze(1)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log p(action | obs) in the robot's units (density over the bounded action box)."""
        unit = self.act_scale.to_unit(action).clamp(-1 + UNIT_EPS, 1 - UNIT_EPS)
        x = atanh(unit)
        log_det_tanh = torch.log1p(-unit.pow(2)).sum(-1)
        return (self.flow.log_prob(x, self.obs_norm(obs)) - log_det_tanh
                - torch.log(self.act_scale.half_range).sum())

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        obs = self.obs_norm(batch['observations'])
        unit = self.unit_actions(batch['actions']).clamp(-1 + UNIT_EPS, 1 - UNIT_EPS)
        nll = -self.flow.log_prob(atanh(unit), obs).mean()
        self.flow_opt.zero_grad(set_to_none=True)
        nll.backward()
        self.flow_opt.step()
        out = {'nll': nll.item()}
        if cfg.q_weight > 0:
            next_obs = self.obs_norm(batch['next_observations'])
            target_policy = lambda o: self._decode(  # noqa: E731
                o, self._latent(self.latent_actor_target, o))
            critic_loss = td3_critic_loss(self.critic, self.critic_target, obs, unit, next_obs,
                                          target_policy, batch, cfg.gamma)
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_opt.step()
            q = self.critic(obs, self._decode(obs, self._latent(self.latent_actor, obs)))[0]
            actor_loss = -cfg.q_weight * q.mean() / q.abs().mean().detach().clamp(min=1e-6)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            self.flow_opt.zero_grad(set_to_none=True)  # the flow learns from likelihood only
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.latent_actor_target, self.latent_actor, cfg.tau)
            out.update(critic_loss=critic_loss.item(), actor_loss=actor_loss.item())
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {'flow': self.flow_opt}
        if self.cfg.q_weight > 0:
            opts.update(actor=self.actor_opt, critic=self.critic_opt)
        return opts
