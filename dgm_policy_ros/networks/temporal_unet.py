# SPDX-License-Identifier: Apache-2.0
"""A temporal 1-D convolutional U-Net denoiser for action chunks, the shape of network
Diffusion Policy (Chi et al. 2023) uses: convolutions along the chunk's time axis share
weights across its steps, so neighbouring actions come out smooth, which a flat MLP over the
whole chunk has to learn.

Written here rather than taken from diffusers: every op (Conv1d, ConvTranspose1d, GroupNorm,
Mish, Linear) must export to one static-shape ONNX graph that TensorRT parses, and the
condition (observation and timestep) enters each block by FiLM, which diffusers' 1-D U-Net
does not offer in that form.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from dgm_policy_ros.networks.layers import Mish
from dgm_policy_ros.networks.time_embedding import sinusoidal_frequencies, time_features

GROUPS = 8  # GroupNorm groups (fewer where a width is not divisible)


class _ConvBlock(nn.Sequential):
    """Conv1d, GroupNorm, Mish; the chunk length is kept (same padding)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
                         nn.GroupNorm(math.gcd(GROUPS, c_out), c_out), Mish())


class _FiLMBlock(nn.Module):
    """Two conv blocks; between them the condition scales and shifts every channel (FiLM).
    A 1x1 convolution matches the residual's width where it changes."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int) -> None:
        super().__init__()
        self.first = _ConvBlock(c_in, c_out, kernel)
        self.second = _ConvBlock(c_out, c_out, kernel)
        self.film = nn.Sequential(Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        return self.second(self.first(x) * scale + shift) + self.skip(x)


class TemporalUNet1D(nn.Module):
    """The denoiser's output (the noise or the clean chunk, as its schedule's ``prediction``
    says) for a flat chunk x_t of ``horizon`` actions of ``act_dim``, given t and ``cond``.

    ``channels`` are the widths of the levels, finest first; each level after the first
    halves the chunk length, so ``horizon`` must be divisible by ``2 ** (len(channels) - 1)``.
    """

    def __init__(self, cond_dim: int, act_dim: int, horizon: int, channels: Sequence[int],
                 time_embed: int, kernel: int = 5) -> None:
        super().__init__()
        channels = list(channels)
        if not channels or horizon % 2 ** (len(channels) - 1):
            raise ValueError(f'horizon {horizon} is not divisible by 2**{len(channels) - 1} '
                             f'(one halving per level after the first of {channels})')
        self.horizon, self.act_dim = horizon, act_dim
        self.register_buffer('freqs', sinusoidal_frequencies(time_embed))
        self.time_mlp = nn.Sequential(nn.Linear(time_embed, 4 * time_embed), Mish(),
                                      nn.Linear(4 * time_embed, time_embed))
        film = cond_dim + time_embed
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = act_dim
        for i, c in enumerate(channels):
            self.down.append(nn.ModuleList([_FiLMBlock(c_prev, c, film, kernel),
                                            _FiLMBlock(c, c, film, kernel)]))
            if i < len(channels) - 1:
                self.downsample.append(nn.Conv1d(c, c, 3, stride=2, padding=1))
            c_prev = c
        self.mid = nn.ModuleList([_FiLMBlock(c_prev, c_prev, film, kernel),
                                  _FiLMBlock(c_prev, c_prev, film, kernel)])
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):  # coarse to fine, with the skips
            coarse, fine = channels[i + 1], channels[i]
            self.upsample.append(nn.ConvTranspose1d(coarse, coarse, 4, stride=2, padding=1))
            self.up.append(nn.ModuleList([_FiLMBlock(coarse + fine, fine, film, kernel),
                                          _FiLMBlock(fine, fine, film, kernel)]))
        self.final = nn.Sequential(_ConvBlock(channels[0], channels[0], kernel),
                                   nn.Conv1d(channels[0], act_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        film = torch.cat([cond, self.time_mlp(time_features(t, self.freqs))], -1)
        h = x.view(x.shape[0], self.horizon, self.act_dim).transpose(1, 2)  # (B, A, H)
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, film)
            if i < len(self.downsample):
                skips.append(h)
                h = self.downsample[i](h)
        for block in self.mid:
            h = block(h, film)
        for upsample, blocks in zip(self.upsample, self.up):
            h = torch.cat([upsample(h), skips.pop()], 1)
            for block in blocks:
                h = block(h, film)
        return self.final(h).transpose(1, 2).reshape(x.shape[0], -1)
