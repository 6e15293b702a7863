# SPDX-License-Identifier: Apache-2.0
"""End-to-end latency through ROS 2: observation published -> action received
(bench/results/ros_loop.md).

A driver publishes observations at a fixed rate (sensor-data QoS, the step index in
``layout.data_offset``) and times each command that comes back with that index. Contenders, in
the same run and alternating: the policy node (``trigger: observation``, the default bundle,
ONNX Runtime) and a bare rclpy echo node (the floor: same topics and QoS, no model). A deadline
is missed when a command arrives later than one control period after its observation, or not
at all. CPU load is the node process's user+system time over the run, in % of one core.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np

from bench.common import Table, write_result
from bench.step_driver import StepDriver

OBS, CMD = '/bench/observation', '/bench/commands'


def cpu_seconds(pid: int) -> float:
    import os

    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def drive(rate: float, steps: int, obs_size: int, proc) -> dict:
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Float64MultiArray

    driver = StepDriver('bench_driver', CMD, steps)
    pub = driver.node.create_publisher(Float64MultiArray, OBS, qos_profile_sensor_data)
    rng = np.random.default_rng(0)
    observations = rng.standard_normal((steps + 1, obs_size)) * 0.1
    observations[:, 0] += 1.25  # a plausible Hopper height

    def publish(k):
        msg = Float64MultiArray(data=observations[k].tolist())
        msg.layout.data_offset = k
        pub.publish(msg)

    marks = {}  # CPU load counts from the first measured step
    try:
        driver.run(publish, rate, on_start=lambda: marks.update(
            cpu=cpu_seconds(proc.pid), wall=time.perf_counter()))
        cpu = (cpu_seconds(proc.pid) - marks['cpu']) / (time.perf_counter() - marks['wall'])
    finally:
        driver.close()
    return {**driver.stats(rate), 'cpu': 100 * cpu}


def start(kind: str, bundle: Path, spec: Path, act_size: int) -> subprocess.Popen:
    if kind == 'echo':
        cmd = [sys.executable, str(Path(__file__).parent / 'echo_node.py'), OBS, CMD,
               str(act_size)]
    else:
        cmd = [sys.executable, '-m', 'dgm_policy_ros.ros.policy_node', '--ros-args',
               '-p', f'model_file_path:={bundle}', '-p', f'observation_spec:={spec}',
               '-p', f'action_topic:={CMD}', '-p', 'trigger:=observation',
               '-p', 'backend:=onnxruntime-cpu', '-p', 'autostart:=true',
               '-p', 'stale_timeout_s:=10.0']
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--rates', type=float, nargs='+', default=[100.0, 500.0])
    parser.add_argument('--steps', type=int, default=10_000)
    args = parser.parse_args()
    import tempfile

    import yaml

    from dgm_policy_ros.resources import share_path
    from dgm_policy_ros.runtime import PolicyRunner, load_bundle

    bundle = share_path('models', 'hopper_flow_bc')
    meta = load_bundle(bundle)
    spec = Path(tempfile.mkdtemp()) / 'spec.yaml'
    spec.write_text(yaml.safe_dump([{'topic': OBS, 'type': 'std_msgs/Float64MultiArray',
                                     'size': meta.obs_size}]))
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu')
    obs = np.zeros(meta.obs_size, np.float32)
    for _ in range(2000):
        runner.infer(obs)
    inference = runner.latency_percentiles()
    rows = []
    for rate in args.rates:
        for kind in ('echo', 'policy'):
            proc = start(kind, bundle, spec, meta.act_size)
            try:
                result = drive(rate, args.steps, meta.obs_size, proc)
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            rows.append({'rate': rate, 'kind': kind, **result})
            print(rows[-1], flush=True)
    lines = [f'{args.steps} steps per rate and contender; bundle `models/hopper_flow_bc` '
             f"(flow policy, ONNX Runtime CPU, inference p50 {inference['p50_ms']:.3f} ms / "
             f"p99 {inference['p99_ms']:.3f} ms measured in-process in this run). Latency: "
             'observation published -> command received, in ms.', '']
    table = Table('rate', 'node', 'p50', 'p99', 'max', 'missed deadlines', 'lost',
                  'CPU % of a core')
    for r in rows:
        name = 'echo (floor)' if r['kind'] == 'echo' else 'policy node'
        table.add(f"{r['rate']:.0f} Hz", name, f"{r['p50']:.3f}", f"{r['p99']:.3f}",
                  f"{r['max']:.3f}", r['missed'], r['lost'], f"{r['cpu']:.0f}")
    lines += [*table.lines(), '']
    for rate in args.rates:
        echo = next(r for r in rows if r['rate'] == rate and r['kind'] == 'echo')
        pol = next(r for r in rows if r['rate'] == rate and r['kind'] == 'policy')
        added = pol['p50'] - echo['p50']
        budget = inference['p50_ms'] + 0.3
        lines.append(f'- {rate:.0f} Hz: the policy node adds {added:.3f} ms over the echo floor '
                     f'at p50 (target: inference p50 + 0.3 = {budget:.3f} ms: '
                     f"{'met' if added <= budget else 'missed'}); missed deadlines "
                     f"{pol['missed']}.")
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('ros_loop', 'ROS 2 loop latency: policy node vs a bare echo node', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
