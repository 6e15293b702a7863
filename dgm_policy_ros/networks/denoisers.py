# SPDX-License-Identifier: Apache-2.0
"""Denoiser networks f(x_t, t | condition), predicting the noise or the clean sample (the
schedule's ``prediction``). Kept apart from the noise schedules and samplers
(``dgm_policy_ros.diffusion``), which work with any callable of (x_t, t)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dgm_policy_ros.networks.layers import Mish, mlp
from dgm_policy_ros.networks.temporal_unet import TemporalUNet1D
from dgm_policy_ros.networks.time_embedding import sinusoidal_frequencies, time_features


class MLPDenoiser(nn.Module):
    """An MLP over [condition, x_t, sinusoidal embedding of t]; x_t is a flat action or a
    flattened action chunk (Diffusion Policy's MLP variant; Diffusion-QL and IDQL use the
    same shape of network for single actions)."""

    def __init__(self, cond_dim: int, x_dim: int, hidden: Sequence[int], time_embed: int) -> None:
        super().__init__()
        self.register_buffer('freqs', sinusoidal_frequencies(time_embed))
        self.net = mlp(cond_dim + x_dim + time_embed, x_dim, hidden, activation=Mish)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([cond, x, time_features(t, self.freqs)], -1))


class _ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), Mish(),
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
        self.register_buffer('freqs', sinusoidal_frequencies(time_embed))
        self.inp = nn.Linear(cond_dim + x_dim + time_embed, width)
        self.blocks = nn.Sequential(*[_ResidualBlock(width) for _ in range(blocks)])
        self.out = nn.Sequential(Mish(), nn.Linear(width, x_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([cond, x, time_features(t, self.freqs)], -1))
        return self.out(self.blocks(h))


DENOISERS = ('mlp', 'resnet')  # for any flat x_t
CHUNK_DENOISERS = (*DENOISERS, 'unet')  # 'unet' needs x_t to be a chunk of ``horizon`` steps


def make_denoiser(kind: str, cond_dim: int, x_dim: int, hidden: Sequence[int],
                  time_embed: int, horizon: int = 1) -> nn.Module:
    """``mlp``: hidden widths as given; ``resnet``: width ``hidden[0]``, one residual block per
    entry of ``hidden``; ``unet``: a temporal U-Net over ``horizon`` steps of
    ``x_dim // horizon`` actions, one level per entry of ``hidden`` (its channel widths)."""
    if kind == 'mlp':
        return MLPDenoiser(cond_dim, x_dim, hidden, time_embed)
    if kind == 'resnet':
        return ResidualDenoiser(cond_dim, x_dim, hidden[0], len(hidden), time_embed)
    if kind == 'unet':
        if x_dim % horizon:
            raise ValueError(f'x_dim {x_dim} is not a chunk of {horizon} steps')
        return TemporalUNet1D(cond_dim, x_dim // horizon, horizon, hidden, time_embed)
    raise ValueError(f'denoiser must be one of {CHUNK_DENOISERS}, got {kind!r}')
