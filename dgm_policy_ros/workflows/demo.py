# SPDX-License-Identifier: Apache-2.0
"""The README's main job: sim-in-the-loop on the embedded default bundle.

``run_sim_in_the_loop_demo``: the shipped Hopper-v5 flow policy (models/hopper_flow_bc) drives
the MuJoCo simulator node through the policy node over real ROS 2, in lockstep, and prints
return, normalized score, latency and missed deadlines. No training needed.

``run_data_pipeline_demo`` (``dgm demo --data-pipeline``): collect small Hopper-v5 datasets in
MuJoCo, write them as Minari datasets, load and validate them, compute the split and
normalization, draw one batch from every sampler, and score them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DEFAULT_BUNDLE = 'hopper_flow_bc'
# The visuomotor demo: a bundle that sees one camera, per task it was trained for.
VISUOMOTOR_BUNDLES = {'metaworld/button-press-topdown-v3': 'metaworld_button_press_dp'}


def run_sim_in_the_loop_demo(episodes: int = 5, plot: str = 'sim_loop.png',
                             lockstep: bool = True) -> int:
    from dgm_policy_ros.resources import share_path
    from dgm_policy_ros.workflows.sim_loop import run_sim_loop

    bundle = share_path('models', DEFAULT_BUNDLE)
    print(f'sim-in-the-loop: {bundle} vs mujoco_sim_node (Hopper-v5), {episodes} episodes, '
          f"{'lockstep' if lockstep else 'real time'}, over ROS 2 (DDS)")
    result = run_sim_loop(bundle, episodes=episodes, lockstep=lockstep, plot=plot)
    for i, (ret, length) in enumerate(zip(result['returns'], result['lengths'])):
        print(f'  episode {i}: return {ret:8.1f} in {length} steps')
    print(f"return {result['return_mean']:.1f} ± {result['return_std']:.1f}, normalized score "
          f"{result['score_mean']:.1f} ± {result['score_std']:.1f}")
    print(f"inference p50 {result['inference_p50_ms']:.3f} ms, p99 "
          f"{result['inference_p99_ms']:.3f} ms, missed deadlines {result['missed_deadlines']}, "
          f"backend {result['backend']}; plot: {plot}")
    print('demo: OK')
    return 0


def run_visuomotor_demo(task: str, episodes: int = 5, video: str = 'rollout.gif') -> int:
    """The second demo: an image Diffusion Policy (one camera, hand position and gripper)
    drives a MetaWorld task through the policy node against the simulator node rendering that
    camera, in lockstep over ROS 2; success rate, latency, missed deadlines, and a video of
    what the policy saw."""
    from dgm_policy_ros.config import ConfigError
    from dgm_policy_ros.resources import share_path
    from dgm_policy_ros.workflows.sim_loop import run_sim_loop

    if task not in VISUOMOTOR_BUNDLES:
        raise ConfigError(f'no embedded visuomotor bundle for {task}; embedded: '
                          f'{sorted(VISUOMOTOR_BUNDLES)}')
    bundle = share_path('models', VISUOMOTOR_BUNDLES[task])
    print(f'visuomotor sim-in-the-loop: {bundle} vs mujoco_sim_node ({task}, camera frames '
          f'over ROS 2), {episodes} episodes, lockstep')
    result = run_sim_loop(bundle, task, episodes=episodes, lockstep=True, video=video)
    print(f"success rate {result['success_rate']:.2f} over {result['episodes']} episodes "
          f"(lengths {result['lengths']})")
    print(f"inference p50 {result['inference_p50_ms']:.3f} ms, p99 "
          f"{result['inference_p99_ms']:.3f} ms, missed deadlines {result['missed_deadlines']}, "
          f"backend {result['backend']}; video: {result.get('video')}")
    print('demo: OK')
    return 0


def run_data_pipeline_demo(out: str, steps: int = 5000, seed: int = 0) -> int:
    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.normalization import DatasetSplit
    from dgm_policy_ros.data.samplers import ChunkSampler, SequenceSampler, TransitionSampler
    from dgm_policy_ros.data.scores import normalized_score
    from dgm_policy_ros.sim.agents import reference_agents_dir
    from dgm_policy_ros.sim.collect import collect_suite

    os.environ['MINARI_DATASETS_PATH'] = str(Path(out).resolve())
    env = 'Hopper-v5'
    recipes = ['random', 'medium'] if reference_agents_dir() else ['random']
    if 'medium' not in recipes:
        print('reference agents not found (../shared/reference_agents or '
              '$DGM_REFERENCE_AGENTS): collecting the random dataset only')
    print(f'[1/3] collecting {env} datasets ({steps} steps each) into {out}')
    results = collect_suite(env, steps, seed=seed, only=recipes, namespace='demo',
                            overwrite=True)
    print('[2/3] loading, validating, splitting')
    print(f"{'dataset':28s} {'eps':>5s} {'steps':>7s} {'return':>16s} {'score':>7s} "
          f"{'train/val':>9s} {'gen s':>6s}")
    for dataset_id, prov in results.items():
        ds = load_dataset(dataset_id)
        split = DatasetSplit.load_or_create(ds.path, ds.episodes, 0.1, seed)
        returns = ds.returns()
        score = float(np.mean(normalized_score(env, returns)))
        print(f'{dataset_id:28s} {len(ds.episodes):5d} {ds.total_steps:7d} '
              f'{returns.mean():8.1f} ± {returns.std():5.1f} {score:7.1f} '
              f'{len(split.train_episodes):4d}/{len(split.val_episodes):<4d} '
              f"{prov['generation_seconds']:6.1f}")
    print('[3/3] one batch from each sampler (the shapes every trainer sees)')
    train = [ds.episodes[i] for i in split.train_episodes]
    for name, sampler in (
            ('transitions', TransitionSampler(train, 256, seed)),
            ('sequences (K=20)', SequenceSampler(train, 20, 64, seed)),
            ('action chunks (H=16)', ChunkSampler(train, 16, 64, n_obs_steps=2, seed=seed))):
        batch = sampler.sample()
        shapes = ', '.join(f'{k} {tuple(v.shape)}' for k, v in batch.items())
        print(f'  {name:22s} {shapes}')
    print(f'normalization: obs mean |max| {np.abs(split.stats.obs_mean).max():.3f}, '
          f'obs std min {split.stats.obs_std.min():.3f}')
    print('demo: OK')
    return 0
