# SPDX-License-Identifier: Apache-2.0
"""Commands that make and check what ships: export, eval, build-engine.

Each parser sits next to its handler.
"""
from __future__ import annotations

import argparse
import json

from dgm_policy_ros.cli.common import Add, key_values
from dgm_policy_ros.config import ConfigError


def _cmd_export(args: argparse.Namespace) -> int:
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime.bundle import load_bundle

    overrides = key_values(args.set or [])
    out = export_bundle(args.run, args.out, fp16=not args.no_fp16, overwrite=args.overwrite,
                        control_rate_hz=args.control_rate, overrides=overrides)
    manifest = load_bundle(out).manifest
    print(f"wrote {out}: {manifest['algorithm']} ({manifest['family']}), "
          f"graphs {sorted(manifest['graphs'].values())}, "
          f"parity {manifest['parity']['onnxruntime_vs_torch_max_abs_error']}")
    return 0


def register_export(add: Add) -> None:
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


def register_eval(add: Add) -> None:
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


def register_build_engine(add: Add) -> None:
    p = add('build-engine', _cmd_build_engine,
            "Build (or reuse) a TensorRT engine for this GPU from a bundle's ONNX.")
    p.add_argument('--bundle', required=True)
    p.add_argument('--precision', choices=['fp32', 'fp16'], default='fp16')
    p.add_argument('--engine', help='engine file (default: <bundle>/engines/<named by GPU>)')
    p.add_argument('--force-engine-update', action='store_true')


REGISTER = (
    register_export,
    register_eval,
    register_build_engine,
)
