# SPDX-License-Identifier: Apache-2.0
"""Image encoders trained from scratch, written here because the torchvision wheels reachable
from this project do not import beside its torch, and no pretrained weights can be fetched.

Each encoder takes a camera's raw frames, uint8 (B, H, W, C) as a camera driver publishes them,
and does its own preprocessing inside the graph (uint8 -> [-1, 1] float, channels first, crop),
so the exported bundle needs no image code in the runtime. Cropping follows Diffusion Policy:
a random crop per sample while training, the centre crop at inference.

- ``resnet18``: ResNet-18 with GroupNorm instead of BatchNorm (batch statistics do not survive
  small batches or EMA) and a spatial-softmax head instead of global average pooling, as
  Diffusion Policy (Chi et al. 2023) uses it;
- ``conv``: three strided convolutions (16, 32, 64 channels) and the same head, about 5 M
  multiply-adds per 86 px crop, small enough to train on a CPU.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

IMAGE_ENCODERS = ('conv', 'resnet18')


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with groups of 16 channels (Diffusion Policy's replacement for BatchNorm)."""
    return nn.GroupNorm(max(1, channels // 16), channels)


class SpatialSoftmax(nn.Module):
    """Per keypoint channel, the expected (x, y) image position under a softmax over the
    feature map (Levine et al. 2016): where things are, which pooling would throw away."""

    def __init__(self, channels: int, height: int, width: int, keypoints: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, keypoints, kernel_size=1)
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, height),
                                torch.linspace(-1.0, 1.0, width), indexing='ij')
        self.register_buffer('grid', torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        attention = torch.softmax(self.project(features).flatten(2), dim=-1)  # (B, K, H*W)
        return (attention @ self.grid).flatten(1)  # (B, 2K)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = group_norm(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), group_norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


def resnet18_trunk(channels: int) -> nn.Sequential:
    """ResNet-18 (He et al. 2016) up to its last stage, GroupNorm throughout."""
    layers: list[nn.Module] = [nn.Conv2d(channels, 64, 7, 2, 3, bias=False), group_norm(64),
                               nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers)


def conv_trunk(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, stride in ((channels, 16, 2), (16, 32, 2), (32, 64, 2)):
        layers += [nn.Conv2d(cin, cout, 3, stride, 1), group_norm(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class ImageEncoder(nn.Module):
    """uint8 frames (B, H, W, C) -> features (B, ``features``)."""

    def __init__(self, kind: str, height: int, width: int, channels: int, features: int,
                 crop: float = 0.9, keypoints: int = 32) -> None:
        super().__init__()
        if kind not in IMAGE_ENCODERS:
            raise ValueError(f'image encoder {kind!r} is not one of {IMAGE_ENCODERS}')
        self.crop_h = max(8, round(height * crop))
        self.crop_w = max(8, round(width * crop))
        self.height, self.width = height, width
        self.trunk = resnet18_trunk(channels) if kind == 'resnet18' else conv_trunk(channels)
        with torch.no_grad():
            probe = self.trunk(torch.zeros(1, channels, self.crop_h, self.crop_w))
        self.head = SpatialSoftmax(probe.shape[1], probe.shape[2], probe.shape[3], keypoints)
        self.out = nn.Linear(2 * keypoints, features)

    def crop(self, frames: torch.Tensor) -> torch.Tensor:
        """Random crops (one offset per sample) in training, the centre crop otherwise."""
        b = frames.shape[0]
        if not self.training:
            top = (self.height - self.crop_h) // 2
            left = (self.width - self.crop_w) // 2
            return frames[:, top:top + self.crop_h, left:left + self.crop_w]
        top = torch.randint(0, self.height - self.crop_h + 1, (b, 1, 1), device=frames.device)
        left = torch.randint(0, self.width - self.crop_w + 1, (b, 1, 1), device=frames.device)
        rows = top + torch.arange(self.crop_h, device=frames.device).view(1, -1, 1)
        cols = left + torch.arange(self.crop_w, device=frames.device).view(1, 1, -1)
        index = torch.arange(b, device=frames.device).view(b, 1, 1)
        return frames[index, rows, cols]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.crop(frames).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        return self.out(self.head(self.trunk(x)))


class ObservationEncoder(nn.Module):
    """Each camera's features (an encoder per camera) after the normalized state, as one vector
    per observation; leading window dimensions (B, K, ...) are kept."""

    def __init__(self, image_shapes: dict[str, tuple[int, int, int]], kind: str, features: int,
                 crop: float) -> None:
        super().__init__()
        self.cameras = list(image_shapes)
        self.encoders = nn.ModuleList([ImageEncoder(kind, *image_shapes[c], features, crop)
                                       for c in self.cameras])
        self.features = features * len(self.cameras)

    def forward(self, state: torch.Tensor, images: list[torch.Tensor]) -> torch.Tensor:
        lead = state.shape[:-1]
        parts = [state]
        for encoder, frames in zip(self.encoders, images):
            flat = frames.reshape(-1, *frames.shape[-3:])
            parts.append(encoder(flat).reshape(*lead, -1))
        return torch.cat(parts, dim=-1)
