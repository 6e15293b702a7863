# SPDX-License-Identifier: Apache-2.0
"""How a Q-guided diffusion policy should pick among its candidates (bench/results/
q_selection.md).

One trained ``idql`` run per dataset (the policy benchmark's, or trained here), exported once
per selection rule and candidate count from the same weights (``dgm export --set``), each
bundle scored in MuJoCo through the deployment runner. ``argmax`` over one candidate is the
diffusion behaviour model alone. Next to it, what the critic has learned: the correlation of
its Q on the dataset's own (state, action) pairs with the discounted Monte-Carlo return, in
full and truncated to ``--horizon`` steps, which tells whether its target network has had
time to propagate the whole return. A second run with a 10x faster target network
(``--fast-tau``, on ``--fast-datasets``) separates a short critic horizon from the argmax
exploiting the critic's errors.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

import numpy as np

from bench.common import Table, ensure_run, write_result
from dgm_policy_ros.workflows.evaluation import export_and_score

HERE = Path(__file__).resolve().parent

VARIANTS = [('argmax', 1), ('argmax', 4), ('argmax', 32), ('expectile', 32)]


def discounted(rewards: np.ndarray, gamma: float, horizon: int | None = None) -> np.ndarray:
    """Discounted return from every step, optionally of only the next ``horizon`` rewards."""
    from dgm_policy_ros.data.transitions import returns_to_go

    out = returns_to_go(rewards, gamma).astype(np.float64)
    if horizon:  # G_t - gamma^H G_{t+H}: the rewards past the horizon taken off
        later = np.concatenate([out[horizon:], np.zeros(min(horizon, len(out)))])[:len(out)]
        out = out - gamma ** horizon * later
    return out


def critic_fit(run: Path, dataset: str, horizon: int, episodes: int = 20) -> dict[str, float]:
    import minari
    import torch

    from dgm_policy_ros.training.run_folder import load_run

    algo, cfg, _ = load_run(run)
    gamma = cfg.algorithm_config().gamma
    data = minari.load_dataset(dataset)
    picked = np.linspace(0, data.total_episodes - 1, episodes).astype(int).tolist()
    eps = list(data.iterate_episodes(picked))
    obs = torch.as_tensor(np.concatenate([e.observations[:-1] for e in eps]), dtype=torch.float32)
    act = torch.as_tensor(np.concatenate([e.actions for e in eps]), dtype=torch.float32)
    full = np.concatenate([discounted(e.rewards, gamma) for e in eps])
    short = np.concatenate([discounted(e.rewards, gamma, horizon) for e in eps])
    with torch.no_grad():
        q = algo.critic.q_min(algo.obs_norm(obs), algo.unit_actions(act)).numpy()
    return {'q': q.mean(), 'full': full.mean(), 'short': short.mean(),
            'corr_full': np.corrcoef(q, full)[0, 1], 'corr_short': np.corrcoef(q, short)[0, 1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--datasets', nargs='+',
                        default=['dgm/hopper/medium-v0', 'dgm/halfcheetah/medium-v0'])
    parser.add_argument('--runs', nargs='*', default=[],
                        help='idql run folders, one per dataset (default: the policy '
                             "benchmark's seed-0 runs, trained here if missing)")
    parser.add_argument('--train-steps', type=int, default=5000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--horizon', type=int, default=25)
    parser.add_argument('--fast-tau', type=float, default=0.05)
    parser.add_argument('--fast-datasets', nargs='*', default=['dgm/hopper/medium-v0'])
    args = parser.parse_args()

    root = HERE.parent / 'runs'
    lines = [f'`idql` trained {args.train_steps} steps (seed {args.seed}, batch 256, the '
             "policy benchmark's settings); one bundle per selection rule and candidate count "
             'from the same weights, scored through the deployment runner (normalized score, '
             f'mean ± std over {args.episodes} episodes). argmax of 1 candidate is the '
             'diffusion behaviour model alone; expectile draws a candidate with weight tau '
             "where Q > V and 1 - tau elsewhere (the IDQL paper's implicit policy).", '']
    scores = Table('dataset (target-network tau)', *(f'{r} of {n}' for r, n in VARIANTS))
    fits = []
    todo = []  # (dataset, label, run)
    for i, dataset in enumerate(args.datasets):
        if i < len(args.runs):
            todo.append((dataset, 'tau 0.005', Path(args.runs[i])))
            continue
        run = root / 'bench' / dataset.replace('/', '_') / \
            f'ours-idql-s{args.seed}-n{args.train_steps}'
        ensure_run(run, dataset, args.train_steps, args.seed, algo='idql',
                   algo_config={'batch_size': 256})
        todo.append((dataset, 'tau 0.005', run))
    for dataset in args.fast_datasets:
        run = root / 'q_selection' / \
            f"idql-{dataset.replace('/', '_')}-tau{args.fast_tau}-s{args.seed}"
        ensure_run(run, dataset, args.train_steps, args.seed, algo='idql',
                   algo_config={'batch_size': 256, 'tau': args.fast_tau})
        todo.append((dataset, f'tau {args.fast_tau}', run))
    for dataset, label, run in todo:
        cells = []
        for rule, n in VARIANTS:
            out = root / 'q_selection' / 'bundles' / f'{run.parent.name}-{run.name}-{rule}{n}'
            _, result = export_and_score(run, out, args.episodes, args.seed,
                                         {'selection': rule, 'n_candidates': n})
            cells.append(f'{result.scores.mean():.1f} ± {result.scores.std():.1f}')
            print(f'{dataset} {label} {rule} of {n}: {cells[-1]}', flush=True)
        scores.add(f'{dataset} ({label})', *cells)
        fits.append((f'{dataset} ({label})', critic_fit(run, dataset, args.horizon)))
    lines += scores.lines()
    lines += ['', f'What the critic learned, on the (state, action) pairs of 20 dataset episodes: '
              f'mean Q against the mean discounted return (full, and of the next '
              f'{args.horizon} rewards only), and their correlations.', '']
    critic = Table('dataset (target-network tau)', 'mean Q', 'mean return',
                   f'mean {args.horizon}-step return', 'corr(Q, return)',
                   f'corr(Q, {args.horizon}-step return)')
    for dataset, f in fits:
        critic.add(dataset, f"{f['q']:.1f}", f"{f['full']:.1f}", f"{f['short']:.1f}",
                   f"{f['corr_full']:.2f}", f"{f['corr_short']:.2f}")
    lines += critic.lines()
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('q_selection', 'Q-guided diffusion: candidate selection and critic horizon',
                 body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
