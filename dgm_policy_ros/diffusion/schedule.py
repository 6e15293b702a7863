# SPDX-License-Identifier: Apache-2.0
"""Noise schedules and samplers (Ho et al. 2020; Song et al. 2021), written out by hand.

Why not diffusers' schedulers: their ``step()`` keeps Python-side state and indexes timesteps
at run time, which is fine for eager sampling but not for the deployed graph. Here every
coefficient of a fixed-length sampling loop is precomputed into a buffer, so the loop unrolls
into a static ONNX graph (TensorRT-friendly), and every random draw is an explicit tensor
argument (deterministic and testable).

Convention: the denoiser predicts, from (x_t, t), the noise epsilon (``prediction='epsilon'``,
DDPM's choice) or the clean sample x_0 (``'sample'``); t is an integer timestep in [0, T)
passed to the network as a float tensor of shape (B,). Predicting x_0 makes the network's job
at high noise a regression onto the conditional mean, which it learns as fast as behaviour
cloning does; for low-dimensional actions at a short training budget that matters
(docs/algorithms/idql.md).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> eps or x_0
PREDICTIONS = ('epsilon', 'sample')
SCHEDULES = ('cosine', 'linear')


class NoiseSchedule(nn.Module):
    """beta_1..beta_T and the cumulative products, as buffers (cosine or linear)."""

    def __init__(self, steps: int = 100, kind: str = 'cosine', beta_start: float = 1e-4,
                 beta_end: float = 2e-2, prediction: str = 'epsilon') -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f'steps must be >= 1, got {steps}')
        if prediction not in PREDICTIONS:
            raise ValueError(f'prediction must be one of {PREDICTIONS}, got {prediction!r}')
        self.prediction = prediction
        if kind == 'cosine':  # Nichol & Dhariwal 2021
            s = 0.008
            x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
            f = torch.cos(((x / steps) + s) / (1 + s) * math.pi / 2) ** 2
            betas = torch.clamp(1 - f[1:] / f[:-1], 1e-6, 0.999)
        elif kind == 'linear':
            # DDPM's betas are for 1000 steps; scale them so any T ends in (near) pure noise.
            scale = 1000.0 / steps
            betas = torch.linspace(beta_start * scale, min(beta_end * scale, 0.999), steps,
                                   dtype=torch.float64)
        else:
            raise ValueError(f'kind must be one of {SCHEDULES}, got {kind!r}')
        alphas_cumprod = torch.cumprod(1 - betas, 0)
        self.steps = steps
        self.register_buffer('betas', betas.float())
        self.register_buffer('alphas_cumprod', alphas_cumprod.float())

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0): sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise, t of shape (B,)."""
        abar = self.alphas_cumprod[t].view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def training_loss(self, denoiser: Denoiser, x0: torch.Tensor,
                      generator: torch.Generator | None = None,
                      mask: torch.Tensor | None = None,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
        """The DDPM objective: predict the noise added at a uniformly drawn timestep (or the
        clean sample, by ``prediction``). ``mask`` drops padded entries; ``weights`` (B,)
        scales each sample's term (advantage-weighted training)."""
        # Drawn where the generator lives (the CPU for a seeded one), used where x0 lives.
        where = generator.device if generator is not None else x0.device
        t = torch.randint(0, self.steps, (x0.shape[0],), generator=generator,
                          device=where).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=where).to(x0.device)
        target = noise if self.prediction == 'epsilon' else x0
        err = (denoiser(self.add_noise(x0, noise, t), t.float()) - target) ** 2
        if weights is not None:
            err = err * weights.view(-1, *[1] * (err.dim() - 1))
        if mask is not None:
            return (err * mask).sum() / mask.sum().clamp(min=1)
        return err.mean()


class DDIMSampler(nn.Module):
    """DDIM over ``n_steps`` evenly spaced timesteps of a schedule (few-step sampling).

    ``eta = 0`` is deterministic given the initial noise; ``eta = 1`` matches DDPM's
    variance, with the per-step noise an explicit input of shape (n_steps, *x.shape).
    """

    def __init__(self, schedule: NoiseSchedule, n_steps: int, eta: float = 0.0,
                 clip: float | None = 1.0) -> None:
        super().__init__()
        if not 1 <= n_steps <= schedule.steps:
            raise ValueError(f'n_steps must be in [1, {schedule.steps}], got {n_steps}')
        self.n_steps, self.eta, self.clip = n_steps, float(eta), clip
        self.prediction = schedule.prediction
        # 'Leading' spacing (T - T/n, ..., T/n, 0), as diffusers' DDIM does by default: the
        # first step is not t = T-1, where the cosine schedule's clamped last beta leaves
        # abar ~ 1e-7 and recovering x0 divides by its square root, amplifying rounding ~2000x
        # (ONNX Runtime and torch then disagree by 1e-4 on the same inputs).
        stride = schedule.steps // n_steps
        ts = (torch.arange(n_steps) * stride).flip(0)
        abar = schedule.alphas_cumprod[ts]
        abar_prev = torch.cat([abar[1:], torch.ones(1)])
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
        # Not persistent: the coefficients follow from the schedule and the step count, so a
        # trained model's weights load under any deploy-time sampling_steps.
        self.register_buffer('timesteps', ts.float(), persistent=False)
        self.register_buffer('abar', abar, persistent=False)
        self.register_buffer('abar_prev', abar_prev, persistent=False)
        self.register_buffer('sigma', sigma, persistent=False)

    def forward(self, denoiser: Denoiser, x_T: torch.Tensor,
                step_noise: torch.Tensor | None = None) -> torch.Tensor:
        x = x_T
        batch = x.shape[0]
        if self.eta > 0 and step_noise is None:
            raise ValueError('eta > 0 needs step_noise of shape (n_steps, *x.shape)')
        for i in range(self.n_steps):  # a fixed count: unrolled by the exporter
            x = self.step(denoiser, x, self.timesteps[i].expand(batch), self.abar[i],
                          self.abar_prev[i], self.sigma[i],
                          step_noise[i] if self.eta > 0 else None)
        return x

    def coefficients(self) -> list[list[float]]:
        """Per step (t, abar, abar_prev, sigma): what a runner-side loop feeds ``step``."""
        return torch.stack([self.timesteps, self.abar, self.abar_prev, self.sigma], 1).tolist()

    def step(self, denoiser: Denoiser, x: torch.Tensor, t: torch.Tensor, abar: torch.Tensor,
             abar_prev: torch.Tensor, sigma: torch.Tensor,
             noise: torch.Tensor | None = None) -> torch.Tensor:
        """One DDIM update x_t -> x_{t_prev}; the coefficients are scalars or (B, 1) columns."""
        out = denoiser(x, t)
        if self.prediction == 'epsilon':
            eps = out
            x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        else:
            x0 = out
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
        if self.prediction == 'sample':
            # The noise that the (clipped) x_0 implies; at abar -> 1 its coefficient below
            # goes to 0 with abar_prev = 1, so the division cannot blow the result up.
            eps = (x - abar.sqrt() * x0) / (1 - abar).clamp(min=1e-12).sqrt()
        direction = (1 - abar_prev - sigma ** 2).clamp(min=0).sqrt() * eps
        x = abar_prev.sqrt() * x0 + direction
        if noise is not None:
            x = x + sigma * noise
        return x
