# SPDX-License-Identifier: Apache-2.0
"""Denoiser networks epsilon(x_t, t | condition). Kept apart from the noise schedules and
samplers (``dgm_policy_ros.diffusion``), which work with any callable of (x_t, t)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from dgm_policy_ros.networks.layers import mlp


def _frequencies(size: int) -> torch.Tensor:
    half = size // 2
    return torch.exp(-math.log(10_000.0) * torch.arange(half) / half)


def _time_features(t: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Sinusoidal features of the (float) diffusion timestep."""
    angles = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], -1)


class MLPDenoiser(nn.Module):
    """An MLP over [condition, x_t, sinusoidal embedding of t]; x_t is a flat action or a
    flattened action chunk (Diffusion Policy's MLP variant; Diffusion-QL and IDQL use the
    same shape of network for single actions)."""

    def __init__(self, cond_dim: int, x_dim: int, hidden: Sequence[int], time_embed: int) -> None:
        super().__init__()
        self.register_buffer('freqs', _frequencies(time_embed))
        self.net = mlp(cond_dim + x_dim + time_embed, x_dim, hidden, activation=nn.Mish)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([cond, x, _time_features(t, self.freqs)], -1))


class _ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.Mish(),
                                  nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualDenoiser(nn.Module):
    """IDQL's LN-ResNet (Hansen-Estruch et al. 2023, also SynthER's denoiser shape): a
    projection to ``width``, ``blocks`` pre-LayerNorm residual blocks with a 4x-wide inner
    layer, and an output layer. The paper credits it over a plain MLP for its diffusion
    behaviour model."""

    def __init__(self, cond_dim: int, x_dim: int, width: int, blocks: int,
                 time_embed: int) -> None:
        super().__init__()
        self.register_buffer('freqs', _frequencies(time_embed))
        self.inp = nn.Linear(cond_dim + x_dim + time_embed, width)
        self.blocks = nn.Sequential(*[_ResidualBlock(width) for _ in range(blocks)])
        self.out = nn.Sequential(nn.Mish(), nn.Linear(width, x_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([cond, x, _time_features(t, self.freqs)], -1))
        return self.out(self.blocks(h))


DENOISERS = ('mlp', 'resnet')


def make_denoiser(kind: str, cond_dim: int, x_dim: int, hidden: Sequence[int],
                  time_embed: int) -> nn.Module:
    """``mlp``: hidden widths as given; ``resnet``: width ``hidden[0]``, one residual block per
    entry of ``hidden``."""
    if kind == 'mlp':
        return MLPDenoiser(cond_dim, x_dim, hidden, time_embed)
    if kind == 'resnet':
        return ResidualDenoiser(cond_dim, x_dim, hidden[0], len(hidden), time_embed)
    raise ValueError(f'denoiser must be one of {DENOISERS}, got {kind!r}')
