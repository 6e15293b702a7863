# SPDX-License-Identifier: Apache-2.0
"""Synthetic transitions on disk: safetensors arrays (observations, actions, rewards,
next_observations, terminals) plus JSON provenance in its metadata; no pickle. Written
atomically. They are single transitions, not episodes, so they live beside a Minari dataset
rather than in one."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dgm_policy_ros.data.episodes import DatasetError
from dgm_policy_ros.utils.atomic import atomic_write_bytes

KEYS = ('observations', 'actions', 'rewards', 'next_observations', 'terminals')


def save_transitions(path: str | Path, arrays: dict[str, np.ndarray],
                     provenance: dict[str, Any]) -> Path:
    from safetensors.numpy import save

    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise DatasetError(f'synthetic transitions lack {missing}')
    n = len(arrays['rewards'])
    if any(len(arrays[k]) != n for k in KEYS):
        raise DatasetError('synthetic transition arrays differ in length')
    data = {k: np.ascontiguousarray(arrays[k], dtype=np.float32) for k in KEYS}
    path = Path(path)
    atomic_write_bytes(path, save(data, metadata={'dgm_provenance': json.dumps(provenance)}))
    return path


def load_transitions(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such transitions file')
    try:
        with safe_open(str(path), 'numpy') as handle:
            arrays = {k: handle.get_tensor(k) for k in handle.keys()}
            meta = handle.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own types
        raise DatasetError(f'{path} is not a transitions file: {exc}') from exc
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise DatasetError(f'{path} lacks {missing}')
    return arrays, json.loads(meta.get('dgm_provenance', '{}'))
