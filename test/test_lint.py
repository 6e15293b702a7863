# SPDX-License-Identifier: Apache-2.0
"""ament-style linters: flake8/pep257 rules through ruff, and a license line on every source."""
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ('dgm_policy_ros', 'test', 'bench', 'launch', 'sim')
           for p in sorted((ROOT / folder).rglob('*.py'))] + [ROOT / 'setup.py']


def _ruff():
    exe = shutil.which('ruff', path=str(Path(sys.executable).parent)) or shutil.which('ruff')
    if exe is None:
        pytest.skip('ruff not installed (pip install -e .[test])')
    return exe


def test_ruff_flake8_and_pep257_rules():
    result = subprocess.run([_ruff(), 'check', '--no-cache', str(ROOT)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_source_has_a_license_line():
    missing = [str(p.relative_to(ROOT)) for p in SOURCES
               if 'SPDX-License-Identifier: Apache-2.0' not in p.read_text().splitlines()[0]]
    assert not missing, f'add "# SPDX-License-Identifier: Apache-2.0" as line 1 of {missing}'
