# SPDX-License-Identifier: Apache-2.0
"""Behaviour policies that generate datasets: uniform random, stable-baselines3 agents, noise.

The SB3 checkpoints are the project's trusted reference agents (shared/reference_agents) and are
loaded through SB3's own API; the no-pickle rule covers the models this project writes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dgm_policy_ros.config import ConfigError

AGENTS_ENV = 'DGM_REFERENCE_AGENTS'


class BehaviourPolicy(Protocol):
    def act(self, observations: np.ndarray) -> np.ndarray:
        """(B, obs_dim) -> (B, act_dim) actions inside the action bounds."""

    def describe(self) -> dict[str, Any]:
        """What generated the data, for dataset provenance."""


class RandomPolicy:
    """Uniform random actions inside the bounds (D4RL's 'random' datasets)."""

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int = 0) -> None:
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.rng = np.random.default_rng(seed)

    def act(self, observations: np.ndarray) -> np.ndarray:
        shape = (observations.shape[0], self.low.shape[0])
        return self.rng.uniform(self.low, self.high, size=shape).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {'type': 'random'}


class SB3Policy:
    """A stable-baselines3 agent acting deterministically (noise is added separately)."""

    def __init__(self, path: str | os.PathLike) -> None:
        from stable_baselines3.common.base_class import BaseAlgorithm

        self.path = Path(path)
        algo = _sb3_class(self.path)
        self.model: BaseAlgorithm = algo.load(str(self.path), device='cpu')

    def act(self, observations: np.ndarray) -> np.ndarray:
        actions, _ = self.model.predict(observations, deterministic=True)
        return np.asarray(actions, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {'type': 'sb3', 'algorithm': type(self.model).__name__,
                'checkpoint': self.path.name}


def _sb3_class(path: Path):
    import stable_baselines3

    # The reference agents are SAC; others are recognised by a name prefix (ppo_..., td3_...).
    for name in ('PPO', 'TD3', 'DDPG', 'A2C'):
        if path.name.lower().startswith(name.lower()):
            return getattr(stable_baselines3, name)
    return stable_baselines3.SAC


class NoisyPolicy:
    """Gaussian exploration noise, sigma in units of the action half-range, then clipped."""

    def __init__(self, base: BehaviourPolicy, sigma: float, low: np.ndarray,
                 high: np.ndarray, seed: int = 0) -> None:
        if sigma < 0:
            raise ConfigError(f'noise sigma must be >= 0, got {sigma}')
        self.base, self.sigma = base, float(sigma)
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.rng = np.random.default_rng(seed + 7919)

    def act(self, observations: np.ndarray) -> np.ndarray:
        actions = self.base.act(observations)
        if self.sigma > 0:
            half = (self.high - self.low) / 2.0
            actions = actions + self.rng.normal(0.0, self.sigma, actions.shape) * half
        return np.clip(actions, self.low, self.high).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), 'noise_sigma': self.sigma}


def reference_agents_dir() -> Path | None:
    """Where the shared reference agents are: $DGM_REFERENCE_AGENTS, else ../shared/... ."""
    if os.environ.get(AGENTS_ENV):
        return Path(os.environ[AGENTS_ENV])
    here = Path(__file__).resolve()
    for base in [Path.cwd(), *Path.cwd().parents, *here.parents]:
        for candidate in (base / 'shared' / 'reference_agents',
                          base.parent / 'shared' / 'reference_agents'):
            if candidate.is_dir():
                return candidate
    return None


def resolve_agent(spec: str, agents_dir: str | os.PathLike | None = None) -> Path | None:
    """'random' -> None; a path or a file name inside the agents folder -> its path."""
    if spec == 'random':
        return None
    path = Path(spec)
    if path.is_file():
        return path
    folder = Path(agents_dir) if agents_dir else reference_agents_dir()
    if folder is not None:
        for candidate in (folder / spec, folder / f'{spec}.zip'):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f'behaviour agent {spec!r} not found (looked in {folder}); pass a path to an SB3 zip, '
        f"'random', or set {AGENTS_ENV}")


def make_policy(spec: str, low: np.ndarray, high: np.ndarray, noise: float = 0.0,
                seed: int = 0, agents_dir: str | os.PathLike | None = None,
                env_id: str | None = None) -> BehaviourPolicy:
    """``spec``: 'random', an SB3 zip, or 'expert' (a MetaWorld task's scripted policy)."""
    if spec == 'expert':
        if not (env_id or '').startswith('metaworld/'):
            raise ConfigError(f"agent 'expert' is a MetaWorld task's scripted policy; "
                              f'{env_id} has none')
        from dgm_policy_ros.sim.metaworld_tasks import ScriptedExpert

        expert = ScriptedExpert(env_id.split('/', 1)[1])
        return NoisyPolicy(expert, noise, low, high, seed) if noise > 0 else expert
    path = resolve_agent(spec, agents_dir)
    base: BehaviourPolicy = RandomPolicy(low, high, seed) if path is None else SB3Policy(path)
    if noise > 0 and path is not None:
        return NoisyPolicy(base, noise, low, high, seed)
    return base
