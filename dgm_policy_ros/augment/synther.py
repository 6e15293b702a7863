# SPDX-License-Identifier: Apache-2.0
"""SynthER-style synthetic transitions (Lu et al. 2023): an unconditional diffusion model of
whole transitions x = (s, a, r, s', terminal), fitted to a (small) dataset and sampled to
up-sample it.

The denoiser and the noise schedule / DDIM sampler are the project's own (shared with the
diffusion policies and world models). Every dimension is standardized for training; samples
are mapped back, clipped to the data's per-dimension range (observations, rewards) and the
action bounds, and the terminal channel is thresholded at 0.5.

The denoiser predicts the clean transition x_0 by default (``prediction``), which scored
above noise prediction on every seed measured (docs/benchmarks.md, augmentation).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dgm_policy_ros.data.episodes import Episode
from dgm_policy_ros.data.transitions import flatten_episodes
from dgm_policy_ros.diffusion import DDIMSampler, NoiseSchedule
from dgm_policy_ros.networks.denoisers import MLPDenoiser


class TransitionDiffusion(torch.nn.Module):
    def __init__(self, episodes: Sequence[Episode], act_low: np.ndarray, act_high: np.ndarray,
                 hidden: Sequence[int] = (512, 512, 512), diffusion_steps: int = 100,
                 sampling_steps: int = 20, lr: float = 3e-4,
                 prediction: str = 'sample') -> None:
        super().__init__()
        data = flatten_episodes(episodes)
        self.obs_dim, self.act_dim = data.observations.shape[1], data.actions.shape[1]
        x = self._stack(data.observations, data.actions, data.rewards,
                        data.next_observations, data.terminals)
        self.data = torch.from_numpy(x)
        self.register_buffer('mean', self.data.mean(0))
        self.register_buffer('std', self.data.std(0).clamp(min=1e-6))
        self.low, self.high = x.min(0), x.max(0)
        self.low[self.obs_dim:self.obs_dim + self.act_dim] = act_low
        self.high[self.obs_dim:self.obs_dim + self.act_dim] = act_high
        dim = x.shape[1]
        self.denoiser = MLPDenoiser(0, dim, list(hidden), 32)
        self.schedule = NoiseSchedule(diffusion_steps, 'cosine', prediction=prediction)
        self.sampler = DDIMSampler(self.schedule, sampling_steps, clip=None)
        self.opt = torch.optim.AdamW(self.denoiser.parameters(), lr=lr, weight_decay=1e-6)

    @staticmethod
    def _stack(obs, act, rew, next_obs, term) -> np.ndarray:
        return np.concatenate([obs, act, np.asarray(rew)[:, None], next_obs,
                               np.asarray(term, np.float32)[:, None]], 1).astype(np.float32)

    def _denoise(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t, x.new_zeros(x.shape[0], 0))

    def fit(self, steps: int, batch_size: int = 256, seed: int = 0,
            progress: bool = False) -> list[float]:
        from tqdm.auto import tqdm

        generator = torch.Generator().manual_seed(seed)
        losses = []
        for _ in tqdm(range(steps), disable=not progress, unit='step', mininterval=1.0):
            index = torch.randint(0, len(self.data), (batch_size,), generator=generator)
            x0 = (self.data[index] - self.mean) / self.std
            loss = self.schedule.training_loss(self._denoise, x0, generator=generator)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(loss.item())
        return losses

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch: int = 4096) -> dict[str, np.ndarray]:
        generator = torch.Generator().manual_seed(seed)
        parts = []
        for start in range(0, n, batch):
            noise = torch.randn(min(batch, n - start), self.mean.shape[0], generator=generator)
            parts.append((self.sampler(self._denoise, noise) * self.std + self.mean).numpy())
        x = np.clip(np.concatenate(parts), self.low, self.high)
        o, a = self.obs_dim, self.act_dim
        return {'observations': x[:, :o], 'actions': x[:, o:o + a], 'rewards': x[:, o + a],
                'next_observations': x[:, o + a + 1:2 * o + a + 1],
                'terminals': (x[:, -1] > 0.5).astype(np.float32)}
