# SPDX-License-Identifier: Apache-2.0
"""``dgm export`` for world models: the same bundle format, ``kind: world_model``.

The graph is ``(obs, action, *noise) -> prediction (B, obs + 2)``: the predicted next
observation, the reward and the uncertainty in one output, so every backend that runs a policy
(TensorRT included, which these bundles then get for free) runs it too. The manifest also
records ``residual_scale``, the median prediction residual on held-out episodes, which turns
a residual into an anomaly score (``WorldModelRunner.anomaly``).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dgm_policy_ros.export.onnx_export import (
    EXPORTER_PACKAGES,
    OPSET,
    PARITY_ATOL,
    ExportError,
    _read_json,
    copy_trained_model,
    export_onnx,
    max_abs_error,
)
from dgm_policy_ros.runtime.bundle import FORMAT_VERSION, MANIFEST, load_bundle
from dgm_policy_ros.training.run_folder import load_run
from dgm_policy_ros.utils.atomic import atomic_directory, atomic_write_yaml
from dgm_policy_ros.utils.hashing import sha256_file
from dgm_policy_ros.utils.versions import package_versions


class WorldModelStep(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor, action: torch.Tensor, *noise: torch.Tensor):
        next_obs, reward, uncertainty = self.model.step(obs, action, *noise)
        return torch.cat([next_obs, reward.unsqueeze(-1), uncertainty.unsqueeze(-1)], -1)


def _inputs(model, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    spec = model.spec
    obs = spec.stats.obs_mean + spec.stats.obs_std * rng.standard_normal((batch, spec.obs_dim))
    act = rng.uniform(spec.act_low, spec.act_high, (batch, spec.act_dim))
    return [obs.astype(np.float32), act.astype(np.float32), *model.draw_noise(batch, rng)]


def residual_scale(model, episodes, rng: np.random.Generator) -> float:
    """Median normalized residual |(s' - prediction) / obs_std| on held-out transitions."""
    from dgm_policy_ros.data.transitions import flatten_episodes

    data = flatten_episodes(episodes)
    index = rng.choice(len(data), size=min(len(data), 4096), replace=False)
    pred, _, _ = model.predict_step(data.observations[index], data.actions[index], rng)
    residual = (data.next_observations[index] - pred) / model.spec.stats.obs_std
    return float(np.median(np.linalg.norm(residual, axis=1)))


def export_world_model(run_dir: str | Path, out: str | Path, overwrite: bool = False,
                       seed: int = 0) -> Path:
    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.normalization import DatasetSplit

    run_dir, out = Path(run_dir), Path(out)
    model, cfg, info = load_run(run_dir)
    if model.kind != 'world_model':
        raise ExportError(f'{run_dir} holds a policy: use export_bundle')
    rng = np.random.default_rng(seed)
    module = WorldModelStep(model).eval()
    noise = model.noise_specs()
    names = ['obs', 'action'] + [n.name for n in noise]
    ds = load_dataset(cfg.dataset)
    split = DatasetSplit.load_or_create(ds.path, ds.episodes, cfg.val_fraction, cfg.seed)
    held_out = [ds.episodes[i] for i in split.val_episodes] or ds.episodes
    scale = residual_scale(model, held_out, rng)
    spec = model.spec
    with atomic_directory(out, overwrite=overwrite) as tmp:
        export_onnx(module, _inputs(model, 2, rng), names, 'prediction',
                    tmp / 'world_model.onnx')
        error = max_abs_error(tmp / 'world_model.onnx', module, _inputs(model, 64, rng), names)
        if error > PARITY_ATOL * 10:
            raise ExportError(f'ONNX Runtime differs from torch by {error:.3g} on {run_dir}')
        files = {'world_model.onnx': sha256_file(tmp / 'world_model.onnx'),
                 **copy_trained_model(run_dir, tmp)}
        result = _read_json(run_dir / 'result.json')
        manifest: dict[str, Any] = {
            'format_version': FORMAT_VERSION, 'kind': 'world_model', 'algorithm': cfg.algo,
            'family': model.family,
            'observation': {'size': spec.obs_dim,
                            'names': [f'obs_{i}' for i in range(spec.obs_dim)]},
            'action': {'size': spec.act_dim, 'names': [f'action_{i}' for i in
                                                       range(spec.act_dim)],
                       'low': spec.act_low.tolist(), 'high': spec.act_high.tolist(),
                       'trained': {'low': spec.act_low.tolist(),
                                   'high': spec.act_high.tolist()}},
            'normalization': {'baked_into_graph': True,
                              'obs_mean': spec.stats.obs_mean.tolist(),
                              'obs_std': spec.stats.obs_std.tolist()},
            'chunk_size': 1, 'n_action_steps': 1, 'history_length': 1, 'history': None,
            'inputs': [{'name': 'obs', 'shape': ['batch', spec.obs_dim], 'dtype': 'float32'},
                       {'name': 'action', 'shape': ['batch', spec.act_dim],
                        'dtype': 'float32'}] + [
                {'name': n.name, 'shape': ['batch', *n.shape], 'dtype': 'float32'}
                for n in noise],
            'outputs': [{'name': 'prediction', 'shape': ['batch', spec.obs_dim + 2],
                         'dtype': 'float32',
                         'layout': ['next_observation'] * spec.obs_dim +
                                   ['reward', 'uncertainty']}],
            'noise_inputs': [n.to_dict() for n in noise],
            'residual_scale': scale,
            'graphs': {'world_model': 'world_model.onnx'},
            'files': files,
            'parity': {'onnxruntime_vs_torch_max_abs_error': {'fp32': error}},
            'training': {'run': str(run_dir), 'dataset_id': info.get('dataset_id'),
                         'env_id': info.get('env_id'), 'steps': result.get('steps'),
                         'held_out_metrics': {k: v for k, v in result.items()
                                              if k.startswith(('one_step', 'open_loop',
                                                               'reward_mse'))},
                         'algo_config': info.get('algo_config')},
            'exporter': {'opset': OPSET, 'versions': package_versions(EXPORTER_PACKAGES),
                         'date': dt.datetime.now(dt.timezone.utc).isoformat(
                             timespec='seconds')},
        }
        atomic_write_yaml(tmp / MANIFEST, manifest)
        load_bundle(tmp)
    return out
