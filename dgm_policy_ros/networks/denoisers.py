# SPDX-License-Identifier: Apache-2.0
"""Denoiser networks epsilon(x_t, t | condition). Kept apart from the noise schedules and
samplers (``dgm_policy_ros.diffusion``), which work with any callable of (x_t, t)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from dgm_policy_ros.networks.layers import mlp


class MLPDenoiser(nn.Module):
    """An MLP over [condition, x_t, sinusoidal embedding of t]; x_t is a flat action or a
    flattened action chunk (Diffusion Policy's MLP variant; Diffusion-QL and IDQL use the
    same shape of network for single actions)."""

    def __init__(self, cond_dim: int, x_dim: int, hidden: Sequence[int], time_embed: int) -> None:
        super().__init__()
        half = time_embed // 2
        self.register_buffer('freqs', torch.exp(-math.log(10_000.0) * torch.arange(half) / half))
        self.net = mlp(cond_dim + x_dim + time_embed, x_dim, hidden, activation=nn.Mish)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None, :]
        return self.net(torch.cat([cond, x, torch.sin(angles), torch.cos(angles)], -1))
