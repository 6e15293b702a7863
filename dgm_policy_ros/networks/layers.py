# SPDX-License-Identifier: Apache-2.0
"""MLP and normalization layers.

Normalization lives inside the network as buffers, not in the data pipeline, so that the
exported graph takes raw observations and returns actions in the robot's units: the runner
and the ROS node never re-implement it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int], activation=nn.ReLU,
        out_activation: type[nn.Module] | None = None, layer_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers.append(nn.Linear(last, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(activation())
        last = width
    layers.append(nn.Linear(last, out_dim))
    if out_activation is not None:
        layers.append(out_activation())
    return nn.Sequential(*layers)


class ObsNormalizer(nn.Module):
    """(obs - mean) / std with the dataset's training-split statistics, as buffers."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer('mean', torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer('std', torch.as_tensor(std, dtype=torch.float32).clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std


class ActionScaler(nn.Module):
    """Maps actions between the robot's bounds [low, high] and the model's [-1, 1]."""

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        low_t = torch.as_tensor(low, dtype=torch.float32)
        high_t = torch.as_tensor(high, dtype=torch.float32)
        self.register_buffer('center', (high_t + low_t) / 2)
        self.register_buffer('half_range', torch.clamp((high_t - low_t) / 2, min=1e-6))

    def to_unit(self, action: torch.Tensor) -> torch.Tensor:
        return (action - self.center) / self.half_range

    def from_unit(self, unit: torch.Tensor) -> torch.Tensor:
        return unit * self.half_range + self.center
