# SPDX-License-Identifier: Apache-2.0
"""Find the package's installed data (sim recipes, config, launch, models).

In a source checkout or editable install they sit at the repository root; after
``colcon build``/``pip install`` they are under ``share/dgm_policy_ros``. One lookup serves all.
"""
from __future__ import annotations

from pathlib import Path
import sys

PACKAGE = 'dgm_policy_ros'


def share_dirs() -> list[Path]:
    dirs = [Path(__file__).resolve().parents[1]]  # source checkout / editable install
    dirs.append(Path(sys.prefix) / 'share' / PACKAGE)
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 - not on a ROS install, or package not indexed
        pass
    return dirs


def share_path(*parts: str) -> Path:
    """Path of an installed data file, e.g. ``share_path('sim', 'recipes', 'd4rl.yaml')``."""
    for base in share_dirs():
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f'{Path(*parts)} not found in {[str(d) for d in share_dirs()]}')
