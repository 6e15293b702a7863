# SPDX-License-Identifier: Apache-2.0
"""Training steps per second of the diffusion policies with torch's Mish and with the
denoisers' own (``dgm_policy_ros.networks.layers.Mish``), side by side in one run
(bench/results/mish.md).

The two arms differ only in the activation's autograd path: the torch arm swaps ours for
``F.mish``. Each algorithm trains with its policy-benchmark settings (bench/policies.py) on one
CPU thread, the way the benchmark runs; the arms alternate over ``--repeats`` rounds so that
load from other processes falls on both, and the table gives each arm's median.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import sys

from bench.common import Table, write_result
from bench.latency import VARIANTS
from bench.training_device import dataset_and_spec, steps_per_second

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--dataset', default='dgm/hopper/medium-v0')
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()

    import torch.nn.functional as F

    from dgm_policy_ros.networks import layers
    from dgm_policy_ros.training.registry import get_algorithm

    # The diffusion policies: each default and denoiser option of the latency benchmark.
    cases = [case for case in VARIANTS if get_algorithm(case[1]).family == 'diffusion']
    episodes, spec = dataset_and_spec(args.dataset)
    ours = layers.Mish.forward
    arms = {'torch': lambda self, x: F.mish(x), 'ours': ours}
    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for label, algo, overrides in cases:
            for arm, forward in arms.items():
                layers.Mish.forward = forward
                rate = steps_per_second(algo, episodes, spec, 'cpu', 1, args.steps,
                                        args.warmup, overrides)
                rates.setdefault((label, arm), []).append(rate)
                print(f'{label:24s} {arm:6s} {rate:6.1f} steps/s', flush=True)
    layers.Mish.forward = ours

    lines = [f"Gradient steps per second on {args.dataset}, one CPU thread, the policy "
             f"benchmark's settings; median of {args.repeats} alternating rounds of "
             f'{args.steps} timed steps (after {args.warmup} warm-up steps) per arm.', '']
    table = Table('algorithm', "torch's Mish", 'ours', "ours / torch's")
    for label, _, _ in cases:
        torch_rate = statistics.median(rates[(label, 'torch')])
        our_rate = statistics.median(rates[(label, 'ours')])
        table.add(label, f'{torch_rate:.1f}', f'{our_rate:.1f}', f'{our_rate / torch_rate:.2f}x')
    lines += table.lines()
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('mish', "Diffusion training speed: torch's Mish vs the denoisers' own", body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
