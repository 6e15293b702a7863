# SPDX-License-Identifier: Apache-2.0
"""World models side by side on held-out episodes (bench/results/world_models.md).

Each model trains for the same gradient steps on the same training episodes of each dataset
(10% of episodes held out, the same split for all), one CPU thread, and is scored on the
held-out episodes: one-step MSE of (observation change in units of the data's spread, reward),
one-step NLL where the model has a likelihood, reward MSE, and open-loop observation error
after 1, 5 and 20 steps fed the recorded actions.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import subprocess
import sys

from bench.common import Table, write_result

HERE = Path(__file__).resolve().parent

MODELS = ['wm_ensemble', 'wm_cvae', 'wm_diffusion']


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--datasets', nargs='+',
                        default=['dgm/hopper/medium-v0', 'dgm/halfcheetah/medium-v0'])
    parser.add_argument('--models', nargs='+', default=MODELS)
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets:
        for model in args.models:
            run = HERE.parent / 'runs' / 'world_models' / dataset.replace('/', '_') / model
            shutil.rmtree(run, ignore_errors=True)
            subprocess.run([sys.executable, '-m', 'dgm_policy_ros.cli.main',
                            'train-world-model', '--model', model, '--dataset', dataset,
                            '--steps', str(args.steps), '--seed', str(args.seed), '--out',
                            str(run), '--val-fraction', '0.1', '--eval-every', '0',
                            '--checkpoint-every', str(args.steps), '--threads', '1',
                            '--quiet'], check=True, capture_output=True)
            result = json.loads((run / 'result.json').read_text())
            rows.append({'dataset': dataset, 'model': model, **result})
            print(dataset, model, {k: round(v, 4) for k, v in result.items()
                                   if isinstance(v, float)}, flush=True)
    lines = [f'{args.steps} gradient steps, seed {args.seed}, one CPU thread; 10% of episodes '
             'held out. One-step MSE: over (observation change in units of each observation '
             "dimension's spread, reward in its own units); open-loop: observation error in "
             'units of the observation spread.', '']
    table = Table('dataset', 'model', 'one-step MSE', 'one-step NLL', 'reward MSE',
                  'open-loop MSE H=1', 'H=5', 'H=20', 'steps/s')
    for r in rows:
        nll = f"{r['one_step_nll']:.2f}" if 'one_step_nll' in r else '–'
        table.add(r['dataset'].split('/', 1)[1], r['model'], f"{r['one_step_mse']:.4f}", nll,
                  f"{r['reward_mse']:.4f}", f"{r['open_loop_mse_h1']:.4f}",
                  f"{r['open_loop_mse_h5']:.4f}", f"{r['open_loop_mse_h20']:.3f}",
                  f"{r['steps_per_s']:.0f}")
    lines += table.lines()
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('world_models', 'World models on held-out episodes', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
