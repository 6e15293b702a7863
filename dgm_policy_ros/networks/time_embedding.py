# SPDX-License-Identifier: Apache-2.0
"""Sinusoidal features of the diffusion timestep, shared by every denoiser."""
from __future__ import annotations

import math

import torch


def sinusoidal_frequencies(size: int) -> torch.Tensor:
    """``size // 2`` geometrically spaced frequencies (registered as a buffer by callers)."""
    half = size // 2
    return torch.exp(-math.log(10_000.0) * torch.arange(half) / half)


def time_features(t: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Sinusoidal features (B, size) of the (float) diffusion timestep t (B,)."""
    angles = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], -1)
