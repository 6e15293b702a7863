# SPDX-License-Identifier: Apache-2.0
"""``dgm collect`` and ``dgm collect-suite``: behaviour-policy rollouts written as Minari datasets.

The suite follows the D4RL protocol with this project's reference agents (recipes in
``sim/recipes/d4rl.yaml``): random, medium, expert, medium-expert (concatenation) and mixed
(rollouts of every checkpoint up to medium-plus, standing in for medium-replay).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import time
from typing import Any, Optional

import numpy as np
import yaml

from dgm_policy_ros.config import Config, ConfigError
from dgm_policy_ros.data import minari_io
from dgm_policy_ros.data.scores import has_reference, normalized_score, reference_returns
from dgm_policy_ros.resources import share_path
from dgm_policy_ros.sim.agents import make_policy
from dgm_policy_ros.sim.cameras import camera_views, default_proprio
from dgm_policy_ros.sim.rollout import rollout
from dgm_policy_ros.utils.versions import package_versions

DEMONSTRATIONS = 50  # per MetaWorld task, as Diffusion Policy and DP3 report with (also: 10)


@dataclasses.dataclass
class CollectConfig(Config):
    """One dataset: which env, which behaviour policy (or policies), how much data."""

    env: str  # Gymnasium id (Hopper-v5) or metaworld/<task>
    out: str  # Minari dataset id, e.g. dgm/hopper/medium-v0
    # 'random', 'expert' (MetaWorld's scripted policy), an SB3 zip, or a file name in the
    # reference agents folder
    agent: str = 'random'
    agents: Optional[list[str]] = None  # several policies share the budget equally (mixed)
    steps: Optional[int] = None  # transitions
    episodes: Optional[int] = None  # whole episodes (MetaWorld default: 50 demonstrations)
    noise: float = 0.0  # Gaussian action noise, sigma in units of the action half-range
    seed: int = 0
    n_envs: int = 8  # environments stepped per batch
    # reference agents folder (default: $DGM_REFERENCE_AGENTS or ../shared/reference_agents)
    agents_dir: Optional[str] = None
    images: bool = False  # also record camera frames (JPEG-compressed in the dataset)
    cameras: Optional[list[str]] = None  # cameras to render (default: the task's default view)
    image_size: Optional[int] = None  # square frames of this many pixels (default: the view's)
    overwrite: bool = False  # replace an existing dataset of that id

    def validate(self) -> None:
        if self.steps is None and self.episodes is None and self.env.startswith('metaworld/'):
            self.episodes = DEMONSTRATIONS
        if (self.cameras or self.image_size) and not self.images:
            raise ConfigError('CollectConfig: cameras and image_size need images: true')
        if (self.steps is None) == (self.episodes is None):
            raise ConfigError('CollectConfig: give exactly one of steps or episodes')
        budget = self.steps if self.steps is not None else self.episodes
        if budget < 1:
            raise ConfigError(f'CollectConfig: the budget must be >= 1, got {budget}')
        if self.noise < 0:
            raise ConfigError(f'CollectConfig.noise must be >= 0, got {self.noise}')
        if self.n_envs < 1:
            raise ConfigError(f'CollectConfig.n_envs must be >= 1, got {self.n_envs}')
        if '/' not in self.out or not self.out.rsplit('-v', 1)[-1].isdigit():
            raise ConfigError(f'CollectConfig.out {self.out!r} is not a Minari id like '
                              "'dgm/hopper/medium-v0'")


def collect(cfg: CollectConfig, progress: bool = True) -> dict[str, Any]:
    """Roll out, write the dataset atomically, return its provenance (incl. statistics)."""
    from dgm_policy_ros.sim.environments import make_env

    started = time.perf_counter()
    views = camera_views(cfg.env, cfg.cameras, cfg.image_size) if cfg.images else None
    probe = make_env(cfg.env)
    low, high = probe.action_space.low, probe.action_space.high
    control_rate_hz = round(1.0 / float(probe.unwrapped.dt), 6)
    probe.close()
    specs = cfg.agents or [cfg.agent]
    parts = _split_budget(cfg, len(specs))
    episodes, cut_flags, behaviour = [], [], []
    for k, (spec, budget) in enumerate(zip(specs, parts)):
        seed = cfg.seed + 1000 * k
        policy = make_policy(spec, low, high, cfg.noise, seed, cfg.agents_dir, env_id=cfg.env)
        eps, n_cut = rollout(lambda: make_env(cfg.env, views), policy, n_envs=cfg.n_envs,
                             seed=seed, progress=progress, **budget)
        episodes.extend(dataclasses.replace(ep, id=len(episodes) + i) for i, ep in enumerate(eps))
        cut_flags += [False] * (len(eps) - n_cut) + [True] * n_cut
        behaviour.append({**policy.describe(), 'seed': seed, **budget,
                          'episodes_collected': len(eps)})
    elapsed = time.perf_counter() - started
    # Episodes cut by the step budget have incomparable returns: statistics use the complete
    # ones when there are any.
    complete = [ep for ep, cut in zip(episodes, cut_flags) if not cut]
    returns = np.array([ep.total_return for ep in complete or episodes])
    stats = minari_io.return_statistics(returns, episodes)
    stats['episodes_cut_by_budget'] = int(sum(cut_flags))
    stats['return_over'] = 'complete episodes' if complete else 'all episodes'
    if has_reference(cfg.env):
        stats['normalized_score_mean'] = float(np.mean(normalized_score(cfg.env, returns)))
        stats['normalized_score_std'] = float(np.std(normalized_score(cfg.env, returns)))
    provenance = {
        'kind': 'rollout', 'env_id': cfg.env, 'behaviour': behaviour,
        'control_rate_hz': control_rate_hz,
        'noise_sigma': cfg.noise, 'seed': cfg.seed, 'n_envs': cfg.n_envs,
        'generation_seconds': round(elapsed, 2), 'versions': package_versions(
            ('gymnasium', 'mujoco', 'minari', 'stable-baselines3', 'dgm_policy_ros')),
        'config': cfg.to_dict(), **stats,
    }
    if views:
        provenance['cameras'] = [view.to_dict() for view in views]
        provenance['proprio_indices'] = default_proprio(cfg.env, episodes[0].observations.shape[1])
    algo = '+'.join(b.get('checkpoint', b['type']) for b in behaviour)
    minari_io.write_dataset(
        cfg.out, episodes, env_id=cfg.env, provenance=provenance,
        algorithm_name=f'{algo} noise={cfg.noise}',
        description=f'{cfg.env} rollouts of {algo} (noise sigma {cfg.noise}, seed {cfg.seed})',
        ref_scores=reference_returns(cfg.env) if has_reference(cfg.env) else None,
        overwrite=cfg.overwrite)
    return provenance


def _split_budget(cfg: CollectConfig, parts: int) -> list[dict[str, int]]:
    key = 'steps' if cfg.steps is not None else 'episodes'
    total = cfg.steps if cfg.steps is not None else cfg.episodes
    shares = [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
    if min(shares) < 1:
        raise ConfigError(f'a budget of {total} {key} cannot be shared by {parts} agents')
    return [{key: s} for s in shares]



# ---------------------------------------------------------------------------------------------
# Suites


@dataclasses.dataclass
class RecipeEntry(Config):
    """One dataset of a suite: a single agent, several agents, or a concatenation."""

    agent: Optional[str] = None
    agents: Optional[list[str]] = None
    noise: float = 0.0
    concat: Optional[list[str]] = None

    def validate(self) -> None:
        given = [x for x in (self.agent, self.agents, self.concat) if x]
        if len(given) != 1:
            raise ConfigError('RecipeEntry: give exactly one of agent, agents or concat')


def load_recipes(env: str, path: str | Path | None = None) -> dict[str, RecipeEntry]:
    path = Path(path) if path else share_path('sim', 'recipes', 'd4rl.yaml')
    table = yaml.safe_load(Path(path).read_text()) or {}
    if env not in table:
        raise ConfigError(f'no dataset recipes for {env} in {path} (have {sorted(table)}); '
                          'train a behaviour policy with `dgm train-expert` and add a recipe')
    return {name: RecipeEntry.from_dict(entry) for name, entry in table[env].items()}


def suite_dataset_id(env: str, name: str, namespace: str = 'dgm') -> str:
    task = env.split('-v')[0].lower()
    return f'{namespace}/{task}/{name}-v0'


def collect_suite(env: str, steps_per_dataset: int, *, seed: int = 0, n_envs: int = 8,
                  recipes: str | Path | None = None, only: list[str] | None = None,
                  agents_dir: str | None = None, overwrite: bool = False,
                  namespace: str = 'dgm', progress: bool = True) -> dict[str, dict]:
    """Build every dataset of the task's recipe; returns {dataset id: provenance}."""
    entries = load_recipes(env, recipes)
    if only:
        unknown = sorted(set(only) - set(entries))
        if unknown:
            raise ConfigError(f'unknown recipe(s) {unknown}; have {sorted(entries)}')
        needed = set(only) | {c for n in only for c in (entries[n].concat or [])}
        entries = {k: v for k, v in entries.items() if k in needed}
    results: dict[str, dict] = {}
    ordered = sorted(entries.items(), key=lambda kv: kv[1].concat is not None)
    for index, (name, entry) in enumerate(ordered):
        dataset_id = suite_dataset_id(env, name, namespace)
        if entry.concat:
            started = time.perf_counter()
            sources = [suite_dataset_id(env, c, namespace) for c in entry.concat]
            minari_io.concatenate(dataset_id, sources, overwrite=overwrite)
            loaded = minari_io.load_dataset(dataset_id)
            prov = loaded.provenance
            prov['generation_seconds'] = round(time.perf_counter() - started, 2) + sum(
                results.get(s, {}).get('generation_seconds', 0.0) for s in sources)
            returns = loaded.returns()
            if has_reference(env):
                prov['normalized_score_mean'] = float(np.mean(normalized_score(env, returns)))
                prov['normalized_score_std'] = float(np.std(normalized_score(env, returns)))
            results[dataset_id] = prov
            continue
        cfg = CollectConfig(env=env, out=dataset_id, agent=entry.agent or 'random',
                            agents=entry.agents, steps=steps_per_dataset, noise=entry.noise,
                            seed=seed + 100 * index, n_envs=n_envs, agents_dir=agents_dir,
                            overwrite=overwrite)
        results[dataset_id] = collect(cfg, progress=progress)
    return results
