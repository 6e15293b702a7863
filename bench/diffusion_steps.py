# SPDX-License-Identifier: Apache-2.0
"""Return and latency versus DDIM sampling steps (bench/results/diffusion_steps.md + .png).

One trained diffusion policy, exported once per step count (``dgm export --set
sampling_steps=K``: the weights stay, the sampling loop changes), each bundle scored in MuJoCo
through the deployment runner and timed at batch 1 two ways, side by side in one run: the
whole unrolled loop as one graph, and the one-step graph looped in the runner.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

import numpy as np

from bench.common import RESULTS, Table, ensure_run, write_result
from bench.latency import race

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--run', help='a diffusion_bc training run (default: train one)')
    parser.add_argument('--dataset', default='dgm/hopper/medium-v0')
    parser.add_argument('--train-steps', type=int, default=5000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--sampling-steps', type=int, nargs='+', default=[5, 10, 20, 50])
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--calls', type=int, default=400, help='timed calls per variant')
    args = parser.parse_args()

    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime import PolicyRunner
    from dgm_policy_ros.sim.evaluate import evaluate_runner

    root = HERE.parent / 'runs' / 'diffusion_steps'
    run = Path(args.run) if args.run else \
        root / f"diffusion_bc-{args.dataset.replace('/', '_')}-s{args.seed}-n{args.train_steps}"
    ensure_run(run, args.dataset, args.train_steps, args.seed)
    rows, runners = [], {}
    for k in args.sampling_steps:
        bundle = export_bundle(run, root / 'bundles' / f'{run.name}-k{k}', overwrite=True,
                               fp16=False, overrides={'sampling_steps': k})
        graph = PolicyRunner(bundle, backend='onnxruntime-cpu', seed=args.seed)
        loop = PolicyRunner(bundle, backend='onnxruntime-cpu', seed=args.seed,
                            sampling='runner')
        result = evaluate_runner(graph, episodes=args.episodes)
        runners[k] = (graph, loop)
        rows.append({'k': k, 'score': result.scores.mean(), 'score_std': result.scores.std(),
                     'return': result.returns.mean()})
        print(f'K={k}: score {rows[-1]["score"]:.1f}', flush=True)
    obs = np.zeros((1, runners[args.sampling_steps[0]][0].bundle.obs_size), np.float32)
    contenders = {}
    for k, (graph, loop) in runners.items():
        contenders[(k, 'graph')] = lambda r=graph: r.infer(obs)
        contenders[(k, 'runner')] = lambda r=loop: r.infer(obs)
    times = race(contenders, args.calls)
    for row in rows:
        graph_ms = np.median(times[(row['k'], 'graph')]) / 1e3  # race() times in µs
        loop_ms = np.median(times[(row['k'], 'runner')]) / 1e3
        row.update(graph_ms=graph_ms, loop_ms=loop_ms)

    lines = [f'`diffusion_bc` (horizon 8, 4 actions executed per inference) trained '
             f'{args.train_steps} steps on {args.dataset}, seed {args.seed}; one bundle per '
             'DDIM step count from the same weights. Score: normalized, mean ± std over '
             f'{args.episodes} episodes through the deployment runner. Latency: median of '
             f'{args.calls} calls at batch 1 on ONNX Runtime CPU (1 thread), the two ways '
             'interleaved in one run.', '']
    table = Table('DDIM steps', 'score', 'return', 'unrolled graph (ms)', 'loop in runner (ms)',
                  'runner / graph')
    for r in rows:
        table.add(r['k'], f"{r['score']:.1f} ± {r['score_std']:.1f}", f"{r['return']:.0f}",
                  f"{r['graph_ms']:.2f}", f"{r['loop_ms']:.2f}",
                  f"{r['loop_ms'] / r['graph_ms']:.2f}")
    lines += table.lines()
    body = '\n'.join(lines) + '\n\n![return and latency vs steps](diffusion_steps.png)\n'
    print(body)
    plot(rows, RESULTS / 'diffusion_steps.png')
    write_result('diffusion_steps', 'Diffusion policy: return and latency vs sampling steps',
                 body)
    return 0


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    ks = [r['k'] for r in rows]
    fig, left = plt.subplots(figsize=(6, 3.5))
    left.errorbar(ks, [r['score'] for r in rows], yerr=[r['score_std'] for r in rows],
                  marker='o', color='tab:blue', label='score')
    left.set_xlabel('DDIM sampling steps')
    left.set_ylabel('normalized score', color='tab:blue')
    left.set_xscale('log')
    left.minorticks_off()
    left.set_xticks(ks, [str(k) for k in ks])
    right = left.twinx()
    right.plot(ks, [r['graph_ms'] for r in rows], marker='s', color='tab:red',
               label='unrolled graph')
    right.plot(ks, [r['loop_ms'] for r in rows], marker='^', color='tab:orange',
               label='loop in runner')
    right.set_ylabel('latency, batch 1 (ms)', color='tab:red')
    right.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
