# SPDX-License-Identifier: Apache-2.0
"""The TensorRT device check: one command for a lent GPU machine (issue 26).

For every family (and a world model): a bundle trained briefly on a synthetic dataset and
exported; TensorRT engines built in fp32 and fp16 and run through ``PolicyRunner(backend=
'tensorrt')``; parity against ONNX Runtime on the CPU with the same seeded noise; the engine
cache reused on a second load, and an engine whose sidecar names another GPU refused (no
rebuild allowed) or rebuilt; batch-1 latency p50/p99 of TensorRT fp32/fp16, ONNX Runtime
(CUDA where it has the provider, else CPU) and torch eager on the GPU; then the test suite's
GPU and TensorRT tests. Writes ``tensorrt.md`` with the GPU, driver, CUDA and TensorRT versions.

    python -m bench.gpu_check --out "$OUT"            # on the GPU machine
    python -m bench.gpu_check --dry-run --calls 50    # here: ONNX Runtime stands in

The dry run exercises the same logic on the CPU: ONNX Runtime stands in for the engines, and a
stand-in engine builder (the ONNX bytes under the engine's name, with a real sidecar) drives
the real cache and mismatch code of ``runtime/tensorrt_engine.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator

import numpy as np

from bench.common import RESULTS, Table, machine_description, write_result

# Diffusion Policy as its paper deploys it, on the camera dataset: two 96 px frames, ResNet-18,
# the temporal U-Net at its widths (too slow for one CPU thread: image_latency.md):
# name -> (algorithm, settings).
VARIANTS = {'diffusion_policy_images': ('diffusion_bc', {
    'image_encoder': 'resnet18', 'denoiser': 'unet', 'hidden': [256, 512, 1024],
    'n_obs_steps': 2, 'batch_size': 8})}
FAMILIES = ['bc', 'td3bc', 'bcq', 'cvae_bc', 'gan_bc', 'flow_bc', 'dt', 'diffusion_bc', 'idql',
            'diffusion_ql', 'wm_ensemble', *VARIANTS]
OBS, ACT, PX = 6, 2, 96


def versions(dry_run: bool) -> dict[str, str]:
    """What the machine runs: GPU, driver, CUDA, TensorRT, ONNX Runtime and its providers."""
    import onnxruntime as ort
    import torch

    out = {'machine': machine_description(), 'torch': torch.__version__,
           'onnxruntime': ort.__version__,
           'onnxruntime providers': ', '.join(ort.get_available_providers())}
    try:
        import tensorrt

        out['tensorrt'] = tensorrt.__version__
    except ImportError:
        out['tensorrt'] = 'not installed' + (' (dry run: ONNX Runtime stands in)' if dry_run
                                             else '')
    if torch.cuda.is_available():
        out['gpu'] = torch.cuda.get_device_name(0)
        out['cuda (torch)'] = str(torch.version.cuda)
    try:
        smi = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=20)
        out['driver'] = smi.stdout.strip() or 'unknown'
    except (OSError, subprocess.TimeoutExpired):
        out['driver'] = 'no nvidia-smi'
    return out


def synthetic_dataset(dataset_id: str, images: bool = False) -> None:
    """A small random-walk dataset (the check needs graphs, not good policies); ``images``:
    with a camera of random frames."""
    import gymnasium as gym

    from dgm_policy_ros.data.episodes import Episode
    from dgm_policy_ros.data.minari_io import write_dataset

    rng = np.random.default_rng(0)
    episodes = []
    for i in range(8):
        steps = 60
        obs = np.cumsum(rng.normal(0, 0.3, (steps + 1, OBS)), 0).astype(np.float32)
        act = np.clip(rng.normal(0, 0.5, (steps, ACT)), -1, 1).astype(np.float32)
        rew = -np.abs(obs[1:, 0]).astype(np.float32)
        done = np.zeros(steps, bool)
        trunc = done.copy()
        trunc[-1] = True
        frames = {'front': rng.integers(0, 256, (steps + 1, PX, PX, 3), np.uint8)}
        episodes.append(Episode(i, obs, act, rew, done, trunc, frames if images else None))
    space = {} if images else {
        'observation_space': gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)}
    write_dataset(dataset_id, episodes, **space,
                  action_space=gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32), overwrite=True)


def make_bundle(name: str, work: Path, dataset: str, steps: int) -> tuple[Path, Path]:
    """(run folder, bundle) of ``name`` (a family at its default sizes, or a variant),
    trained ``steps`` steps."""
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    algo, settings = VARIANTS.get(name, (name, {}))
    run = work / 'runs' / name
    Trainer(TrainConfig(algo=algo, dataset=dataset, out=str(run), steps=steps, eval_every=-1,
                        checkpoint_every=steps, tensorboard=False, progress=False,
                        algo_config=settings)).run()
    return run, export_bundle(run, work / 'bundles' / name, overwrite=True)


@contextlib.contextmanager
def stand_in_engines() -> Iterator[None]:
    """Dry run: the engine code runs for real, with a GPU of sm 9.0, TensorRT 11's choice of
    source graph, and a builder that writes the ONNX bytes as the 'engine' (and the real
    sidecar)."""
    from dgm_policy_ros.runtime import tensorrt_engine as te
    from dgm_policy_ros.utils.atomic import atomic_write_bytes, atomic_write_json
    from dgm_policy_ros.utils.hashing import sha256_file

    def build(onnx_path, engine_path, precision='fp32', timing_cache=None, **_):
        atomic_write_bytes(engine_path, Path(onnx_path).read_bytes())
        atomic_write_json(Path(f'{engine_path}.json'), {
            'compute_capability': [9, 0], 'tensorrt_version': 'stand-in',
            'onnx_sha256': sha256_file(onnx_path), 'precision': precision})
        return Path(engine_path)

    def source(fp32_graph, fp16_graph, precision):  # TensorRT 11's rule: fp16 from fp16
        return Path(fp16_graph if precision == 'fp16' and fp16_graph else fp32_graph)

    saved = te.compute_capability, te.tensorrt_version, te.build_engine, te.source_graph
    te.compute_capability, te.tensorrt_version = (lambda device=0: (9, 0)), lambda: 'stand-in'
    te.build_engine, te.source_graph = build, source
    try:
        yield
    finally:
        te.compute_capability, te.tensorrt_version, te.build_engine, te.source_graph = saved


def engine_cache_checks(bundle: Path, precision: str) -> dict[str, str]:
    """The engine for ``precision``: built once, reused, a foreign one refused or rebuilt."""
    from dgm_policy_ros.runtime import load_bundle
    from dgm_policy_ros.runtime import tensorrt_engine as te

    loaded = load_bundle(bundle)
    fp16 = loaded.file('policy_fp16') if 'policy_fp16' in loaded.manifest['graphs'] else None
    key = 'policy' if loaded.manifest['kind'] == 'policy' else 'world_model'
    graph = te.source_graph(loaded.file(key), fp16, precision)
    started = time.perf_counter()
    engine = te.resolve_engine(graph, precision=precision, force_rebuild=True)
    built_s = time.perf_counter() - started
    stamp = engine.stat().st_mtime_ns
    reused = te.resolve_engine(graph, precision=precision) == engine and \
        engine.stat().st_mtime_ns == stamp
    sidecar = Path(f'{engine}.json')
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, 'compute_capability': [7, 5]}))  # another GPU's
    try:
        te.resolve_engine(graph, precision=precision, rebuild=False)
        refused = 'NOT refused'
    except te.EngineError as exc:
        refused = 'refused' if 'sm75' in str(exc) else f'refused: {exc}'
    rebuilt = te.resolve_engine(graph, precision=precision) == engine and \
        json.loads(sidecar.read_text())['compute_capability'] == meta['compute_capability']
    return {'build_s': f'{built_s:.1f}', 'reused': 'yes' if reused else 'NO',
            'foreign engine': refused + (', rebuilt' if rebuilt else ', NOT rebuilt')}


def parity(bundle: Path, backend: str, precision: str, rng: np.random.Generator) -> float:
    """max |backend - ONNX Runtime CPU| over 64 observations, both runners seeded alike."""
    from dgm_policy_ros.runtime import PolicyRunner, load_bundle
    from dgm_policy_ros.runtime.world_model_runner import WorldModelRunner

    loaded = load_bundle(bundle)
    obs = rng.normal(0, 1, (64, loaded.obs_size)).astype(np.float32)
    if loaded.image_inputs:  # random frames (or windows of them) beside the observations
        obs = {'obs': obs, **{name: rng.integers(0, 256, (64, *loaded.input_shapes[name]),
                                                  np.uint8)
                              for name in loaded.image_inputs}}
    if loaded.manifest['kind'] == 'world_model':
        action = rng.uniform(-1, 1, (64, loaded.act_size)).astype(np.float32)
        outs = [WorldModelRunner(bundle, backend=b, seed=0).predict(obs, action)[0]
                for b in (backend, 'onnxruntime-cpu')]
    else:
        def run(b):
            runner = PolicyRunner(bundle, backend=b, seed=0, precision=precision)
            if runner.history is None:
                return runner.infer(obs)
            return np.concatenate([runner.infer(runner.zero_inputs()) for _ in range(4)])
        outs = [run(backend), run('onnxruntime-cpu')]
    return float(np.abs(outs[0] - outs[1]).max())


def percentiles(call, calls: int) -> str:
    for _ in range(min(50, calls)):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    return f'{np.percentile(times, 50):.3f} / {np.percentile(times, 99):.3f}'


def latencies(run: Path, bundle: Path, dry_run: bool, calls: int) -> dict[str, str]:
    """Batch-1 p50 / p99 ms of each way to run the policy."""
    import onnxruntime as ort
    import torch

    from dgm_policy_ros.runtime import PolicyRunner, load_bundle
    from dgm_policy_ros.training.run_folder import load_run

    loaded = load_bundle(bundle)
    if loaded.manifest['kind'] != 'policy':
        return {}
    out = {}
    engine = 'onnxruntime-cpu' if dry_run else 'tensorrt'
    for precision in ('fp32', 'fp16'):
        runner = PolicyRunner(bundle, backend=engine, precision=precision, seed=0)
        inputs = runner.zero_inputs()
        label = f'TensorRT {precision}' + (' (stand-in)' if dry_run else '')
        out[label] = percentiles(lambda r=runner, i=inputs: r.infer(i), calls)
    cuda = 'CUDAExecutionProvider' in ort.get_available_providers()
    runner = PolicyRunner(bundle, backend='onnxruntime' if cuda else 'onnxruntime-cpu', seed=0)
    label = 'ONNX Runtime CUDA' if cuda else 'ONNX Runtime CPU'
    out[label] = percentiles(lambda: runner.infer(runner.zero_inputs()), calls)
    device = 'cuda' if torch.cuda.is_available() and not dry_run else 'cpu'
    algo = load_run(run)[0].to(device)
    module = algo.export_module().eval()
    rng = np.random.default_rng(0)
    zero = runner.zero_inputs()
    arrays = [zero[n] for n in loaded.input_names] if isinstance(zero, dict) else [zero]
    feeds = [torch.from_numpy(a).to(device) for a in arrays]
    noise = [torch.from_numpy(n).to(device) for n in algo.draw_noise(1, rng)]

    def eager():
        with torch.no_grad():
            module(*feeds, *noise)
            if device == 'cuda':
                torch.cuda.synchronize()

    out[f'torch eager {device}'] = percentiles(eager, calls)
    return out


def run_gpu_tests() -> str:
    """The suite's GPU and TensorRT tests: the pytest summary line."""
    root = RESULTS.parents[1]
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                             'test/test_tensorrt.py', '-k', 'tensorrt or engine or gpu or cuda',
                             '-rs'], cwd=root, capture_output=True, text=True, timeout=420)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else f'pytest exited {result.returncode}: {result.stderr[-300:]}'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dry-run', action='store_true',
                        help='on the CPU: ONNX Runtime stands in for TensorRT')
    parser.add_argument('--families', nargs='+', default=FAMILIES)
    parser.add_argument('--steps', type=int, default=20, help='training steps per bundle')
    parser.add_argument('--calls', type=int, default=2000, help='latency calls per way')
    parser.add_argument('--out', help='folder for tensorrt.md and report.json (default: '
                        'bench/results, or a temporary folder for a dry run)')
    parser.add_argument('--no-tests', action='store_true')
    args = parser.parse_args(argv)
    out = Path(args.out or (tempfile.mkdtemp(prefix='gpu-check-') if args.dry_run
                            else RESULTS))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='gpu-check-work-'))
    os.environ['MINARI_DATASETS_PATH'] = str(work / 'minari')
    report: dict[str, Any] = {'versions': versions(args.dry_run), 'families': {}}
    print(json.dumps(report['versions'], indent=2), flush=True)
    synthetic_dataset('check/synthetic/random-v0')
    if any(name in VARIANTS for name in args.families):
        synthetic_dataset('check/synthetic/images-v0', images=True)
    backend = 'onnxruntime-cpu' if args.dry_run else 'tensorrt'
    rng = np.random.default_rng(0)
    guard = stand_in_engines() if args.dry_run else contextlib.nullcontext()
    with guard:
        for name in args.families:
            row: dict[str, Any] = {}
            try:
                dataset = 'check/synthetic/' + ('images-v0' if name in VARIANTS else 'random-v0')
                run, bundle = make_bundle(name, work, dataset, args.steps)
                for precision in ('fp32', 'fp16'):
                    row[f'{precision} cache'] = engine_cache_checks(bundle, precision)
                    error = parity(bundle, backend, precision, rng)
                    row[f'{precision} max error'] = f'{error:.2e}'
                row['latency p50 / p99 ms'] = latencies(run, bundle, args.dry_run, args.calls)
            except Exception as exc:  # noqa: BLE001 - one family's failure is a result too
                row['error'] = f'{type(exc).__name__}: {exc}'[:300]
            report['families'][name] = row
            print(name, json.dumps(row), flush=True)
    report['tests'] = 'skipped (--no-tests)' if args.no_tests else run_gpu_tests()
    print('tests:', report['tests'], flush=True)
    (out / 'report.json').write_text(json.dumps(report, indent=2))
    write_table(report, out, args)
    return 1 if any('error' in row for row in report['families'].values()) else 0


def write_table(report: dict[str, Any], out: Path, args) -> Path:
    ways = sorted({w for row in report['families'].values()
                   for w in row.get('latency p50 / p99 ms', {})})
    table = Table('family', 'fp32 max error', 'fp16 max error', 'engine reused', 'foreign engine',
                  *(f'{w} p50 / p99 ms' for w in ways))
    for name, row in report['families'].items():
        if 'error' in row:
            table.add(name, row['error'], *['-'] * (len(table.header) - 2))
            continue
        cache = row['fp32 cache']
        lat = row.get('latency p50 / p99 ms', {})
        table.add(name, row['fp32 max error'], row['fp16 max error'],
                  f"{cache['reused']} / {row['fp16 cache']['reused']}", cache['foreign engine'],
                  *(lat.get(w, '-') for w in ways))
    lines = [', '.join(f'{k}: {v}' for k, v in report['versions'].items()), '',
             *table.lines(), '', f"GPU and TensorRT tests: {report['tests']}", '',
              'Parity: the same seeded noise through both runners, 64 observations. '
              + ('DRY RUN: ONNX Runtime on the CPU stood in for TensorRT and CUDA; the numbers '
                 'say the check works, not how fast a GPU is.' if args.dry_run else '')]
    name = 'tensorrt'
    if out.resolve() != RESULTS.resolve():
        path = out / f'{name}.md'
        path.write_text('# TensorRT engines: parity, cache, latency\n\n' + '\n'.join(lines)
                        + '\n')
        return path
    return write_result(name, 'TensorRT engines: parity, cache, latency', '\n'.join(lines))


if __name__ == '__main__':
    sys.exit(main())
