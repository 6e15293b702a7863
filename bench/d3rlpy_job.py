# SPDX-License-Identifier: Apache-2.0
"""One d3rlpy training run on one of our Minari datasets, scored by our evaluation loop.

Same data (our loader), same evaluation (``dgm_policy_ros.sim.evaluate`` with the same env
seeds as ``dgm train``), same network widths and batch sizes as our side of the comparison.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
import sys
import time

import numpy as np

DT_CONTEXT = 10


def dt_warmup_steps(steps: int) -> int:
    """The learning-rate warm-up of both Decision Transformers (ours through
    bench/policies.py ``bench_settings``): the first tenth of the run."""
    return max(steps // 10, 1)


def build(name: str, steps: int, hidden: list[int], return_max: float):
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.preprocessing import (
        MultiplyRewardScaler,
        ReturnBasedRewardScaler,
        StandardObservationScaler,
    )

    enc = VectorEncoderFactory(hidden_units=hidden)
    obs = StandardObservationScaler()
    if name == 'DecisionTransformer':
        # Our dt's benchmark sizes (bench/policies.py): 64-wide tokens (a one-layer 64
        # encoder), 3 layers, 1 head, context 10, batch 64, lr 1e-4 warmed up over the first
        # 10% of the steps, returns-to-go divided by the best training return.
        return d3rlpy.algos.DecisionTransformerConfig(
            batch_size=64, learning_rate=1e-4, context_size=DT_CONTEXT, num_heads=1,
            num_layers=3, encoder_factory=VectorEncoderFactory(hidden_units=[64]),
            optim_factory=d3rlpy.optimizers.AdamWFactory(
                weight_decay=1e-4, clip_grad_norm=0.25,
                lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(
                    warmup_steps=dt_warmup_steps(steps))),
            observation_scaler=obs, reward_scaler=MultiplyRewardScaler(1.0 / return_max))
    if name == 'BC':
        return d3rlpy.algos.BCConfig(batch_size=256, learning_rate=1e-3, encoder_factory=enc,
                                     observation_scaler=obs)
    if name == 'TD3PlusBC':
        return d3rlpy.algos.TD3PlusBCConfig(batch_size=256, actor_encoder_factory=enc,
                                            critic_encoder_factory=enc, observation_scaler=obs)
    if name == 'IQL':
        return d3rlpy.algos.IQLConfig(batch_size=256, actor_encoder_factory=enc,
                                      critic_encoder_factory=enc, value_encoder_factory=enc,
                                      observation_scaler=obs,
                                      reward_scaler=ReturnBasedRewardScaler(multiplier=1000.0))
    if name == 'BCQ':
        return d3rlpy.algos.BCQConfig(batch_size=100, actor_encoder_factory=enc,
                                      critic_encoder_factory=enc, imitator_encoder_factory=enc,
                                      n_action_samples=10, observation_scaler=obs)
    if name == 'PLAS':
        # PLAS pre-trains its VAE for half the run (500k of 1M steps in the paper).
        return d3rlpy.algos.PLASConfig(batch_size=100, actor_encoder_factory=enc,
                                       critic_encoder_factory=enc, imitator_encoder_factory=enc,
                                       warmup_steps=steps // 2, observation_scaler=obs)
    raise SystemExit(f'unknown d3rlpy algorithm {name}')


def evaluate_transformer(algo, env_id: str, episodes: int, seed: int, target_return: float):
    """d3rlpy's DT through our evaluation loop: the loop keeps the history window (as for our
    dt, same target return) and each window's valid part becomes a d3rlpy TransformerInput."""
    from d3rlpy.algos import TransformerInput

    from dgm_policy_ros.runtime.history import HistorySpec
    from dgm_policy_ros.sim.evaluate import evaluate

    spec = HistorySpec(DT_CONTEXT, ('past_actions', 'returns_to_go', 'timesteps', 'mask'), 'zeros',
                       target_return)

    def policy(window):
        actions = []
        for i in range(window['obs'].shape[0]):
            valid = window['mask'][i] > 0
            n = int(valid.sum())
            actions.append(algo.predict(TransformerInput(
                observations=window['obs'][i][valid],
                actions=window['past_actions'][i][valid],
                rewards=np.zeros((n, 1), np.float32),
                returns_to_go=window['returns_to_go'][i][valid],
                timesteps=window['timesteps'][i][valid].astype(np.int64) + 1)))  # from 1
        return np.asarray(actions, np.float32)[:, None, :]

    return evaluate(policy, env_id, episodes, seed=seed, history=spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--algo', required=True)
    parser.add_argument('--dataset', required=True)
    parser.add_argument('--steps', type=int, required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eval-episodes', type=int, default=10)
    parser.add_argument('--hidden', type=int, nargs='+', default=[256, 256])
    parser.add_argument('--out', required=True, help='result JSON')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--settings', default='{}',
                        help="JSON object of d3rlpy config fields changed from this script's "
                        'settings, e.g. \'{"tau": 0.05}\' (bench/settings_ablation.py)')
    args = parser.parse_args()
    settings = json.loads(args.settings)

    import d3rlpy
    import torch

    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.transitions import flatten_episodes
    from dgm_policy_ros.sim.evaluate import evaluate

    torch.set_num_threads(1)
    d3rlpy.seed(args.seed)
    ds = load_dataset(args.dataset)
    tr = flatten_episodes(ds.episodes)
    dataset = d3rlpy.dataset.MDPDataset(
        tr.observations, tr.actions, tr.rewards, tr.terminals.astype(np.float32),
        timeouts=tr.timeouts.astype(np.float32),
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS)
    return_max = max(float(np.sum(ep.rewards)) for ep in ds.episodes)
    config = dataclasses.replace(build(args.algo, args.steps, args.hidden, return_max),
                                 **settings)
    algo = config.create(device='cuda:0' if args.device.startswith('cuda') else 'cpu:0')
    # Time gradient steps only (from the end of the first step to the end of the last), as
    # our trainer's loop is timed: fit() also builds the networks and indexes the dataset.
    marks: list[float] = []

    def on_step(_algo, _epoch, _step):
        marks.append(time.perf_counter())

    algo.fit(dataset, n_steps=args.steps, n_steps_per_epoch=args.steps, show_progress=False,
             save_interval=10**9, logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
             callback=on_step)
    train_s = marks[-1] - marks[0]
    if args.algo == 'DecisionTransformer':
        result = evaluate_transformer(algo, ds.env_id, args.eval_episodes, 10_000 + args.seed,
                                      return_max)
    else:
        result = evaluate(lambda obs: np.asarray(algo.predict(obs))[:, None, :], ds.env_id,
                          args.eval_episodes, seed=10_000 + args.seed)
    out = {'impl': 'd3rlpy', 'algo': args.algo, 'dataset': ds.dataset_id, 'env': ds.env_id,
           'seed': args.seed, 'steps': args.steps, 'train_s': train_s,
           'steps_per_s': (len(marks) - 1) / train_s, 'd3rlpy_version': d3rlpy.__version__,
           'device': args.device, 'settings': settings, 'episodes': args.eval_episodes,
           **result.summary()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = f'{args.out}.tmp{os.getpid()}'
    Path(tmp).write_text(json.dumps(out, indent=2))
    os.replace(tmp, args.out)
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
