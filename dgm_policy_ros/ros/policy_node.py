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
non-finite observation, or one far outside the training data (``max_obs_sigma``), never reaches
the model: the node publishes the fault action instead and says why on ``/diagnostics``. No
exception from the runner, the spec or a publisher ends the node (every callback is guarded),
and no NaN or out-of-bounds value ever leaves it.

Stamps: a message stamped more than ``max_future_s`` ahead of the node's clock is refused (a
sender's clock jump must not poison the out-of-order check), as is a zero stamp; a message
older than the newest accepted one on its topic is dropped as out of order. If the node's own
clock jumps back past a stored stamp, that message is discarded and the step faults until
fresh input arrives.

Parameters: those in ``LIVE_PARAMETERS`` apply at once while configured; the others are read
at ``configure`` and refused with the reason while configured (cleanup first); ``autostart``
is read-only.

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
import dataclasses
import math
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rcl_interfaces.msg import ParameterType as PT
import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.errors import DgmError
from dgm_policy_ros.ros import spin_until_shutdown
from dgm_policy_ros.ros.diagnostics import DiagnosticsReporter
from dgm_policy_ros.ros.guard import guarded
from dgm_policy_ros.runtime import ObservationError, PolicyRunner
from dgm_policy_ros.runtime.observation_spec import (
    check_cameras,
    load_observation_spec,
    spec_width,
)

ACTION_TYPES = ('std_msgs/Float64MultiArray', 'trajectory_msgs/JointTrajectory',
                'sensor_msgs/JointState')
FAULT_ACTIONS = ('hold', 'zero', 'pose')
BACKENDS = ('auto', 'tensorrt', 'onnxruntime', 'onnxruntime-cpu')
LIVE = 'applied at once, also while configured'
AT_CONFIGURE = 'read at configure; refused while configured (cleanup first)'


def _desc(text: str, kind: int, live: bool = False, **kw) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, type=kind,
                               additional_constraints=LIVE if live else AT_CONFIGURE, **kw)


def _range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high)]


PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    'model_file_path': ('', _desc('model bundle folder (manifest.yaml + policy.onnx)',
                                  PT.PARAMETER_STRING)),
    'backend': ('auto', _desc(f'one of {BACKENDS}', PT.PARAMETER_STRING)),
    'engine_file_path': ('', _desc('TensorRT engine file (default: named by GPU in the '
                                   'bundle)', PT.PARAMETER_STRING)),
    'force_engine_update': (False, _desc('rebuild the TensorRT engine', PT.PARAMETER_BOOL)),
    'precision': ('fp32', _desc('TensorRT precision: fp32 or fp16', PT.PARAMETER_STRING)),
    'control_rate_hz': (0.0, _desc('0: the rate in the bundle manifest', PT.PARAMETER_DOUBLE,
                                   live=True, floating_point_range=_range(0.0, 10000.0))),
    'observation_spec': ('', _desc('YAML file or inline YAML list of observation sources',
                                   PT.PARAMETER_STRING)),
    'action_topic': ('/forward_command_controller/commands',
                     _desc('command topic', PT.PARAMETER_STRING)),
    'action_type': (ACTION_TYPES[0], _desc(f'one of {ACTION_TYPES}', PT.PARAMETER_STRING)),
    'joint_names': ([''], _desc('joints of a JointTrajectory or JointState command',
                                PT.PARAMETER_STRING_ARRAY)),
    'stale_timeout_s': (0.5, _desc('observations older than this trigger the fault action',
                                   PT.PARAMETER_DOUBLE, live=True)),
    'max_future_s': (0.5, _desc("messages stamped further than this ahead of the node's clock "
                                'are refused (a sender clock jump)', PT.PARAMETER_DOUBLE,
                                live=True)),
    'max_obs_sigma': (100.0, _desc('observation elements further than this many training '
                                   'standard deviations from the training mean give the '
                                   'fault action (0: off)', PT.PARAMETER_DOUBLE, live=True)),
    'action_low': ([0.0], _desc("the robot's per-joint lower command limits; commands are "
                                "clipped to these and the bundle's bounds (empty/[0.0]: the "
                                'bundle bounds)', PT.PARAMETER_DOUBLE_ARRAY, live=True)),
    'action_high': ([0.0], _desc("the robot's per-joint upper command limits (empty/[0.0]: "
                                 'the bundle bounds)', PT.PARAMETER_DOUBLE_ARRAY, live=True)),
    'on_fault': ('hold', _desc('the fault action: hold (the last action), zero, or pose '
                               '(fault_pose)', PT.PARAMETER_STRING, live=True)),
    'fault_pose': ([float('nan')], _desc('on_fault pose: the command sent on a fault, one '
                                         'value per action (clipped to the limits)',
                                         PT.PARAMETER_DOUBLE_ARRAY, live=True)),
    'ood_threshold': (float('nan'), _desc('log-density below which (s, a) is out of '
                                          'distribution (flow bundles); NaN: off',
                                          PT.PARAMETER_DOUBLE, live=True)),
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
                                     PT.PARAMETER_DOUBLE, live=True)),
    'exploration_noise': (0.0, _desc('data collection: Gaussian noise added to every action, '
                                     'std in units of the action half-range (0: off)',
                                     PT.PARAMETER_DOUBLE, live=True,
                                     floating_point_range=_range(0.0, 10.0))),
    'seed': (0, _desc('noise generator seed (a change reseeds at once)', PT.PARAMETER_INTEGER,
                      live=True)),
    'autostart': (False, ParameterDescriptor(
        description='configure and activate at start (no lifecycle manager)',
        type=PT.PARAMETER_BOOL, read_only=True,
        additional_constraints='read-only: set it when the node starts')),
}
LIVE_PARAMETERS = frozenset(name for name, (_, d) in PARAMETERS.items()
                            if d.additional_constraints == LIVE)


def validate_parameters(values: dict[str, Any]) -> str | None:
    """The reason a parameter set is invalid, or None."""
    checks = [
        (values.get('backend') in BACKENDS, f'backend must be one of {BACKENDS}'),
        (values.get('precision') in ('fp32', 'fp16'), 'precision must be fp32 or fp16'),
        (values.get('action_type') in ACTION_TYPES, f'action_type must be one of {ACTION_TYPES}'),
        (values.get('on_fault') in FAULT_ACTIONS, f'on_fault must be one of {FAULT_ACTIONS}'),
        (values.get('on_fault') != 'pose' or
         np.isfinite(np.asarray(values.get('fault_pose', [np.nan]), float)).all(),
         'on_fault pose needs a finite fault_pose'),
        (values.get('trigger') in ('timer', 'observation'),
         'trigger must be timer or observation'),
        (values.get('stale_timeout_s', 1.0) > 0, 'stale_timeout_s must be > 0'),
        (values.get('max_future_s', 0.0) >= 0, 'max_future_s must be >= 0'),
        (values.get('max_obs_sigma', 0.0) >= 0, 'max_obs_sigma must be >= 0 (0: off)'),
        (values.get('control_rate_hz', 0.0) >= 0, 'control_rate_hz must be >= 0'),
        (not math.isnan(values.get('anomaly_threshold', 0.0)),
         'anomaly_threshold must be a number'),
    ]
    for ok, reason in checks:
        if not ok:
            return reason
    return None


@dataclasses.dataclass(frozen=True)
class LiveSettings:
    """What the control loop reads each step; replaced as a whole when a live parameter
    changes, so a step never sees half of an update."""

    stale_timeout_s: float
    max_future_s: float
    on_fault: str
    fault_pose: np.ndarray  # on_fault pose: the command sent on a fault
    exploration_noise: float
    anomaly_threshold: float
    ood_threshold: float
    low: np.ndarray
    high: np.ndarray
    period: float


class PolicyNode(LifecycleNode):
    def __init__(self, node_name: str = 'dgm_policy', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.runner: PolicyRunner | None = None
        self.sources: list = []
        self.latest: dict[str, tuple[Any, float]] = {}  # topic -> (msg, stamp seconds)
        self._fresh: set[str] = set()  # topics with a message since the last control step
        # A triggered step waiting for a 'drop' source's new message: (step, now or None).
        self._pending: tuple[int | None, float | None] | None = None
        self.params: dict[str, Any] = {}  # the values read at configure (live ones kept current)
        self.live: LiveSettings | None = None
        self.publisher = None
        self.joint_names: list[str] = []
        self.ood = None  # the log_prob graph's backend, once ood_threshold is set
        self._subs: list = []
        self._timer = None
        self._active = False
        self._observation_trigger = False
        self._explore = np.random.default_rng(0)
        self._anomaly = 0.0
        self._last_action: np.ndarray | None = None
        self._last_step: int | None = None
        self._episode_label: str | None = None
        self._tick_times: collections.deque[float] = collections.deque(maxlen=200)
        self.counters: collections.Counter[str] = collections.Counter()
        self.diag = DiagnosticsReporter(self)

    # -------------------------------------------------------------- parameters
    def _values(self) -> dict[str, Any]:
        return {name: self.get_parameter(name).value for name in PARAMETERS}

    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in PARAMETERS}
        values = {**self._values(), **changes}
        reason = validate_parameters(values)
        if reason is None and self.runner is not None:
            fixed = sorted(n for n in changes if n not in LIVE_PARAMETERS)
            if fixed:
                reason = f'{", ".join(fixed)}: {AT_CONFIGURE}'
            else:
                try:
                    live = self._live_settings(values)
                    self._apply_live(values, live, changes)
                except DgmError as exc:  # a bad value, or a graph it needs that cannot load
                    reason = str(exc)
        return SetParametersResult(successful=reason is None, reason=reason or '')

    def _live_settings(self, p: dict[str, Any]) -> LiveSettings:
        bundle = self.runner.bundle
        low, high = self._limits(p, bundle)
        rate = p['control_rate_hz'] or bundle.control_rate_hz
        if rate <= 0:
            raise ConfigError('control_rate_hz is 0 and the bundle names no control rate')
        if not math.isnan(p['ood_threshold']) and 'log_prob' not in bundle.manifest['graphs']:
            raise ConfigError('ood_threshold is set but the bundle has no log_prob graph')
        if p['max_obs_sigma'] > 0 and not self.runner.knows_training_range:
            raise ConfigError('max_obs_sigma > 0 needs the observation normalization a bundle '
                              'records at export, and this one has none: set max_obs_sigma 0')
        pose = np.asarray(p['fault_pose'], np.float64)
        if p['on_fault'] == 'pose' and pose.shape != low.shape:
            raise ConfigError(f'fault_pose has {pose.size} values, the bundle '
                              f'{low.size} actions')
        return LiveSettings(float(p['stale_timeout_s']), float(p['max_future_s']),
                            p['on_fault'], pose, float(p['exploration_noise']),
                            float(p['anomaly_threshold']), float(p['ood_threshold']),
                            low, high, 1.0 / rate)

    def _apply_live(self, p: dict[str, Any], live: LiveSettings, changes: dict) -> None:
        """Make a validated set of live values the ones the control loop uses, now."""
        if not math.isnan(live.ood_threshold) and self.ood is None:
            from dgm_policy_ros.runtime.backends import OnnxRuntimeBackend

            self.ood = OnnxRuntimeBackend(self.runner.bundle.file('log_prob'))
        if 'seed' in changes:
            self.runner.rng = np.random.default_rng(p['seed'])
            self._explore = np.random.default_rng(p['seed'] + 1)
        self.runner.max_obs_sigma = float(p['max_obs_sigma'])
        if self._timer is not None and (self.live is None or live.period != self.live.period):
            self._timer.timer_period_ns = int(round(live.period * 1e9))
        self.params.update({k: p[k] for k in LIVE_PARAMETERS})
        self.live = live

    # -------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - any failure is a failed transition
            self.get_logger().error(f'configure failed: {exc}')
            self.diag.fault(type(exc).__name__, str(exc), error=True, what='configure failed')
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
        check_cameras(self.sources, bundle.image_inputs)
        if spec_width(self.sources) != bundle.obs_size:
            raise ConfigError(f'the observation spec yields {spec_width(self.sources)} values, '
                              f'the bundle expects {bundle.obs_size}')
        self.params = p
        self.runner.infer(self.runner.zero_inputs())  # warm-up (engine, caches)
        self.runner.latencies_ms.clear()
        # Seeded after the warm-up, whose noise draws must not shift the first step's.
        self._apply_live(p, self._live_settings(p), {'seed': p['seed']})
        for source in self.sources:
            self._subs.append(self.create_subscription(
                source.message_class(), source.topic,
                guarded(self, f'observation {source.topic}',
                        lambda msg, s=source: self._on_observation(s, msg), self._on_error),
                qos_profile_sensor_data))
        if p['episode_reset_topic']:
            self._subs.append(self.create_subscription(
                String, p['episode_reset_topic'],
                guarded(self, 'episode reset', self._on_episode_end), 10))
        self._anomaly = 0.0
        if p['anomaly_topic']:
            from std_msgs.msg import Float64

            self._subs.append(self.create_subscription(
                Float64, p['anomaly_topic'], guarded(self, 'anomaly', self._on_anomaly), 10))
        if p['reward_topic']:
            from std_msgs.msg import Float64

            self._subs.append(self.create_subscription(
                Float64, p['reward_topic'], guarded(self, 'reward', self._on_reward), 10))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # Lifecycle publishers: commands go out only while the node is active.
        if p['action_type'] == ACTION_TYPES[0]:
            self.publisher = self.create_lifecycle_publisher(Float64MultiArray,
                                                             p['action_topic'], reliable)
        else:
            from trajectory_msgs.msg import JointTrajectory

            names = [n for n in p['joint_names'] if n]
            if len(names) != bundle.act_size:
                raise ConfigError(f'joint_names lists {len(names)} joints, the bundle has '
                                  f'{bundle.act_size} actions')
            self.joint_names = names
            kind = JointState if p['action_type'] == ACTION_TYPES[2] else JointTrajectory
            self.publisher = self.create_lifecycle_publisher(kind, p['action_topic'], reliable)
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
            if not np.isfinite(values).all():
                raise ConfigError(f'{name} must be finite')
            if name == 'action_low':
                low = np.maximum(low, values)
            else:
                high = np.minimum(high, values)
        if np.any(low > high):
            raise ConfigError('action_low exceeds action_high')
        return low, high

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        super().on_activate(state)  # activates the lifecycle publishers
        self.runner.reset()
        self._active = True
        self._tick_times.clear()
        if self.params['trigger'] == 'timer':
            self._timer = self.create_timer(self.live.period,
                                            guarded(self, 'control timer', self._on_timer,
                                                    self._on_error))
        self.diag.set_state('active')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._publish(self._fault_action(), step=self._last_step)  # hold/zero, then stop
        super().on_deactivate(state)  # then the lifecycle publishers stop
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
        self._active = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self.publisher is not None:
            self.destroy_lifecycle_publisher(self.publisher)
            self.publisher = None
        self.runner = None
        self.live = None
        self.ood = None
        self.latest.clear()
        self._fresh.clear()
        self._pending = None
        self._last_action = self._last_step = self._episode_label = None

    # -------------------------------------------------------------- inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_observation(self, source, msg) -> None:
        now = self._now()
        trigger = self._active and self._observation_trigger and source is self.sources[0]
        layout = getattr(msg, 'layout', None)
        step = int(layout.data_offset) if trigger and layout is not None else None
        try:
            stamp = self._accept(source, msg, now)
        except ObservationError as exc:
            if trigger:  # the step this message asked for is answered, with the fault action
                self._control_step(step=step, fault=exc)
            else:
                self._count_fault(exc, published=False)
            return
        if trigger:
            label = layout.dim[0].label if layout is not None and layout.dim else None
            if label != self._episode_label:  # a new episode (lockstep simulator)
                self._episode_label = label
                self.runner.reset()
            self._pending = (step, stamp if not source.has_header else None)
        if self._pending is not None and self._active and not self._waiting_for():
            step, when = self._pending
            self._pending = None
            self._control_step(step=step, now=when)

    def _waiting_for(self) -> list[str]:
        """'drop' sources with no message since the last step (a triggered step waits)."""
        return [s.topic for s in self.sources if s.align == 'drop' and
                s.topic not in self._fresh]

    def _accept(self, source, msg, now: float) -> float:
        """Store ``msg`` as its topic's latest and return its stamp, or say why not."""
        stamp = now
        if source.has_header and source.use_header_stamp:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if stamp == 0.0:
                raise ObservationError('unstamped', f'{source.topic}: header.stamp is zero '
                                       '(set use_header_stamp: false for a sender that does '
                                       'not stamp)')
            # A clock that has not started (sim time before /clock) cannot judge the future.
            if now > 0 and stamp - now > self.live.max_future_s:
                raise ObservationError('future stamp', f'{source.topic}: stamped '
                                       f'{stamp - now:.3f} s ahead of the node clock '
                                       f'(max_future_s {self.live.max_future_s})')
        previous = self.latest.get(source.topic)
        if previous is not None and stamp < previous[1]:
            raise ObservationError('out_of_order', f'{source.topic}: stamp {stamp:.3f} is '
                                   f'older than the last accepted {previous[1]:.3f}')
        self.latest[source.topic] = (msg, stamp)
        self._fresh.add(source.topic)
        return stamp

    def _on_episode_end(self, msg: String) -> None:
        # When observations carry their episode (lockstep), that in-order label resets the
        # queue at the right step; this topic arrives in no fixed order relative to them.
        if self.runner is not None and self._episode_label is None:
            self.runner.reset()

    def _on_anomaly(self, msg) -> None:
        self._anomaly = float(msg.data) if math.isfinite(msg.data) else float('inf')

    def _on_reward(self, msg) -> None:
        if not math.isfinite(msg.data):
            self.counters['non_finite_reward'] += 1
        elif self.runner is not None and self._active:
            self.runner.record_reward(msg.data)

    def _on_error(self, name: str, exc: BaseException) -> None:
        """A callback raised (a bug, or a failure below us): the safe action, said why."""
        if self._active and self.publisher is not None and self.live is not None:
            self._count_fault(ObservationError('internal error', f'{name}: '
                                               f'{type(exc).__name__}: {exc}'))
            self._publish(self._fault_action(), self._last_step)

    # -------------------------------------------------------------- control
    def _on_timer(self) -> None:
        self._control_step()

    def _assemble(self, live: LiveSettings, now: float | None = None):
        """The policy's input from each source's latest message: the observation vector, and
        for a bundle that sees images ``{'obs': vector, 'images/<camera>': frame, ...}``."""
        now = self._now() if now is None else now
        parts, frames = [], {}
        for source in self.sources:
            if source.topic not in self.latest:
                raise ObservationError('waiting', f'no message on {source.topic} yet')
            msg, stamp = self.latest[source.topic]
            if stamp - now > live.max_future_s:  # our clock went back (e.g. sim time reset)
                del self.latest[source.topic]
                raise ObservationError('clock jump', f'{source.topic} is stamped '
                                       f'{stamp - now:.3f} s after the node clock')
            if now - stamp > live.stale_timeout_s:
                raise ObservationError('stale', f'{source.topic} is {now - stamp:.3f} s old')
            if source.align == 'asof' and now - stamp > source.tolerance_s:
                raise ObservationError('out of sync', f'{source.topic} is {now - stamp:.3f} s '
                                       f'older than the step (tolerance_s '
                                       f'{source.tolerance_s})')
            if source.align == 'drop' and source.topic not in self._fresh:
                raise ObservationError('stale', f'{source.topic}: no message since the last '
                                       'control step (align: drop)')
            try:
                if source.is_camera:
                    shape = self.runner.bundle.image_inputs[source.input_name]
                    frames[source.input_name] = source.frame(msg, shape)
                else:
                    parts.append(source.extract(msg))
            except ObservationError:
                raise
            except Exception as exc:  # noqa: BLE001 - any malformed message is a fault
                raise ObservationError('wrong size', str(exc)) from exc
        obs = np.concatenate(parts)
        return {'obs': obs, **frames} if frames else obs

    def _control_step(self, step: int | None = None, now: float | None = None,
                      fault: ObservationError | None = None) -> None:
        started = time.perf_counter()
        live = self.live
        if step is not None and step == self._last_step and self._last_action is not None:
            self._publish(self._last_action, step)  # a repeated observation: resend, no re-infer
            return
        self._tick_times.append(started)
        try:
            if fault is not None:
                raise fault
            try:
                inputs = self._assemble(live, now)
            finally:
                self._fresh.clear()  # each message serves one step at most under 'drop'

            obs = inputs['obs'] if isinstance(inputs, dict) else inputs
            raw = self.runner.act(inputs)
            action = raw
            if live.exploration_noise > 0:
                half = (live.high - live.low) / 2
                action = raw + live.exploration_noise * half * \
                    self._explore.standard_normal(raw.shape)
            action = np.clip(action, live.low, live.high)
            if not np.array_equal(action, raw):
                self.runner.record_action(action)  # the history holds what the robot did
            if self.params['anomaly_topic'] and self._anomaly > live.anomaly_threshold:
                raise ObservationError('anomaly', f'world-model anomaly {self._anomaly:.2f} > '
                                       f'{live.anomaly_threshold}')
            if not math.isnan(live.ood_threshold) and self._is_ood(obs, action, live):
                raise ObservationError('out of distribution', 'log-density below '
                                       f'{live.ood_threshold}')
        except Exception as exc:  # noqa: BLE001 - every failure gives the fault action
            self._count_fault(exc)
            self.runner.reset()
            action = self._fault_action()
        else:
            self.diag.ok()
        self._publish(action, step)
        self._last_action, self._last_step = action, step
        if time.perf_counter() - started > live.period:
            self.counters['missed_deadlines'] += 1

    def _count_fault(self, exc: BaseException, published: bool = True) -> None:
        if isinstance(exc, ObservationError):
            reason, detail = exc.reason, str(exc)
        elif isinstance(exc, FloatingPointError):
            reason, detail = 'non-finite action', str(exc)
        else:
            reason, detail = 'internal error', f'{type(exc).__name__}: {exc}'
            self.get_logger().error(f'control step failed: {detail}',
                                    throttle_duration_sec=1.0)
        self.counters[reason] += 1
        self.diag.fault(reason, detail,
                        what='fault action published' if published else 'message refused')

    def _is_ood(self, obs: np.ndarray, action: np.ndarray, live: LiveSettings) -> bool:
        logp = self.ood.run({'obs': obs[None].astype(np.float32),
                             'action': action[None].astype(np.float32)})
        return bool(logp[0] < live.ood_threshold)

    def _fault_action(self) -> np.ndarray:
        live = self.live
        if live.on_fault == 'hold' and self._last_action is not None:
            return np.clip(self._last_action, live.low, live.high)
        if live.on_fault == 'pose':
            return np.clip(live.fault_pose, live.low, live.high)
        return np.clip(np.zeros_like(live.low), live.low, live.high)

    def _publish(self, action: np.ndarray, step: int | None) -> None:
        if self.publisher is None or self.live is None:
            return
        live = self.live
        action = np.asarray(action, dtype=np.float64)
        if action.shape != live.low.shape or not np.isfinite(action).all():
            # The last line of defence: no NaN, no wrong size ever leaves the node.
            self.counters['unsafe action replaced'] += 1
            action = np.zeros_like(live.low)
        action = np.clip(action, live.low, live.high)  # limits may have narrowed since
        if self.params['action_type'] == ACTION_TYPES[0]:
            msg = Float64MultiArray(data=action.tolist())
            msg.layout.data_offset = int(step or 0)
        elif self.params['action_type'] == ACTION_TYPES[2]:
            msg = JointState(name=self.joint_names, position=action.tolist())
            msg.header.stamp = self.get_clock().now().to_msg()
        else:
            msg = self._trajectory(action, live)
        self.publisher.publish(msg)

    def _trajectory(self, action: np.ndarray, live: LiveSettings):
        from builtin_interfaces.msg import Duration
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        actions = [action] + [np.clip(a, live.low, live.high)
                              for a in self.runner.queue.pending()]
        msg = JointTrajectory(joint_names=self.joint_names)
        for k, a in enumerate(actions):
            t = (k + 1) * live.period
            msg.points.append(JointTrajectoryPoint(
                positions=np.asarray(a, np.float64).tolist(),
                time_from_start=Duration(sec=int(t), nanosec=int((t % 1) * 1e9))))
        return msg

    def achieved_rate_hz(self) -> float:
        ticks = list(self._tick_times)
        if len(ticks) < 2:
            return 0.0
        return (len(ticks) - 1) / (ticks[-1] - ticks[0])


def main(args=None) -> None:
    rclpy.init(args=args)
    node = PolicyNode()

    def autostart() -> None:
        # A failed configure leaves the node up, unconfigured, with the reason on
        # /diagnostics: fix the parameters and configure again (no restart needed).
        if node.get_parameter('autostart').value and \
                node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()

    spin_until_shutdown(node, autostart)


if __name__ == '__main__':
    main()
