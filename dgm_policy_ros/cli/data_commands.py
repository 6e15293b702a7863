# SPDX-License-Identifier: Apache-2.0
"""Commands that make and inspect datasets: collect, collect-suite, train-expert,
dataset-info, score.

Each parser sits next to its handler.
"""
from __future__ import annotations

import argparse
import json

from dgm_policy_ros.cli.common import Add, add_config_options, add_data_dir, config_overrides

COLLECT_FIELDS = ('env', 'agent', 'steps', 'episodes', 'noise', 'seed', 'n_envs', 'out',
                  'agents_dir', 'images', 'cameras', 'image_size', 'overwrite')


def _cmd_collect(args: argparse.Namespace) -> int:
    from dgm_policy_ros.sim.collect import CollectConfig, collect

    cfg = CollectConfig.from_dict(config_overrides(args, COLLECT_FIELDS))
    prov = collect(cfg, progress=not args.quiet)
    _print_dataset_summary({cfg.out: prov})
    return 0


def register_collect(add: Add) -> None:
    p = add('collect', _cmd_collect,
            'Roll a behaviour policy out in MuJoCo and write a Minari dataset (with --images, '
            'camera frames beside the state).')
    from dgm_policy_ros.sim.collect import CollectConfig

    add_config_options(p, CollectConfig, COLLECT_FIELDS, required=('env', 'out'))
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    add_data_dir(p)


def _cmd_collect_suite(args: argparse.Namespace) -> int:
    from dgm_policy_ros.sim.collect import collect_suite

    results = collect_suite(args.env, args.steps_per_dataset, seed=args.seed,
                            n_envs=args.n_envs, recipes=args.recipes, only=args.only,
                            agents_dir=args.agents_dir, overwrite=args.overwrite,
                            namespace=args.namespace, progress=not args.quiet)
    _print_dataset_summary(results)
    return 0


def register_collect_suite(add: Add) -> None:
    p = add('collect-suite', _cmd_collect_suite,
            'Build the D4RL-style dataset set of a task (random, medium, expert, '
            'medium-expert, mixed).')
    p.add_argument('--env', required=True)
    p.add_argument('--steps-per-dataset', type=int, default=100_000)
    p.add_argument('--only', nargs='+', help='build only these recipes (and what they need)')
    p.add_argument('--recipes', help='recipe YAML (default: sim/recipes/d4rl.yaml)')
    p.add_argument('--namespace', default='dgm')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--n-envs', type=int, default=8)
    p.add_argument('--agents-dir')
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--quiet', action='store_true')
    add_data_dir(p)


def _cmd_train_expert(args: argparse.Namespace) -> int:
    from dgm_policy_ros.sim.train_expert import TrainExpertConfig, train_expert

    cfg = TrainExpertConfig(env=args.env, out=args.out, steps=args.steps, seed=args.seed,
                            checkpoint_every=args.checkpoint_every,
                            eval_episodes=args.eval_episodes,
                            learning_starts=args.learning_starts)
    out = train_expert(cfg, progress=not args.quiet)
    print((out / 'returns.md').read_text())
    return 0


def register_train_expert(add: Add) -> None:
    p = add('train-expert', _cmd_train_expert,
            'Train a SAC behaviour policy with stable-baselines3 (for tasks without one).')
    p.add_argument('--env', required=True)
    p.add_argument('--steps', type=int, default=1_000_000)
    p.add_argument('--checkpoint-every', type=int, default=25_000)
    p.add_argument('--eval-episodes', type=int, default=5)
    p.add_argument('--learning-starts', type=int, default=5_000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True, help='folder for checkpoints and returns.md')
    p.add_argument('--quiet', action='store_true')


def _cmd_dataset_info(args: argparse.Namespace) -> int:
    import numpy as np

    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.normalization import DatasetSplit
    from dgm_policy_ros.data.scores import has_reference, normalized_score

    ds = load_dataset(args.dataset)
    split = DatasetSplit.load_or_create(ds.path, ds.episodes, args.val_fraction, args.seed)
    returns = ds.returns()
    info = {
        'dataset_id': ds.dataset_id, 'path': str(ds.path), 'env_id': ds.env_id,
        'episodes': len(ds.episodes), 'transitions': ds.total_steps,
        'obs_dim': ds.obs_dim, 'act_dim': ds.act_dim,
        'terminals': int(sum(ep.terminations.sum() for ep in ds.episodes)),
        'timeouts': int(sum(ep.truncations.sum() for ep in ds.episodes)),
        'return_mean': float(returns.mean()), 'return_std': float(returns.std()),
        'train_episodes': len(split.train_episodes), 'val_episodes': len(split.val_episodes),
    }
    if has_reference(ds.env_id):
        info['normalized_score_mean'] = float(np.mean(normalized_score(ds.env_id, returns)))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f'{key:24s} {value}')
    return 0


def register_dataset_info(add: Add) -> None:
    p = add('dataset-info', _cmd_dataset_info,
            'Validate a dataset and print its size, returns, score and split.')
    p.add_argument('dataset', help='Minari id or dataset folder')
    p.add_argument('--val-fraction', type=float, default=0.1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', action='store_true')
    add_data_dir(p)


def _cmd_score(args: argparse.Namespace) -> int:
    from dgm_policy_ros.data.scores import normalized_score

    for ret in args.returns:
        print(f'{ret:12.2f} -> {normalized_score(args.env, ret):8.2f}')
    return 0


def register_score(add: Add) -> None:
    p = add('score', _cmd_score, 'D4RL-style normalized score of episode returns.')
    p.add_argument('--env', required=True)
    p.add_argument('returns', type=float, nargs='+')


def _print_dataset_summary(results: dict) -> None:
    print(f"{'dataset':34s} {'episodes':>8s} {'steps':>8s} {'return':>18s} {'score':>14s}")
    for dataset_id, p in results.items():
        score = (f"{p['normalized_score_mean']:6.1f} ± {p['normalized_score_std']:5.1f}"
                 if 'normalized_score_mean' in p else '-')
        ret = f"{p['return_mean']:8.1f} ± {p['return_std']:7.1f}"
        print(f"{dataset_id:34s} {p['episodes']:8d} {p['transitions']:8d} {ret:>18s} "
              f'{score:>14s}')


REGISTER = (
    register_collect,
    register_collect_suite,
    register_train_expert,
    register_dataset_info,
    register_score,
)
