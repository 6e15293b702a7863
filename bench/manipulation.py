# SPDX-License-Identifier: Apache-2.0
"""MetaWorld manipulation from cameras and from state (bench/results/manipulation.md).

Per task: the scripted expert's demonstrations with camera frames (LeRobot's MetaWorld view,
``dgm collect --images``), then each arm, ``<observation>:<algorithm>`` (``image:diffusion_bc``
sees the frames and the hand position and gripper; ``state:bc`` the whole state, from the same
demonstrations), trained on one CPU thread and scored by success rate over ``--episodes``
evaluation episodes through the deployment runner, per seed. Each finished run is cached as JSON
under bench/results/manipulation_runs/, so the table resumes and can be rebuilt.

``--curve TASK`` measures one arm's learning curve instead (success every ``--eval-every``
steps), to find the budget the table is run at (bench/results/manipulation_curve.md).

The papers' budget, on a GPU machine (Diffusion Policy: ResNet-18, batch 256, ~100k steps)::

    python -m bench.manipulation --steps 100000 --device cuda --encoder resnet18 --batch 256
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import functools
import json
from pathlib import Path
import shutil
import subprocess
import sys
import threading

import numpy as np

from bench.common import RESULTS, Table, runner_latency, write_result
from dgm_policy_ros.cli.common import key_values

HERE = Path(__file__).resolve().parent
CACHE = RESULTS / 'manipulation_runs'
RUNS = HERE.parent / 'runs' / 'manipulation'
# Difficulty groups as Seo et al. 2022 (and DP3) group MetaWorld's tasks.
TASKS = {
    'button-press-topdown-v3': 'easy', 'drawer-open-v3': 'easy', 'reach-v3': 'easy',
    'hammer-v3': 'medium', 'peg-insert-side-v3': 'medium',
    'push-v3': 'hard', 'pick-place-v3': 'hard',
    'shelf-place-v3': 'very hard',
}
ARMS = ['image:diffusion_bc', 'image:bc', 'image:cvae_bc',
        'state:diffusion_bc', 'state:bc', 'state:cvae_bc', 'state:flow_bc', 'state:gan_bc']
# What every arm trains with: the algorithm's recipe, the one a user trains with (``dgm train
# --config config/recipes/metaworld/<algo>.yaml``); ``--set`` changes settings over it.
RECIPES = HERE.parent / 'config' / 'recipes' / 'metaworld'
# The recipes' CPU sizing, shared by every run since the table's first version: a run's cache
# name leaves it out where it is the recipe's.
SIZING = ('batch_size', 'lr', 'horizon', 'n_action_steps')


@functools.cache
def recipe_file(algo: str) -> dict:
    """The algorithm's recipe as written ({} for an algorithm without one)."""
    import yaml

    path = RECIPES / f'{algo}.yaml'
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def recipe(algo: str) -> dict:
    """The algorithm settings of the algorithm's recipe ({} for one without: its defaults)."""
    return dict(recipe_file(algo).get('algo_config', {}))


def recipes_budget() -> int:
    """The training steps the recipes declare (the same in every one)."""
    budgets = {recipe_file(p.stem)['steps'] for p in RECIPES.glob('*.yaml')}
    if len(budgets) != 1:
        raise SystemExit(f'the recipes in {RECIPES} declare different budgets: {budgets}')
    return budgets.pop()


def dataset_for(task: str, demos: int, size: int, seed: int = 0) -> str:
    """The task's demonstration set (collected on first use)."""
    dataset = f'bench/metaworld-{task}-expert-d{demos}-px{size}-v0'
    from dgm_policy_ros.data.minari_io import datasets_root

    if not (datasets_root() / dataset).is_dir():
        subprocess.run([sys.executable, '-m', 'dgm_policy_ros.cli.main', 'collect', '--env',
                        f'metaworld/{task}', '--agent', 'expert', '--episodes', str(demos),
                        '--images', '--image-size', str(size), '--seed', str(seed),
                        '--out', dataset, '--quiet'], check=True, capture_output=True)
    return dataset


def arm_config(arm: str, encoder: str, batch: int | None, extra: dict | None = None
               ) -> tuple[str, dict]:
    import dataclasses

    from dgm_policy_ros.training.registry import get_algorithm

    observation, algo = arm.split(':', 1)
    fields = {f.name for f in dataclasses.fields(get_algorithm(algo).config_class)}
    config = {**recipe(algo), **{k: v for k, v in (extra or {}).items() if k in fields}}
    if batch:
        config['batch_size'] = batch
    if observation == 'image':
        config['image_encoder'] = encoder
    elif 'use_images' in fields:
        config['use_images'] = False
    return algo, config


def train(arm: str, dataset: str, seed: int, steps: int, out: Path, args,
          eval_every: int = 0) -> dict:
    """One run through ``dgm train`` (evaluation through the runner, with cameras for the
    image arms); its result.json plus the run's inference latency at batch 1."""
    import yaml

    algo, config = arm_config(arm, args.encoder, args.batch, args.settings)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = out.parent / f'{out.name}.yaml'
    cfg.write_text(yaml.safe_dump({'algo_config': config}))
    subprocess.run([sys.executable, '-m', 'dgm_policy_ros.cli.main', 'train', '--algo', algo,
                    '--dataset', dataset, '--steps', str(steps), '--seed', str(seed),
                    '--out', str(out), '--config', str(cfg), '--eval-every', str(eval_every),
                    '--eval-episodes', str(args.episodes), '--checkpoint-every', str(steps),
                    '--threads', '1', '--device', args.device, '--quiet'],
                   check=True, capture_output=True, text=True)
    result = json.loads((out / 'result.json').read_text())
    return {**result, **latency(out), 'algo_config': config}


EXPORTING = threading.Lock()  # torch.onnx.export keeps global state: one thread at a time


def latency(run: Path, calls: int = 200) -> dict:
    """p50 / p99 ms of one inference at batch 1 on one CPU thread through ``PolicyRunner``."""
    import tempfile

    from dgm_policy_ros.export.onnx_export import export_bundle

    with tempfile.TemporaryDirectory() as tmp:
        with EXPORTING:
            bundle = export_bundle(run, Path(tmp) / 'bundle', fp16=False)
        p50, p99 = runner_latency(bundle, calls)
    return {'p50_ms': p50, 'p99_ms': p99}


def settings_tag(arm: str, args) -> str:
    """The arm's settings that differ from its algorithm's defaults, except the recipe's CPU
    sizing and the encoder (named apart), as a file-name part ('' for none)."""
    import dataclasses

    from dgm_policy_ros.training.registry import get_algorithm

    algo, config = arm_config(arm, args.encoder, args.batch, args.settings)
    defaults = {f.name: f.default for f in dataclasses.fields(get_algorithm(algo).config_class)}
    sizing = recipe(algo)
    return ''.join(f"-{k}{str(config[k]).replace(' ', '')}" for k in sorted(config)
                   if k not in ('image_encoder', 'use_images') and config[k] != defaults.get(k)
                   and not (k in SIZING and config[k] == sizing.get(k)))


def cache_path(task: str, arm: str, seed: int, steps: int, args) -> Path:
    tag = (f"{arm.replace(':', '-')}-{args.encoder}-d{args.demos}-px{args.size}-n{steps}"
           f'{settings_tag(arm, args)}')
    return CACHE / task / f'{tag}-e{args.episodes}-s{seed}.json'


def table(args) -> str:
    tasks = list(args.tasks)
    scores = Table('arm', *tasks, *sorted(set(TASKS[t] for t in tasks), key=list(
        dict.fromkeys(TASKS.values())).index), 'train steps/s', 'p50 / p99 ms', 'seeds')
    for arm in args.arms:
        cells, groups, speeds, lat, seeds = [], {}, [], [], set()
        for task in tasks:
            runs = [json.loads(p.read_text()) for seed in args.seeds
                    if (p := cache_path(task, arm, seed, args.steps, args)).is_file()]
            rates = [100 * r['success_rate'] for r in runs]
            cells.append('–' if not rates else f'{rates[0]:.0f}' if len(rates) == 1 else
                         f'{np.mean(rates):.0f} ± {np.std(rates):.0f}')
            if rates:
                groups.setdefault(TASKS[task], []).append(np.mean(rates))
            speeds += [r['steps_per_s'] for r in runs]
            lat += [(r['p50_ms'], r['p99_ms']) for r in runs]
            seeds.add(len(runs))
        group_cells = [f'{np.mean(groups[g]):.0f}' if g in groups else '–' for g in
                       scores.header[1 + len(tasks):-3]]
        scores.add(arm, *cells, *group_cells,
                   f'{np.median(speeds):.1f}' if speeds else '–',
                   (f'{np.median([x[0] for x in lat]):.2f} / '
                    f'{np.median([x[1] for x in lat]):.2f}') if lat else '–',
                   '/'.join(map(str, sorted(seeds))))
    return '\n'.join([
        f'Success rate in % (mean ± std over seeds where several; each over {args.episodes} '
        f'evaluation '
        f'episodes, env seeds from 10000 + seed, through the deployment runner), after '
        f'{args.steps} gradient steps on {args.demos} scripted-expert demonstrations per task '
        f"({args.size} px frames of LeRobot's MetaWorld view, JPEG in the dataset). image: "
        f'the `{args.encoder}` encoder trained from scratch with the policy, frames plus hand '
        'position and gripper; state: the 39-value state. Group columns: mean over the '
        "group's tasks. Training on one CPU thread; latency: one inference at batch 1, one "
        'CPU thread, ONNX Runtime through PolicyRunner.'
        + " Settings: each algorithm's recipe, `config/recipes/metaworld/<algo>.yaml`"
        + (f', with {json.dumps(args.settings)} for the arms that have them.'
           if args.settings else '.'), '', *scores.lines()])


def curve(args) -> int:
    task = args.curve
    arm = args.arms[0]
    dataset = dataset_for(task, args.demos, args.size)
    run = RUNS / 'curve' / (f"{task}-{arm.replace(':', '-')}-{args.encoder}"
                            f'{settings_tag(arm, args)}-s{args.seeds[0]}')
    if args.table_only and (run / 'result.json').is_file():
        result = {**json.loads((run / 'result.json').read_text()),
                  'algo_config': arm_config(arm, args.encoder, args.batch, args.settings)[1]}
    else:
        result = train(arm, dataset, args.seeds[0], args.steps, run, args,
                       eval_every=args.eval_every)
    from dgm_policy_ros.training.logger import read_metrics

    series = read_metrics(run)
    lengths = dict(series.get('eval/length_mean', []))
    points = Table('gradient steps', 'success %', 'mean episode length', echo=True)
    for step, rate in series.get('eval/success_rate', []):
        points.add(step, f'{100 * rate:.0f}', f'{lengths.get(step, float("nan")):.0f}')
    body = '\n'.join([
        f'`{arm}` on metaworld/{task}, {args.demos} demonstrations, {args.size} px, seed '
        f'{args.seeds[0]}, `{args.encoder}` encoder, settings {json.dumps(result["algo_config"])}'
        f'; success over {args.episodes} evaluation episodes at each point. Training '
        f"{result['steps_per_s']:.1f} gradient steps/s on one CPU thread; the whole curve "
        f"(training and evaluations) took {result['wall_s'] / 60:.0f} min.", '',
        *points.lines()])
    print(body)
    write_result(args.name or 'manipulation_curve', 'MetaWorld: learning curve of one arm', body)
    return 0


def deploy(args) -> int:
    """Each cached run of the arms re-exported with deploy-time settings (the weights stay) and
    scored on the same evaluation episodes, beside its score as trained."""
    import tempfile

    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime import PolicyRunner
    from dgm_policy_ros.sim.evaluate import evaluate_runner

    overrides = key_values(args.deploy)
    label = ', '.join(f'{k}={v}' for k, v in overrides.items())
    rows = Table('arm', 'task', 'seed', 'success % as trained', f'success % with {label}',
                 echo=True)
    pairs = []
    for arm in args.arms:
        for task in args.tasks:
            for seed in args.seeds:
                path = cache_path(task, arm, seed, args.steps, args)
                if not path.is_file():
                    continue
                trained = 100 * json.loads(path.read_text())['success_rate']
                with tempfile.TemporaryDirectory() as tmp:
                    bundle = export_bundle(RUNS / task / path.stem, Path(tmp) / 'bundle',
                                           fp16=False, overrides=overrides)
                    result = evaluate_runner(PolicyRunner(bundle, backend='onnxruntime-cpu'),
                                             episodes=args.episodes)
                rate = 100 * float(result.summary()['success_rate'])
                pairs.append((arm, trained, rate))
                rows.add(arm, task, seed, f'{trained:.0f}', f'{rate:.0f}')
    means = [(arm, np.mean([t for a, t, _ in pairs if a == arm]),
              np.mean([r for a, _, r in pairs if a == arm])) for arm in args.arms
             if any(a == arm for a, _, _ in pairs)]
    body = '\n'.join([
        f'Cached runs of `bench.manipulation` ({args.steps} steps, {args.episodes} evaluation '
        f'episodes on the same env seeds as trained) re-exported with `{label}` (`dgm export '
        f'--set`: the weights stay) and scored again through the runner.'
        + (f' Trained with {json.dumps(args.settings)}.' if args.settings else ''), '',
        *rows.lines(), '',
        *[f'- {arm}: {t:.0f}% as trained, {r:.0f}% with {label} (mean over the rows)'
          for arm, t, r in means]])
    write_result(args.name or 'manipulation_deploy', f'MetaWorld: deploy-time {label}', body)
    return 0


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``[]``: the table's defaults, for scripts that read its cache)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument('--arms', nargs='+', default=ARMS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=recipes_budget(),
                        help="(default: the recipes' budget)")
    parser.add_argument('--episodes', type=int, default=50)
    parser.add_argument('--demos', type=int, default=50)
    parser.add_argument('--size', type=int, default=96)
    parser.add_argument('--encoder', default='conv', choices=['conv', 'resnet18'])
    parser.add_argument('--batch', type=int, help='batch size (default 64)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--curve', metavar='TASK', help='a learning curve of the first arm')
    parser.add_argument('--eval-every', type=int, default=1000)
    parser.add_argument('--workers', type=int, default=1, help='runs at a time')
    parser.add_argument('--table-only', action='store_true', help='rebuild from the cache')
    parser.add_argument('--name', help='the table, bench/results/<name>.md')
    parser.add_argument('--set', nargs='+', default=[], metavar='KEY=VALUE', dest='pairs',
                        help='algorithm settings over the recipes, for the arms that have them '
                             "(recorded in the cache's file names)")
    parser.add_argument('--deploy', nargs='+', metavar='KEY=VALUE',
                        help='score the cached runs again with these deploy-time settings '
                             '(e.g. temperature=0)')
    args = parser.parse_args(argv)
    args.settings = key_values(args.pairs)
    return args


def main() -> int:
    args = parse_arguments()
    if args.deploy:
        return deploy(args)
    if args.curve:
        return curve(args)
    jobs = [(task, arm, seed) for seed in args.seeds for task in args.tasks for arm in args.arms
            if not args.table_only and not cache_path(task, arm, seed, args.steps, args).is_file()]
    datasets = {task: dataset_for(task, args.demos, args.size)
                for task in dict.fromkeys(t for t, _, _ in jobs)}

    def work(job) -> None:
        task, arm, seed = job
        path = cache_path(task, arm, seed, args.steps, args)
        result = train(arm, datasets[task], seed, args.steps, RUNS / task / path.stem, args)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({'task': task, 'arm': arm, 'seed': seed, **result}, indent=2))
        print(f"{task} {arm} seed {seed}: {100 * result['success_rate']:.0f}% "
              f"({result['steps_per_s']:.1f} steps/s)", flush=True)

    # Runs one or two at a time: each trains on one thread, so two share a 2-core machine.
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(work, jobs))  # re-raises a failed run's error
    body = table(args)
    print(body)
    write_result(args.name or 'manipulation', 'MetaWorld manipulation: cameras and state, '
                 'success rates', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
