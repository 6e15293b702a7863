# SPDX-License-Identifier: Apache-2.0
"""MetaWorld demonstration sets with camera frames: size on disk, collection and load time
(bench/results/image_datasets.md).

Each dataset is the scripted expert's episodes with LeRobot's MetaWorld view rendered at every
step (``dgm collect --images``), frames JPEG-compressed by Minari; load time is
``load_dataset`` (every frame decoded), which training pays once per run.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.common import Table, write_result
from bench.manipulation import TASKS


def folder_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument('--demos', nargs='+', type=int, default=[50, 10])
    parser.add_argument('--size', type=int, default=96)
    args = parser.parse_args()

    from dgm_policy_ros.data.minari_io import datasets_root, load_dataset

    table = Table('task', 'demonstrations', 'frames', 'MB on disk', 'kB per frame',
                  'raw / on disk', 'collection s', 'frames/s collected', 'load s', echo=True)
    for task in args.tasks:
        for demos in args.demos:
            dataset = f'bench/datasets-{task}-d{demos}-px{args.size}-v0'
            started = time.perf_counter()
            subprocess.run([sys.executable, '-m', 'dgm_policy_ros.cli.main', 'collect', '--env',
                            f'metaworld/{task}', '--agent', 'expert', '--episodes', str(demos),
                            '--images', '--image-size', str(args.size), '--out', dataset,
                            '--overwrite', '--quiet'], check=True, capture_output=True)
            collected = time.perf_counter() - started
            started = time.perf_counter()
            loaded = load_dataset(dataset)
            load_s = time.perf_counter() - started
            frames = sum(len(ep) + 1 for ep in loaded.episodes)
            size = folder_bytes(datasets_root() / dataset)
            raw = frames * args.size * args.size * 3
            table.add(task, demos, frames, f'{size / 1e6:.1f}', f'{size / frames / 1e3:.1f}',
                      f'{raw / size:.1f}x', f'{collected:.1f}', f'{frames / collected:.0f}',
                      f'{load_s:.2f}')
    body = '\n'.join([
        f"Scripted-expert demonstrations, {args.size} px frames of one camera (LeRobot's "
        'MetaWorld view), episodes ending at success; collection includes the process start '
        'and the expert; one CPU process on this machine.', '', *table.lines()])
    print(body)
    write_result('image_datasets', 'MetaWorld demonstrations with camera frames', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
