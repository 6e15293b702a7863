# SPDX-License-Identifier: Apache-2.0
"""Build the D4RL-style dataset suites and tabulate them (bench/results/datasets.md).

Per dataset: episodes, transitions, return mean/std, normalized score, generation time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from bench.common import Table, write_result
from dgm_policy_ros.sim.collect import collect_suite


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--envs', nargs='+', default=['Hopper-v5', 'HalfCheetah-v5'])
    parser.add_argument('--steps-per-dataset', type=int, default=100_000)
    parser.add_argument('--n-envs', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-dir', help='Minari root (default $MINARI_DATASETS_PATH)')
    parser.add_argument('--no-overwrite', action='store_true')
    args = parser.parse_args()
    if args.data_dir:
        os.environ['MINARI_DATASETS_PATH'] = os.path.abspath(args.data_dir)

    rows = []
    started = time.perf_counter()
    for env in args.envs:
        results = collect_suite(env, args.steps_per_dataset, seed=args.seed,
                                n_envs=args.n_envs, overwrite=not args.no_overwrite)
        for dataset_id, p in results.items():
            rows.append((dataset_id, p))
    total = time.perf_counter() - started

    table = Table('dataset', 'behaviour', 'episodes', 'transitions', 'return mean ± std',
                  'normalized score', 'generation s', 'steps/s')
    for dataset_id, p in rows:
        behaviour = p.get('behaviour') or [{'type': 'concat of ' + ', '.join(p['sources'])}]
        who = ' + '.join(b.get('checkpoint', b['type']) for b in behaviour)
        if p.get('noise_sigma'):
            who += f" (σ={p['noise_sigma']})"
        gen = p.get('generation_seconds', float('nan'))
        table.add(dataset_id, who, p['episodes'], p['transitions'],
                  f"{p['return_mean']:.1f} ± {p['return_std']:.1f}",
                  f"{p.get('normalized_score_mean', float('nan')):.1f} ± "
                  f"{p.get('normalized_score_std', float('nan')):.1f}", f'{gen:.1f}',
                  f"{p['transitions'] / gen if gen else float('nan'):.0f}")
    lines = table.lines()
    notes = (
        '\nReturns are over complete episodes (episodes cut by the step budget are kept in the '
        'data, marked as truncations, but left out of the return statistics). Normalized score: '
        '`100 * (R - R_random) / (R_expert - R_random)` with the references in '
        '`dgm_policy_ros/data/scores.py`. medium-expert is the concatenation of medium and '
        'expert (its generation time is theirs plus the copy). '
        f'Total wall time {total:.0f} s, {args.n_envs} environments per policy batch.\n')
    table = '\n'.join(lines) + '\n' + notes
    print(table)
    path = write_result('datasets', 'Datasets: D4RL-style suites from the reference agents',
                        table)
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
