# SPDX-License-Identifier: Apache-2.0
"""Does generated data help? A policy trained on a small real dataset alone, with SynthER
synthetic transitions, and with MOPO model rollouts (bench/results/augmentation.md).

Protocol (one run, side by side, same seeds and steps for every arm):
1. the small dataset: the first episodes of a benchmark dataset up to ``--transitions``;
2. SynthER: a transition diffusion model fitted to it, ``--synthetic`` samples;
3. MOPO: a ``wm_ensemble`` trained on it; rollouts of horizon 5 (penalty 1) by a ``bc`` policy
   trained on it, from its states;
4. ``--algo`` trained ``--steps`` steps per arm and seed (augmented arms: half of each batch
   synthetic), scored by the same MuJoCo evaluation;
5. MOPO again on full benchmark datasets (``--mopo-datasets``), against real data alone.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import subprocess
import sys

from bench.common import Table, mean_std, write_result

HERE = Path(__file__).resolve().parent

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


def mopo_rollouts(data: str, work: Path, args) -> tuple[Path, dict]:
    """A wm_ensemble and a bc policy trained on ``data``, then penalized rollouts from its
    states. Finished stages are kept: an interrupted benchmark resumes after them."""
    work.mkdir(parents=True, exist_ok=True)
    for name, cmd in (('wm', ['train-world-model', '--model', 'wm_ensemble', '--steps',
                              str(args.world_model_steps)]),
                      ('bc', ['train', '--algo', 'bc', '--steps', '5000', '--eval-every', '-1'])):
        if not (work / name / 'model.safetensors').is_file():
            shutil.rmtree(work / name, ignore_errors=True)
            dgm(*cmd, '--dataset', data, '--out', str(work / name), '--quiet', '--threads', '1')
    if not (work / 'bc-bundle').is_dir():
        dgm('export', str(work / 'bc'), '--out', str(work / 'bc-bundle'), '--no-fp16',
            summary=False)
    out = work / 'mopo.safetensors'
    info = dgm('augment-mopo', '--world-model', str(work / 'wm'), '--policy',
               str(work / 'bc-bundle'), '--dataset', data, '--starts',
               str(args.synthetic // 5), '--horizon', '5', '--out', str(out))
    return out, info


def train_arms(data: str, arms: dict[str, list[str]], work: Path, args) -> dict[str, list]:
    """``--algo`` on ``data`` for every arm and seed; a finished run's result is reused."""
    scores: dict[str, list[float]] = {arm: [] for arm in arms}
    for seed in args.seeds:
        for arm, extra in arms.items():
            tag = arm.replace(' ', '').replace('+', '-').replace('(', '').replace(')', '')
            run = work / f'{args.algo}-{tag}-s{seed}'
            if (run / 'result.json').is_file():
                result = json.loads((run / 'result.json').read_text())
            else:
                shutil.rmtree(run, ignore_errors=True)
                result = dgm('train', '--algo', args.algo, '--dataset', data, '--steps',
                             str(args.steps), '--seed', str(seed), '--out', str(run),
                             '--eval-every', '0', '--eval-episodes', '10', '--threads', '1',
                             '--quiet', *extra)
            scores[arm].append(result['score_mean'])
            print(f'{data} {arm:22s} seed {seed}: {result["score_mean"]:.1f}', flush=True)
    return scores


def add_rows(table: Table, scores: dict[str, list[float]], first: str = '') -> Table:
    for arm, v in scores.items():
        table.add(f'{first}{arm}', mean_std(v), ', '.join(f'{x:.1f}' for x in v))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--dataset', default='dgm/hopper/medium-v0')
    parser.add_argument('--transitions', type=int, default=10_000)
    parser.add_argument('--mopo-datasets', nargs='*',
                        default=['dgm/hopper/medium-v0', 'dgm/halfcheetah/medium-v0'],
                        help='benchmark datasets on which MOPO rollouts are compared with '
                             'real data alone, in full')
    parser.add_argument('--algo', default='td3bc')
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--synthetic', type=int, default=100_000)
    parser.add_argument('--synther-steps', type=int, default=10_000)
    parser.add_argument('--world-model-steps', type=int, default=5000)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    data = small_dataset(args.dataset, args.transitions)
    synth = {}  # SynthER's denoiser predicting the noise (the paper's) or the clean x_0
    for prediction, name in (('epsilon', 'synther.safetensors'),
                             ('sample', 'synther-x0.safetensors')):
        synth[prediction] = WORK / name
        if not synth[prediction].is_file():
            dgm('augment-synther', '--dataset', data, '--steps', str(args.synther_steps),
                '--samples', str(args.synthetic), '--prediction', prediction, '--out',
                str(synth[prediction]), '--quiet')
    mopo, mopo_info = mopo_rollouts(data, WORK, args)
    half = ['--synthetic-ratio', '0.5']
    small = train_arms(data, {
        'real only': [],
        'real + SynthER': ['--extra-transitions', str(synth['epsilon']), *half],
        'real + SynthER (x_0)': ['--extra-transitions', str(synth['sample']), *half],
        'real + MOPO rollouts': ['--extra-transitions', str(mopo), *half]}, WORK, args)
    full = {}
    for name in args.mopo_datasets:
        work = WORK / name.replace('/', '_')
        rollouts, info = mopo_rollouts(name, work, args)
        full[name] = (info, train_arms(name, {
            'real only': [], 'real + MOPO rollouts': ['--extra-transitions', str(rollouts),
                                                      *half]}, work, args))
    lines = [f'`{args.algo}`, {args.steps} gradient steps, seeds {args.seeds}, 10 evaluation '
             'episodes each; every arm trained in this one run. Augmented arms draw half of '
             'each batch from the generated data. MOPO: penalized rollouts (horizon 5, '
             'penalty 1) of a bc policy in a 5-member wm_ensemble '
             f'({args.world_model_steps:,} steps), from {args.synthetic // 5:,} dataset '
             'states.', '',
             f'**Small data:** `{data}`, the first {args.transitions:,} transitions of '
             f'`{args.dataset}`. SynthER: {args.synthetic:,} samples of a transition diffusion '
             f'model fitted {args.synther_steps:,} steps, its denoiser predicting the noise '
             "(the paper's) or the clean transition (x_0); MOPO: "
             f"{mopo_info.get('transitions', 0):,} rollout transitions.", '',
             *add_rows(Table('training data', 'normalized score (mean ± std over seeds)',
                             'per seed'), small).lines()]
    if full:
        table = Table('dataset: training data', 'normalized score (mean ± std over seeds)',
                      'per seed')
        for name, (info, scores) in full.items():
            add_rows(table, scores, f"{name} ({info.get('transitions', 0):,} rollout "
                                    'transitions): ')
        lines += ['', '**MOPO on the full benchmark datasets:**', '', *table.lines()]
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('augmentation', 'Generated data: real only vs SynthER vs MOPO rollouts', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
