# SPDX-License-Identifier: Apache-2.0
"""Commands of the robot loop over ROS 2: sim-loop, record, bag2minari, retrain, demo.

Each parser sits next to its handler.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from dgm_policy_ros.cli.common import Add, add_config_options, add_data_dir, config_overrides


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


def register_sim_loop(add: Add) -> None:
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


def register_record(add: Add) -> None:
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


def _align_fields() -> list[str]:
    """Every ``AlignConfig`` field is a ``bag2minari`` option."""
    from dgm_policy_ros.bags.convert import AlignConfig

    return [f.name for f in dataclasses.fields(AlignConfig)]


def _cmd_bag2minari(args: argparse.Namespace) -> int:
    from dgm_policy_ros.bags.convert import AlignConfig, bag2minari
    from dgm_policy_ros.bags.topics import RecordingSpec

    spec = RecordingSpec.load(args.spec)
    cfg = AlignConfig(**config_overrides(args, _align_fields()))
    path, report = bag2minari(args.bags, spec, args.dataset, cfg, env_id=args.env,
                              overwrite=args.overwrite, progress=not args.quiet)
    print(json.dumps({'dataset': args.dataset, 'path': str(path), **report.to_dict()},
                     indent=2))
    return 0


def register_bag2minari(add: Add) -> None:
    p = add('bag2minari', _cmd_bag2minari,
            'Convert rosbag2 recordings (MCAP, sqlite3, folders of bags) into a Minari '
            "dataset, with the policy node's observation spec.")
    p.add_argument('bags', nargs='+', help='bag folders, or folders holding bags')
    p.add_argument('--spec', required=True, help='recording spec YAML')
    p.add_argument('--dataset', required=True, help='Minari id, e.g. robot/hopper/bags-v0')
    from dgm_policy_ros.bags.convert import AlignConfig

    add_config_options(p, AlignConfig, _align_fields())
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.add_argument('--env', help='Gymnasium id the data comes from (for evaluation)')
    p.add_argument('--overwrite', action='store_true')
    add_data_dir(p)


def _cmd_retrain(args: argparse.Namespace) -> int:
    from dgm_policy_ros.workflows.retrain import retrain

    summary = retrain(args.bundle, args.dataset, args.out, args.bundle_out, steps=args.steps,
                      mix_original=args.mix_original, seed=args.seed,
                      eval_episodes=args.eval_episodes, overwrite=args.overwrite,
                      progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def register_retrain(add: Add) -> None:
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
    add_data_dir(p)


def _cmd_demo(args: argparse.Namespace) -> int:
    from dgm_policy_ros.workflows.demo import (
        run_data_pipeline_demo,
        run_sim_in_the_loop_demo,
        run_visuomotor_demo,
    )

    if args.data_pipeline:
        return run_data_pipeline_demo(args.out, steps=args.steps, seed=args.seed)
    if args.task:
        return run_visuomotor_demo(args.task, episodes=args.episodes, video=args.video)
    return run_sim_in_the_loop_demo(episodes=args.episodes, plot=args.plot,
                                    lockstep=not args.realtime)


def register_demo(add: Add) -> None:
    p = add('demo', _cmd_demo, "The README's main job: sim-in-the-loop on the embedded "
            'default bundle (or, with --data-pipeline, the data pipeline end to end).')
    p.add_argument('--episodes', type=int, default=5)
    p.add_argument('--plot', default='sim_loop.png')
    p.add_argument('--realtime', action='store_true', help='real-time simulator, not lockstep')
    p.add_argument('--data-pipeline', action='store_true')
    p.add_argument('--task', help='the visuomotor demo: an image policy on this MetaWorld task '
                   'from its camera over ROS 2 (metaworld/button-press-topdown-v3)')
    p.add_argument('--video', default='rollout.gif', help="the visuomotor demo's video")
    p.add_argument('--out', default='data/demo', help='folder for the data-pipeline datasets')
    p.add_argument('--steps', type=int, default=5000)
    p.add_argument('--seed', type=int, default=0)


REGISTER = (
    register_sim_loop,
    register_record,
    register_bag2minari,
    register_retrain,
    register_demo,
)
