# SPDX-License-Identifier: Apache-2.0
"""The latency benchmarks' driver: publishes one control step at a time at a fixed rate, and
times the command that comes back for it (the step index echoed in ``layout.data_offset``)."""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable

import numpy as np


class StepDriver:
    """A ROS 2 node in this process: ``run(publish, rate, steps)`` calls ``publish(k)`` for the
    warm-up step 0 until it is answered, then for steps 1..steps on schedule; ``stats`` gives
    the latency (step sent -> its command received) and the deadlines missed."""

    def __init__(self, name: str, command_topic: str, steps: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float64MultiArray

        sys.setswitchinterval(1e-4)  # hand the GIL to the receive thread promptly
        rclpy.init()
        self.node = rclpy.create_node(name)
        self.steps = steps
        self.sent = np.full(steps + 1, np.nan)
        self.received = np.full(steps + 1, np.nan)
        self.ready = threading.Event()
        self.node.create_subscription(
            Float64MultiArray, command_topic, self._on_command,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_command(self, msg) -> None:
        k = int(msg.layout.data_offset)
        if k == 0:
            self.ready.set()
        elif k <= self.steps and np.isnan(self.received[k]):
            self.received[k] = time.perf_counter()

    def run(self, publish: Callable[[int], None], rate: float, warmup_s: float = 60.0,
            on_start: Callable[[], None] | None = None) -> None:
        """``on_start``: called once warmed up, just before the first measured step."""
        deadline = time.monotonic() + warmup_s
        while not self.ready.is_set() and time.monotonic() < deadline:  # discovery, warm-up
            publish(0)
            self.ready.wait(0.1)
        if not self.ready.is_set():
            raise RuntimeError('the node under test never answered')
        if on_start is not None:
            on_start()
        period = 1.0 / rate
        start = time.perf_counter()
        for k in range(1, self.steps + 1):
            # Sleep, never spin: a spinning loop holds the GIL and delays this process's own
            # receive callbacks, which would be measured as the node's latency.
            delay = start + k * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.sent[k] = time.perf_counter()
            publish(k)
        time.sleep(0.5)

    def stats(self, rate: float) -> dict:
        latency = (self.received[1:] - self.sent[1:]) * 1e3
        ok = latency[np.isfinite(latency)]
        return {'p50': float(np.percentile(ok, 50)), 'p99': float(np.percentile(ok, 99)),
                'max': float(ok.max()), 'lost': int(np.sum(~np.isfinite(latency))),
                'missed': int(np.sum(~np.isfinite(latency) | (latency > 1e3 / rate))),
                'steps': self.steps}

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()
