# SPDX-License-Identifier: Apache-2.0
"""Does generated data help? A policy trained on a small real dataset alone, with SynthER
synthetic transitions, and with MOPO model rollouts (bench/results/augmentation.md).

Protocol (one run, side by side, same seeds and steps for every arm):
1. the small dataset: the first episodes of a benchmark dataset up to ``--transitions``;
2. SynthER: a transition diffusion model fitted to it, ``--synthetic`` samples;
3. MOPO: a ``wm_ensemble`` trained on it; rollouts of horizon 5 (penalty 1) by a ``bc`` policy
   trained on it, from its states;
4. ``--algo`` trained ``--steps`` steps per arm and seed (augmented arms: half of each batch
   synthetic), scored by the same MuJoCo evaluation.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import subprocess
import sys

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import write_result  # noqa: E402

ROOT = HERE.parent
WORK = ROOT / 'runs' / 'augmentation'


def dgm(*args: str, summary: bool = True) -> dict:
    """Run a dgm command; with ``summary``, the JSON it prints."""
    out = subprocess.run([sys.executable, '-m', 'dgm_policy_ros.cli.main', *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out[out.index('{'):]) if summary else {}


def small_dataset(source: str, transitions: int) -> str:
    from dgm_policy_ros.data.minari_io import load_dataset, write_dataset

    ds = load_dataset(source)
    episodes, total = [], 0
    for ep in ds.episodes:
        if total >= transitions:
            break
        episodes.append(ep)
        total += len(ep)
    name = source.replace('-v0', f'-{transitions // 1000}k-v0')
    write_dataset(name, episodes, env_id=ds.env_id, overwrite=True,
                  provenance={'subset_of': source, 'transitions': total},
                  description=f'the first {total} transitions of {source}')
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--dataset', default='dgm/hopper/medium-v0')
    parser.add_argument('--transitions', type=int, default=10_000)
    parser.add_argument('--algo', default='td3bc')
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--synthetic', type=int, default=100_000)
    parser.add_argument('--synther-steps', type=int, default=10_000)
    parser.add_argument('--world-model-steps', type=int, default=5000)
    args = parser.parse_args()
    # Finished stages are kept: an interrupted benchmark resumes after them.
    WORK.mkdir(parents=True, exist_ok=True)
    data = small_dataset(args.dataset, args.transitions)
    synth = WORK / 'synther.safetensors'
    if not synth.is_file():
        dgm('augment-synther', '--dataset', data, '--steps', str(args.synther_steps),
            '--samples', str(args.synthetic), '--out', str(synth), '--quiet')
    for name, cmd in (('wm', ['train-world-model', '--model', 'wm_ensemble', '--steps',
                              str(args.world_model_steps)]),
                      ('bc', ['train', '--algo', 'bc', '--steps', '5000', '--eval-every', '-1'])):
        if not (WORK / name / 'model.safetensors').is_file():
            shutil.rmtree(WORK / name, ignore_errors=True)
            dgm(*cmd, '--dataset', data, '--out', str(WORK / name), '--quiet', '--threads', '1')
    if not (WORK / 'bc-bundle').is_dir():
        dgm('export', str(WORK / 'bc'), '--out', str(WORK / 'bc-bundle'), '--no-fp16',
            summary=False)
    mopo = WORK / 'mopo.safetensors'
    mopo_info = dgm('augment-mopo', '--world-model', str(WORK / 'wm'), '--policy',
                    str(WORK / 'bc-bundle'), '--dataset', data, '--starts',
                    str(args.synthetic // 5), '--horizon', '5', '--out', str(mopo))
    arms = {'real only': [], 'real + SynthER': ['--extra-transitions', str(synth),
                                                 '--synthetic-ratio', '0.5'],
            'real + MOPO rollouts': ['--extra-transitions', str(mopo),
                                     '--synthetic-ratio', '0.5']}
    scores: dict[str, list[float]] = {arm: [] for arm in arms}
    for seed in args.seeds:
        for arm, extra in arms.items():
            run = WORK / f"{args.algo}-{arm.replace(' ', '').replace('+', '-')}-s{seed}"
            shutil.rmtree(run, ignore_errors=True)
            result = dgm('train', '--algo', args.algo, '--dataset', data, '--steps',
                         str(args.steps), '--seed', str(seed), '--out', str(run),
                         '--eval-every', '0', '--eval-episodes', '10', '--threads', '1',
                         '--quiet', *extra)
            scores[arm].append(result['score_mean'])
            print(f'{arm:22s} seed {seed}: {result["score_mean"]:.1f}', flush=True)
    lines = [f'`{args.algo}`, {args.steps} gradient steps, seeds {args.seeds}, 10 evaluation '
             f'episodes each, on `{data}` (the first {args.transitions:,} transitions of '
             f'`{args.dataset}`). SynthER: {args.synthetic:,} samples of a transition '
             f'diffusion model fitted {args.synther_steps:,} steps. MOPO: '
             f"{mopo_info.get('transitions', 0):,} penalized rollout transitions (horizon 5, "
             f'penalty 1) of a bc policy in a 5-member wm_ensemble ({args.world_model_steps:,} '
             'steps). Augmented arms draw half of each batch from the synthetic data.', '',
             '| training data | normalized score (mean ± std over seeds) | per seed |',
             '|---|---|---|']
    for arm, values in scores.items():
        lines.append(f'| {arm} | {np.mean(values):.1f} ± {np.std(values):.1f} | '
                     f"{', '.join(f'{v:.1f}' for v in values)} |")
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('augmentation', 'Generated data: real only vs SynthER vs MOPO rollouts', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
