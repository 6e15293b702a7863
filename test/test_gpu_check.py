# SPDX-License-Identifier: Apache-2.0
"""The prepared TensorRT device check (bench/gpu_check.py) works before a GPU sees it: its dry
run, with ONNX Runtime standing in for the engines, goes through every step."""
import json
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_device_check_dry_run_goes_through_every_step(tmp_path):
    result = subprocess.run(
        [sys.executable, '-m', 'bench.gpu_check', '--dry-run', '--families', 'bc', 'flow_bc',
         'wm_ensemble', '--calls', '20', '--steps', '5', '--out', str(tmp_path), '--no-tests'],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / 'report.json').read_text())
    assert set(report['families']) == {'bc', 'flow_bc', 'wm_ensemble'}
    for name, row in report['families'].items():
        assert 'error' not in row, (name, row)
        for precision in ('fp32', 'fp16'):
            cache = row[f'{precision} cache']
            assert cache['reused'] == 'yes', (name, cache)
            assert cache['foreign engine'] == 'refused, rebuilt', (name, cache)
            assert float(row[f'{precision} max error']) == 0.0  # the stand-in is ORT itself
    latency = report['families']['flow_bc']['latency p50 / p99 ms']
    assert {'TensorRT fp32 (stand-in)', 'TensorRT fp16 (stand-in)', 'ONNX Runtime CPU',
            'torch eager cpu'} <= set(latency)
    table = (tmp_path / 'tensorrt.md').read_text()
    assert '| flow_bc |' in table and 'DRY RUN' in table


@pytest.mark.slow
def test_the_device_check_measures_diffusion_policy_from_cameras(tmp_path):
    """The camera Diffusion Policy the papers deploy (ResNet-18, U-Net at its widths, two
    frames) goes through the same steps, its parity checked on random frames."""
    result = subprocess.run(
        [sys.executable, '-m', 'bench.gpu_check', '--dry-run', '--families',
         'diffusion_policy_images', '--calls', '2', '--steps', '2', '--out', str(tmp_path),
         '--no-tests'], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    row = json.loads((tmp_path / 'report.json').read_text())['families'][
        'diffusion_policy_images']
    assert 'error' not in row and float(row['fp16 max error']) == 0.0
    assert 'torch eager cpu' in row['latency p50 / p99 ms']
