# SPDX-License-Identifier: Apache-2.0
"""What every bench/ script writes with its table: the machine and the exact command."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
import platform
import shlex
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
    return (f'{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; '
            f'Python {platform.python_version()}')


def write_result(name: str, title: str, body: str) -> Path:
    """Write bench/results/<name>.md with a header naming the machine and the command."""
    command = 'python ' + ' '.join(shlex.quote(a) for a in sys.argv)
    text = (f'# {title}\n\n'
            f'- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}\n'
            f'- machine: {machine_description()}\n'
            f'- command: `{command}`\n\n{body}\n')
    return atomic_write_text(RESULTS / f'{name}.md', text)
