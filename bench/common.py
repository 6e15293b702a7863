# SPDX-License-Identifier: Apache-2.0
"""What bench/ scripts share: the machine and the exact command written with every table, and
training runs made (or reused) for a measurement."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
import platform
import shlex
import shutil
import subprocess
import sys

from dgm_policy_ros.utils.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / 'results'


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    mem = ''
    try:
        kb = int(Path('/proc/meminfo').read_text().split()[1])
        mem = f', {kb / 2**20:.0f} GiB RAM'
    except (OSError, ValueError, IndexError):
        pass
    gpu = ''
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f'; GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}'
    except ImportError:
        pass
    return (f'{cpu}, {os.cpu_count()} cores{mem}{gpu}; {platform.system()} '
            f'{platform.release()}; Python {platform.python_version()}')


def invocation() -> list[str]:
    """This process's command line as typed: ``-m bench.<name> ...`` for a benchmark."""
    script = Path(sys.argv[0])
    if script.suffix == '.py' and script.resolve().parent == RESULTS.parent:
        return ['-m', f'bench.{script.stem}', *sys.argv[1:]]
    return list(sys.argv)


class Table:
    """The one markdown table writer of bench/: a header, then rows of as many cells, each row
    printed as it is added when ``echo`` (a long benchmark shows its progress)."""

    def __init__(self, *header: str, echo: bool = False) -> None:
        self.header = header
        self.rows: list[tuple[str, ...]] = []
        self.echo = echo

    @staticmethod
    def _line(cells) -> str:
        return '| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |'

    def add(self, *cells) -> None:
        if len(cells) != len(self.header):
            raise ValueError(f'{len(cells)} cells for {len(self.header)} columns: {cells}')
        self.rows.append(tuple(str(c) for c in cells))
        if self.echo:
            print(self._line(cells), flush=True)

    def lines(self) -> list[str]:
        return [self._line(self.header), '|' + '---|' * len(self.header),
                *(self._line(r) for r in self.rows)]

    def __str__(self) -> str:
        return '\n'.join(self.lines())


def mean_std(values, digits: int = 1) -> str:
    """``mean ± std`` of a result over seeds, as every table writes it."""
    import numpy as np

    return f'{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}'


def runner_latency(bundle: Path, calls: int = 200, warmup: int = 20) -> tuple[float, float]:
    """(p50, p99) ms of one inference at batch 1 on one CPU thread through ``PolicyRunner``."""
    from dgm_policy_ros.runtime import PolicyRunner

    runner = PolicyRunner(bundle, backend='onnxruntime-cpu', threads=1)
    inputs = runner.zero_inputs(1)
    for _ in range(warmup):
        runner.infer(inputs)
    runner.latencies_ms.clear()
    for _ in range(calls):
        runner.infer(inputs)
    lat = runner.latency_percentiles()
    return lat['p50_ms'], lat['p99_ms']


def write_result(name: str, title: str, body: str) -> Path:
    """Write bench/results/<name>.md with a header naming the machine and the command.

    What a person writes about a table (where its runs were made, what changed since) lives in
    bench/results/<name>.notes.md and is appended to every rewrite: tables built from cached
    runs are rebuilt often (more seeds, ``--table-only``), and text edited into the table
    itself would be lost each time."""
    command = 'python ' + ' '.join(shlex.quote(a) for a in invocation())
    text = (f'# {title}\n\n'
            f'- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}\n'
            f'- machine: {machine_description()}\n'
            f'- command: `{command}`\n\n{body}\n')
    notes = RESULTS / f'{name}.notes.md'
    if notes.is_file():
        text += f'\n{notes.read_text().strip()}\n'
    return atomic_write_text(RESULTS / f'{name}.md', text)


def trained_with(run: Path):
    """The whole algorithm config a finished or interrupted run was trained with."""
    import yaml

    from dgm_policy_ros.training.trainer import TrainConfig

    saved = TrainConfig.from_dict(yaml.safe_load((run / 'config.yaml').read_text()))
    return saved.algorithm_config(saved=True)


def trained_as(run: Path, algo: str, algo_config: dict | None) -> bool:
    """Whether ``run`` was trained with what ``algo_config`` asks for today."""
    from dgm_policy_ros.training.registry import get_algorithm

    return trained_with(run) == get_algorithm(algo).config_class.from_dict(algo_config or {})


def ensure_run(run: Path, dataset: str, steps: int, seed: int, algo: str = 'diffusion_bc',
               algo_config: dict | None = None) -> None:
    """Train ``run`` unless it has finished with these settings (resuming it if it was
    interrupted). A run trained with other settings, such as a default that has changed
    since, is trained again rather than measured as if it were this one."""
    import yaml

    if (run / 'config.yaml').is_file() and not trained_as(run, algo, algo_config):
        shutil.rmtree(run)
    if (run / 'model.safetensors').is_file():
        return
    resume = ['--resume'] if (run / 'checkpoints' / 'latest.json').is_file() else []
    config = []
    if algo_config:
        path = run.parent / f'{run.name}.yaml'  # not with_suffix: names may hold a '.'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({'algo_config': algo_config}))
        config = ['--config', str(path)]
    subprocess.run([sys.executable, '-m', 'dgm_policy_ros.cli.main', 'train', '--algo', algo,
                    '--dataset', dataset, '--steps', str(steps), '--seed', str(seed), '--out',
                    str(run), '--eval-every', '-1', '--threads', '1', '--quiet', *config,
                    *resume], check=True)


def ensure_bench_run(algo: str, settings: dict, dataset: str, steps: int, seed: int,
                     folder: Path) -> Path:
    """A run of ``algo`` with the policy benchmark's settings (bench/policies.py) changed by
    ``settings``: the benchmark's own run folder where it was trained so, else one trained (or
    reused) under ``folder``."""
    from policies import bench_settings, run_folder

    config = {**bench_settings(algo, steps), **settings}
    bench = run_folder(algo, dataset, seed, steps)
    if (bench / 'model.safetensors').is_file() and trained_as(bench, algo, config):
        return bench
    tag = ''.join(f'-{v}' for v in settings.values())
    run = folder / f"{algo}{tag}-{dataset.replace('/', '_')}-s{seed}-n{steps}"
    ensure_run(run, dataset, steps, seed, algo=algo, algo_config=config)
    return run
