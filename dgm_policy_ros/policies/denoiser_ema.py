# SPDX-License-Identifier: Apache-2.0
"""An exponential moving average of a diffusion policy's denoiser that samples at inference.

Diffusion Policy (Chi et al. 2023) samples with such an average: it smooths the last few
hundred updates' noise out of the weights. ``inference_ema`` is its decay; 0 keeps the trained
weights. The average is part of the model's state, so it is checkpointed, resumed and exported
with the rest.
"""
from __future__ import annotations

from torch import nn

from dgm_policy_ros.policies.critics import make_target, soft_update


class DenoiserEMA:
    """Mixin for an ``Algorithm`` with a ``denoiser`` and a config with ``inference_ema``."""

    denoiser: nn.Module

    def init_denoiser_ema(self) -> None:
        """Call once ``self.denoiser`` exists."""
        self.averaged_denoiser = make_target(self.denoiser) if self.cfg.inference_ema > 0 \
            else None

    @property
    def inference_denoiser(self) -> nn.Module:
        """The denoiser that samples actions at inference and in the exported graph."""
        return self.denoiser if self.averaged_denoiser is None else self.averaged_denoiser

    def update_denoiser_ema(self) -> None:
        """Call after each optimizer step on the denoiser."""
        if self.averaged_denoiser is not None:
            soft_update(self.averaged_denoiser, self.denoiser, 1.0 - self.cfg.inference_ema)
