# SPDX-License-Identifier: Apache-2.0
"""``world_model_node``: a world-model bundle watching a robot.

It subscribes to the policy node's observation sources (the same observation spec) and its
command topic. Each command, paired with the observation it answered, gives a prediction of
the next observation (``~/predicted_observation``); when that observation arrives, its
surprise under the model is published on ``~/anomaly`` (std_msgs/Float64: residual over the
model's expected error, ~1 normally) and summarized on ``/diagnostics``, WARN above
``anomaly_threshold``. The policy node can act on it: its ``anomaly_topic`` /
``anomaly_threshold`` parameters publish the fault action while the score is too high.
"""
from __future__ import annotations

import collections
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import ParameterType as PT
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Float64, Float64MultiArray

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.ros import run_node
from dgm_policy_ros.ros.guard import guarded
from dgm_policy_ros.runtime import ObservationError
from dgm_policy_ros.runtime.observation_spec import load_observation_spec, spec_width
from dgm_policy_ros.runtime.world_model_runner import WorldModelRunner


def _desc(text: str, kind: int) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, type=kind)


PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    'model_file_path': ('', _desc('world-model bundle folder', PT.PARAMETER_STRING)),
    'observation_spec': ('', _desc("the policy node's observation spec (YAML file or inline)",
                                   PT.PARAMETER_STRING)),
    'action_topic': ('/forward_command_controller/commands',
                     _desc('the commands (std_msgs/Float64MultiArray)', PT.PARAMETER_STRING)),
    'backend': ('auto', _desc('auto, tensorrt, onnxruntime or onnxruntime-cpu',
                              PT.PARAMETER_STRING)),
    'anomaly_threshold': (3.0, _desc('scores above this turn /diagnostics to WARN',
                                     PT.PARAMETER_DOUBLE)),
    'smoothing': (0.1, _desc('weight of the newest score in the reported moving average',
                             PT.PARAMETER_DOUBLE)),
    'seed': (0, _desc('noise generator seed (generative models)', PT.PARAMETER_INTEGER)),
}


class WorldModelNode(Node):
    def __init__(self, node_name: str = 'dgm_world_model', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.p = p
        self.runner = WorldModelRunner(p['model_file_path'], backend=p['backend'],
                                       seed=p['seed'])
        self.sources = load_observation_spec(p['observation_spec'])
        if spec_width(self.sources) != self.runner.bundle.obs_size:
            raise ConfigError(f'the observation spec yields {spec_width(self.sources)} values, '
                             f'the world model expects {self.runner.bundle.obs_size}')
        self.latest: dict[str, Any] = {}
        self.current: np.ndarray | None = None  # the observation awaiting its command
        self.pending: tuple[np.ndarray, np.ndarray] | None = None  # (obs, action) to score
        self.scores: collections.deque[float] = collections.deque(maxlen=1000)
        self.smoothed = 0.0
        self.counters = collections.Counter()
        for source in self.sources:
            self.create_subscription(source.message_class(), source.topic,
                                     guarded(self, f'observation {source.topic}',
                                             lambda msg, s=source: self._on_observation(s, msg)),
                                     qos_profile_sensor_data)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Float64MultiArray, p['action_topic'],
                                 guarded(self, 'action', self._on_action), reliable)
        self.pub_prediction = self.create_publisher(Float64MultiArray,
                                                    '~/predicted_observation', reliable)
        self.pub_anomaly = self.create_publisher(Float64, '~/anomaly', reliable)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(1.0, guarded(self, 'diagnostics', self._publish_diagnostics))

    def _assemble(self) -> np.ndarray:
        parts = []
        for source in self.sources:
            if source.topic not in self.latest:
                raise ObservationError('waiting', f'no message on {source.topic} yet')
            try:
                parts.append(source.extract(self.latest[source.topic]))
            except ValueError as exc:
                raise ObservationError('wrong size', str(exc)) from exc
        return np.concatenate(parts)

    def _on_observation(self, source, msg) -> None:
        self.latest[source.topic] = msg
        if source is not self.sources[0]:
            return
        try:
            obs = self._assemble()
            if self.pending is not None:
                score = float(self.runner.anomaly(*self.pending, obs)[0])
                self.scores.append(score)
                alpha = self.p['smoothing']
                self.smoothed = score if len(self.scores) == 1 else \
                    (1 - alpha) * self.smoothed + alpha * score
                self.pub_anomaly.publish(Float64(data=score))
                if score > self.p['anomaly_threshold']:
                    self.counters['anomalous_steps'] += 1
        except ObservationError as exc:
            self.counters[exc.reason] += 1
            self.current = self.pending = None
            return
        self.current, self.pending = obs, None

    def _on_action(self, msg: Float64MultiArray) -> None:
        if self.current is None:
            return  # no fresh observation: the command is not for a step we saw
        action = np.asarray(msg.data, np.float64)
        try:
            predicted, _, _ = self.runner.predict(self.current, action)
        except ObservationError as exc:
            self.counters[exc.reason] += 1
            return
        out = Float64MultiArray(data=predicted[0].astype(np.float64).tolist())
        out.layout.data_offset = msg.layout.data_offset
        self.pub_prediction.publish(out)
        self.pending, self.current = (self.current, action), None

    def _publish_diagnostics(self) -> None:
        high = self.scores and self.smoothed > self.p['anomaly_threshold']
        level = DiagnosticStatus.WARN if high else DiagnosticStatus.OK
        message = (f'anomalous: score {self.smoothed:.2f} > {self.p["anomaly_threshold"]}'
                   if high else 'nominal' if self.scores else 'waiting for data')
        values = {'anomaly_last': f'{self.scores[-1]:.4f}' if self.scores else 'nan',
                  'anomaly_smoothed': f'{self.smoothed:.4f}',
                  'anomaly_threshold': str(self.p['anomaly_threshold']),
                  'scored_steps': str(len(self.scores)),
                  'bundle_sha256': self.runner.bundle.sha256,
                  **{k.replace(' ', '_'): str(v) for k, v in self.counters.items()}}
        status = DiagnosticStatus(level=level, name=f'dgm_world_model: {self.get_name()}',
                                  message=message,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        diag = DiagnosticArray(status=[status])
        diag.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(diag)


def main(args=None) -> None:
    run_node(WorldModelNode)


if __name__ == '__main__':
    main()
