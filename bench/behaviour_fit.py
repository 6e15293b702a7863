# SPDX-License-Identifier: Apache-2.0
"""How well a diffusion behaviour model fits the data after the benchmark's budget, against bc's
regression (bench/results/behaviour_fit.md).

``idql``'s policy is its diffusion behaviour model plus a choice among candidates, so it can
only be as good as that model. For ``bc`` and for ``idql`` with its denoiser predicting the
noise (``prediction: epsilon``) or the clean action (``sample``), the latter also with 5 noise
levels, with an EMA of its weights sampling, or with bc's learning rate (``ARMS``), with the
policy benchmark's other settings, at one or more training budgets, on the (state, action)
pairs of the dataset: the spread of the model's actions for one state (std over ``--samples``
draws, in the [-1, 1] action box; the data's behaviour policies added Gaussian noise of std 0.1
there, so a model that has learned the behaviour distribution spreads about 0.1), the squared
error of their mean and of a single draw against the dataset's action, and the score in MuJoCo
through the deployment runner of the model alone (idql with one candidate) and of the shipped
policy.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

import numpy as np

from bench.common import Table, ensure_bench_run, mean_std, write_result
from dgm_policy_ros.workflows.evaluation import export_and_score

HERE = Path(__file__).resolve().parent

ALONE = {'idql': {'selection': 'argmax', 'n_candidates': 1}}  # the behaviour model by itself
# idql's settings before this table settled its defaults (100 noise levels, 10 DDIM steps,
# lr 3e-4, the expectile draw): every arm starts from them, so the table reproduces.
BEFORE = {'diffusion_steps': 100, 'sampling_steps': 10, 'lr': 3e-4, 'selection': 'expectile'}
# The denoiser's target, then, on the x_0 target, common ways to a better fit at a fixed budget:
# IDQL's and Diffusion-QL's short chain of 5 noise levels (instead of 100), sampling with an EMA
# of the weights (Diffusion Policy's), and bc's learning rate (1e-3), alone and with the short
# chain (which idql now ships).
ARMS = [('bc', {}), ('idql', {**BEFORE, 'prediction': 'epsilon'}),
        ('idql', {**BEFORE, 'prediction': 'sample'}),
        ('idql', {**BEFORE, 'prediction': 'sample', 'diffusion_steps': 5, 'sampling_steps': 5}),
        ('idql', {**BEFORE, 'prediction': 'sample', 'inference_ema': 0.995}),
        ('idql', {**BEFORE, 'prediction': 'sample', 'lr': 0.001}),
        ('idql', {**BEFORE, 'prediction': 'sample', 'diffusion_steps': 5, 'sampling_steps': 5,
                  'lr': 0.001})]


def fit(run: Path, dataset: str, samples: int, states: int, overrides: dict) -> dict:
    import minari
    import torch

    from dgm_policy_ros.training.run_folder import load_run

    algo, _, _ = load_run(run, overrides=overrides)
    data = minari.load_dataset(dataset)
    picked = np.linspace(0, data.total_episodes - 1, 20).astype(int).tolist()
    eps = list(data.iterate_episodes(picked))
    obs = np.concatenate([e.observations[:-1] for e in eps]).astype(np.float32)
    act = np.concatenate([e.actions for e in eps]).astype(np.float32)
    keep = np.random.default_rng(0).choice(len(obs), min(states, len(obs)), replace=False)
    obs, act = obs[keep], act[keep]
    rng = np.random.default_rng(1)
    draws = np.stack([algo.predict(obs, rng=rng)[:, 0] for _ in range(samples)], 1)
    with torch.no_grad():
        unit = algo.unit_actions(torch.from_numpy(draws)).numpy()  # (S, K, A)
        target = algo.unit_actions(torch.from_numpy(act)).numpy()[:, None]
    return {'spread': unit.std(1).mean(), 'mse_mean': ((unit.mean(1) - target[:, 0]) ** 2).mean(),
            'mse_draw': ((unit - target) ** 2).mean()}


def score(run: Path, out: Path, overrides: dict, episodes: int, seed: int) -> float:
    return float(export_and_score(run, out, episodes, seed, overrides)[1].scores.mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--dataset', default='dgm/hopper/medium-v0')
    parser.add_argument('--steps', type=int, nargs='+', default=[5000])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--samples', type=int, default=16, help='draws per state')
    parser.add_argument('--states', type=int, default=2000)
    parser.add_argument('--episodes', type=int, default=10)
    args = parser.parse_args()

    seeds = ', '.join(map(str, args.seeds))
    lines = [f"{args.dataset}, seeds {seeds}; runs with the policy benchmark's settings "
             '(bench/policies.py, reused from its run folders where they exist). Fit on '
             f'{args.states} (state, action) pairs of 20 dataset episodes, {args.samples} draws '
             'per state, in the [-1, 1] action box (the data: a behaviour policy plus Gaussian '
             'noise of std 0.1), averaged over the seeds. Scores: normalized, mean ± std over '
             f'the seeds, each the mean of {args.episodes} episodes through the deployment '
             'runner; "model alone" is idql with one candidate. Every idql row starts from '
             'its earlier settings, ' + ', '.join(f'{k} {v}' for k, v in BEFORE.items()) +
             ', and changes what it lists.', '']
    table = Table('algorithm', 'settings', 'steps', 'spread of draws', 'MSE of their mean',
                  'MSE of one draw', 'score, model alone', 'score, shipped policy', echo=True)
    root = HERE.parent / 'runs' / 'behaviour_fit'
    for steps in args.steps:
        for algo, settings in ARMS:
            fits, alone_scores, shipped_scores = [], [], []
            alone = ALONE.get(algo, {})
            for seed in args.seeds:
                run = ensure_bench_run(algo, settings, args.dataset, steps, seed, root)
                fits.append(fit(run, args.dataset, args.samples, args.states, alone))
                shipped_scores.append(score(run, root / f'{run.name}-shipped', {},
                                            args.episodes, seed))
                alone_scores.append(score(run, root / f'{run.name}-alone', alone,
                                          args.episodes, seed) if alone else shipped_scores[-1])
            f = {k: np.mean([x[k] for x in fits]) for k in fits[0]}
            label = ', '.join(f'{k} {v}' for k, v in settings.items()
                              if k not in BEFORE or BEFORE[k] != v) or '–'
            table.add(algo, label, steps, f"{f['spread']:.3f}", f"{f['mse_mean']:.4f}",
                      f"{f['mse_draw']:.4f}", mean_std(alone_scores), mean_std(shipped_scores))
    body = '\n'.join(lines + table.lines()) + '\n'
    print(body)
    write_result('behaviour_fit', 'Diffusion behaviour model vs regression: fit and score',
                 body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
