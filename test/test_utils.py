# SPDX-License-Identifier: Apache-2.0
"""Atomic writes keep ordinary permissions and never leave partial files."""
import os
import stat

import pytest

from dgm_policy_ros.utils.atomic import atomic_directory, atomic_write_text


def test_atomic_files_and_folders_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / 'a.yaml', 'x: 1\n')
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        with atomic_directory(tmp_path / 'bundle') as staging:
            (staging / 'f').write_text('y')
        assert stat.S_IMODE((tmp_path / 'bundle').stat().st_mode) == 0o755
    finally:
        os.umask(old)


def test_failed_directory_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / 'bundle') as staging:
            (staging / 'f').write_text('y')
            raise RuntimeError('crash')
    assert list(tmp_path.iterdir()) == []
