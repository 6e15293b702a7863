# SPDX-License-Identifier: Apache-2.0
"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, both atomic.

Layout of ``<run>/checkpoints/``: ``step_<N>.safetensors`` (model weights, optimizer moments,
torch RNG states, the GPU's too when one is used) and ``latest.json`` (step, file name and
sha256 of the weights, optimizer hyper-parameters, sampler RNG state). ``latest.json`` is
written last, so a crash at any point leaves it pointing at a complete weights file; older
weights are deleted only after.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save
import torch

from dgm_policy_ros.errors import DgmError
from dgm_policy_ros.training.device import module_device
from dgm_policy_ros.utils.atomic import atomic_write_bytes, atomic_write_json
from dgm_policy_ros.utils.hashing import sha256_file

LATEST = 'latest.json'


class CheckpointError(DgmError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model."""



def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for index, state in sd['state'].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f'optim/{name}/{index}/{key}'] = value.detach().clone().contiguous()
            else:
                scalars[f'{index}/{key}'] = value
    return tensors, {'param_groups': sd['param_groups'], 'scalars': scalars}


def save_checkpoint(folder: Path, step: int, model: torch.nn.Module,
                    optimizers: dict[str, torch.optim.Optimizer],
                    extra: dict[str, Any] | None = None, keep: int = 1) -> Path:
    folder = Path(folder)
    tensors = {f'model/{k}': v.detach().clone().contiguous()
               for k, v in model.state_dict().items()}
    optim_meta = {}
    for name, opt in optimizers.items():
        t, meta = _optimizer_tensors(name, opt)
        tensors.update(t)
        optim_meta[name] = meta
    tensors['rng/torch'] = torch.get_rng_state()
    device = module_device(model)
    if device.type == 'cuda':  # draws made on the GPU (training noise) resume exactly too
        tensors['rng/cuda'] = torch.cuda.get_rng_state(device)
    weights = folder / f'step_{step:09d}.safetensors'
    atomic_write_bytes(weights, save(tensors))
    atomic_write_json(folder / LATEST, {
        'step': step, 'weights': weights.name, 'sha256': sha256_file(weights),
        'optimizers': optim_meta, 'extra': extra or {},
    })
    older = sorted(folder.glob('step_*.safetensors'))[:-keep] if keep > 0 else []
    for path in older:
        if path != weights:
            path.unlink(missing_ok=True)
    return weights


def load_checkpoint(folder: Path, model: torch.nn.Module,
                    optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """Restore model, optimizers and torch RNG; return the JSON state (step, extra...)."""
    folder = Path(folder)
    meta_path = folder / LATEST
    if not meta_path.is_file():
        raise CheckpointError(f'no checkpoint in {folder} (missing {LATEST})')
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f'{meta_path} is not valid JSON: {exc}') from exc
    weights = folder / meta['weights']
    if not weights.is_file():
        raise CheckpointError(f'{meta_path} names {weights.name}, which does not exist')
    if sha256_file(weights) != meta['sha256']:
        raise CheckpointError(f'{weights} does not match the sha256 in {meta_path}: corrupt')
    tensors = load_file(str(weights))
    state = {k[len('model/'):]: v for k, v in tensors.items() if k.startswith('model/')}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f'{weights} does not fit the model: missing {missing}, '
                              f'unexpected {unexpected}')
    for name, opt in optimizers.items():
        if name not in meta['optimizers']:
            raise CheckpointError(f'{weights} has no state for optimizer {name!r}')
        om = meta['optimizers'][name]
        opt_state: dict[int, dict[str, Any]] = {}
        prefix = f'optim/{name}/'
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, field = key[len(prefix):].split('/', 1)
                opt_state.setdefault(int(index), {})[field] = value
        for key, value in om['scalars'].items():
            index, field = key.split('/', 1)
            opt_state.setdefault(int(index), {})[field] = value
        opt.load_state_dict({'state': opt_state, 'param_groups': om['param_groups']})
    torch.set_rng_state(tensors['rng/torch'])
    device = module_device(model)
    if 'rng/cuda' in tensors and device.type == 'cuda':
        torch.cuda.set_rng_state(tensors['rng/cuda'], device)
    return meta


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Load just the model weights (export, evaluation) from a checkpoint or final file."""
    tensors = load_file(str(path))
    state = {k[len('model/'):]: v for k, v in tensors.items() if k.startswith('model/')}
    model.load_state_dict(state or tensors)
