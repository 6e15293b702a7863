# SPDX-License-Identifier: Apache-2.0
"""``/diagnostics`` for the policy node (diagnostic_msgs/DiagnosticArray).

Once a second, and at once when a new fault appears: inference latency p50/p99, achieved
control rate, missed deadlines, invalid/stale/dropped message counts, backend, bundle hash,
lifecycle state, and the last fault's reason.
"""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from dgm_policy_ros.ros.guard import guarded

# Counters reported even at zero (a monitor can rely on their keys); any other is reported once
# it has counted.
ALWAYS_REPORTED = ('missed_deadlines', 'wrong size', 'non-finite', 'stale', 'waiting',
                   'out_of_order', 'future stamp', 'unstamped', 'clock jump',
                   'out of training range', 'out of distribution', 'anomaly',
                   'non-finite action', 'unsafe action replaced', 'internal error',
                   'callback_errors', 'wrong encoding', 'truncated', 'undecodable',
                   'out of sync')


class DiagnosticsReporter:
    def __init__(self, node, period_s: float = 1.0) -> None:
        self.node = node
        self.publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.timer = node.create_timer(period_s, guarded(node, 'diagnostics', self.publish))
        self.level = DiagnosticStatus.OK
        self.message = 'unconfigured'
        self.state = 'unconfigured'
        self.backend = ''
        self.bundle_sha = ''
        self._last_reason = None
        self._last_publish = 0.0

    def configure(self, bundle, backend: str) -> None:
        self.backend, self.bundle_sha = backend, bundle.sha256
        self.set_state('inactive')

    def set_state(self, state: str) -> None:
        self.state = state
        self.level, self.message = DiagnosticStatus.OK, state
        self._last_reason = None
        self.publish()

    def fault(self, reason: str, detail: str, error: bool = False,
              what: str = 'fault action published') -> None:
        """``what`` happened because of it: the fault action went out (the default), a
        message was refused (the loop went on with the last good one), or a transition
        failed."""
        self.level = DiagnosticStatus.ERROR if error else DiagnosticStatus.WARN
        self.message = f'{what}: {reason}: {detail}'
        if reason != self._last_reason or time.monotonic() - self._last_publish > 1.0:
            self._last_reason = reason
            self.publish()

    def ok(self) -> None:
        if self.level != DiagnosticStatus.OK:
            self.level, self.message, self._last_reason = DiagnosticStatus.OK, 'running', None
            self.publish()

    def publish(self) -> None:
        node = self.node
        values = {'state': self.state, 'backend': self.backend,
                  'bundle_sha256': self.bundle_sha}
        if node.runner is not None:
            values.update({f'inference_{k}': f'{v:.4f}'
                           for k, v in node.runner.latency_percentiles().items()})
        values['achieved_rate_hz'] = f'{node.achieved_rate_hz():.2f}'
        counters = dict(node.counters)  # a copy: control callbacks may count meanwhile
        for key in (*ALWAYS_REPORTED, *sorted(counters)):
            values[key.replace(' ', '_')] = str(counters.get(key, 0))
        status = DiagnosticStatus(level=self.level, name=f'dgm_policy: {node.get_name()}',
                                  message=self.message, hardware_id=self.bundle_sha[:16],
                                  values=[KeyValue(key=k, value=str(v))
                                          for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = node.get_clock().now().to_msg()
        self.publisher.publish(msg)
        self._last_publish = time.monotonic()
