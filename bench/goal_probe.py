# SPDX-License-Identifier: Apache-2.0
"""Do the camera policies' image encoders see the goal? (bench/results/goal_probe.md)

For cached ``bench.manipulation`` runs of one MetaWorld task: each run's trained image encoder
(the centre crop, as deployed; a diffusion policy's averaged encoder too) encodes every third
frame of the task's demonstrations, and a ridge regression from its features to the goal
position (the last three values of MetaWorld's state) is fitted on the first 40 demonstrations
and scored on the rest, beside predicting their mean goal. Two policies whose encoders locate
the goal equally well but succeed differently differ in what their heads make of it.

    python -m bench.goal_probe --task reach-v3 --arms image:bc image:diffusion_bc
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from bench.common import Table, write_result
from bench.manipulation import RUNS, TASKS, cache_path, dataset_for, parse_arguments

GOAL = slice(36, 39)  # MetaWorld's 39-value state ends with the goal position
FIT_EPISODES = 40
RIDGE = 1e-2


def goal_errors(encoder, camera: str, episodes) -> tuple[float, float]:
    """Median held-out goal error (m) of a ridge probe on ``encoder``'s features of
    ``camera``'s frames, and of the training demonstrations' mean goal."""
    import torch

    features, goals, which = [], [], []
    with torch.no_grad():
        for i, episode in enumerate(episodes):
            frames = episode.images[camera][:-1:3]
            features.append(encoder(torch.from_numpy(np.ascontiguousarray(frames))).numpy())
            goals.append(episode.observations[:-1:3, GOAL])
            which.append(np.full(len(frames), i))
    x = np.concatenate(features)
    x = np.c_[x, np.ones(len(x))]
    y, which = np.concatenate(goals), np.concatenate(which)
    fit, held = which < FIT_EPISODES, which >= FIT_EPISODES
    weights = np.linalg.solve(x[fit].T @ x[fit] + RIDGE * np.eye(x.shape[1]), x[fit].T @ y[fit])
    probe = np.linalg.norm(x[held] @ weights - y[held], axis=1)
    mean_goal = np.linalg.norm(y[fit].mean(0) - y[held], axis=1)
    return float(np.median(probe)), float(np.median(mean_goal))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', default='reach-v3', choices=list(TASKS))
    parser.add_argument('--arms', nargs='+', default=['image:bc', 'image:diffusion_bc'])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    args = parser.parse_args()
    runs = parse_arguments([])  # the table's runs: its defaults, each algorithm's recipe

    import torch

    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.training.run_folder import load_run

    torch.set_num_threads(1)
    episodes = load_dataset(dataset_for(args.task, runs.demos, runs.size)).episodes
    if len(episodes) <= FIT_EPISODES:
        raise SystemExit(f'the probe needs more than {FIT_EPISODES} demonstrations')
    rows = Table('arm', 'seed', 'success %', 'probe error cm (trained encoder)',
                 'probe error cm (averaged encoder)', 'mean goal error cm', echo=True)
    for arm in args.arms:
        for seed in args.seeds:
            path = cache_path(args.task, arm, seed, runs.steps, runs)
            if not path.is_file():
                continue
            algo, _, _ = load_run(RUNS / args.task / path.stem)
            if algo.vision is None:
                raise SystemExit(f'{arm} sees no camera: the probe reads image encoders')
            encoders = [algo.vision]
            averaged = getattr(algo, 'inference_vision', None)
            if averaged is not None and averaged is not algo.vision:
                encoders.append(averaged)
            errors = [goal_errors(vision.encoders[0].eval(), vision.cameras[0], episodes)
                      for vision in encoders]
            success = 100 * json.loads(path.read_text())['success_rate']
            rows.add(arm, seed, f'{success:.0f}', f'{100 * errors[0][0]:.1f}',
                     f'{100 * errors[1][0]:.1f}' if len(errors) > 1 else '–',
                     f'{100 * errors[0][1]:.1f}')
    body = '\n'.join([
        f"{args.task}: a ridge probe (lambda {RIDGE}) from each run's image features (centre "
        'crop) to the goal position, fitted on every third frame of the first '
        f'{FIT_EPISODES} of {len(episodes)} demonstrations and scored on the rest (median '
        "error); 'mean goal': predicting the fitted demonstrations' mean goal. Runs: "
        f"`bench.manipulation`'s cache, {runs.steps} steps, each algorithm's recipe.", '',
        *rows.lines()])
    write_result('goal_probe', 'Camera policies: does the image encoder locate the goal?', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
