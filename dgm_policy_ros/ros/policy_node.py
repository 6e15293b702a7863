# SPDX-License-Identifier: Apache-2.0
"""``policy_node``: a model bundle driving a robot over ROS 2.

A lifecycle node: ``configure`` loads and warms up the bundle (building/loading a TensorRT
engine where available) and creates the subscriptions; ``activate`` starts control;
``deactivate`` publishes the hold/zero command and stops; ``cleanup`` frees the backend. With
``autostart: true`` it configures and activates itself (for setups without a lifecycle
manager).

Each control step assembles the latest observation from the spec's topics (sensor-data QoS),
runs the ``PolicyRunner`` and publishes the action to a ros2_control forward command controller
(``std_msgs/Float64MultiArray`` on ``/<controller>/commands``, reliable QoS) or, for action
chunks, a ``trajectory_msgs/JointTrajectory``. A missing, stale, out-of-order, wrong-sized or
non-finite observation never reaches the model: the node publishes the fault action instead
and says why on ``/diagnostics``. No NaN ever leaves it.

Control is timer-driven at the control rate (on ``/clock`` with ``use_sim_time``), or, with
``trigger: observation``, driven by each new observation: the lockstep handshake with
``mujoco_sim_node`` (the step index travels in ``layout.data_offset`` both ways; a change of
``layout.dim[0].label`` marks a new episode and clears the action queue and history).

Return-conditioned bundles (``dt``) keep their returns-to-go in the runner's history window,
counted down by ``reward_topic``. Rewards and observations travel on different topics, so a
reward may be counted one control step late; with no reward topic the returns-to-go stay at
``target_return``.
"""
from __future__ import annotations

import collections
import math
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rcl_interfaces.msg import ParameterType as PT
import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Float64MultiArray, String

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.ros import spin_until_shutdown
from dgm_policy_ros.ros.diagnostics import DiagnosticsReporter
from dgm_policy_ros.ros.observation_spec import load_observation_spec, spec_width
from dgm_policy_ros.runtime import ObservationError, PolicyRunner

ACTION_TYPES = ('std_msgs/Float64MultiArray', 'trajectory_msgs/JointTrajectory')
BACKENDS = ('auto', 'tensorrt', 'onnxruntime', 'onnxruntime-cpu')


def _desc(text: str, kind: int, **kw) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, type=kind, **kw)


PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    'model_file_path': ('', _desc('model bundle folder (manifest.yaml + policy.onnx)',
                                  PT.PARAMETER_STRING)),
    'backend': ('auto', _desc(f'one of {BACKENDS}', PT.PARAMETER_STRING)),
    'engine_file_path': ('', _desc('TensorRT engine file (default: named by GPU in the '
                                   'bundle)', PT.PARAMETER_STRING)),
    'force_engine_update': (False, _desc('rebuild the TensorRT engine', PT.PARAMETER_BOOL)),
    'precision': ('fp32', _desc('TensorRT precision: fp32 or fp16', PT.PARAMETER_STRING)),
    'control_rate_hz': (0.0, _desc('0: the rate in the bundle manifest', PT.PARAMETER_DOUBLE,
                                   floating_point_range=[FloatingPointRange(
                                       from_value=0.0, to_value=10000.0)])),
    'observation_spec': ('', _desc('YAML file or inline YAML list of observation sources',
                                   PT.PARAMETER_STRING)),
    'action_topic': ('/forward_command_controller/commands',
                     _desc('command topic', PT.PARAMETER_STRING)),
    'action_type': (ACTION_TYPES[0], _desc(f'one of {ACTION_TYPES}', PT.PARAMETER_STRING)),
    'joint_names': ([''], _desc('joints of a JointTrajectory command',
                                PT.PARAMETER_STRING_ARRAY)),
    'stale_timeout_s': (0.5, _desc('observations older than this trigger the fault action',
                                   PT.PARAMETER_DOUBLE)),
    'action_low': ([0.0], _desc('per-joint lower limits (empty/[0.0]: the bundle bounds)',
                                PT.PARAMETER_DOUBLE_ARRAY)),
    'action_high': ([0.0], _desc('per-joint upper limits (empty/[0.0]: the bundle bounds)',
                                 PT.PARAMETER_DOUBLE_ARRAY)),
    'on_fault': ('hold', _desc('hold (last action) or zero', PT.PARAMETER_STRING)),
    'ood_threshold': (float('nan'), _desc('log-density below which (s, a) is out of '
                                          'distribution (flow bundles); NaN: off',
                                          PT.PARAMETER_DOUBLE)),
    'trigger': ('timer', _desc('timer (control rate) or observation (lockstep)',
                               PT.PARAMETER_STRING)),
    'episode_reset_topic': ('', _desc('std_msgs/String topic whose messages end an episode '
                                      '(clears the action queue)', PT.PARAMETER_STRING)),
    'reward_topic': ('', _desc('std_msgs/Float64 reward topic: return-conditioned bundles (dt) '
                               'count their returns-to-go down by it; empty: they stay at the '
                               'target', PT.PARAMETER_STRING)),
    'target_return': (float('nan'), _desc('return-conditioned bundles: the episode return '
                                          "asked for; NaN: the bundle's", PT.PARAMETER_DOUBLE)),
    'anomaly_topic': ('', _desc("a world_model_node's ~/anomaly topic: above "
                                'anomaly_threshold the fault action is published (empty: off)',
                                PT.PARAMETER_STRING)),
    'anomaly_threshold': (3.0, _desc('world-model anomaly score that stops the policy',
                                     PT.PARAMETER_DOUBLE)),
    'exploration_noise': (0.0, _desc('data collection: Gaussian noise added to every action, '
                                     'std in units of the action half-range (0: off)',
                                     PT.PARAMETER_DOUBLE, floating_point_range=[
                                         FloatingPointRange(from_value=0.0, to_value=10.0)])),
    'seed': (0, _desc('noise generator seed', PT.PARAMETER_INTEGER)),
    'autostart': (False, _desc('configure and activate at start (no lifecycle manager)',
                               PT.PARAMETER_BOOL)),
}


def validate_parameters(values: dict[str, Any]) -> str | None:
    """The reason a parameter set is invalid, or None."""
    checks = [
        (values.get('backend') in BACKENDS, f'backend must be one of {BACKENDS}'),
        (values.get('precision') in ('fp32', 'fp16'), 'precision must be fp32 or fp16'),
        (values.get('action_type') in ACTION_TYPES, f'action_type must be one of {ACTION_TYPES}'),
        (values.get('on_fault') in ('hold', 'zero'), 'on_fault must be hold or zero'),
        (values.get('trigger') in ('timer', 'observation'),
         'trigger must be timer or observation'),
        (values.get('stale_timeout_s', 1.0) > 0, 'stale_timeout_s must be > 0'),
        (values.get('control_rate_hz', 0.0) >= 0, 'control_rate_hz must be >= 0'),
    ]
    for ok, reason in checks:
        if not ok:
            return reason
    return None


class PolicyNode(LifecycleNode):
    def __init__(self, node_name: str = 'dgm_policy', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.runner = None
        self.sources = []
        self.latest: dict[str, tuple[Any, float]] = {}  # topic -> (msg, stamp seconds)
        self._subs: list = []
        self._timer = None
        self._active = False
        self._last_action: np.ndarray | None = None
        self._last_step: int | None = None
        self._episode_label: str | None = None
        self.counters = collections.Counter()
        self.diag = DiagnosticsReporter(self)

    # -------------------------------------------------------------- parameters
    def _values(self) -> dict[str, Any]:
        return {name: self.get_parameter(name).value for name in PARAMETERS}

    def _on_set_parameters(self, params) -> SetParametersResult:
        values = {**self._values(), **{p.name: p.value for p in params}}
        reason = validate_parameters(values)
        if reason is None and self.runner is not None and any(
                p.name in ('model_file_path', 'observation_spec', 'backend') for p in params):
            reason = 'model_file_path, observation_spec and backend change only in the ' \
                'unconfigured state (cleanup first)'
        return SetParametersResult(successful=reason is None, reason=reason or '')

    # -------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - any failure is a failed transition
            self.get_logger().error(f'configure failed: {exc}')
            self.diag.fault('configure failed', str(exc), error=True)
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        p = self._values()
        reason = validate_parameters(p)
        if reason:
            raise ConfigError(reason)
        if not p['model_file_path']:
            raise ConfigError('model_file_path is not set')
        if not p['observation_spec']:
            raise ConfigError('observation_spec is not set')
        self.runner = PolicyRunner(p['model_file_path'], backend=p['backend'], seed=p['seed'],
                                   engine_path=p['engine_file_path'] or None,
                                   force_engine_update=p['force_engine_update'],
                                   precision=p['precision'],
                                   target_return=None if math.isnan(p['target_return'])
                                   else p['target_return'])
        bundle = self.runner.bundle
        self.sources = load_observation_spec(p['observation_spec'])
        if spec_width(self.sources) != bundle.obs_size:
            raise ConfigError(f'the observation spec yields {spec_width(self.sources)} values, '
                              f'the bundle expects {bundle.obs_size}')
        self.low, self.high = self._limits(p, bundle)
        # The runner already clips to the bundle's bounds; clip again only for tighter limits.
        self._tighter_limits = bool(np.any(self.low > bundle.act_low) or
                                    np.any(self.high < bundle.act_high))
        rate = p['control_rate_hz'] or bundle.control_rate_hz
        if rate <= 0:
            raise ConfigError('control_rate_hz is 0 and the bundle names no control rate')
        self.period = 1.0 / rate
        self._explore = np.random.default_rng(p['seed'] + 1)
        self._tighter_limits |= p['exploration_noise'] > 0  # noisy actions are clipped here
        self.runner.infer(self.runner.zero_inputs())  # warm-up (engine, caches)
        self.runner.latencies_ms.clear()
        self.ood = None
        if not math.isnan(p['ood_threshold']):
            if 'log_prob' not in bundle.manifest['graphs']:
                raise ConfigError('ood_threshold is set but the bundle has no log_prob graph')
            from dgm_policy_ros.runtime.backends import OnnxRuntimeBackend

            self.ood = OnnxRuntimeBackend(bundle.file('log_prob'))
        for source in self.sources:
            self._subs.append(self.create_subscription(
                source.message_class(), source.topic,
                lambda msg, s=source: self._on_observation(s, msg), qos_profile_sensor_data))
        if p['episode_reset_topic']:
            self._subs.append(self.create_subscription(
                String, p['episode_reset_topic'], self._on_episode_end, 10))
        self._anomaly = 0.0
        if p['anomaly_topic']:
            from std_msgs.msg import Float64

            self._subs.append(self.create_subscription(
                Float64, p['anomaly_topic'], self._on_anomaly, 10))
        if p['reward_topic']:
            from std_msgs.msg import Float64

            self._subs.append(self.create_subscription(
                Float64, p['reward_topic'], self._on_reward, 10))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        if p['action_type'] == ACTION_TYPES[0]:
            self.publisher = self.create_publisher(Float64MultiArray, p['action_topic'],
                                                   reliable)
        else:
            from trajectory_msgs.msg import JointTrajectory

            names = [n for n in p['joint_names'] if n]
            if len(names) != bundle.act_size:
                raise ConfigError(f'joint_names lists {len(names)} joints, the bundle has '
                                  f'{bundle.act_size} actions')
            self.joint_names = names
            self.publisher = self.create_publisher(JointTrajectory, p['action_topic'], reliable)
        self.params = p
        self._observation_trigger = p['trigger'] == 'observation'
        self.diag.configure(bundle, self.runner.backend.name)

    def _limits(self, p, bundle):
        low, high = bundle.act_low.astype(np.float64), bundle.act_high.astype(np.float64)
        for name, arr in (('action_low', p['action_low']), ('action_high', p['action_high'])):
            values = np.asarray(arr, dtype=np.float64)
            if values.size in (0, 1) and not values.any():
                continue
            if values.size != bundle.act_size:
                raise ConfigError(f'{name} has {values.size} values for {bundle.act_size} '
                                  'actions')
            if name == 'action_low':
                low = np.maximum(low, values)
            else:
                high = np.minimum(high, values)
        if np.any(low > high):
            raise ConfigError('action_low exceeds action_high')
        return low, high

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.runner.reset()
        self._active = True
        self._tick_times: collections.deque[float] = collections.deque(maxlen=200)
        if self.params['trigger'] == 'timer':
            self._timer = self.create_timer(self.period, self._on_timer)
        self.diag.set_state('active')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._publish(self._fault_action(), step=self._last_step)  # hold/zero, then stop
        self.diag.set_state('inactive')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.diag.set_state('unconfigured')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if getattr(self, 'publisher', None) is not None:
            self.destroy_publisher(self.publisher)
            self.publisher = None
        self.runner = None
        self.latest.clear()

    # -------------------------------------------------------------- inputs
    def _stamp(self, source, msg) -> float:
        if source.has_header and source.use_header_stamp:
            return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        return self._now()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_observation(self, source, msg) -> None:
        stamp = self._stamp(source, msg)
        previous = self.latest.get(source.topic)
        if previous is not None and stamp < previous[1]:
            self.counters['out_of_order'] += 1  # never let an older sample replace a newer
            return
        self.latest[source.topic] = (msg, stamp)
        if self._active and self._observation_trigger and source is self.sources[0]:
            layout = getattr(msg, 'layout', None)
            label = layout.dim[0].label if layout is not None and layout.dim else None
            if label != self._episode_label:  # a new episode (lockstep simulator)
                self._episode_label = label
                self.runner.reset()
            self._control_step(step=int(layout.data_offset) if layout is not None else None,
                               now=stamp if not source.has_header else None)

    def _on_episode_end(self, msg: String) -> None:
        # When observations carry their episode (lockstep), that in-order label resets the
        # queue at the right step; this topic arrives in no fixed order relative to them.
        if self.runner is not None and self._episode_label is None:
            self.runner.reset()

    def _on_anomaly(self, msg) -> None:
        self._anomaly = float(msg.data) if math.isfinite(msg.data) else float('inf')

    def _on_reward(self, msg) -> None:
        if self.runner is not None and self._active and math.isfinite(msg.data):
            self.runner.record_reward(msg.data)
        elif not math.isfinite(msg.data):
            self.counters['non_finite_reward'] += 1

    # -------------------------------------------------------------- control
    def _on_timer(self) -> None:
        self._control_step()

    def _assemble(self, now: float | None = None) -> np.ndarray:
        now = self._now() if now is None else now
        parts = []
        for source in self.sources:
            if source.topic not in self.latest:
                raise ObservationError('waiting', f'no message on {source.topic} yet')
            msg, stamp = self.latest[source.topic]
            if now - stamp > self.params['stale_timeout_s']:
                raise ObservationError('stale', f'{source.topic} is {now - stamp:.3f} s old')
            try:
                parts.append(source.extract(msg))
            except ValueError as exc:
                raise ObservationError('wrong size', str(exc)) from exc
        return np.concatenate(parts)

    def _control_step(self, step: int | None = None, now: float | None = None) -> None:
        started = time.perf_counter()
        if step is not None and step == self._last_step and self._last_action is not None:
            self._publish(self._last_action, step)  # a repeated observation: resend, no re-infer
            return
        self._tick_times.append(started)
        try:
            obs = self._assemble(now)
            action = self.runner.act(obs)
            if self.params['exploration_noise'] > 0:
                half = (self.high - self.low) / 2
                action = action + self.params['exploration_noise'] * half * \
                    self._explore.standard_normal(action.shape)
            if self._tighter_limits:
                action = np.clip(action, self.low, self.high)
                self.runner.record_action(action)
            if self.params['anomaly_topic'] and \
                    self._anomaly > self.params['anomaly_threshold']:
                raise ObservationError('anomaly', f'world-model anomaly {self._anomaly:.2f} > '
                                       f"{self.params['anomaly_threshold']}")
            if self.ood is not None and self._is_ood(obs, action):
                raise ObservationError('out of distribution', 'log-density below '
                                       f"{self.params['ood_threshold']}")
        except ObservationError as exc:
            self.counters[exc.reason] += 1
            self.runner.reset()
            self.diag.fault(exc.reason, str(exc))
            action = self._fault_action()
        else:
            self.diag.ok()
        self._publish(action, step)
        self._last_action, self._last_step = action, step
        if time.perf_counter() - started > self.period:
            self.counters['missed_deadlines'] += 1

    def _is_ood(self, obs: np.ndarray, action: np.ndarray) -> bool:
        logp = self.ood.run({'obs': obs[None].astype(np.float32),
                             'action': action[None].astype(np.float32)})
        return bool(logp[0] < self.params['ood_threshold'])

    def _fault_action(self) -> np.ndarray:
        if self.params.get('on_fault') == 'hold' and self._last_action is not None:
            return self._last_action
        return np.clip(np.zeros_like(self.low), self.low, self.high)

    def _publish(self, action: np.ndarray, step: int | None) -> None:
        if self.publisher is None:
            return
        action = np.asarray(action, dtype=np.float64)
        if not np.isfinite(action).all():  # last line of defence: NaN never leaves the node
            self.counters['non_finite_action'] += 1
            action = np.clip(np.zeros_like(self.low), self.low, self.high)
        if self.params['action_type'] == ACTION_TYPES[0]:
            msg = Float64MultiArray(data=action.tolist())
            msg.layout.data_offset = int(step or 0)
        else:
            msg = self._trajectory(action)
        self.publisher.publish(msg)

    def _trajectory(self, action: np.ndarray):
        from builtin_interfaces.msg import Duration
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        actions = [action] + [np.clip(a, self.low, self.high)
                              for a in self.runner.queue.pending()]
        msg = JointTrajectory(joint_names=self.joint_names)
        for k, a in enumerate(actions):
            t = (k + 1) * self.period
            msg.points.append(JointTrajectoryPoint(
                positions=np.asarray(a, np.float64).tolist(),
                time_from_start=Duration(sec=int(t), nanosec=int((t % 1) * 1e9))))
        return msg

    def achieved_rate_hz(self) -> float:
        ticks = list(self._tick_times) if hasattr(self, '_tick_times') else []
        if len(ticks) < 2:
            return 0.0
        return (len(ticks) - 1) / (ticks[-1] - ticks[0])


def main(args=None) -> None:
    rclpy.init(args=args)
    node = PolicyNode()

    def autostart() -> None:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(1)
            node.trigger_activate()

    spin_until_shutdown(node, autostart)


if __name__ == '__main__':
    main()
