# SPDX-License-Identifier: Apache-2.0
"""Sim-in-the-loop on the embedded default bundle vs its in-process evaluation, same seeds,
same run (bench/results/sim_loop.md): the ROS 2 path must reproduce what `dgm eval` scores."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.common import Table, mean_std, write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--episodes', type=int, default=10)
    args = parser.parse_args()

    from dgm_policy_ros.resources import share_path
    from dgm_policy_ros.runtime import PolicyRunner
    from dgm_policy_ros.sim.evaluate import evaluate_runner
    from dgm_policy_ros.workflows.demo import DEFAULT_BUNDLE
    from dgm_policy_ros.workflows.sim_loop import run_sim_loop

    bundle = share_path('models', DEFAULT_BUNDLE)
    loop = run_sim_loop(bundle, episodes=args.episodes, lockstep=True,
                        backend='onnxruntime-cpu', plot=None)
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu')
    started = time.perf_counter()
    local = evaluate_runner(runner, 'Hopper-v5', args.episodes, seed=loop['seeds'][0],
                            parallel=False)
    local_s = time.perf_counter() - started
    scores = local.scores
    lat = runner.latency_percentiles()
    same = np.array_equal(np.asarray(loop['returns']), local.returns)
    table = Table('path', 'return', 'normalized score', 'inference p50 / p99 ms',
                  'missed deadlines', 'wall s')
    table.add('`dgm sim-loop --lockstep` (simulator and policy nodes, DDS)',
              f"{loop['return_mean']:.1f} ± {loop['return_std']:.1f}",
              f"{loop['score_mean']:.1f} ± {loop['score_std']:.1f}",
              f"{loop['inference_p50_ms']:.3f} / {loop['inference_p99_ms']:.3f}",
              loop['missed_deadlines'], f"{loop['wall_s']:.1f}")
    table.add('in-process `evaluate()` through the same runner', mean_std(local.returns),
              mean_std(scores), f"{lat['p50_ms']:.3f} / {lat['p99_ms']:.3f}", '–',
              f'{local_s:.1f}')
    body = '\n'.join([
        f'`models/{DEFAULT_BUNDLE}` on Hopper-v5, {args.episodes} episodes, env seeds '
        f"{loop['seeds'][0]}..{loop['seeds'][-1]}, ONNX Runtime CPU.", '', *table.lines(), '',
        f"Per-episode returns identical bit for bit: {'yes' if same else 'NO'}."])
    print(body)
    write_result('sim_loop', 'Sim-in-the-loop vs in-process evaluation (default bundle)', body)
    return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main())
