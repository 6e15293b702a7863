# SPDX-License-Identifier: Apache-2.0
"""Where training runs: ``cpu``, ``cuda``, ``cuda:N``, or ``auto`` (the GPU when torch sees one).

Only training and offline scoring use it; the deployment runtime never imports torch. Under
``torchrun`` each rank takes the GPU of its ``LOCAL_RANK``, as DDP expects.
"""
from __future__ import annotations

import os
import re

import torch

from dgm_policy_ros.config import ConfigError

DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


def check_device_name(name: str) -> None:
    """Fail early, before any data is read, on a name no machine could satisfy."""
    if not DEVICE_PATTERN.match(name):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name`` on this machine, or a ConfigError saying why not."""
    check_device_name(name)
    if name == 'cpu' or (name == 'auto' and not torch.cuda.is_available()):
        return torch.device('cpu')
    if not torch.cuda.is_available():
        build = f'CUDA {torch.version.cuda}' if torch.version.cuda else 'a CPU-only build'
        raise ConfigError(f"device {name!r} asked for, but torch {torch.__version__} "
                          f"({build}) sees no CUDA GPU; use device 'cpu' or 'auto'")
    if name in ('cuda', 'auto'):
        index = int(os.environ.get('LOCAL_RANK', '0'))
    else:
        index = int(name.split(':')[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f'device {name!r} (GPU {index}) asked for, but torch sees {count} '
                          'GPU(s)')
    return torch.device('cuda', index)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device a module's tensors live on (CPU for one that holds none)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device('cpu')
