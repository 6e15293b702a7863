# SPDX-License-Identifier: Apache-2.0
"""Training throughput of each policy family on the CPU and on a GPU, side by side in one run
(bench/results/training_device.md).

Each algorithm takes its policy-benchmark settings (bench/policies.py) and the training loop's
own step, ``algo.update(to_tensors(sampler.sample(), device))``, on one dataset. After a
warm-up (CUDA context, cuBLAS handles, allocator), the timed steps end with a device
synchronize, so queued GPU work is counted. Columns: one CPU thread (how the policy benchmark
trains), every CPU core, the GPU; ratios are against one CPU thread.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import time

import numpy as np

from bench.common import Table, write_result
from bench.policies import OURS, bench_settings

HERE = Path(__file__).resolve().parent


def steps_per_second(algo_name: str, episodes, spec, device: str, threads: int,
                     steps: int, warmup: int, overrides: dict | None = None) -> float:
    import torch

    from dgm_policy_ros.training.algorithm import to_tensors
    from dgm_policy_ros.training.registry import get_algorithm

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cls = get_algorithm(algo_name)
    # The learning rate's warm-up does not change the speed: the timed steps stand for the run.
    settings = {**bench_settings(algo_name, steps), **(overrides or {})}
    algo = cls(cls.config_class.from_dict(settings), spec).to(device)
    algo.train()
    sampler = algo.make_sampler(episodes, seed=0)

    def sync() -> None:
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    for _ in range(warmup):
        algo.update(to_tensors(sampler.sample(), device))
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        algo.update(to_tensors(sampler.sample(), device))
    sync()
    return steps / (time.perf_counter() - started)


def dataset_and_spec(name: str):
    """A Minari dataset's episodes and the ``DataSpec`` a model of it is built with."""
    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.normalization import DatasetSplit
    from dgm_policy_ros.training.algorithm import DataSpec

    ds = load_dataset(name)
    stats = DatasetSplit.create(ds.episodes, 0.0).stats
    low, high = ds.action_bounds
    returns = [float(np.sum(e.rewards)) for e in ds.episodes]
    return ds.episodes, DataSpec(ds.obs_dim, ds.act_dim, stats, low, high, max(returns))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--dataset', default='dgm/hopper/medium-v0')
    parser.add_argument('--algos', nargs='+', default=OURS)
    parser.add_argument('--cpu-steps', type=int, default=200)
    parser.add_argument('--gpu-steps', type=int, default=500)
    parser.add_argument('--warmup', type=int, default=20)
    args = parser.parse_args()

    import torch

    episodes, spec = dataset_and_spec(args.dataset)
    cores = os.cpu_count() or 1
    gpu = torch.cuda.is_available()
    columns = [('cpu', 1, args.cpu_steps), ('cpu', cores, args.cpu_steps)]
    if gpu:
        columns.append(('cuda', 1, args.gpu_steps))
    rows = []
    for name in args.algos:
        rates = [steps_per_second(name, episodes, spec, device, threads, steps, args.warmup)
                 for device, threads, steps in columns]
        rows.append((name, rates))
        print(name, ' '.join(f'{r:.0f}' for r in rates), flush=True)

    heads = ['1 CPU thread', f'{cores} CPU threads'] + (['GPU'] if gpu else [])
    lines = [f"Gradient steps per second on {args.dataset} with the policy benchmark's "
             f'settings (bench/policies.py); {args.cpu_steps} timed steps on the CPU, '
             f'{args.gpu_steps} on the GPU, each after {args.warmup} warm-up steps. Ratios are '
             'against one CPU thread, measured in the same run.', '']
    table = Table('algorithm', *heads, *(f'{h} / 1 thread' for h in heads[1:]))
    for name, rates in rows:
        table.add(name, *(f'{r:.0f}' for r in rates), *(f'{r / rates[0]:.1f}x' for r in rates[1:]))
    lines += table.lines()
    if not gpu:
        lines += ['', 'No GPU on this machine: the GPU column is absent.']
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('training_device', 'Training throughput: CPU threads vs GPU', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
