# SPDX-License-Identifier: Apache-2.0
"""Atomic file and directory writes: a crash never leaves a half-written file behind.

Everything the project persists (checkpoints, manifests, split files, datasets) goes through
these helpers, so a reader sees either the old complete version or the new complete version.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
import shutil
import tempfile
from typing import Any, Iterator

import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory in a sibling staging folder; move it to ``path`` only on success.

    On any exception the staging folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f'{path} already exists (refusing to overwrite)')
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.staging', dir=path.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700 folders
    try:
        yield staging
        if path.exists():
            trash = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.old', dir=path.parent))
            os.replace(path, trash / 'old')
            os.replace(staging, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
