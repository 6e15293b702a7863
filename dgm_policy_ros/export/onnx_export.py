# SPDX-License-Identifier: Apache-2.0
"""``dgm export RUN_DIR --out models/NAME``: write a verified model bundle.

Steps: rebuild the trained model from its run folder, export ``export_module()`` to ONNX
(opset 17, dynamic batch), check ONNX Runtime against torch on random inputs with fixed noise
(fails loudly past the tolerance), make and measure an fp16 variant (fp32 I/O), write the
manifest with every file's sha256, all inside a staging folder moved into place at the end.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
import shutil
from typing import Any

import numpy as np
import torch

from dgm_policy_ros.errors import DgmError
from dgm_policy_ros.runtime.bundle import FORMAT_VERSION, MANIFEST, load_bundle
from dgm_policy_ros.training.run_folder import load_run, trained_weights
from dgm_policy_ros.utils.atomic import atomic_directory, atomic_write_yaml
from dgm_policy_ros.utils.hashing import sha256_file
from dgm_policy_ros.utils.versions import package_versions

OPSET = 17
EXPORTER_PACKAGES = ('dgm_policy_ros', 'torch', 'onnx', 'onnxruntime', 'onnxconverter-common')
PARITY_ATOL = 1e-5
# ... plus this fraction of the row's largest output: float32 rounding in a deep or iterated
# graph grows with the magnitudes it carries (docs/formats.md).
PARITY_RTOL = 1e-4


class ExportError(DgmError, RuntimeError):
    """The exported graph does not reproduce the trained model."""


def _example_inputs(algo, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random inputs in the range the model meets: observations around the data's statistics,
    camera frames of random pixels, and for sequence policies whole history windows of random
    valid lengths."""
    spec, stats = algo.spec, algo.spec.stats
    history = algo.history_spec()
    k = history.length if history else 1
    obs = stats.obs_mean + stats.obs_std * rng.standard_normal((batch, k, spec.obs_dim))
    images = [rng.integers(0, 256, (batch, *spec.image_shapes[name.split('/', 1)[1]]),
                           dtype=np.uint8) for name in algo.image_inputs()]
    if history is None:
        return [obs[:, 0].astype(np.float32), *images, *algo.draw_noise(batch, rng)]
    windows = {name: rng.integers(0, 256, (batch, k, *frames.shape[1:]), dtype=np.uint8)
               for name, frames in zip(algo.image_inputs(), images)}
    steps = rng.integers(1, 2 * k, size=batch)  # episode steps so far; < k: padded window
    valid = (np.arange(k)[None, :] >= k - np.minimum(steps, k)[:, None]).astype(np.float32)
    unit = rng.uniform(-1, 1, (batch, k, spec.act_dim))
    fields = {
        'obs': obs,
        'past_actions': spec.act_low + (unit + 1) / 2 * (spec.act_high - spec.act_low),
        'returns_to_go': (history.target_return or 1.0) * rng.uniform(0, 1.2, (batch, k, 1)),
        'timesteps': np.maximum(steps[:, None] - k + np.arange(k)[None, :], 0),
        'mask': valid,
    }
    for name in ('obs', 'past_actions', 'returns_to_go'):
        fields[name] = fields[name] * valid[..., None]
    fields['timesteps'] = fields['timesteps'] * valid
    return [windows[name] if name in windows else fields[name].astype(np.float32)
            for name in algo.input_names()] + algo.draw_noise(batch, rng)


def export_onnx(module: torch.nn.Module, example: list[np.ndarray], names: list[str],
                output: str, path: Path) -> None:
    # The TorchScript-based exporter (dynamo=False): static control flow, no extra
    # dependency (the dynamo exporter needs onnxscript), and dynamic_axes for the batch.
    tensors = tuple(torch.from_numpy(x) for x in example)
    torch.onnx.export(
        module, tensors, str(path), input_names=names,
        output_names=[output], opset_version=OPSET, dynamo=False,
        dynamic_axes={**{n: {0: 'batch'} for n in names}, output: {0: 'batch'}})
    with torch.no_grad():
        out_shape = tuple(module(*tensors).shape)
    _pin_static_dims(path, {**{n: x.shape for n, x in zip(names, example)},
                            output: out_shape})


def _pin_static_dims(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Only the batch dimension may be dynamic: the exporter sometimes leaves others symbolic
    (e.g. 'Addactions_dim_1'), which TensorRT optimization profiles cannot take."""
    import onnx

    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(list(dims)[1:], shapes[value.name][1:]):
            dim.Clear()
            dim.dim_value = int(size)
        dims[0].Clear()
        dims[0].dim_param = 'batch'
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


FP16_ROW_TOLERANCE = 1e-2  # an fp16 action this far off is a different choice, not rounding
# A policy that picks one of several candidates by a score (Q) may pick another on a near tie
# when float rounding differs, even in fp32 (idql on halfcheetah at temperature 0.5, argmax:
# 1 of 64 rows): the rows off are allowed up to this fraction, and recorded. A graph that is
# wrong is off on most rows.
FP32_CHOICE_ROWS_OFF = 0.05


def check_fp32_parity(rows: np.ndarray, atol: float, chooses: bool, what: str,
                      scales: np.ndarray | float = 0.0, rtol: float = PARITY_RTOL
                      ) -> tuple[float, dict[str, Any]]:
    """The fp32 graph's error on the rows where it acts as torch does (within ``atol`` plus
    ``rtol`` times the row's ``scales``, its largest torch output), and how many rows it acts
    otherwise on; an ExportError when those are more than a choosing policy's near ties
    explain (any, for a policy that does not choose)."""
    off = rows > atol + rtol * np.asarray(scales)
    allowed = int(FP32_CHOICE_ROWS_OFF * len(rows)) if chooses else 0
    if off.sum() > allowed:
        raise ExportError(f'ONNX Runtime differs from torch by up to {rows.max():.3g} '
                          f"(> {atol} + {rtol} x the row's largest output) on "
                          f'{int(off.sum())} of {len(rows)} checked rows of {what}: the export '
                          'is wrong')
    error = float(rows[~off].max()) if (~off).any() else 0.0
    return error, {'tolerance': atol, 'relative_tolerance': rtol, 'rows': len(rows),
                   'over': int(off.sum())}


def max_abs_error(onnx_path: Path, module: torch.nn.Module, inputs: list[np.ndarray],
                  names: list[str]) -> float:
    return float(row_errors(onnx_path, module, inputs, names)[0].max())


def row_errors(onnx_path: Path, module: torch.nn.Module, inputs: list[np.ndarray],
               names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """max |ONNX Runtime - torch| per input row, and max |torch| per row (the scale rounding
    grows with): a policy that chooses among candidates can be off by a whole action on the
    few rows where rounding flips the choice, and exact elsewhere; the rows tell that apart
    from a graph that is off everywhere."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    got = session.run(None, dict(zip(names, inputs)))[0]
    with torch.no_grad():
        want = module(*[torch.from_numpy(x) for x in inputs]).numpy()
    if got.shape != want.shape:
        raise ExportError(f'{onnx_path.name}: output shape {got.shape} != torch {want.shape}')
    return (np.abs(got.astype(np.float64) - want).reshape(len(got), -1).max(1),
            np.abs(want.astype(np.float64)).reshape(len(want), -1).max(1))


INTEGER_TYPES = (2, 3, 4, 5, 6, 7, 12, 13)  # onnx.TensorProto's (U)INT8/16/32/64


def to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and arithmetic, fp32 inputs/outputs (what TensorRT's strongly typed mode
    and fp16 ONNX Runtime sessions consume)."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    # Casts from integers (camera frames) to float stay fp32 casts: the converter retypes
    # their outputs but not what follows, and ONNX Runtime refuses the graph.
    typed = onnx.shape_inference.infer_shapes(model).graph
    integer = {v.name for v in [*typed.input, *typed.value_info]
               if v.type.tensor_type.elem_type in INTEGER_TYPES}
    casts = [n.name for n in model.graph.node if n.op_type == 'Cast' and n.input[0] in integer]
    model = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=casts)
    onnx.save(model, str(dst))


def export_bundle(run_dir: str | Path, out: str | Path, *, fp16: bool = True,
                  overwrite: bool = False, control_rate_hz: float | None = None,
                  parity_atol: float = PARITY_ATOL, seed: int = 0,
                  parent: str | None = None,
                  overrides: dict[str, Any] | None = None) -> Path:
    """``overrides``: deploy-time algorithm settings (e.g. ``{'sampling_steps': 5}``)."""
    run_dir, out = Path(run_dir), Path(out)
    algo, cfg, info = load_run(run_dir, overrides=overrides)
    if algo.kind == 'world_model':
        from dgm_policy_ros.export.world_model_export import export_world_model

        return export_world_model(run_dir, out, overwrite=overwrite, seed=seed)
    module = algo.export_module().eval()
    rng = np.random.default_rng(seed)
    noise_specs = algo.noise_specs()
    names = algo.input_names() + [n.name for n in noise_specs]
    result = _read_json(run_dir / 'result.json')
    env_id = info.get('env_id')
    with atomic_directory(out, overwrite=overwrite) as tmp:
        graphs, errors = {'policy': 'policy.onnx'}, {}
        export_onnx(module, _example_inputs(algo, 2, rng), names, 'actions', tmp / 'policy.onnx')
        check = _example_inputs(algo, 64, rng)
        rows, scales = row_errors(tmp / 'policy.onnx', module, check, names)
        errors['fp32'], fp32_rows_off = check_fp32_parity(
            rows, parity_atol, algo.chooses_among_candidates, str(run_dir), scales)
        if fp16:
            to_fp16(tmp / 'policy.onnx', tmp / 'policy_fp16.onnx')
            graphs['policy_fp16'] = 'policy_fp16.onnx'
            rows = row_errors(tmp / 'policy_fp16.onnx', module, check, names)[0]
            errors['fp16'] = float(rows.max())
            rows_off = {'tolerance': FP16_ROW_TOLERANCE, 'rows': len(rows),
                        'over': int((rows > FP16_ROW_TOLERANCE).sum())}
        sampler = None
        plain_ddim = not algo.noise_specs()[1:] and not algo.image_inputs()
        if 'denoise_step' in algo.extra_graphs and plain_ddim:
            sampler = _export_sampling_steps(algo, tmp, rng, graphs)
        if 'log_prob' in algo.extra_graphs:
            graphs['log_prob'] = 'log_prob.onnx'
            _export_log_prob(algo, tmp / 'log_prob.onnx', rng)
        files = {name: sha256_file(tmp / name) for name in graphs.values()}
        files.update(copy_trained_model(run_dir, tmp))
        manifest = _manifest(algo, cfg, info, result, names, noise_specs, graphs, files,
                             errors, control_rate_hz or info.get('control_rate_hz') or
                             _control_rate(env_id), run_dir, parent)
        manifest['deploy_overrides'] = dict(overrides or {})
        manifest['parity']['fp32_rows_off'] = fp32_rows_off
        if fp16:  # how many checked observations the fp16 graph acts differently on
            manifest['parity']['fp16_rows_off'] = rows_off
        if sampler:
            manifest['sampler'] = sampler
        atomic_write_yaml(tmp / MANIFEST, manifest)
        load_bundle(tmp)  # what we wrote must pass the runtime's own checks
    return out


def _export_sampling_steps(algo, folder: Path, rng: np.random.Generator,
                           graphs: dict[str, str]) -> dict[str, Any]:
    """The runner-side alternative to the unrolled sampling loop: one DDIM step and the final
    decoding as two small graphs, with the per-step coefficients in the manifest."""
    obs, noise = _example_inputs(algo, 2, rng)[:2]
    coef = np.tile(np.asarray(algo.sampler.coefficients()[0], np.float32), (2, 1))
    export_onnx(algo.step_module().eval(), [obs, noise, coef], ['obs', 'x', 'coef'], 'x_next',
                folder / 'denoise_step.onnx')
    export_onnx(algo.decode_module().eval(), [noise], ['x'], 'actions', folder / 'decode.onnx')
    graphs.update(denoise_step='denoise_step.onnx', decode='decode.onnx')
    return {'kind': 'ddim', 'noise_input': algo.noise_specs()[0].name,
            'coefficients': ['t', 'abar', 'abar_prev', 'sigma'],
            'steps': algo.sampler.coefficients()}


def copy_trained_model(run_dir: Path, bundle: Path) -> dict[str, str]:
    """Put the trained model beside its graphs (``training/``: safetensors weights, config
    and spec), so `dgm retrain` can fine-tune it from the bundle alone; their hashes."""
    (bundle / 'training').mkdir()
    sources = {'model.safetensors': trained_weights(run_dir),
               'config.yaml': run_dir / 'config.yaml', 'spec.json': run_dir / 'spec.json'}
    hashes = {}
    for name, source in sources.items():
        shutil.copyfile(source, bundle / 'training' / name)
        hashes[f'training/{name}'] = sha256_file(bundle / 'training' / name)
    return hashes


class _LogProb(torch.nn.Module):
    def __init__(self, algo) -> None:
        super().__init__()
        self.algo = algo

    def forward(self, obs, action):
        return self.algo.log_prob(obs, action)


# Log densities are sums over dimensions and flow layers of terms that can be large (|log p| of
# tens is common): their float32 rounding grows with that scale, so the check is relative too.
LOG_PROB_ATOL, LOG_PROB_RTOL = 1e-3, 1e-3


def _export_log_prob(algo, path: Path, rng: np.random.Generator) -> None:
    obs = _example_inputs(algo, 2, rng)[0]
    act = np.clip(rng.standard_normal((2, algo.spec.act_dim)), -1, 1).astype(np.float32)
    module = _LogProb(algo).eval()
    export_onnx(module, [obs, act], ['obs', 'action'], 'log_prob', path)
    check_obs = _example_inputs(algo, 64, rng)[0]
    check_act = np.clip(rng.standard_normal((64, algo.spec.act_dim)), -1, 1).astype(np.float32)
    check_log_prob_parity(path, module, check_obs, check_act)


def check_log_prob_parity(path: Path, module: torch.nn.Module, obs: np.ndarray,
                          act: np.ndarray) -> float:
    """ONNX Runtime's log densities against torch's, within |err| <= atol + rtol |log p|;
    the largest error relative to that allowance."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = session.run(None, {'obs': obs, 'action': act})[0].astype(np.float64)
    with torch.no_grad():
        want = module(torch.from_numpy(obs), torch.from_numpy(act)).double().numpy()
    err = np.abs(got - want).reshape(-1)
    allowed = (LOG_PROB_ATOL + LOG_PROB_RTOL * np.abs(want)).reshape(-1)
    if not np.isfinite(got).all() or np.any(err > allowed):
        k = int(np.nanargmax(err / allowed)) if np.isfinite(got).all() else 0
        raise ExportError(f'log_prob graph differs from torch by {err[k]:.3g} at log p = '
                          f'{want.reshape(-1)[k]:.4g} (allowed {allowed[k]:.3g})')
    return float((err / allowed).max())


def _control_rate(env_id: str | None) -> float | None:
    if not env_id:
        return None
    try:
        import gymnasium as gym

        env = gym.make(env_id)
        rate = 1.0 / float(env.unwrapped.dt)
        env.close()
        return round(rate, 6)
    except Exception:  # noqa: BLE001 - not a Gymnasium env (e.g. a robot dataset)
        return None


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _camera_section(spec) -> dict[str, Any]:
    """What a policy that sees images was trained on: each camera's frame shape and the view it
    was rendered with (in simulation), and which dataset state elements ``obs`` holds."""
    if not spec.image_shapes:
        return {}
    views = {view.get('camera'): view for view in spec.cameras if isinstance(view, dict)}
    return {'images': {camera: {'shape': list(shape), 'encoding': 'rgb8' if shape[-1] == 3
                                else 'mono8', 'view': views.get(camera)}
                       for camera, shape in spec.image_shapes.items()},
            'state_indices': list(spec.state_indices) if spec.state_indices else None}


def _manifest(algo, cfg, info, result, names, noise_specs, graphs, files, errors, rate,
              run_dir, parent) -> dict[str, Any]:
    spec = algo.spec
    obs_names = [f'obs_{i}' for i in range(spec.obs_dim)]
    act_names = [f'action_{i}' for i in range(spec.act_dim)]
    chunk = algo.chunk_size
    history = algo.history_spec()
    if history is None:
        inputs = [{'name': 'obs', 'shape': ['batch', spec.obs_dim], 'dtype': 'float32'}]
        inputs += [{'name': name, 'shape': ['batch', *spec.image_shapes[name.split('/', 1)[1]]],
                    'dtype': 'uint8'} for name in algo.image_inputs()]
    else:
        shapes = history.input_shapes(spec.obs_dim, spec.act_dim)
        shapes.update({name: (history.length, *spec.image_shapes[name.split('/', 1)[1]])
                       for name in algo.image_inputs()})
        images = set(algo.image_inputs())
        inputs = [{'name': name, 'shape': ['batch', *shapes[name]],
                   'dtype': 'uint8' if name in images else 'float32'}
                  for name in algo.input_names()]
    return {
        'format_version': FORMAT_VERSION,
        'kind': 'policy',
        'algorithm': cfg.algo,
        'family': algo.family,
        'observation': {'size': spec.obs_dim, 'names': obs_names, **_camera_section(spec)},
        'action': {'size': spec.act_dim, 'names': act_names,
                   'low': spec.act_low.tolist(), 'high': spec.act_high.tolist(),
                   # the range the model was trained on: a bundle edited wider is refused
                   'trained': {'low': spec.act_low.tolist(), 'high': spec.act_high.tolist()}},
        'normalization': {'baked_into_graph': True,
                          'obs_mean': spec.stats.obs_mean.tolist(),
                          'obs_std': spec.stats.obs_std.tolist()},
        'history_length': history.length if history else 1,
        'history': history.to_dict() if history else None,
        'chunk_size': chunk,
        'n_action_steps': algo.n_action_steps,
        'inputs': inputs + [{'name': n.name, 'shape': ['batch', *n.shape], 'dtype': 'float32'}
                            for n in noise_specs],
        'outputs': [{'name': 'actions', 'shape': ['batch', chunk, spec.act_dim],
                     'dtype': 'float32'}],
        'noise_inputs': [n.to_dict() for n in noise_specs],
        'control_rate_hz': rate,
        'graphs': graphs,
        'files': files,
        'parity': {'onnxruntime_vs_torch_max_abs_error': errors},
        'training': {'run': str(run_dir), 'dataset_id': info.get('dataset_id'),
                     'env_id': info.get('env_id'), 'steps': result.get('steps'),
                     'score_mean': result.get('score_mean'),
                     'eval_env_seed': 10_000 + int(cfg.seed),
                     'return_mean': result.get('return_mean'),
                     'algo_config': info.get('algo_config')},
        'parent': parent,
        'exporter': {'opset': OPSET, 'versions': package_versions(EXPORTER_PACKAGES),
                     'date': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')},
    }
