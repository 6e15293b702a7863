# SPDX-License-Identifier: Apache-2.0
"""Commands that train: train, train-world-model, augment-mopo, augment-synther.

Each parser sits next to its handler.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from dgm_policy_ros.cli.common import Add, add_config_options, add_data_dir, config_overrides
from dgm_policy_ros.config import ConfigError


def _cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    overrides = config_overrides(args, ('algo', *RUN_FIELDS, *TRAIN_FIELDS))
    data: dict = {}
    if args.config:
        data = yaml.safe_load(open(args.config)) or {}
        if 'algo_config' not in data and 'algo' not in data:
            data = {'algo_config': data}  # a file of algorithm hyper-parameters only
    data.update(overrides)
    if args.quiet:
        data['progress'] = False
    if args.resume and args.out and not args.algo:
        from pathlib import Path

        from dgm_policy_ros.training.run_folder import read_yaml

        data = {**read_yaml(Path(args.out) / 'config.yaml'), **overrides}
    cfg = TrainConfig.from_dict(data)
    from dgm_policy_ros.workflows.evaluation import score_snapshot

    result = Trainer(cfg, resume=args.resume, evaluate=score_snapshot).run()
    if int(os.environ.get('RANK', '0')) == 0:
        print(json.dumps(result, indent=2))
        for error in result.get('eval_errors', []):
            print(f'dgm train: warning: evaluation failed at {error} (the weights and '
                  f'result.json are written)', file=sys.stderr)
    return 0


# TrainConfig fields every training command takes as options; TRAIN_FIELDS: policies' only.
RUN_FIELDS = ('dataset', 'steps', 'seed', 'out', 'eval_every', 'checkpoint_every', 'threads',
              'device', 'val_fraction')
TRAIN_FIELDS = ('eval_episodes', 'extra_transitions', 'synthetic_ratio')


def add_run_options(p: argparse.ArgumentParser, fields: tuple[str, ...] = RUN_FIELDS,
                    defaults: dict | None = None) -> None:
    """The options of a training run, made from ``TrainConfig``'s fields, for ``train`` and
    ``train-world-model``."""
    from dgm_policy_ros.training.train_config import TrainConfig

    add_config_options(p, TrainConfig, fields, required=('out',), defaults=defaults)
    p.add_argument('--config', help='YAML: a TrainConfig, or just algorithm hyper-parameters')
    p.add_argument('--resume', action='store_true', help='continue the run in --out')
    p.add_argument('--quiet', action='store_true')
    add_data_dir(p)


def register_train(add: Add) -> None:
    p = add('train', _cmd_train,
            'Train a policy offline on a Minari dataset (checkpoints, resume, logs, eval).')
    from dgm_policy_ros.training.registry import ALGORITHMS  # names only: no torch import

    p.add_argument('--algo', help=f"algorithm name ({', '.join(ALGORITHMS)})")
    add_run_options(p, RUN_FIELDS + TRAIN_FIELDS)


def _cmd_train_world_model(args: argparse.Namespace) -> int:
    args.algo = args.model
    return _cmd_train(args)


def register_train_world_model(add: Add) -> None:
    p = add('train-world-model', _cmd_train_world_model,
            'Train a world model (next observation and reward) on a Minari dataset; scored on '
            'held-out episodes (one-step MSE/NLL, open-loop error at 1, 5, 20 steps).')
    from dgm_policy_ros.training.registry import WORLD_MODELS  # names only: no torch import

    p.add_argument('--model', required=True, choices=sorted(WORLD_MODELS))
    add_run_options(p, defaults={'val_fraction': 0.1})


def _cmd_augment_mopo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dgm_policy_ros.augment.mopo import mopo_rollouts
    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.transitions_file import save_transitions
    from dgm_policy_ros.runtime import PolicyRunner
    from dgm_policy_ros.training.run_folder import load_run

    source = Path(args.world_model)
    model, _, _ = load_run(source / 'training' if (source / 'training').is_dir() else source)
    if model.name != 'wm_ensemble':
        raise ConfigError(f'{source} is not a wm_ensemble: MOPO needs ensemble disagreement')
    runner = PolicyRunner(args.policy, backend='onnxruntime-cpu', seed=args.seed)
    ds = load_dataset(args.dataset)
    arrays, info = mopo_rollouts(model, lambda obs: runner.infer(obs)[:, 0], ds.episodes,
                                 args.starts, args.horizon, args.penalty, args.action_noise,
                                 seed=args.seed)
    info.update(dataset=ds.dataset_id, world_model=str(source), policy=str(args.policy))
    save_transitions(args.out, arrays, info)
    print(json.dumps(info, indent=2))
    return 0


def register_augment_mopo(add: Add) -> None:
    p = add('augment-mopo', _cmd_augment_mopo,
            'MOPO: uncertainty-penalized short rollouts of a policy in a world-model ensemble, '
            'from dataset states, saved as a transitions file.')
    p.add_argument('--world-model', required=True,
                   help='wm_ensemble run folder (or a world-model bundle)')
    p.add_argument('--policy', required=True, help='rollout policy bundle')
    p.add_argument('--dataset', required=True)
    p.add_argument('--starts', type=int, default=10_000)
    p.add_argument('--horizon', type=int, default=5)
    p.add_argument('--penalty', type=float, default=1.0)
    p.add_argument('--action-noise', type=float, default=0.1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True, help='transitions file (.safetensors)')
    add_data_dir(p)


def _cmd_augment_synther(args: argparse.Namespace) -> int:
    import torch

    from dgm_policy_ros.augment.synther import TransitionDiffusion
    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.transitions_file import save_transitions

    torch.manual_seed(args.seed)
    ds = load_dataset(args.dataset)
    low, high = ds.action_bounds
    model = TransitionDiffusion(ds.episodes, low, high, prediction=args.prediction)
    losses = model.fit(args.steps, seed=args.seed, progress=not args.quiet)
    arrays = model.sample(args.samples, seed=args.seed)
    info = {'method': 'synther', 'dataset': ds.dataset_id, 'steps': args.steps,
            'samples': args.samples, 'seed': args.seed, 'prediction': args.prediction,
            'final_loss': sum(losses[-100:]) / len(losses[-100:]) if losses else None}
    save_transitions(args.out, arrays, info)
    print(json.dumps(info, indent=2))
    return 0


def register_augment_synther(add: Add) -> None:
    p = add('augment-synther', _cmd_augment_synther,
            'SynthER: a diffusion model of whole transitions fitted to a dataset, sampled into '
            'a transitions file.')
    p.add_argument('--dataset', required=True)
    p.add_argument('--steps', type=int, default=20_000)
    p.add_argument('--samples', type=int, default=100_000)
    p.add_argument('--seed', type=int, default=0)
    # diffusion.PREDICTIONS, spelled out: the command line imports no torch until it runs.
    p.add_argument('--prediction', choices=('epsilon', 'sample'), default='sample',
                   help='what the denoiser predicts: the noise or the clean transition x_0 '
                        '(default; bench/results/augmentation.md)')
    p.add_argument('--out', required=True, help='transitions file (.safetensors)')
    p.add_argument('--quiet', action='store_true')
    add_data_dir(p)


REGISTER = (
    register_train,
    register_train_world_model,
    register_augment_mopo,
    register_augment_synther,
)
