# SPDX-License-Identifier: Apache-2.0
"""Diffusion Policy's denoiser for action chunks: a flat MLP against the temporal 1-D conv
U-Net (bench/results/chunk_denoisers.md).

``diffusion_bc`` with the same horizon, schedule, sampler, batch, steps and seeds; only
``denoiser`` (and its widths) and ``prediction`` (what the denoiser predicts: the noise, or the
clean chunk x_0) differ. Each run is exported and scored in MuJoCo through the
deployment runner; inference latency is raced between the denoisers at batch 1 in one
process (ONNX Runtime CPU, one thread), so the ratio holds on this noisy shared machine.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

import numpy as np

from bench.common import Table, ensure_run, mean_std, write_result
from bench.latency import race
from dgm_policy_ros.workflows.evaluation import export_and_score

HERE = Path(__file__).resolve().parent

WIDTHS = {'mlp': [256, 256, 256], 'unet': [32, 64]}
ARMS = ['mlp-epsilon', 'mlp-sample', 'unet-sample']  # denoiser-prediction


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--datasets', nargs='+',
                        default=['dgm/hopper/medium-v0', 'dgm/halfcheetah/medium-v0'])
    parser.add_argument('--arms', nargs='+', default=ARMS,
                        help='denoiser-prediction pairs (denoiser: mlp or unet; prediction: '
                             'epsilon or sample)')
    parser.add_argument('--train-steps', type=int, default=5000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--calls', type=int, default=400, help='timed calls per denoiser')
    args = parser.parse_args()

    root = HERE.parent / 'runs' / 'chunk_denoisers'
    rows = []
    for dataset in args.datasets:
        runners = {}
        for arm in args.arms:
            kind, prediction = arm.split('-')
            scores, speeds = [], []
            for seed in args.seeds:
                run = root / f"{arm}-{dataset.replace('/', '_')}-s{seed}-n{args.train_steps}"
                ensure_run(run, dataset, args.train_steps, seed, algo='diffusion_bc',
                           algo_config={'batch_size': 256, 'denoiser': kind,
                                        'hidden': WIDTHS[kind], 'prediction': prediction})
                speeds.append(json.loads((run / 'result.json').read_text())['steps_per_s'])
                runner, result = export_and_score(run, root / 'bundles' / run.name,
                                                  args.episodes, seed)
                scores.append(result.scores.mean())
                runners[arm] = runner
                print(f'{dataset} {arm} seed {seed}: {scores[-1]:.1f}', flush=True)
            rows.append({'dataset': dataset, 'arm': arm, 'scores': scores,
                         'steps_per_s': float(np.median(speeds))})
        obs = np.zeros((1, next(iter(runners.values())).bundle.obs_size), np.float32)
        times = race({k: (lambda r=r: r.infer(obs)) for k, r in runners.items()}, args.calls)
        for row in rows[-len(args.arms):]:
            row['ms'] = float(np.median(times[row['arm']])) / 1e3  # race() times in µs
    base = args.arms[0]
    lines = [f'`diffusion_bc` (horizon 8, 4 actions executed per inference, 100-step cosine '
             f'schedule, 10 DDIM steps, batch 256) trained {args.train_steps} steps per seed '
             f'(seeds {", ".join(map(str, args.seeds))}); only the denoiser (`mlp` widths '
             f"{WIDTHS['mlp']}, `unet` level widths {WIDTHS['unet']}) and what it predicts "
             '(`epsilon`: the noise; `sample`: the clean chunk x_0) differ. Score: normalized, '
             f'mean ± std over seeds, each the mean of {args.episodes} episodes through the '
             'deployment runner. Training: gradient steps/s on one CPU thread (runs one after '
             'the other). Latency: median of '
             f'{args.calls} interleaved calls at batch 1, ONNX Runtime CPU, one thread.', '']
    table = Table('dataset', 'denoiser', 'prediction', 'score', 'train steps/s', 'latency (ms)',
                  f'latency / {base}')
    ref = {r['dataset']: r['ms'] for r in rows if r['arm'] == base}
    for r in rows:
        kind, prediction = r['arm'].split('-')
        table.add(r['dataset'], kind, prediction, mean_std(r['scores']),
                  f"{r['steps_per_s']:.0f}", f"{r['ms']:.2f}",
                  f"{r['ms'] / ref[r['dataset']]:.1f}")
    lines += table.lines()
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('chunk_denoisers', 'Diffusion Policy: denoiser network and prediction target',
                 body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
