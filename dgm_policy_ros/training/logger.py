# SPDX-License-Identifier: Apache-2.0
"""Training logs: a long-format CSV (step, tag, value) and TensorBoard scalars.

Long format because losses appear at different rates (TD3's delayed actor updates); on resume
the CSV is cut back to the checkpoint's step so no row is duplicated.
"""
from __future__ import annotations

import csv
from pathlib import Path
import time

from dgm_policy_ros.utils.atomic import atomic_write_text

HEADER = ['step', 'tag', 'value', 'wall_time']


class RunLogger:
    def __init__(self, run_dir: Path, resume_step: int | None = None,
                 tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / 'metrics.csv'
        if resume_step is not None and self.path.is_file():
            self._truncate(resume_step)
        new = not self.path.is_file()
        self.handle = open(self.path, 'a', newline='')
        self.writer = csv.writer(self.handle)
        if new:
            self.writer.writerow(HEADER)
            self.handle.flush()
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / 'tensorboard'),
                                    purge_step=resume_step)

    def _truncate(self, step: int) -> None:
        """Keep the rows up to ``step``; drop a half-written last row left by a kill."""
        with open(self.path, newline='') as handle:
            rows = list(csv.reader(handle))
        kept = [HEADER]
        for row in rows[1:]:
            try:
                if len(row) == len(HEADER) and int(row[0]) <= step:
                    float(row[2]), float(row[3])
                    kept.append(row)
            except ValueError:
                continue
        atomic_write_text(self.path, ''.join(','.join(r) + '\n' for r in kept))

    def log(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        for tag, value in values.items():
            self.writer.writerow([step, tag, f'{value:.6g}', f'{now:.3f}'])
            if self.tb is not None:
                self.tb.add_scalar(tag, value, step)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    with open(Path(run_dir) / 'metrics.csv', newline='') as handle:
        for row in csv.DictReader(handle):
            series.setdefault(row['tag'], []).append((int(row['step']), float(row['value'])))
    return series


def plot_learning_curve(run_dir: Path, title: str) -> Path:
    """PNG of losses and evaluation score against gradient steps."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    series = read_metrics(run_dir)
    losses = [t for t in series if t.startswith('train/')]
    evals = [t for t in series if t.startswith('eval/') and 'score' in t]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for tag in losses:
        steps, values = zip(*series[tag])
        axes[0].plot(steps, values, label=tag[len('train/'):])
    axes[0].set(xlabel='gradient step', ylabel='loss', title='training losses')
    if losses:
        axes[0].legend(fontsize=8)
    for tag in evals:
        steps, values = zip(*series[tag])
        axes[1].plot(steps, values, marker='o', label=tag)
    axes[1].set(xlabel='gradient step', ylabel='normalized score', title='evaluation')
    if evals:
        axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(run_dir) / 'learning_curve.png'
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
