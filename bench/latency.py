# SPDX-License-Identifier: Apache-2.0
"""Inference latency per policy family at batch 1 on one CPU thread (bench/results/latency.md).

Side by side in one run, interleaved in rounds so drift hits every contender alike:
torch eager (the training model's ``export_module``), the ONNX Runtime session alone, and the
deployment ``PolicyRunner`` (validation + noise + clipping around the same session). FLOPs of
one inference (torch's FlopCounterMode) against this core's measured matmul rate show how far
each model is from the arithmetic limit. A second table times d3rlpy's own exported ONNX
policies the same way.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
import shutil
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy as np

from bench.common import Table, write_result

ALGOS = ['bc', 'td3bc', 'bcq', 'cvae_bc', 'gan_bc', 'flow_bc', 'dt', 'diffusion_bc', 'idql',
         'diffusion_ql']
# Each family's default, then the denoiser options worth a row of their own:
# (row label, algorithm, config overrides). bench/export_parity.py checks the same list.
VARIANTS = [(algo, algo, {}) for algo in ALGOS] + [
    ('diffusion_bc (unet)', 'diffusion_bc', {'denoiser': 'unet', 'hidden': [32, 64]}),
    ('idql (resnet)', 'idql', {'denoiser': 'resnet'}),
]
WORK = Path(__file__).resolve().parents[1] / 'runs' / 'latency'


def variant_tag(label: str) -> str:
    """The prefix of a variant's run folder: its option's name ('resnet-'), or '' for a
    family's default."""
    option = label.partition('(')[2].rstrip(')')
    return f'{option}-' if option else ''


def timed(fn, calls: int) -> np.ndarray:
    out = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return out / 1e3  # microseconds


def race(contenders: dict, calls: int, rounds: int = 10) -> dict[str, np.ndarray]:
    """Alternate contenders in ``rounds`` slices of ``calls / rounds`` calls each."""
    samples = {k: [] for k in contenders}
    for fn in contenders.values():
        timed(fn, 200)  # warm-up
    per = max(1, calls // rounds)
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(timed(fn, per))
    return {k: np.concatenate(v) for k, v in samples.items()}


def matmul_gflops() -> float:
    import torch

    a, b = torch.randn(512, 512), torch.randn(512, 512)
    for _ in range(5):
        a @ b
    t0 = time.perf_counter()
    n = 50
    for _ in range(n):
        a @ b
    return 2 * 512**3 * n / (time.perf_counter() - t0) / 1e9


def flops_of(module, inputs) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*inputs)
    return int(counter.get_total_flops())


def prepare(algo: str, dataset: str, steps: int, fp16: bool = False, tag: str = '',
            algo_config: dict | None = None) -> Path:
    """Train ``algo`` briefly (default, deployed sizes, unless ``algo_config`` changes them)
    and export it; the bundle folder."""
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    run, bundle = WORK / f'{tag}{algo}', WORK / f'{tag}{algo}-bundle'
    for path in (run, bundle):
        shutil.rmtree(path, ignore_errors=True)
    Trainer(TrainConfig(algo=algo, dataset=dataset, out=str(run), steps=steps, eval_every=-1,
                        threads=1, checkpoint_every=steps, tensorboard=False, progress=False,
                        algo_config=algo_config or {})).run()
    return export_bundle(run, bundle, fp16=fp16)


def ours(dataset: str, calls: int, steps: int) -> list[dict]:
    import onnxruntime as ort
    import torch

    from dgm_policy_ros.runtime import PolicyRunner
    from dgm_policy_ros.training.run_folder import load_run

    torch.set_num_threads(1)
    rows = []
    for label, algo_name, algo_config in VARIANTS:
        tag = variant_tag(label)
        bundle_dir = prepare(algo_name, dataset, steps, tag=tag, algo_config=algo_config)
        algo, _, _ = load_run(WORK / f'{tag}{algo_name}')
        module = algo.export_module().eval()
        rng = np.random.default_rng(0)
        stats = algo.spec.stats
        runner = PolicyRunner(bundle_dir, backend='onnxruntime-cpu', threads=1)
        obs = (stats.obs_mean + stats.obs_std * rng.standard_normal((1, algo.spec.obs_dim)))
        # A sequence policy's input is its whole (full) history window.
        inputs = runner.zero_inputs(1) if runner.history else obs.astype(np.float32)
        feeds = dict(inputs) if runner.history else {'obs': inputs}
        for spec, noise in zip(algo.noise_specs(), algo.draw_noise(1, rng)):
            feeds[spec.name] = noise
        if runner.history and 'mask' in feeds:
            feeds['mask'][:] = 1.0
        tensors = [torch.from_numpy(v) for v in feeds.values()]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(bundle_dir / 'policy.onnx'), options,
                                       providers=['CPUExecutionProvider'])

        def eager():
            with torch.inference_mode():
                module(*tensors)

        results = race({'torch': eager, 'ort': lambda: session.run(None, feeds),
                        'runner': lambda: runner.infer(inputs)}, calls)
        rows.append({'algo': label, 'family': algo.family, 'flops': flops_of(module, tensors),
                     'n_action_steps': algo.n_action_steps, 'chunk': algo.chunk_size,
                     **{f'{k}_{q}': float(np.percentile(v, p)) for k, v in results.items()
                        for q, p in (('p50', 50), ('p99', 99))}})
        print(rows[-1], flush=True)
    return rows


def d3rlpy_rows(dataset: str, calls: int) -> list[dict]:
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory
    import onnxruntime as ort
    import torch

    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.data.transitions import flatten_episodes

    # d3rlpy calls torch.onnx.export without dynamo=False; torch 2.13 then wants onnxscript.
    original = torch.onnx.export
    torch.onnx.export = lambda *a, **k: original(*a, **{**k, 'dynamo': False})
    tr = flatten_episodes(load_dataset(dataset).episodes)
    mdp = d3rlpy.dataset.MDPDataset(tr.observations, tr.actions, tr.rewards,
                                    tr.terminals.astype(np.float32),
                                    timeouts=tr.timeouts.astype(np.float32),
                                    action_space=d3rlpy.constants.ActionSpace.CONTINUOUS)
    enc = VectorEncoderFactory(hidden_units=[256, 256])
    scaler = d3rlpy.preprocessing.StandardObservationScaler()
    configs = {'BC': d3rlpy.algos.BCConfig(encoder_factory=enc, observation_scaler=scaler),
               'TD3PlusBC': d3rlpy.algos.TD3PlusBCConfig(
                   actor_encoder_factory=enc, critic_encoder_factory=enc,
                   observation_scaler=scaler)}
    rows = []
    for name, config in configs.items():
        algo = config.create(device='cpu:0')
        algo.fit(mdp, n_steps=10, n_steps_per_epoch=10, show_progress=False,
                 save_interval=10**9, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
        path = WORK / f'd3rlpy-{name}.onnx'
        algo.save_policy(str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
        obs = tr.observations[:1]
        results = race({'predict': lambda: algo.predict(obs),
                        'ort': lambda: session.run(None, {'input_0': obs})}, calls)
        rows.append({'algo': name, **{f'{k}_{q}': float(np.percentile(v, p))
                                      for k, v in results.items()
                                      for q, p in (('p50', 50), ('p99', 99))}})
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--dataset', default='dgm/hopper/medium-v0')
    parser.add_argument('--calls', type=int, default=3000)
    parser.add_argument('--train-steps', type=int, default=20,
                        help='latency depends on the architecture, not on training')
    parser.add_argument('--no-d3rlpy', action='store_true')
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    peak = matmul_gflops()
    rows = ours(args.dataset, args.calls, args.train_steps)
    lines = [f'Batch 1, one CPU thread, {args.calls} calls per contender (interleaved in 10 '
             f'rounds), {args.dataset} observation and action sizes, default (deployed) '
             f'network sizes. µs per inference; a chunked policy (H actions, n executed) '
             'infers once every n control steps.', '']
    table = Table('algorithm', 'family', 'FLOPs', 'torch eager p50 / p99',
                  'ONNX Runtime p50 / p99', 'runner p50 / p99', 'ORT speed-up (p50)',
                  'ORT GFLOP/s', 'H / n')
    for r in rows:
        table.add(r['algo'], r['family'], f"{r['flops'] / 1e6:.2f} M",
                  f"{r['torch_p50']:.0f} / {r['torch_p99']:.0f}",
                  f"{r['ort_p50']:.0f} / {r['ort_p99']:.0f}",
                  f"{r['runner_p50']:.0f} / {r['runner_p99']:.0f}",
                  f"{r['torch_p50'] / r['ort_p50']:.1f}x",
                  f"{r['flops'] / r['ort_p50'] / 1e3:.2f}",
                  f"{r['chunk']} / {r['n_action_steps']}")
    lines += table.lines()
    lines += ['', f'This core multiplies 512x512 float32 matrices at {peak:.1f} GFLOP/s (torch, '
              'one thread). Share of that rate reached by ONNX Runtime: ' + ', '.join(
                  f"{r['algo']} {100 * r['flops'] / r['ort_p50'] / 1e3 / peak:.0f}%"
                  for r in rows) + '. Models far below it are bound by per-operator '
              'overhead, not arithmetic; near it, only fewer FLOPs (or a GPU) make them '
              'faster.']
    if not args.no_d3rlpy:
        d3 = d3rlpy_rows(args.dataset, args.calls)
        lines += ['', "d3rlpy's own exported ONNX policies (`save_policy`), same machine and "
                  'run:', '']
        table = Table('d3rlpy algorithm', 'd3rlpy predict p50 / p99',
                      'its ONNX in ONNX Runtime p50 / p99')
        for r in d3:
            table.add(r['algo'], f"{r['predict_p50']:.0f} / {r['predict_p99']:.0f}",
                      f"{r['ort_p50']:.0f} / {r['ort_p99']:.0f}")
        lines += table.lines()
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('latency', 'Inference latency: torch eager vs ONNX Runtime vs the runner', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
