# SPDX-License-Identifier: Apache-2.0
"""``dgm train-expert``: a new SAC behaviour policy (stable-baselines3) for tasks that lack one.

Checkpoints are saved as ``<env>_<steps>_steps.zip``, the naming of shared/reference_agents, so
the output folder can be used directly as ``--agents-dir`` of ``dgm collect``; a returns table
(``returns.md``) gives each checkpoint's evaluation return to pick the medium/expert roles.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dgm_policy_ros.config import Config, ConfigError
from dgm_policy_ros.utils.atomic import atomic_write_text


@dataclasses.dataclass
class TrainExpertConfig(Config):
    env: str
    out: str
    steps: int = 1_000_000
    seed: int = 0
    checkpoint_every: int = 25_000
    eval_episodes: int = 5
    learning_starts: int = 5_000

    def validate(self) -> None:
        for name in ('steps', 'checkpoint_every', 'eval_episodes'):
            if getattr(self, name) < 1:
                raise ConfigError(f'TrainExpertConfig.{name} must be >= 1')
        if self.learning_starts < 0:
            raise ConfigError('TrainExpertConfig.learning_starts must be >= 0')


def train_expert(cfg: TrainExpertConfig, progress: bool = True) -> Path:
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    class CheckpointAndEvaluate(BaseCallback):
        """Save and evaluate at a fixed step period (SB3's callbacks do one or the other)."""

        def __init__(self) -> None:
            super().__init__()
            self.eval_env = gym.make(cfg.env)

        def _on_step(self) -> bool:
            if self.num_timesteps % cfg.checkpoint_every == 0 or self.num_timesteps == cfg.steps:
                path = out / f'{cfg.env}_{self.num_timesteps}_steps.zip'
                self.model.save(str(path))
                mean, std = evaluate_policy(self.model, self.eval_env,
                                            n_eval_episodes=cfg.eval_episodes,
                                            deterministic=True)
                rows.append({'file': path.name, 'steps': self.num_timesteps,
                             'return_mean': float(mean), 'return_std': float(std)})
                _write_returns(out, cfg, rows)
            return True

    env = gym.make(cfg.env)
    model = SAC('MlpPolicy', env, seed=cfg.seed, device='cpu',
                learning_starts=cfg.learning_starts, verbose=0)
    model.learn(total_timesteps=cfg.steps, callback=CheckpointAndEvaluate(),
                progress_bar=progress)
    if not rows:
        raise ConfigError('no checkpoint was written; is checkpoint_every > steps?')
    return out


def _write_returns(out: Path, cfg: TrainExpertConfig, rows: list[dict]) -> None:
    lines = [f'# SAC behaviour policies for {cfg.env} (seed {cfg.seed})', '',
             'Deterministic-policy return over '
             f'{cfg.eval_episodes} episodes at each checkpoint.', '',
             '| file | steps | return |', '|---|---|---|']
    lines += [f"| {r['file']} | {r['steps']} | {r['return_mean']:.1f} ({r['return_std']:.1f}) |"
              for r in rows]
    atomic_write_text(out / 'returns.md', '\n'.join(lines) + '\n')
    atomic_write_text(out / 'returns.json', json.dumps(rows, indent=2) + '\n')
