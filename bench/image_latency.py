# SPDX-License-Identifier: Apache-2.0
"""Inference latency of the image policies on one CPU thread (bench/results/image_latency.md).

Each policy that sees images, with each encoder (``conv``, and ``resnet18`` with GroupNorm and
spatial softmax, Diffusion Policy's), at 84 and 96 px, with one observation and with a window
of two (``n_obs_steps``, diffusion only; each diffusion denoiser: the MLP, the temporal U-Net at
the CPU recipe's widths and at Diffusion Policy's): one inference at batch 1 through
``PolicyRunner``
(ONNX Runtime, one thread), the graph doing the crop and uint8 -> float. Latency does not depend
on training, so each model is trained for a few steps on a small demonstration set.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys
import tempfile

from bench.common import Table, ensure_run, runner_latency, write_result
from bench.manipulation import recipe

HERE = Path(__file__).resolve().parent
RUNS = HERE.parent / 'runs' / 'image_latency'
TASK = 'metaworld/button-press-topdown-v3'
# diffusion_bc's denoisers: label -> settings (Diffusion Policy's U-Net: 256/512/1024 wide).
DENOISERS = {'mlp': {}, 'unet 64/128': {'denoiser': 'unet', 'hidden': [64, 128]},
             'unet 256/512/1024': {'denoiser': 'unet', 'hidden': [256, 512, 1024]}}


def dataset_for(size: int) -> str:
    """Two demonstrations at ``size`` px (collected on first use)."""
    from dgm_policy_ros.data.minari_io import datasets_root

    dataset = f'bench/latency-button-press-d2-px{size}-v0'
    if not (datasets_root() / dataset).is_dir():
        subprocess.run([sys.executable, '-m', 'dgm_policy_ros.cli.main', 'collect', '--env',
                        TASK, '--agent', 'expert', '--episodes', '2', '--images',
                        '--image-size', str(size), '--out', dataset, '--quiet'],
                       check=True, capture_output=True)
    return dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--algos', nargs='+', default=['diffusion_bc', 'bc', 'cvae_bc'])
    parser.add_argument('--encoders', nargs='+', default=['conv', 'resnet18'])
    parser.add_argument('--sizes', nargs='+', type=int, default=[84, 96])
    parser.add_argument('--calls', type=int, default=200)
    args = parser.parse_args()

    from dgm_policy_ros.export.onnx_export import export_bundle

    rows = Table('algorithm', 'denoiser', 'encoder', 'px', 'observations', 'p50 ms', 'p99 ms',
                 echo=True)
    for size in args.sizes:
        dataset = dataset_for(size)
        for encoder in args.encoders:
            for algo in args.algos:
                diffusion = algo == 'diffusion_bc'
                for label, denoiser in (DENOISERS.items() if diffusion else [('–', {})]):
                    for window in ([1, 2] if diffusion else [1]):
                        # The recipe's chunk sizes; a small batch: the weights are not scored.
                        config = {**recipe(algo), 'image_encoder': encoder, 'batch_size': 8,
                                  **denoiser, **({'n_obs_steps': window} if window > 1 else {})}
                        tag = label.replace(' ', '').replace('/', '-')
                        run = RUNS / f'{algo}-{tag}-{encoder}-px{size}-k{window}'
                        ensure_run(run, dataset, 2, 0, algo, config)
                        with tempfile.TemporaryDirectory() as tmp:
                            bundle = export_bundle(run, Path(tmp) / 'bundle', fp16=False)
                            p50, p99 = runner_latency(bundle, args.calls)
                        rows.add(algo, label, encoder, size, window, f'{p50:.2f}',
                                 f'{p99:.2f}')
    body = '\n'.join([
        'One inference at batch 1 on one CPU thread through `PolicyRunner` (ONNX Runtime), '
        'one camera, the image preprocessing in the graph; diffusion_bc with 10 DDIM steps '
        f'(the images encoded once per inference); {args.calls} timed calls after 20 warm-up '
        "calls. 'observations': the frames per camera the policy sees (n_obs_steps).", '',
        *rows.lines()])
    write_result('image_latency', 'Image policies: inference latency on one CPU thread', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
