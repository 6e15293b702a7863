# SPDX-License-Identifier: Apache-2.0
"""``dgm``: the project's command line.

Each subcommand imports its heavy dependencies (MuJoCo, Minari, torch, rclpy) only when it runs,
so ``dgm --help`` is instant and works on a robot that has only the runtime installed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Sequence

from dgm_policy_ros.config import ConfigError

Handler = Callable[[argparse.Namespace], int]


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--data-dir', help='Minari datasets root (default: '
                        '$MINARI_DATASETS_PATH or ~/.minari/datasets)')


def _apply_data_dir(args: argparse.Namespace) -> None:
    if getattr(args, 'data_dir', None):
        os.environ['MINARI_DATASETS_PATH'] = os.path.abspath(args.data_dir)


# ------------------------------------------------------------------------------- collect


def _cmd_collect(args: argparse.Namespace) -> int:
    from dgm_policy_ros.sim.collect import CollectConfig, collect

    cfg = CollectConfig(env=args.env, out=args.out, agent=args.agent, steps=args.steps,
                        episodes=args.episodes, noise=args.noise, seed=args.seed,
                        n_envs=args.n_envs, agents_dir=args.agents_dir,
                        overwrite=args.overwrite)
    prov = collect(cfg, progress=not args.quiet)
    _print_dataset_summary({cfg.out: prov})
    return 0


def _cmd_collect_suite(args: argparse.Namespace) -> int:
    from dgm_policy_ros.sim.collect import collect_suite

    results = collect_suite(args.env, args.steps_per_dataset, seed=args.seed,
                            n_envs=args.n_envs, recipes=args.recipes, only=args.only,
                            agents_dir=args.agents_dir, overwrite=args.overwrite,
                            namespace=args.namespace, progress=not args.quiet)
    _print_dataset_summary(results)
    return 0


def _print_dataset_summary(results: dict) -> None:
    print(f"{'dataset':34s} {'episodes':>8s} {'steps':>8s} {'return':>18s} {'score':>14s}")
    for dataset_id, p in results.items():
        score = (f"{p['normalized_score_mean']:6.1f} ± {p['normalized_score_std']:5.1f}"
                 if 'normalized_score_mean' in p else '-')
        ret = f"{p['return_mean']:8.1f} ± {p['return_std']:7.1f}"
        print(f"{dataset_id:34s} {p['episodes']:8d} {p['transitions']:8d} {ret:>18s} "
              f'{score:>14s}')


def _cmd_train_expert(args: argparse.Namespace) -> int:
    from dgm_policy_ros.sim.train_expert import TrainExpertConfig, train_expert

    cfg = TrainExpertConfig(env=args.env, out=args.out, steps=args.steps, seed=args.seed,
                            checkpoint_every=args.checkpoint_every,
                            eval_episodes=args.eval_episodes,
                            learning_starts=args.learning_starts)
    out = train_expert(cfg, progress=not args.quiet)
    print((out / 'returns.md').read_text())
    return 0


# ------------------------------------------------------------------------------- datasets


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


def _cmd_score(args: argparse.Namespace) -> int:
    from dgm_policy_ros.data.scores import normalized_score

    for ret in args.returns:
        print(f'{ret:12.2f} -> {normalized_score(args.env, ret):8.2f}')
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    overrides = {k: v for k, v in {
        'algo': args.algo, 'dataset': args.dataset, 'out': args.out, 'steps': args.steps,
        'seed': args.seed, 'eval_every': args.eval_every, 'eval_episodes': args.eval_episodes,
        'checkpoint_every': args.checkpoint_every, 'threads': args.threads,
        'device': args.device,
        'val_fraction': getattr(args, 'val_fraction', None),
        'extra_transitions': getattr(args, 'extra_transitions', None),
        'synthetic_ratio': getattr(args, 'synthetic_ratio', None),
    }.items() if v is not None}
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

        from dgm_policy_ros.training.trainer import _read_yaml

        data = {**_read_yaml(Path(args.out) / 'config.yaml'), **overrides}
    cfg = TrainConfig.from_dict(data)
    from dgm_policy_ros.workflows.evaluation import score_snapshot

    result = Trainer(cfg, resume=args.resume, evaluate=score_snapshot).run()
    if int(os.environ.get('RANK', '0')) == 0:
        print(json.dumps(result, indent=2))
        for error in result.get('eval_errors', []):
            print(f'dgm train: warning: evaluation failed at {error} (the weights and '
                  f'result.json are written)', file=sys.stderr)
    return 0


def _cmd_augment_mopo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dgm_policy_ros.augment.mopo import mopo_rollouts
    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.transitions_file import save_transitions
    from dgm_policy_ros.runtime import PolicyRunner
    from dgm_policy_ros.training.trainer import load_run

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


def _cmd_train_world_model(args: argparse.Namespace) -> int:
    args.algo = args.model
    return _cmd_train(args)


def _cmd_export(args: argparse.Namespace) -> int:
    import yaml

    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime.bundle import load_bundle

    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ConfigError(f'--set takes KEY=VALUE, got {item!r}')
        overrides[key] = yaml.safe_load(value)
    out = export_bundle(args.run, args.out, fp16=not args.no_fp16, overwrite=args.overwrite,
                        control_rate_hz=args.control_rate, overrides=overrides)
    manifest = load_bundle(out).manifest
    print(f"wrote {out}: {manifest['algorithm']} ({manifest['family']}), "
          f"graphs {sorted(manifest['graphs'].values())}, "
          f"parity {manifest['parity']['onnxruntime_vs_torch_max_abs_error']}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from dgm_policy_ros.runtime.runner import PolicyRunner
    from dgm_policy_ros.sim.evaluate import evaluate_runner

    runner = PolicyRunner(args.bundle, backend=args.backend, seed=args.seed,
                          target_return=args.target_return)
    # The environment defaults to the bundle's own (evaluate_runner resolves it, once).
    result = evaluate_runner(runner, args.env, args.episodes, seed=args.env_seed)
    summary = {'bundle': str(args.bundle), 'env': result.env_id, 'episodes': args.episodes,
               'backend': runner.backend.name, **result.summary(),
               **runner.latency_percentiles(),
               'training_score_mean': runner.bundle.manifest.get('training', {})
               .get('score_mean')}
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_build_engine(args: argparse.Namespace) -> int:
    from dgm_policy_ros.runtime.bundle import load_bundle
    from dgm_policy_ros.runtime.tensorrt_engine import resolve_engine, source_graph

    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise ConfigError('TensorRT is not installed here (pip install tensorrt, or JetPack '
                         'on a Jetson): engines are built on the machine that runs them') from None
    bundle = load_bundle(args.bundle)
    fp16 = bundle.file('policy_fp16') if 'policy_fp16' in bundle.manifest['graphs'] else None
    graph = source_graph(bundle.file('policy'), fp16, args.precision)
    engine = resolve_engine(graph, args.engine, args.precision,
                            force_rebuild=args.force_engine_update)
    print(f'engine: {engine}')
    return 0


def _cmd_sim_loop(args: argparse.Namespace) -> int:
    from dgm_policy_ros.workflows.sim_loop import MjcfTarget, run_sim_loop

    mjcf = MjcfTarget(args.mjcf, args.keyframe, args.frame_skip, args.max_episode_steps) \
        if args.mjcf else None
    result = run_sim_loop(args.bundle, args.env, args.episodes, lockstep=args.lockstep,
                          seed=args.seed, backend=args.backend, plot=args.plot,
                          timeout_s=args.timeout, record=args.record,
                          record_storage=args.storage,
                          exploration_noise=args.exploration_noise, mjcf=mjcf)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['bundle']} on {result['env']} ({result['mode']}, over ROS 2): "
          f"{result['episodes']} episodes")
    print(f"  return {result['return_mean']:.1f} ± {result['return_std']:.1f}"
          + (f", normalized score {result['score_mean']:.1f} ± {result['score_std']:.1f}"
             if 'score_mean' in result else ''))
    print(f"  inference p50 {result['inference_p50_ms']} ms, p99 {result['inference_p99_ms']} "
          f"ms, missed deadlines {result['missed_deadlines']}, backend {result['backend']}")
    if result.get('plot'):
        print(f"  plot: {result['plot']}")
    if result.get('bag'):
        print(f"  recorded {result['bag']}: {result['bag_messages']}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from dgm_policy_ros.bags.recorder import record
    from dgm_policy_ros.bags.topics import RecordingSpec

    spec = RecordingSpec.load(args.spec)
    for name in ('action_topic', 'reward_topic', 'episode_topic'):
        if getattr(args, name):
            spec = spec.replace(**{name: getattr(args, name)})
    print(json.dumps(record(spec, args.out, storage=args.storage, episodes=args.episodes,
                            duration_s=args.duration, overwrite=args.overwrite), indent=2))
    return 0


def _cmd_retrain(args: argparse.Namespace) -> int:
    from dgm_policy_ros.workflows.retrain import retrain

    summary = retrain(args.bundle, args.dataset, args.out, args.bundle_out, steps=args.steps,
                      mix_original=args.mix_original, seed=args.seed,
                      eval_episodes=args.eval_episodes, overwrite=args.overwrite,
                      progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_bag2minari(args: argparse.Namespace) -> int:
    from dgm_policy_ros.bags.convert import AlignConfig, bag2minari
    from dgm_policy_ros.bags.topics import RecordingSpec

    spec = RecordingSpec.load(args.spec)
    cfg = AlignConfig(time_source=args.time_source, gap_s=args.gap_s,
                      episode_per_bag=args.episode_per_bag, reward_function=args.reward_function)
    path, report = bag2minari(args.bags, spec, args.dataset, cfg, env_id=args.env,
                              overwrite=args.overwrite, progress=not args.quiet)
    print(json.dumps({'dataset': args.dataset, 'path': str(path), **report.to_dict()},
                     indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from dgm_policy_ros.workflows.demo import run_data_pipeline_demo, run_sim_in_the_loop_demo

    if args.data_pipeline:
        return run_data_pipeline_demo(args.out, steps=args.steps, seed=args.seed)
    return run_sim_in_the_loop_demo(episodes=args.episodes, plot=args.plot,
                                    lockstep=not args.realtime)


# ------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='dgm', description='Deep generative model policies: data, training, export, '
        'deployment on ROS 2.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = add('collect', _cmd_collect,
            'Roll a behaviour policy out in MuJoCo and write a Minari dataset.')
    p.add_argument('--env', required=True, help='Gymnasium id, e.g. Hopper-v5')
    p.add_argument('--agent', default='random',
                   help="'random', an SB3 zip, or a file name in the reference agents folder")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument('--steps', type=int, help='number of transitions')
    budget.add_argument('--episodes', type=int, help='number of whole episodes')
    p.add_argument('--noise', type=float, default=0.0,
                   help='Gaussian action noise, sigma in units of the action half-range')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--n-envs', type=int, default=8, help='environments stepped per batch')
    p.add_argument('--out', required=True, help='Minari dataset id, e.g. dgm/hopper/medium-v0')
    p.add_argument('--agents-dir', help='reference agents folder (default: '
                   '$DGM_REFERENCE_AGENTS or ../shared/reference_agents)')
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    _add_data_dir(p)

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
    _add_data_dir(p)

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

    p = add('dataset-info', _cmd_dataset_info,
            'Validate a dataset and print its size, returns, score and split.')
    p.add_argument('dataset', help='Minari id or dataset folder')
    p.add_argument('--val-fraction', type=float, default=0.1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', action='store_true')
    _add_data_dir(p)

    p = add('record', _cmd_record,
            "Record a policy's topics (observations, commands, reward, episode ends) into a "
            'rosbag2 bag.')
    p.add_argument('--spec', required=True,
                   help='recording spec YAML (config/sim_recording.yaml), or the observation '
                        'spec YAML with the other topics given here')
    p.add_argument('--out', required=True, help='bag folder to create')
    p.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'])
    p.add_argument('--action-topic')
    p.add_argument('--reward-topic')
    p.add_argument('--episode-topic')
    p.add_argument('--episodes', type=int, default=0, help='stop after N episode ends')
    p.add_argument('--duration', type=float, default=0.0, help='stop after S seconds')
    p.add_argument('--overwrite', action='store_true')

    p = add('retrain', _cmd_retrain,
            "Fine-tune a bundle's model on new data and export a new bundle (its parent "
            'named in the manifest); both scored in MuJoCo.')
    p.add_argument('--bundle', required=True)
    p.add_argument('--dataset', required=True, help='Minari id of the new data')
    p.add_argument('--steps', type=int, default=5000)
    p.add_argument('--mix-original', action='store_true',
                   help="train on the new data together with the parent's dataset")
    p.add_argument('--out', required=True, help='run folder of the fine-tuning')
    p.add_argument('--bundle-out', required=True, help='the new bundle folder')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--eval-episodes', type=int, default=10)
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--quiet', action='store_true')
    _add_data_dir(p)

    p = add('bag2minari', _cmd_bag2minari,
            'Convert rosbag2 recordings (MCAP, sqlite3, folders of bags) into a Minari '
            "dataset, with the policy node's observation spec.")
    p.add_argument('bags', nargs='+', help='bag folders, or folders holding bags')
    p.add_argument('--spec', required=True, help='recording spec YAML')
    p.add_argument('--dataset', required=True, help='Minari id, e.g. robot/hopper/bags-v0')
    p.add_argument('--time-source', default='receive', choices=['receive', 'header'])
    p.add_argument('--gap-s', type=float, default=1.0,
                   help='a longer silence on the pacing topic ends an episode (0: never)')
    p.add_argument('--episode-per-bag', action='store_true')
    p.add_argument('--reward-function', metavar='MODULE:FUNCTION',
                   help='compute rewards with f(obs, actions, next_obs) instead of the '
                        'recorded reward topic')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.add_argument('--env', help='Gymnasium id the data comes from (for evaluation)')
    p.add_argument('--overwrite', action='store_true')
    _add_data_dir(p)

    p = add('score', _cmd_score, 'D4RL-style normalized score of episode returns.')
    p.add_argument('--env', required=True)
    p.add_argument('returns', type=float, nargs='+')

    p = add('train', _cmd_train,
            'Train a policy offline on a Minari dataset (checkpoints, resume, logs, eval).')
    from dgm_policy_ros.training.registry import ALGORITHMS  # names only: no torch import

    p.add_argument('--algo', help=f"algorithm name ({', '.join(ALGORITHMS)})")
    p.add_argument('--dataset', help='Minari id or dataset folder')
    p.add_argument('--steps', type=int, help='gradient steps (default 100000)')
    p.add_argument('--config', help='YAML: a TrainConfig, or just algorithm hyper-parameters')
    p.add_argument('--seed', type=int)
    p.add_argument('--out', required=True, help='run folder, e.g. runs/hopper-medium-bc')
    p.add_argument('--resume', action='store_true', help='continue the run in --out')
    p.add_argument('--eval-every', type=int, help='gradient steps between MuJoCo evaluations')
    p.add_argument('--eval-episodes', type=int)
    p.add_argument('--checkpoint-every', type=int)
    p.add_argument('--threads', type=int, help='torch threads per process (default 1)')
    p.add_argument('--device', help='cpu (default), cuda, cuda:N, or auto (the GPU if any)')
    p.add_argument('--extra-transitions', metavar='FILE',
                   help='synthetic transitions (dgm augment-mopo / augment-synther) to mix in')
    p.add_argument('--synthetic-ratio', type=float,
                   help='fraction of each batch from --extra-transitions (default: by size)')
    p.add_argument('--quiet', action='store_true')
    _add_data_dir(p)

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
    _add_data_dir(p)

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
    _add_data_dir(p)

    p = add('train-world-model', _cmd_train_world_model,
            'Train a world model (next observation and reward) on a Minari dataset; scored on '
            'held-out episodes (one-step MSE/NLL, open-loop error at 1, 5, 20 steps).')
    p.add_argument('--model', required=True,
                   choices=['wm_ensemble', 'wm_cvae', 'wm_diffusion'])
    p.add_argument('--dataset', required=True, help='Minari id or dataset folder')
    p.add_argument('--steps', type=int, help='gradient steps (default 100000)')
    p.add_argument('--config', help='YAML of model hyper-parameters')
    p.add_argument('--seed', type=int)
    p.add_argument('--out', required=True)
    p.add_argument('--resume', action='store_true')
    p.add_argument('--val-fraction', type=float, default=0.1,
                   help='held-out episodes for the metrics')
    p.add_argument('--eval-every', type=int, help='gradient steps between held-out metrics')
    p.add_argument('--checkpoint-every', type=int)
    p.add_argument('--threads', type=int)
    p.add_argument('--device', help='cpu (default), cuda, cuda:N, or auto (the GPU if any)')
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(eval_episodes=None)
    _add_data_dir(p)

    p = add('export', _cmd_export,
            'Export a training run as a verified model bundle (ONNX + manifest).')
    p.add_argument('run', help='training run folder')
    p.add_argument('--out', required=True, help='bundle folder, e.g. models/hopper_flow')
    p.add_argument('--no-fp16', action='store_true', help='skip the fp16 variant')
    p.add_argument('--control-rate', type=float, help='Hz (default: from the environment)')
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--set', action='append', metavar='KEY=VALUE',
                   help='a deploy-time algorithm setting that keeps the weights, e.g. '
                        'sampling_steps=5 (diffusion) or target_return=3000 (dt); repeatable')

    p = add('eval', _cmd_eval,
            'Evaluate a bundle in MuJoCo through the deployment runner.')
    p.add_argument('--bundle', required=True)
    p.add_argument('--env', help="Gymnasium id (default: the bundle's training env)")
    p.add_argument('--episodes', type=int, default=10)
    p.add_argument('--backend', default='auto',
                   choices=['auto', 'tensorrt', 'onnxruntime', 'onnxruntime-cpu'])
    p.add_argument('--seed', type=int, default=0, help='noise generator seed')
    p.add_argument('--env-seed', type=int,
                   help="first environment seed (default: the training evaluation's)")
    p.add_argument('--target-return', type=float,
                   help="return-conditioned policies (dt): the episode return asked for "
                        "(default: the bundle's)")

    p = add('build-engine', _cmd_build_engine,
            "Build (or reuse) a TensorRT engine for this GPU from a bundle's ONNX.")
    p.add_argument('--bundle', required=True)
    p.add_argument('--precision', choices=['fp32', 'fp16'], default='fp16')
    p.add_argument('--engine', help='engine file (default: <bundle>/engines/<named by GPU>)')
    p.add_argument('--force-engine-update', action='store_true')

    p = add('sim-loop', _cmd_sim_loop,
            'Run the policy node against the MuJoCo simulator node over ROS 2.')
    p.add_argument('--bundle', required=True)
    p.add_argument('--env', help="Gymnasium id (default: the bundle's training env)")
    p.add_argument('--episodes', type=int, default=10)
    p.add_argument('--lockstep', action='store_true',
                   help='the simulator waits for each command (deterministic)')
    p.add_argument('--seed', type=int, help="first episode's env seed (default: the "
                   "bundle's training evaluation seed)")
    p.add_argument('--backend', default='auto',
                   choices=['auto', 'tensorrt', 'onnxruntime', 'onnxruntime-cpu'])
    p.add_argument('--plot', default='sim_loop.png')
    p.add_argument('--timeout', type=float, default=900.0)
    p.add_argument('--json', action='store_true')
    p.add_argument('--record', metavar='BAG', help='also record the loop into this rosbag2 bag')
    p.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'])
    p.add_argument('--exploration-noise', type=float, default=0.0,
                   help='Gaussian action noise (std, in action half-ranges) for data '
                        'collection')
    p.add_argument('--mjcf', metavar='FILE', help='simulate this MJCF robot instead of a '
                   'Gymnasium task (observation: qpos, qvel)')
    p.add_argument('--keyframe', default='', help="MJCF: the keyframe episodes start from "
                   "(default: the model's first, if any)")
    p.add_argument('--frame-skip', type=int, default=1,
                   help='MJCF: physics steps per control step')
    p.add_argument('--max-episode-steps', type=int, default=1000,
                   help='MJCF: control steps before an episode is truncated')

    p = add('demo', _cmd_demo, "The README's main job: sim-in-the-loop on the embedded "
            'default bundle (or, with --data-pipeline, the data pipeline end to end).')
    p.add_argument('--episodes', type=int, default=5)
    p.add_argument('--plot', default='sim_loop.png')
    p.add_argument('--realtime', action='store_true', help='real-time simulator, not lockstep')
    p.add_argument('--data-pipeline', action='store_true')
    p.add_argument('--out', default='data/demo', help='folder for the data-pipeline datasets')
    p.add_argument('--steps', type=int, default=5000)
    p.add_argument('--seed', type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dgm_policy_ros.errors import DgmError

    parser = build_parser()
    args = parser.parse_args(argv)
    _apply_data_dir(args)
    try:
        return int(args.handler(args) or 0)
    except (DgmError, FileNotFoundError, FileExistsError) as exc:
        # Bad input is the user's to fix: say what is wrong, without a traceback. Anything
        # else is a bug here and keeps its traceback.
        print(f'dgm {args.command}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
