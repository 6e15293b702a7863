# SPDX-License-Identifier: Apache-2.0
"""Reading and writing a run folder's model: ``config.yaml``, ``spec.json``, the weights.

The trainer writes run folders through these; export, retraining and evaluation read them
through these, so neither side imports the other.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.normalization import NormalizationStats
from dgm_policy_ros.training.algorithm import Algorithm, DataSpec
from dgm_policy_ros.training.checkpoint import load_weights
from dgm_policy_ros.training.registry import get_algorithm
from dgm_policy_ros.training.train_config import TrainConfig


def spec_to_dict(spec: DataSpec) -> dict[str, Any]:
    out = {'obs_dim': spec.obs_dim, 'act_dim': spec.act_dim, 'stats': spec.stats.to_dict(),
           'act_low': spec.act_low.tolist(), 'act_high': spec.act_high.tolist(),
           'return_max': spec.return_max}
    if spec.image_shapes:
        out.update(image_shapes={c: list(s) for c, s in spec.image_shapes.items()},
                   state_indices=list(spec.state_indices) if spec.state_indices else None,
                   cameras=list(spec.cameras))
    return out


def spec_from_dict(data: dict[str, Any]) -> DataSpec:
    return DataSpec(int(data['obs_dim']), int(data['act_dim']),
                    NormalizationStats.from_dict(data['stats']),
                    np.asarray(data['act_low'], np.float32),
                    np.asarray(data['act_high'], np.float32),
                    float(data.get('return_max', 0.0)),
                    {str(c): tuple(int(d) for d in s)
                     for c, s in (data.get('image_shapes') or {}).items()},
                    tuple(data['state_indices']) if data.get('state_indices') else None,
                    tuple(data.get('cameras') or ()))


def weights_bytes(algo: Algorithm) -> bytes:
    """A run folder's ``model.safetensors``: the algorithm's weights, on the CPU."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in algo.state_dict().items()})


def load_run(run_dir: str | os.PathLike, weights: str = 'model.safetensors',
             overrides: dict[str, Any] | None = None
             ) -> tuple[Algorithm, TrainConfig, dict[str, Any]]:
    """Rebuild a trained algorithm from its run folder (for export and evaluation).

    ``overrides`` changes algorithm settings that leave the weights as they are, the
    deploy-time choices (a diffusion policy's ``sampling_steps``, a dt's ``target_return``);
    one that changes the weights' shapes fails to load, loudly.
    """
    run_dir = Path(run_dir)
    cfg = TrainConfig.from_dict(read_yaml(run_dir / 'config.yaml'))
    resolved = cfg.algorithm_config(saved=True).to_dict()  # what the weights were trained with
    cfg = dataclasses.replace(cfg, algo_config={**resolved, **(overrides or {})})
    info = json.loads((run_dir / 'spec.json').read_text())
    algo = get_algorithm(cfg.algo)(cfg.algorithm_config(), spec_from_dict(info['spec']))
    load_weights(trained_weights(run_dir, weights), algo)
    algo.eval()
    return algo, cfg, info


def trained_weights(run_dir: Path, weights: str = 'model.safetensors') -> Path:
    """The run's final weights, or its latest checkpoint's for a run stopped early."""
    path = run_dir / weights
    if not path.is_file():
        ckpt = json.loads((run_dir / 'checkpoints' / 'latest.json').read_text())
        path = run_dir / 'checkpoints' / ckpt['weights']
    return path


def read_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise ConfigError(f'{path} not found: not a training run folder')
    return yaml.safe_load(path.read_text())
