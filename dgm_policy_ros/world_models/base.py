# SPDX-License-Identifier: Apache-2.0
"""The world-model contract, on top of the policy contract so that the same trainer,
checkpoints, resume and logs serve both.

A world model learns y = [(s' - s) / obs_std, r] given x = [normalized s, unit a]: the
observation change in units of the data's spread (every dimension matters equally) and the raw
reward. ``step(obs, action, *noise) -> (next_obs, reward, uncertainty)`` is its tensor-only
inference graph (normalization baked in, randomness an explicit input); ``uncertainty`` is a
per-sample scalar (ensemble disagreement, or the spread of K generated samples) that MOPO
penalizes and the world-model node reports as an anomaly scale.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from dgm_policy_ros.data.episodes import Episode
from dgm_policy_ros.training.algorithm import (
    AlgoConfig,
    Algorithm,
    DataSpec,
    to_tensor,
    to_tensors,
)


@dataclasses.dataclass
class WorldModelConfig(AlgoConfig):
    hidden: list[int] = dataclasses.field(default_factory=lambda: [200, 200, 200])
    lr: float = 1e-3


class WorldModel(Algorithm):
    kind = 'world_model'
    config_class = WorldModelConfig

    def __init__(self, cfg: WorldModelConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.in_dim = spec.obs_dim + spec.act_dim
        self.out_dim = spec.obs_dim + 1

    # -- data ------------------------------------------------------------------------
    def inputs(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.obs_norm(obs), self.unit_actions(act)], -1)

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        delta = (batch['next_observations'] - batch['observations']) / self.obs_norm.std
        return torch.cat([delta, batch['rewards'].unsqueeze(-1)], -1)

    def decode(self, obs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return obs + y[:, :-1] * self.obs_norm.std, y[:, -1]

    # -- to implement ----------------------------------------------------------------
    def sample_y(self, x: torch.Tensor, *noise: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction of y (B, O+1), uncertainty (B,)) for inputs x (B, O+A)."""
        raise NotImplementedError

    def nll(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Per-sample negative log-likelihood of y (nats), where the model has one."""
        return None

    # -- provided --------------------------------------------------------------------
    def step(self, obs: torch.Tensor, act: torch.Tensor, *noise: torch.Tensor):
        y, uncertainty = self.sample_y(self.inputs(obs, act), *noise)
        next_obs, reward = self.decode(obs, y)
        return next_obs, reward, uncertainty

    def act(self, obs: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        raise TypeError('a world model predicts next observations: call step(obs, action)')

    @torch.no_grad()
    def predict_step(self, obs: np.ndarray, act: np.ndarray,
                     rng: np.random.Generator | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = rng or np.random.default_rng()
        arrays = [np.asarray(obs, np.float32), np.asarray(act, np.float32),
                  *self.draw_noise(len(obs), rng)]
        was = self.training
        self.eval()
        try:
            out = self.step(*[to_tensor(a, self.device) for a in arrays])
        finally:
            self.train(was)
        return tuple(t.cpu().numpy() for t in out)

    @torch.no_grad()
    def metrics(self, episodes: Sequence[Episode], horizons: Sequence[int] = (1, 5, 20),
                starts_per_episode: int = 8, seed: int = 0) -> dict[str, float]:
        """Held-out accuracy: one-step MSE of y (normalized units) and NLL where defined, and
        H-step open-loop error (normalized observation MSE after H steps fed the recorded
        actions, from random starts)."""
        from dgm_policy_ros.data.transitions import flatten_episodes

        rng = np.random.default_rng(seed)
        data = flatten_episodes(episodes)
        batch = to_tensors({k: np.asarray(v, np.float32) for k, v in {
            'observations': data.observations, 'actions': data.actions,
            'rewards': data.rewards, 'next_observations': data.next_observations}.items()},
            self.device)
        was = self.training
        self.eval()
        try:
            x, y = self.inputs(batch['observations'], batch['actions']), self.targets(batch)
            noise = [to_tensor(n, self.device) for n in self.draw_noise(len(x), rng)]
            pred, _ = self.sample_y(x, *noise)
            out = {'one_step_mse': float(((pred - y) ** 2).mean()),
                   'reward_mse': float(((pred[:, -1] - y[:, -1]) ** 2).mean())}
            nll = self.nll(x, y)
            if nll is not None:
                out['one_step_nll'] = float(nll.mean())
            for h in horizons:
                out[f'open_loop_mse_h{h}'] = self._open_loop(episodes, h, starts_per_episode,
                                                             rng)
        finally:
            self.train(was)
        return out

    def _open_loop(self, episodes, h: int, per_episode: int, rng) -> float:
        starts, eps = [], []
        for ep in episodes:
            if len(ep) >= h:
                for t in rng.integers(0, len(ep) - h + 1, size=per_episode):
                    starts.append(int(t))
                    eps.append(ep)
        if not starts:
            return float('nan')
        def stacked(arrays) -> torch.Tensor:
            return to_tensor(np.stack(arrays).astype(np.float32), self.device)

        obs = stacked([e.observations[t] for e, t in zip(eps, starts)])
        for k in range(h):
            act = stacked([e.actions[t + k] for e, t in zip(eps, starts)])
            noise = [to_tensor(n, self.device) for n in self.draw_noise(len(obs), rng)]
            obs, _, _ = self.step(obs, act, *noise)
        truth = stacked([e.observations[t + h] for e, t in zip(eps, starts)])
        return float((((obs - truth) / self.obs_norm.std) ** 2).mean())
