# SPDX-License-Identifier: Apache-2.0
"""Critics shared by every Q-guided policy: twin Q networks with targets, TD3+BC-style and
IQL-style losses. Everything works on normalized observations and unit ([-1, 1]) actions.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from dgm_policy_ros.networks import mlp


class TwinQ(nn.Module):
    """Two independent Q(s, a) heads (clipped double-Q learning)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, 1, hidden)
        self.q2 = mlp(obs_dim + act_dim, 1, hidden)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def q_min(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.minimum(*self(obs, act))


class ValueNet(nn.Module):
    def __init__(self, obs_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.v = mlp(obs_dim, 1, hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs).squeeze(-1)


def make_target(net: nn.Module) -> nn.Module:
    target = copy.deepcopy(net)
    target.requires_grad_(False)
    return target


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)


def not_done(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """1 where the next state's value counts: timeouts bootstrap, terminals do not."""
    return 1.0 - batch['terminals']


def td_target(batch: dict[str, torch.Tensor], next_value: torch.Tensor, gamma: float,
              reward_scale: float = 1.0) -> torch.Tensor:
    return batch['rewards'] * reward_scale + gamma * not_done(batch) * next_value


def td3_critic_loss(critic: nn.Module, target_critic: TwinQ, obs: torch.Tensor,
                    act: torch.Tensor, next_obs: torch.Tensor,
                    target_policy: Callable[[torch.Tensor], torch.Tensor],
                    batch: dict[str, torch.Tensor], gamma: float, policy_noise: float = 0.2,
                    noise_clip: float = 0.5, reward_scale: float = 1.0) -> torch.Tensor:
    """TD3's clipped double-Q loss with target policy smoothing (Fujimoto et al. 2018)."""
    with torch.no_grad():
        next_act = target_policy(next_obs)
        noise = (torch.randn_like(next_act) * policy_noise).clamp(-noise_clip, noise_clip)
        next_act = (next_act + noise).clamp(-1.0, 1.0)
        target = td_target(batch, target_critic.q_min(next_obs, next_act), gamma, reward_scale)
    q1, q2 = critic(obs, act)
    return F.mse_loss(q1, target) + F.mse_loss(q2, target)


def td3bc_actor_loss(q1: torch.Tensor, policy_act: torch.Tensor, data_act: torch.Tensor,
                     alpha: float) -> tuple[torch.Tensor, dict[str, float]]:
    """TD3+BC (Fujimoto & Gu 2021): -lambda Q(s, pi(s)) + (pi(s) - a)^2, lambda = alpha/|Q|."""
    lam = alpha / q1.abs().mean().detach().clamp(min=1e-6)
    bc = F.mse_loss(policy_act, data_act)
    return -lam * q1.mean() + bc, {'bc_loss': bc.item()}


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


def iql_value_loss(value: ValueNet, target_critic: TwinQ, obs: torch.Tensor, act: torch.Tensor,
                   expectile: float) -> torch.Tensor:
    """IQL (Kostrikov et al. 2022): V is an upper expectile of Q over dataset actions."""
    with torch.no_grad():
        q = target_critic.q_min(obs, act)
    return expectile_loss(q - value(obs), expectile)


def iql_q_loss(critic: TwinQ, value: ValueNet, obs: torch.Tensor, act: torch.Tensor,
               next_obs: torch.Tensor, batch: dict[str, torch.Tensor], gamma: float,
               reward_scale: float = 1.0) -> torch.Tensor:
    with torch.no_grad():
        target = td_target(batch, value(next_obs), gamma, reward_scale)
    q1, q2 = critic(obs, act)
    return F.mse_loss(q1, target) + F.mse_loss(q2, target)


def awr_weights(target_critic: TwinQ, value: ValueNet, obs: torch.Tensor, act: torch.Tensor,
                temperature: float, max_weight: float = 100.0) -> torch.Tensor:
    """Advantage-weighted regression weights exp(beta * A), clipped (IQL's policy extraction)."""
    with torch.no_grad():
        adv = target_critic.q_min(obs, act) - value(obs)
        return torch.exp(temperature * adv).clamp(max=max_weight)
