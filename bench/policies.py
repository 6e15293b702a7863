# SPDX-License-Identifier: Apache-2.0
"""Policy families side by side with d3rlpy (bench/results/policies.md).

Every algorithm trains for the same number of gradient steps on the same Minari datasets, with
the same network widths and batch sizes where the two implementations overlap, on one CPU
thread per run; both are scored by the same evaluation loop on the same environment seeds.
Each finished run is cached as JSON under bench/results/policies_runs/, so an interrupted
benchmark resumes where it stopped and the table can be rebuilt from the cache.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import json
from pathlib import Path
import shutil
import subprocess
import sys
import time

import numpy as np

from bench.common import RESULTS, Table, mean_std, trained_with, write_result
from bench.d3rlpy_job import dt_warmup_steps

HERE = Path(__file__).resolve().parent

CACHE = RESULTS / 'policies_runs'
OURS = ['bc', 'td3bc', 'bcq', 'cvae_bc', 'gan_bc', 'flow_bc', 'dt', 'diffusion_bc', 'idql',
        'diffusion_ql']
D3RLPY = ['BC', 'TD3PlusBC', 'IQL', 'BCQ', 'PLAS', 'DecisionTransformer']
EVAL_EPISODES = 10  # per run; the cache does not record it, so it stays fixed
SEEDS = [0, 1, 2]  # the table's grid; --seeds chooses which runs, and adds any others to it
# Our side's settings, matched to d3rlpy's where both have the algorithm (see d3rlpy_job.py).
OUR_CONFIGS = {
    'bc': {'batch_size': 256, 'lr': 1e-3, 'hidden': [256, 256]},
    'td3bc': {'batch_size': 256, 'hidden': [256, 256]},
    'bcq': {'batch_size': 100, 'hidden': [256, 256], 'vae_hidden': [256, 256],
            'n_samples': 10},
    'cvae_bc': {'batch_size': 256, 'hidden': [256, 256]},
    'gan_bc': {'batch_size': 256, 'hidden': [256, 256]},
    'flow_bc': {'batch_size': 256, 'hidden': [256, 256]},
    # A CPU-sized transformer (the default is 128 wide with context 20: ~3 steps/s on one
    # core); d3rlpy's DecisionTransformer gets the same sizes (d3rlpy_job.py). Its warm-up
    # depends on the run's length: bench_settings.
    'dt': {'batch_size': 64, 'embed_dim': 64, 'context': 10, 'layers': 3, 'heads': 1,
           'lr': 1e-4},
    'diffusion_bc': {'batch_size': 256},
    'idql': {'batch_size': 256},
    'diffusion_ql': {'batch_size': 256},
}


def dataset_id(env: str, name: str) -> str:
    return f"dgm/{env.split('-v')[0].lower()}/{name}-v0"


def cache_path(impl: str, algo: str, dataset: str, seed: int, steps: int) -> Path:
    return CACHE / dataset.replace('/', '_') / f'{impl}-{algo}-s{seed}-n{steps}.json'


def bench_settings(algo: str, steps: int) -> dict:
    """``OUR_CONFIGS[algo]`` with the settings that depend on the run's length: ``dt`` warms its
    learning rate up over the first tenth of the steps, the same ``dt_warmup_steps`` as
    d3rlpy's DecisionTransformer (a fixed 500 steps until 2026-11-26, which matched only at
    5000 steps)."""
    settings = dict(OUR_CONFIGS[algo])
    if algo == 'dt':
        settings['warmup_steps'] = dt_warmup_steps(steps)
    return settings


def our_config(algo: str, steps: int, recorded: dict | None = None) -> dict:
    """The whole algorithm config our side trains ``algo`` for ``steps`` with today; with
    ``recorded``, the one a run that recorded these settings was trained with (a setting added
    since it ran reads as the value it was trained with, ``AlgoConfig.from_saved``)."""
    from dgm_policy_ros.training.registry import get_algorithm

    cls = get_algorithm(algo).config_class
    if recorded is None:
        return cls.from_dict(bench_settings(algo, steps)).to_dict()
    return cls.from_saved(recorded).to_dict()


def cached(impl: str, algo: str, dataset: str, seed: int, steps: int) -> bool:
    """A finished run of today's settings: a run trained with other settings (a default has
    changed since) is stale, is left out of the table and runs again."""
    path = cache_path(impl, algo, dataset, seed, steps)
    if not path.is_file():
        return False
    if impl != 'ours':
        return True
    # Runs cached before configs were recorded ran with the settings they still have (dt's
    # warm-up was 500 then, and such runs are all 5000 steps long: steps // 10).
    recorded = json.loads(path.read_text()).get('algo_config') or bench_settings(algo, steps)
    return our_config(algo, steps, recorded) == our_config(algo, steps)


def run_folder(algo: str, dataset: str, seed: int, steps: int) -> Path:
    """Where our side's run of this cache entry trains (and stays, for reuse)."""
    path = cache_path('ours', algo, dataset, seed, steps)
    return HERE.parent / 'runs' / 'bench' / path.parent.name / path.stem


def run_ours(algo, dataset, seed, steps, episodes, path: Path, device: str = 'cpu') -> None:
    import yaml

    run = run_folder(algo, dataset, seed, steps)
    cfg = run.with_suffix('.yaml')
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump({'algo_config': bench_settings(algo, steps)}))
    cmd = [sys.executable, '-m', 'dgm_policy_ros.cli.main', 'train', '--algo', algo,
           '--dataset', dataset, '--steps', str(steps), '--seed', str(seed), '--out', str(run),
           '--config', str(cfg), '--eval-every', '0', '--eval-episodes', str(episodes),
           '--checkpoint-every', str(steps), '--threads', '1', '--device', device, '--quiet']
    if run.exists():  # an interrupted run restarts from scratch: its steps/s must be whole
        shutil.rmtree(run)
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads((run / 'result.json').read_text())
    out = {'impl': 'ours', 'algo': algo, 'dataset': dataset, 'seed': seed, 'steps': steps,
           'train_s': result['wall_s'] - result['eval_s'], 'device': device,
           'algo_config': trained_with(run).to_dict(),
           **result}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))


def run_d3rlpy(algo, dataset, seed, steps, episodes, path: Path, device: str = 'cpu') -> None:
    subprocess.run([sys.executable, str(HERE / 'd3rlpy_job.py'), '--algo', algo, '--dataset',
                    dataset, '--steps', str(steps), '--seed', str(seed), '--eval-episodes',
                    str(episodes), '--out', str(path), '--device', device], check=True,
                   capture_output=True, text=True)


def grid(ours, d3rlpy, envs, datasets, seeds) -> list[tuple]:
    # Interleave so that every (dataset, seed) finishes both implementations close in time:
    # a partial run still compares like with like, under the same machine load.
    jobs = []
    for seed in seeds:
        for env in envs:
            for name in datasets:
                ds = dataset_id(env, name)
                pairs = [('ours', a) for a in ours] + [('d3rlpy', a) for a in d3rlpy]
                jobs += [(impl, algo, ds, seed) for impl, algo in pairs]
    return jobs


WHERE = {'cpu': 'one CPU thread', 'cuda': 'a GPU shared by the runs of each call'}


def table(jobs, steps) -> str:
    rows: dict[tuple, list[dict]] = {}
    for impl, algo, dataset, seed in jobs:
        if cached(impl, algo, dataset, seed, steps):
            path = cache_path(impl, algo, dataset, seed, steps)
            rows.setdefault((dataset, impl, algo), []).append(json.loads(path.read_text()))
    datasets = sorted({j[2] for j in jobs})
    # Where the runs were timed comes from what they recorded, not from this call.
    devices = sorted({r.get('device', 'cpu') for runs in rows.values() for r in runs})
    mixed = len(devices) > 1
    where = WHERE.get(devices[0], devices[0]) if len(devices) == 1 else (
        'the device marked in brackets (' + '; '.join(
            f'{d}: {WHERE.get(d, d)}' for d in devices) + ')')
    lines = [f'Normalized score (mean ± std over seeds; each seed the mean of its evaluation '
             f'episodes) after {steps} gradient steps; training wall time per run (median, '
             f'evaluation excluded) and gradient steps/s on {where}.', '']
    torch_scored = sum('eval_backend' not in r for (_, impl, _), runs in rows.items()
                       for r in runs if impl == 'ours')
    if torch_scored:
        lines[0] += (f' {torch_scored} of our runs were scored by the trainer before its '
                     'evaluation went through the deployment runner (their torch model, same '
                     'episode loop and env seeds; the exported graphs match torch to 1.6e-6, '
                     'bench/results/export.md, but stochastic policies drew other noise).')
    scores_table = Table('algorithm', *(d.split('/', 1)[1] for d in datasets), 'train s',
                         'steps/s', 'seeds')
    algos = [('ours', a) for a in OURS] + [('d3rlpy', a) for a in D3RLPY]
    for impl, algo in algos:
        cells, n = [], set()
        timing: dict[str, list[tuple[float, float]]] = {}  # device: (train s, steps/s)
        for d in datasets:
            runs = rows.get((d, impl, algo), [])
            scores = [r['score_mean'] for r in runs]
            for r in runs:
                timing.setdefault(r.get('device', 'cpu'), []).append(
                    (r['train_s'], r['steps_per_s']))
            n.add(len(runs))
            cells.append(mean_std(scores) if scores else '–')
        if not timing:
            continue
        # Runs made on different devices are timed apart: a median across them means nothing.
        walls, speeds = (' / '.join(
            f'{np.median([t[i] for t in times]):.0f}' + (f' ({device})' if mixed else '')
            for device, times in sorted(timing.items())) for i in (0, 1))
        label = f'{algo}' if impl == 'ours' else f'd3rlpy {algo}'
        scores_table.add(label, *cells, walls, speeds, '/'.join(map(str, sorted(n))))
    return '\n'.join(lines + scores_table.lines()) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--envs', nargs='+', default=['Hopper-v5', 'HalfCheetah-v5'])
    parser.add_argument('--datasets', nargs='+', default=['medium', 'medium-expert', 'mixed'])
    parser.add_argument('--ours', nargs='*', default=OURS)
    parser.add_argument('--d3rlpy', nargs='*', default=D3RLPY)
    parser.add_argument('--seeds', type=int, nargs='+', default=SEEDS)
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--eval-episodes', type=int, default=EVAL_EPISODES)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--table-only', action='store_true', help='rebuild from the cache')
    parser.add_argument('--device', default='cpu',
                        help="'cuda': every run trains on the GPU (one CPU thread each)")
    parser.add_argument('--name', default=None,
                        help='the table, bench/results/<name>.md (default: policies for 5000 '
                        'steps, policies_<k>k otherwise); name one for a run on a subset, such '
                        'as more seeds on some datasets, so that it leaves the main table alone')
    args = parser.parse_args()
    on_gpu = args.device.startswith('cuda')

    jobs = grid(args.ours, args.d3rlpy, args.envs, args.datasets, args.seeds)
    todo = [j for j in jobs if not cached(*j, args.steps)]
    print(f'{len(jobs)} runs, {len(jobs) - len(todo)} cached, {len(todo)} to do', flush=True)
    if not args.name:  # the main table shows every algorithm, on the default seeds and more
        jobs = grid(OURS, D3RLPY, args.envs, args.datasets, sorted(set(SEEDS) | set(args.seeds)))

    def work(job):
        impl, algo, ds, seed = job
        started = time.perf_counter()
        path = cache_path(impl, algo, ds, seed, args.steps)
        runner = run_ours if impl == 'ours' else run_d3rlpy
        try:
            runner(algo, ds, seed, args.steps, args.eval_episodes, path, args.device)
        except subprocess.CalledProcessError as exc:
            print(f'FAILED {job}: {exc.stderr[-2000:]}', flush=True)
            return
        score = json.loads(path.read_text()).get('score_mean', float('nan'))
        print(f'done {impl:6s} {algo:10s} {ds:28s} seed {seed}: score {score:6.1f} '
              f'({time.perf_counter() - started:.0f} s)', flush=True)

    if not args.table_only:
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(work, todo))
    body = table(jobs, args.steps)
    missing = sum(not cached(*j, args.steps) for j in jobs)
    if missing:
        body = (f'**Partial: {len(jobs) - missing} of {len(jobs)} runs done** (the rest run '
                'with the command above (without `--table-only`), which skips the runs '
                'cached in bench/results/policies_runs/ with the current settings; '
                '`--table-only` only rebuilds this table).\n\n' + body)
    body += ('\nSettings: our bc/td3bc/bcq use the same widths, batch sizes and candidate '
             "counts as d3rlpy's BC/TD3PlusBC/BCQ (bench/policies.py, bench/d3rlpy_job.py); "
             'd3rlpy IQL scales rewards by 1000/(return range) as in its D4RL reproduction; '
             'd3rlpy PLAS pre-trains its VAE for the first half of the steps. dt and d3rlpy '
             'DecisionTransformer share CPU-sized settings (64-wide tokens, context 10, 3 layers, '
             '1 head, batch 64, lr 1e-4 with a 10% warm-up, returns-to-go divided by the best '
             'training return, which is also the target return). idql takes the best by Q of 32 '
             'diffusion candidates (5 noise levels, lr 1e-3); diffusion_ql the best by Q of 10, '
             "trained with a tenth of its paper's -Q weight (eta 0.1, 5 levels, lr 1e-3); the "
             'idql, diffusion_ql and diffusion_bc denoisers predict the clean action (x_0). '
             'Observations are '
             'standardized on both sides. Evaluation: '
             f'{args.eval_episodes} episodes per run, env seeds 10000+seed, the same loop '
             '(dgm_policy_ros/sim/evaluate.py) for both. '
             + (f'Runs were made {args.workers} at a time, sharing the GPU.\n' if on_gpu else
                'Runs were made one or two at a time on this 2-core machine.\n'))
    print(body)
    # The 5000-step grid is the main table; a longer run (--steps) gets a table of its own.
    name = args.name or ('policies' if args.steps == 5000 else f'policies_{args.steps // 1000}k')
    write_result(name, 'Policy families vs d3rlpy (offline, MuJoCo v5 datasets)', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
