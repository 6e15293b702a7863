# SPDX-License-Identifier: Apache-2.0
"""``diffusion_bc``: Diffusion Policy (Chi et al. 2023) for offline imitation, with action
chunking: a denoiser learns to denoise an H-step action chunk given the observation; at
inference a DDIM loop of ``sampling_steps`` (a deploy-time choice) turns noise into a chunk, of
which ``n_action_steps`` are executed. With ``n_obs_steps > 1`` the denoiser is conditioned on
the last few observations, a window the runtime keeps (``HistorySpec``, the first observation
repeated before the episode start, as the training sampler pads).

The model (``denoiser``: an MLP over the flattened chunk, or the paper's temporal 1-D conv
U-Net with FiLM conditioning) is separate from the noise schedule and sampler
(``dgm_policy_ros.diffusion``). The whole fixed-step sampling loop is one
exported graph; its initial noise (and, with ``eta > 0``, its per-step noise) are explicit
inputs, so the deployed policy is deterministic given them.

On a dataset with cameras the denoiser is conditioned on the state and each camera's features
(the shared image encoder, trained with the denoiser), as in the paper; the images are encoded
once per inference, not once per denoising step. With ``n_obs_steps > 1`` each of the window's
frames is encoded (the runtime keeps the frames' window beside the observations').
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.diffusion import DDIMSampler, NoiseSchedule
from dgm_policy_ros.networks.denoisers import CHUNK_DENOISERS, make_denoiser
from dgm_policy_ros.policies.denoiser_ema import DenoiserEMA
from dgm_policy_ros.policies.diffusion_settings import DiffusionSettings
from dgm_policy_ros.runtime.history import HistorySpec
from dgm_policy_ros.training.algorithm import (
    ChunkConfig,
    ChunkedAlgorithm,
    DataSpec,
    NoiseSpec,
    VisionSettings,
)


@dataclasses.dataclass
class DiffusionBCConfig(DiffusionSettings, VisionSettings, ChunkConfig):
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256, 256])
    # 'mlp' over the flattened chunk, 'resnet', or 'unet': the paper's temporal 1-D conv U-Net,
    # whose levels' channel widths are then ``hidden`` (each level after the first halves H).
    # The MLP is the default: the U-Net scored no better at 11x its CPU latency.
    denoiser: str = 'mlp'
    horizon: int = 8
    n_action_steps: int = 4
    n_obs_steps: int = 1  # observations the denoiser sees (the current one and those before)
    eta: float = 0.0  # 0: deterministic DDIM given the initial noise

    legacy = {'prediction': 'epsilon'}  # runs saved before 'prediction' existed

    def validate(self) -> None:
        super().validate()
        if self.denoiser not in CHUNK_DENOISERS:
            raise ConfigError(f'DiffusionBCConfig.denoiser must be one of {CHUNK_DENOISERS}')
        if self.denoiser == 'unet' and self.horizon % 2 ** (len(self.hidden) - 1):
            raise ConfigError(f'DiffusionBCConfig: the unet halves the horizon once per level '
                              f'after the first; horizon {self.horizon} is not divisible by '
                              f'2**{len(self.hidden) - 1}')
        if self.n_obs_steps < 1:
            raise ConfigError('DiffusionBCConfig.n_obs_steps must be >= 1')
        if self.eta < 0:
            raise ConfigError('DiffusionBCConfig.eta must be >= 0')


class DiffusionBC(DenoiserEMA, ChunkedAlgorithm):
    name = 'diffusion_bc'
    family = 'diffusion'
    extra_graphs = frozenset({'denoise_step'})  # the sampling loop in the runner
    config_class = DiffusionBCConfig
    sees_images = True

    def __init__(self, cfg: DiffusionBCConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.chunk_dim = cfg.horizon * spec.act_dim
        self.denoiser = make_denoiser(cfg.denoiser, self.observed_dim * cfg.n_obs_steps,
                                      self.chunk_dim, cfg.hidden, cfg.time_embed, cfg.horizon)
        self.init_denoiser_ema()
        self.schedule = NoiseSchedule(cfg.diffusion_steps, cfg.schedule, prediction=cfg.prediction)
        self.sampler = DDIMSampler(self.schedule, cfg.sampling_steps, eta=cfg.eta)
        self.opt = torch.optim.AdamW([*self.denoiser.parameters(), *self.vision_parameters()],
                                     lr=cfg.lr, weight_decay=1e-6)

    def history_spec(self) -> HistorySpec | None:
        if self.cfg.n_obs_steps == 1:
            return None
        return HistorySpec(self.cfg.n_obs_steps, (), 'repeat_first')

    def condition(self, obs: torch.Tensor, images=(), inference: bool = False) -> torch.Tensor:
        """Observed observations, (B, obs_dim) or a window (B, n_obs_steps, obs_dim), as one
        conditioning vector per sample (``inference``: through the encoders that sample)."""
        return self.observe(obs, images, self.inference_vision if inference else None).flatten(1)

    def noise_specs(self) -> list[NoiseSpec]:
        specs = [NoiseSpec('initial_noise', (self.chunk_dim,), 'normal',
                           scale=self.cfg.temperature)]
        if self.cfg.eta > 0:
            specs.append(NoiseSpec('step_noise', (self.cfg.sampling_steps, self.chunk_dim),
                                   'normal'))
        return specs

    def act(self, obs: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        """``inputs``: each camera's frames (with cameras), the initial noise, and with
        ``eta > 0`` the per-step noise."""
        images, noise = self.split_images(inputs)
        initial_noise, step_noise = noise[0], (noise[1] if len(noise) > 1 else None)
        obs_n = self.condition(obs, images, inference=True)
        per_step = step_noise.transpose(0, 1) if step_noise is not None else None
        denoiser = self.inference_denoiser
        x = self.sampler(lambda x, t: denoiser(x, t, obs_n), initial_noise, per_step)
        return self.decode(x)

    # -- the sampling loop outside the graph (runner-side alternative) --------------------
    def step_module(self) -> nn.Module:
        """``(obs, x, coef (B, 4)) -> x_next``: one DDIM step as its own graph."""
        return _DenoiseStep(self)

    def decode_module(self) -> nn.Module:
        """``x -> actions (B, H, A)``: the sampled chunk in the robot's units."""
        return _Decode(self)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        chunk = x.clamp(-1.0, 1.0).view(x.shape[0], self.cfg.horizon, -1)
        return self.act_scale.from_unit(chunk)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        _, chunk, mask = self.chunk_targets(batch, observe=False)
        window = self.cfg.n_obs_steps > 1
        obs_n = self.condition(batch['observations'] if window else batch['observations'][:, -1],
                               self.batch_images(batch, last=not window))
        loss = self.schedule.training_loss(lambda x, t: self.denoiser(x, t, obs_n), chunk,
                                           mask=mask)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.update_denoiser_ema()
        return {'loss': loss.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'denoiser': self.opt}


class _DenoiseStep(nn.Module):
    def __init__(self, algo: DiffusionBC) -> None:
        super().__init__()
        self.algo = algo

    def forward(self, obs: torch.Tensor, x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        cond = self.algo.condition(obs, inference=True)
        t, abar, abar_prev, sigma = coef[:, 0], coef[:, 1:2], coef[:, 2:3], coef[:, 3:4]
        denoiser = self.algo.inference_denoiser
        return self.algo.sampler.step(lambda x_, t_: denoiser(x_, t_, cond), x, t, abar,
                                      abar_prev, sigma)


class _Decode(nn.Module):
    def __init__(self, algo: DiffusionBC) -> None:
        super().__init__()
        self.algo = algo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.algo.decode(x)
