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
import torch.nn.functional as F


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


def _tanh_softplus(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tanh(softplus(x)) from one exp, and that exp: with e = exp(x) and n = e(e + 2),
    tanh(softplus(x)) = n / (n + 2)."""
    e = torch.exp(x.clamp(max=20.0))  # beyond 20, tanh(softplus(x)) is 1 in float32
    n = e * (e + 2.0)
    return n / (n + 2.0), e


class _MishFunction(torch.autograd.Function):
    """Mish with its derivative in closed form, tanh(softplus(x))
    + x (1 - tanh(softplus(x))^2) sigmoid(x), from the forward pass's exp."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        tanh_sp, e = _tanh_softplus(x)
        ctx.save_for_backward(x, tanh_sp, e)
        return x * tanh_sp

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, tanh_sp, e = ctx.saved_tensors
        return grad * (tanh_sp + x * (1.0 - tanh_sp * tanh_sp) * (e / (1.0 + e)))


class Mish(nn.Module):
    """``nn.Mish`` (the diffusion denoisers' activation) with a faster path on the CPU.

    torch's CPU Mish kernels are slow; computing it from one exp is faster (measured in
    docs/benchmarks.md, mish). Written by hand because no library offers a faster one for CPU
    autograd. The hand path runs for float32/64 CPU tensors, with or without autograd; CUDA and
    the ONNX export (tracing) use ``F.mish``, so the exported graph is the one nn.Mish gives.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != 'cpu' or x.dtype not in (torch.float32, torch.float64)
                or torch.jit.is_tracing() or torch.jit.is_scripting()):
            return F.mish(x)
        if x.requires_grad and torch.is_grad_enabled():
            return _MishFunction.apply(x)
        return x * _tanh_softplus(x)[0]


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
