# SPDX-License-Identifier: Apache-2.0
"""An exponential moving average of a diffusion policy's denoiser that samples at inference.

Diffusion Policy (Chi et al. 2023) samples with such an average: it smooths the last few
hundred updates' noise out of the weights. ``inference_ema`` is its decay; 0 keeps the trained
weights. A policy that sees images averages its image encoders too (the paper averages the whole
model): the features the averaged denoiser was fitted to come from the averaged encoder. The
average is part of the model's state, so it is checkpointed, resumed and exported with the rest.
"""
from __future__ import annotations

from torch import nn

from dgm_policy_ros.policies.critics import make_target, soft_update


class DenoiserEMA:
    """Mixin for an ``Algorithm`` with a ``denoiser`` and a config with ``inference_ema``."""

    denoiser: nn.Module
    vision: nn.Module | None

    def init_denoiser_ema(self) -> None:
        """Call once ``self.denoiser`` exists."""
        averaging = self.cfg.inference_ema > 0
        self.averaged_denoiser = make_target(self.denoiser) if averaging else None
        self.averaged_vision = make_target(self.vision) \
            if averaging and self.vision is not None else None

    @property
    def inference_denoiser(self) -> nn.Module:
        """The denoiser that samples actions at inference and in the exported graph."""
        return self.denoiser if self.averaged_denoiser is None else self.averaged_denoiser

    @property
    def inference_vision(self) -> nn.Module | None:
        """The image encoders that see at inference and in the exported graph."""
        return self.vision if self.averaged_vision is None else self.averaged_vision

    def update_denoiser_ema(self) -> None:
        """Call after each optimizer step on the denoiser (and the image encoders)."""
        if self.averaged_denoiser is not None:
            soft_update(self.averaged_denoiser, self.denoiser, 1.0 - self.cfg.inference_ema)
        if self.averaged_vision is not None:
            soft_update(self.averaged_vision, self.vision, 1.0 - self.cfg.inference_ema)
