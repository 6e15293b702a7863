# SPDX-License-Identifier: Apache-2.0
"""Camera frames in, command out, through ROS 2 (bench/results/camera_loop.md).

A driver publishes, per control step, each camera's frame (``sensor_msgs/Image`` rgb8, or
``sensor_msgs/CompressedImage`` JPEG encoded beforehand) and then the state vector with the
step index; the policy node (``trigger: observation``, cameras ``align: drop``: a step waits
for its frames) answers with the command for that index. Latency: the step's first message
published -> its command received. A deadline is missed when a command comes later than one
control period, or not at all. Beside it, the runner's own inference time for the same bundle
in this process (batch 1, one thread), and the highest rate tried with no missed deadline.
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
import signal
import subprocess
import sys
import tempfile

import numpy as np

from bench.common import Table, runner_latency, write_result
from bench.step_driver import StepDriver

HERE = Path(__file__).resolve().parent
STATE, CMD = '/cam_bench/state', '/cam_bench/commands'
ONE_CAMERA = HERE.parent / 'models' / 'metaworld_button_press_dp'


def two_camera_bundle(work: Path) -> Path:
    """A bundle that sees two cameras (corner2 as LeRobot places it, and topview), trained
    briefly: only its latency is measured."""
    bundle = work / 'two_cameras'
    if (bundle / 'manifest.yaml').is_file():
        return bundle
    dataset = 'bench/camera-loop-two-cameras-v0'
    cli = [sys.executable, '-m', 'dgm_policy_ros.cli.main']
    subprocess.run([*cli, 'collect', '--env', 'metaworld/button-press-topdown-v3', '--agent',
                    'expert', '--episodes', '3', '--images', '--cameras', 'corner2', 'topview',
                    '--image-size', '96', '--out', dataset, '--overwrite', '--quiet'],
                   check=True, capture_output=True)
    subprocess.run([*cli, 'train', '--algo', 'diffusion_bc', '--dataset', dataset, '--steps',
                    '20', '--eval-every', '-1', '--out', str(work / 'run'), '--quiet'],
                   check=True, capture_output=True)
    subprocess.run([*cli, 'export', str(work / 'run'), '--out', str(bundle), '--control-rate',
                    '80'], check=True, capture_output=True)
    return bundle


def frames_for(bundle: Path) -> dict[str, np.ndarray]:
    from dgm_policy_ros.runtime.bundle import load_bundle

    rng = np.random.default_rng(0)
    shapes = load_bundle(bundle).image_inputs
    return {name.split('/', 1)[1]: rng.integers(0, 256, (8, *shape), dtype=np.uint8)
            for name, shape in shapes.items()}


def drive(bundle: Path, encoding: str, rate: float, steps: int) -> dict:
    """Start the policy node, drive ``steps`` steps at ``rate``, return latency statistics."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Float64MultiArray
    import yaml

    from dgm_policy_ros.runtime.bundle import load_bundle

    loaded = load_bundle(bundle)
    frames = frames_for(bundle)
    kind = 'sensor_msgs/Image' if encoding == 'raw' else 'sensor_msgs/CompressedImage'
    spec = [{'topic': STATE, 'type': 'std_msgs/Float64MultiArray', 'size': loaded.obs_size},
            *({'topic': f'/cam_bench/{c}', 'type': kind, 'camera': c, 'align': 'drop',
               'use_header_stamp': False} for c in frames)]
    spec_file = Path(tempfile.mkdtemp()) / 'spec.yaml'
    spec_file.write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen(
        [sys.executable, '-m', 'dgm_policy_ros.ros.policy_node', '--ros-args',
         '-p', f'model_file_path:={bundle}', '-p', f'observation_spec:={spec_file}',
         '-p', f'action_topic:={CMD}', '-p', 'trigger:=observation',
         '-p', 'backend:=onnxruntime-cpu', '-p', 'autostart:=true',
         '-p', 'stale_timeout_s:=10.0', '-p', 'max_obs_sigma:=0.0'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = StepDriver('camera_bench_driver', CMD, steps)
    pub_state = driver.node.create_publisher(Float64MultiArray, STATE, qos_profile_sensor_data)
    pubs = {c: driver.node.create_publisher(Image if encoding == 'raw' else CompressedImage,
                                            f'/cam_bench/{c}', qos_profile_sensor_data)
            for c in frames}
    messages = {c: [_message(f, encoding) for f in frames[c]] for c in frames}
    state = Float64MultiArray(data=[0.0] * loaded.obs_size)

    def publish(k):  # the frames first: the state vector triggers the step
        for c, pub in pubs.items():
            pub.publish(messages[c][k % len(messages[c])])
        state.layout.data_offset = k
        pub_state.publish(state)

    try:
        driver.run(publish, rate, warmup_s=90.0)
    finally:
        driver.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    return driver.stats(rate)


def _message(frame: np.ndarray, encoding: str):
    from sensor_msgs.msg import CompressedImage, Image

    if encoding == 'raw':
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='rgb8',
                    step=frame.shape[1] * 3)
        msg.data = frame.tobytes()
        return msg
    from PIL import Image as PilImage

    buffer = io.BytesIO()
    PilImage.fromarray(frame).save(buffer, format='JPEG', quality=90)
    msg = CompressedImage(format='jpeg')
    msg.data = buffer.getvalue()
    return msg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--rates', nargs='+', type=float, default=[10, 30, 50, 80])
    args = parser.parse_args()
    work = HERE.parent / 'runs' / 'camera_loop'
    work.mkdir(parents=True, exist_ok=True)
    bundles = {1: ONE_CAMERA, 2: two_camera_bundle(work)}
    table = Table('cameras', 'encoding', 'rate', 'p50 ms', 'p99 ms', 'missed deadlines',
                  'lost', 'runner p50 / p99 ms', echo=True)
    results = []
    for cameras, bundle in bundles.items():
        inference = runner_latency(bundle, 500)
        for encoding in ('raw', 'jpeg'):
            for rate in args.rates if (cameras, encoding) == (1, 'raw') else args.rates[:1]:
                r = drive(bundle, encoding, rate, args.steps)
                results.append({'cameras': cameras, 'encoding': encoding, 'rate': rate, **r})
                table.add(cameras, encoding, f'{rate:.0f} Hz', f"{r['p50']:.2f}",
                          f"{r['p99']:.2f}", r['missed'], r['lost'],
                          f'{inference[0]:.2f} / {inference[1]:.2f}')
    raw = sorted((r['rate'], r['missed']) for r in results
                 if r['cameras'] == 1 and r['encoding'] == 'raw')
    holds = []  # the rates up to the first that missed a deadline
    for rate, missed in raw:
        if missed:
            break
        holds.append(rate)
    missed_at = {rate: missed for rate, missed in raw if missed}
    body = '\n'.join([
        f'{args.steps} steps per row, 96 px frames; 1 camera: `models/metaworld_button_press_dp` '
        '(Diffusion Policy, 10 DDIM steps in the graph, ONNX Runtime CPU); 2 cameras: the same '
        "model shape with a second camera (topview). Latency: the step's first message "
        'published -> its command received, ms. Raw: rgb8 Image; JPEG: quality 90, decoded by '
        'the node (Pillow).', '', *table.lines(), '',
        (f'Highest rate up to which every rate tried held with no missed deadline (1 camera, '
         f'raw): {max(holds):.0f} Hz.' if holds else
         'No rate tried held without a missed deadline.')
        + (' Missed deadlines at ' + ', '.join(f'{rate:.0f} Hz ({n} of {args.steps})'
                                               for rate, n in missed_at.items()) + '.'
           if missed_at else ''),
        '', f'Raw results: `{json.dumps(results)}`'])
    print(body)
    write_result('camera_loop', 'Camera frames in, command out, over ROS 2', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
