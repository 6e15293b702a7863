# SPDX-License-Identifier: Apache-2.0
"""MOPO-style model rollouts (Yu et al. 2020): short rollouts of a policy in a learned
ensemble, from dataset states, with rewards penalized by the ensemble's uncertainty,
r~ = r - penalty * u(s, a), so a policy trained on them gains only where the model is sure.

Here the rollouts are made once, from a fixed rollout policy (a bundle, run through the
deployment runner, plus Gaussian exploration), and saved as a transitions file any
transition-sampling algorithm can mix in (``dgm train --extra-transitions``), rather than
regenerated inside one algorithm's loop. With no known termination function, a rollout stops
where its state leaves the data's range (widened by ``margin``), counted in the provenance.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from dgm_policy_ros.data.episodes import Episode
from dgm_policy_ros.data.transitions import flatten_episodes


def mopo_rollouts(model, policy: Callable[[np.ndarray], np.ndarray],
                  episodes: Sequence[Episode], starts: int = 10_000, horizon: int = 5,
                  penalty: float = 1.0, action_noise: float = 0.1, margin: float = 0.1,
                  seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """``model``: a trained ``GaussianEnsemble``; ``policy``: (B, obs) -> (B, act)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    data = flatten_episodes(episodes)
    low = data.observations.min(0)
    high = data.observations.max(0)
    span = high - low
    low, high = low - margin * span, high + margin * span
    act_low, act_high = model.spec.act_low, model.spec.act_high
    half = (act_high - act_low) / 2
    obs = data.observations[rng.integers(0, len(data), size=starts)].astype(np.float32)
    out = {k: [] for k in ('observations', 'actions', 'rewards', 'next_observations',
                           'terminals', 'uncertainty', 'raw_rewards')}
    stopped = 0
    model.eval()
    with torch.no_grad():
        for _ in range(horizon):
            if not len(obs):
                break
            act = np.asarray(policy(obs), np.float32)
            act = act + action_noise * half * rng.standard_normal(act.shape).astype(np.float32)
            act = np.clip(act, act_low, act_high).astype(np.float32)
            o, a = torch.from_numpy(obs), torch.from_numpy(act)
            y, u = model.sample_member(model.inputs(o, a), generator)
            next_obs, reward = model.decode(o, y)
            next_obs, reward, u = next_obs.numpy(), reward.numpy(), u.numpy()
            inside = np.all((next_obs >= low) & (next_obs <= high), axis=1)
            stopped += int((~inside).sum())
            keep = inside
            out['observations'].append(obs[keep])
            out['actions'].append(act[keep])
            out['raw_rewards'].append(reward[keep])
            out['uncertainty'].append(u[keep])
            out['rewards'].append(reward[keep] - penalty * u[keep])
            out['next_observations'].append(next_obs[keep])
            out['terminals'].append(np.zeros(int(keep.sum()), np.float32))
            obs = next_obs[keep].astype(np.float32)
    arrays = {k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in out.items()}
    info = {'method': 'mopo', 'starts': starts, 'horizon': horizon, 'penalty': penalty,
            'action_noise': action_noise, 'transitions': int(len(arrays['rewards'])),
            'stopped_out_of_range': stopped, 'seed': seed,
            'mean_uncertainty': float(arrays['uncertainty'].mean()) if len(arrays['rewards'])
            else None}
    return arrays, info
