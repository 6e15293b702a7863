# SPDX-License-Identifier: Apache-2.0
"""One algorithm (or several) with the policy benchmark's settings, each arm changing some of
them, scored side by side (bench/results/<--name>.md).

The question each table answers is whether a setting closes a gap the policy table shows, so
the arms differ from bench/policies.py's run only in ``--arms`` (JSON objects of settings;
``{}`` is the benchmark's own run, reused from its folder, or its cached score where the folder
is gone). Each run is exported and scored in MuJoCo through the deployment runner. ``--peer``
adds a d3rlpy row from the policy benchmark's cache (bench/results/policies_runs/), same
datasets, steps and seeds, and ``--peer-arms`` rows of that d3rlpy algorithm with some of its
own config fields changed (trained by bench/d3rlpy_job.py, cached under this table's run
folder), so that a setting tried on ours is tried on the peer too. ``--deploy-arms`` change
only deploy-time settings (``dgm export --set``: a diffusion policy's ``sampling_steps``,
``temperature`` or ``selection``), each applied to every training arm's runs (the benchmark's
own, without ``--arms``) without training again.

Example: ``python -m bench.settings_ablation --algo dt --name dt_state_encoder --arms '{}'
'{"state_encoder": "relu"}' --peer DecisionTransformer``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys

from bench.common import RESULTS, Table, ensure_bench_run, mean_std, write_result
from bench.policies import our_config
from dgm_policy_ros.workflows.evaluation import export_and_score

HERE = Path(__file__).resolve().parent


def peer_scores(algo: str, dataset: str, seeds: list[int], steps: int) -> list[float]:
    folder = RESULTS / 'policies_runs' / dataset.replace('/', '_')
    files = [folder / f'd3rlpy-{algo}-s{seed}-n{steps}.json' for seed in seeds]
    return [json.loads(f.read_text())['score_mean'] for f in files if f.is_file()]


def cached_bench_score(algo: str, dataset: str, seed: int, steps: int,
                       episodes: int) -> dict | None:
    """The policy benchmark's own result for this run when it is cached with today's settings,
    trained on a CPU as this script trains, and its run folder is gone (a fresh machine): the
    same training and evaluation episodes, so the ``{}`` arm need not train it again. Results
    without ``eval_backend`` were scored by the torch model (before the trainer scored through
    the deployment runner); the table says how many."""
    from policies import EVAL_EPISODES, cache_path, cached, run_folder

    if episodes != EVAL_EPISODES or run_folder(algo, dataset, seed, steps).is_dir() or not cached(
            'ours', algo, dataset, seed, steps):
        return None
    result = json.loads(cache_path('ours', algo, dataset, seed, steps).read_text())
    return result if result.get('device', 'cpu') == 'cpu' else None


def bundle_score(run: Path, bundle: Path, episodes: int, seed: int, deploy: dict) -> float:
    """``run`` exported with ``deploy`` and scored, or the score recorded beside its bundle
    when these weights were scored so before: a table built again from runs that several
    processes trained need not play every episode again."""
    from dgm_policy_ros.utils.atomic import atomic_write_text
    from dgm_policy_ros.utils.hashing import sha256_file

    # The config too: inference-only settings (n_candidates, sampling_steps...) leave the
    # weights as they are.
    key = {'weights': sha256_file(run / 'model.safetensors'),
           'config': sha256_file(run / 'config.yaml'), 'deploy': deploy, 'episodes': episodes,
           'seed': seed}
    record = bundle.with_name(bundle.name + '.score.json')
    if record.is_file():
        known = json.loads(record.read_text())
        if known['key'] == key:
            return known['score']
    score = float(export_and_score(run, bundle, episodes, seed, deploy)[1].scores.mean())
    atomic_write_text(record, json.dumps({'key': key, 'score': score}))
    return score


def peer_arm_scores(algo: str, settings: dict, dataset: str, seeds: list[int], steps: int,
                    episodes: int, folder: Path) -> list[float]:
    """d3rlpy's ``algo`` with ``settings`` changed, one run per seed (reused when cached)."""
    tag = ''.join(f'-{k}{v}' for k, v in settings.items())
    scores = []
    for seed in seeds:
        path = folder / f"d3rlpy-{algo}{tag}-{dataset.replace('/', '_')}-s{seed}-n{steps}.json"
        known = json.loads(path.read_text()) if path.is_file() else {}
        if (known.get('settings'), known.get('episodes')) != (settings, episodes):
            try:
                subprocess.run([sys.executable, str(HERE / 'd3rlpy_job.py'), '--algo', algo,
                                '--dataset', dataset, '--steps', str(steps), '--seed', str(seed),
                                '--eval-episodes', str(episodes), '--out', str(path),
                                '--settings', json.dumps(settings)], check=True,
                               capture_output=True, text=True)
            except subprocess.CalledProcessError as exc:
                raise SystemExit(f'd3rlpy {algo} {settings} seed {seed} failed:\n'
                                 f'{exc.stderr[-2000:]}') from exc
            known = json.loads(path.read_text())
        scores.append(known['score_mean'])
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--algo', required=True, nargs='+',
                        help='one algorithm, or several to try the same arms on each')
    parser.add_argument('--name', required=True, help='the table: bench/results/<name>.md')
    parser.add_argument('--arms', nargs='*', default=[], help='JSON objects of settings')
    parser.add_argument('--deploy-arms', nargs='*', default=[],
                        help='JSON objects of deploy-time settings, applied at export to each '
                        "training arm's runs")
    parser.add_argument('--datasets', nargs='+', default=['dgm/hopper/medium-v0'])
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--peer', help="a d3rlpy algorithm from the policy benchmark's cache")
    parser.add_argument('--peer-arms', nargs='*', default=[],
                        help='JSON objects of d3rlpy config fields of --peer, each trained and '
                        'scored on the same datasets and seeds')
    args = parser.parse_args()
    if not args.arms and not args.deploy_arms:
        parser.error('give --arms, --deploy-arms or both')
    if args.peer_arms and not args.peer:
        parser.error('--peer-arms change the settings of --peer: give --peer')

    root = HERE.parent / 'runs' / args.name
    algos = args.algo
    lines = [f"{', '.join(f'`{a}`' for a in algos)} with the policy benchmark's settings "
             '(bench/policies.py) except '
             f'what each row changes, {args.steps} steps, seeds '
             f'{", ".join(map(str, args.seeds))}. Score: normalized, mean ± std over the seeds '
             f'(each the mean of {args.episodes} episodes through the deployment runner; the '
             "d3rlpy row from the policy benchmark's cache, any d3rlpy row with changed "
             'settings trained for this table; same evaluation loop).', '',
             # Defaults change as tables like this one settle them: say what "the
             # benchmark's" meant when this one was made.
             *(line for a in algos for line in (
                 f"The benchmark's settings{f' for {a}' if len(algos) > 1 else ''}, in full: "
                 f"`{json.dumps(our_config(a, args.steps), separators=(', ', ': '))}`.", '')),
             ]
    table = Table('dataset', 'settings', 'score', 'per seed', echo=True)

    def row(dataset: str, label: str, scores: list[float]) -> None:
        table.add(dataset, label, mean_std(scores), ', '.join(f'{s:.1f}' for s in scores))

    def label(settings: dict) -> str:
        return ', '.join(f'{k}: {v}' for k, v in settings.items())

    for dataset in args.datasets:
        # Every training arm under every deploy arm (as trained, when none is given).
        arms = [(json.loads(arm), json.loads(deploy)) for arm in args.arms or ['{}']
                for deploy in args.deploy_arms or ['{}']]
        for algo, (settings, deploy) in ((a, arm) for a in algos for arm in arms):
            scores, from_cache, torch_scored = [], 0, 0
            for seed in args.seeds:
                known = (None if settings or deploy else
                         cached_bench_score(algo, dataset, seed, args.steps,
                                            args.episodes))
                if known is not None:
                    scores.append(known['score_mean'])
                    from_cache += 1
                    torch_scored += 'eval_backend' not in known
                    continue
                run = ensure_bench_run(algo, settings, dataset, args.steps, seed, root)
                bundle = root / 'bundles' / '-'.join(
                    [run.name, *(f'{k}{v}' for k, v in deploy.items())])
                scores.append(bundle_score(run, bundle, args.episodes, seed, deploy))
            trained = label(settings) or "the benchmark's"
            if from_cache:
                trained += (f" ({from_cache} of {len(scores)} seeds from the benchmark's cache"
                            + (f', {torch_scored} of them scored by their torch model'
                               if torch_scored else '') + ')')
            if len(algos) > 1:
                trained = f'{algo}, {trained}'
            row(dataset, f'{trained}; at deploy: {label(deploy)}' if deploy else trained,
                scores)
        if args.peer:
            scores = peer_scores(args.peer, dataset, args.seeds, args.steps)
            if scores:
                row(dataset, f'd3rlpy {args.peer}', scores)
            for arm in args.peer_arms:
                settings = json.loads(arm)
                row(dataset, f'd3rlpy {args.peer}, {label(settings)}',
                    peer_arm_scores(args.peer, settings, dataset, args.seeds, args.steps,
                                    args.episodes, root))
    body = '\n'.join(lines + table.lines()) + '\n'
    print(body)
    write_result(args.name, f"{', '.join(algos)}: settings side by side", body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
