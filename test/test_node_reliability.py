# SPDX-License-Identifier: Apache-2.0
"""What a hostile topic, a clock jump or a parameter change does to a running policy node.

Each test here failed before the node's guard, stamp rules and live parameters existed.
"""
from pathlib import Path
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy not installed (ros-wheels extra or a '
                            'ROS 2 install)')
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray  # noqa: E402
from test_policies import OBS_DIM, tiny_dataset  # noqa: E402,F401
from test_ros_nodes import Probe, bundle, make_policy, ros, wait_for  # noqa: E402,F401
from test_world_models import world_model_bundle  # noqa: E402,F401

from dgm_policy_ros.runtime import PolicyRunner  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
FLOW = ROOT / 'models' / 'hopper_flow_bc'


def flow_policy(ros, tag, **params):  # noqa: F811
    """The shipped flow bundle behind a Float64MultiArray observation of 11 values."""
    spec = f'- {{topic: /{tag}/obs, type: std_msgs/Float64MultiArray, size: 11}}'
    node = make_policy(ros, FLOW, tag, observation_spec=spec, **params)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return node


def flow_mean():
    import yaml

    manifest = yaml.safe_load((FLOW / 'manifest.yaml').read_text())
    return np.asarray(manifest['normalization']['obs_mean'], np.float64)


@pytest.mark.parametrize('trigger', ['observation', 'timer'])
@pytest.mark.parametrize('max_obs_sigma', [100.0, 0.0])
def test_huge_finite_values_give_the_fault_action_and_the_node_lives(ros, trigger,  # noqa: F811
                                                                      max_obs_sigma):
    tag = f'huge_{trigger}_{int(max_obs_sigma)}'
    node = flow_policy(ros, tag, trigger=trigger, on_fault='zero', max_obs_sigma=max_obs_sigma)
    probe = Probe(ros, f'/{tag}/obs', f'/{tag}/cmd')
    good = flow_mean()

    def answer(step):  # the command for this step (timer: the newest command)
        if trigger == 'observation':
            return probe.command_for(step)
        return probe.commands[-1] if probe.commands else None

    assert wait_for(lambda: answer(1) and any(answer(1).data),
                    every=lambda: probe.send(good, step=1))
    # Without the training-range check the model itself overflows: that is a fault too.
    reason = 'out of training range' if max_obs_sigma else 'non-finite action'
    for step, value in enumerate([1e37, 3e38, -3e38], start=2):
        bad = good.copy()
        bad[0] = value  # element 0: where these overflow the unchecked model
        said = len(probe.diag_with(reason))
        assert wait_for(lambda n=said, s=step: len(probe.diag_with(reason)) > n and
                        answer(s) and not any(answer(s).data),
                        every=lambda b=bad, s=step: probe.send(b, step=s))
    assert node.counters[reason] >= 3
    # Good input again: normal actions again.
    assert wait_for(lambda: answer(9) and any(answer(9).data),
                    every=lambda: probe.send(good, step=9))
    assert all(np.isfinite(c.data).all() and np.all(np.abs(c.data) <= 1.0)
               for c in probe.commands)


class JointProbe(Probe):
    """Publishes JointState observations (joints a, b: position and velocity)."""

    SPEC = ('- {topic: /%s/joints, type: sensor_msgs/JointState, joints: [a, b], '
            'fields: [position, velocity]}')

    def __init__(self, executor, tag):
        super().__init__(executor, f'/{tag}/unused', f'/{tag}/cmd')
        self.joints = self.node.create_publisher(JointState, f'/{tag}/joints',
                                                 qos_profile_sensor_data)

    def send_joints(self, values, offset_s=0.0, names=('a', 'b'), stamp=None):
        msg = JointState(name=list(names), position=[float(v) for v in values[:2]],
                         velocity=[float(v) for v in values[2:]])
        if stamp is None:
            now = self.node.get_clock().now().nanoseconds * 1e-9 + offset_s
            stamp = (int(now), int((now % 1) * 1e9))
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
        self.joints.publish(msg)


def test_a_far_future_stamp_is_refused_and_does_not_poison_the_node(ros, bundle):  # noqa: F811
    tag = 'future'
    node = make_policy(ros, bundle, tag, trigger='timer', on_fault='zero',
                       stale_timeout_s=0.3, observation_spec=JointProbe.SPEC % tag)
    node.trigger_configure()
    node.trigger_activate()
    probe = JointProbe(ros, tag)
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu')
    first, second = np.array([0.3, -0.2, 0.5, 1.0]), np.array([-0.4, 0.6, 0.1, -0.7])

    def following(obs):
        expected = runner.infer(obs)[0, 0]
        return lambda: probe.commands and np.allclose(probe.commands[-1].data, expected,
                                                      atol=1e-6)

    assert wait_for(following(first), every=lambda: probe.send_joints(first))
    said = len(probe.diag_with('future stamp'))
    probe.send_joints(second, offset_s=3600.0)  # one message from a clock an hour ahead
    assert wait_for(lambda: len(probe.diag_with('future stamp')) > said)
    assert 'message refused' in probe.diag_with('future stamp')[-1].message
    # Fresh messages after it are used at once: the commands follow the input.
    assert wait_for(following(second), every=lambda: probe.send_joints(second))
    assert node.counters['out_of_order'] == 0
    # And silence after it is reported stale, with the fault action.
    stale = len(probe.diag_with('stale'))
    assert wait_for(lambda: len(probe.diag_with('stale')) > stale, timeout=10)
    assert wait_for(lambda: list(probe.commands[-1].data) == [0.0, 0.0])
    # A zero stamp is refused with its own reason; max_future_s applies at once.
    probe.send_joints(first, stamp=(0, 0))
    assert wait_for(lambda: probe.diag_with('unstamped'))
    assert node.set_parameters([Parameter('max_future_s', value=7200.0)])[0].successful
    assert wait_for(lambda: node.latest.get(f'/{tag}/joints') and
                    node.latest[f'/{tag}/joints'][1] > time.time() + 1000,
                    every=lambda: probe.send_joints(second, offset_s=3600.0))


def _commands_in(probe, seconds):
    start = len(probe.commands)
    time.sleep(seconds)
    return len(probe.commands) - start


def test_every_live_parameter_is_applied_at_once(ros):  # noqa: F811
    tag = 'live'
    node = flow_policy(ros, tag, trigger='observation', anomaly_topic=f'/{tag}/anomaly')
    probe = Probe(ros, f'/{tag}/obs', f'/{tag}/cmd')
    anomaly = probe.node.create_publisher(Float64, f'/{tag}/anomaly', 10)
    obs = flow_mean()
    steps = iter(range(100, 10_000))

    def command(values=obs):
        step = next(steps)
        assert wait_for(lambda: probe.command_for(step), every=lambda: probe.send(values, step))
        return np.asarray(probe.command_for(step).data)

    def set_(name, value):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert result.successful, (name, result.reason)

    # seed: the noise generator restarts at once, so the next action is seed 5's first.
    set_('seed', 5)
    np.testing.assert_allclose(command(), PolicyRunner(FLOW, backend='onnxruntime-cpu',
                                                       seed=5).infer(obs)[0, 0], atol=1e-5)
    # action_low/high: the robot's limits narrow the commands now.
    set_('action_low', [-0.01, -0.01, -0.01])
    set_('action_high', [0.01, 0.01, 0.01])
    assert np.all(np.abs(command()) <= 0.01 + 1e-12)
    set_('action_low', [0.0])
    set_('action_high', [0.0])
    # exploration_noise: a large noise moves the commands off the policy's own actions.
    set_('seed', 5)
    set_('exploration_noise', 5.0)
    noisy = command()
    set_('exploration_noise', 0.0)
    set_('seed', 5)
    assert not np.allclose(noisy, command())
    # on_fault: zero from now on.
    set_('on_fault', 'zero')
    bad = obs.copy()
    bad[0] = np.nan
    np.testing.assert_array_equal(command(bad), [0.0, 0.0, 0.0])
    # on_fault pose: the configured pose (clipped to the limits); a pose of the wrong size,
    # or pose without one, is refused with the reason.
    refused = node.set_parameters([Parameter('on_fault', value='pose')])[0]
    assert not refused.successful and 'fault_pose' in refused.reason
    set_('fault_pose', [0.1, -0.2, 5.0])
    set_('on_fault', 'pose')
    np.testing.assert_allclose(command(bad), np.clip([0.1, -0.2, 5.0], node.live.low,
                                                     node.live.high))
    refused = node.set_parameters([Parameter('fault_pose', value=[0.1])])[0]
    assert not refused.successful and 'fault_pose has 1 values' in refused.reason
    set_('on_fault', 'hold')
    held = command()
    np.testing.assert_array_equal(command(bad), held)
    # max_obs_sigma: tight enough that the mean plus a little is out of range.
    set_('max_obs_sigma', 1e-9)
    shifted = obs + 0.01
    said = len(probe.diag_with('out of training range'))
    command(shifted)
    assert wait_for(lambda: len(probe.diag_with('out of training range')) > said)
    set_('max_obs_sigma', 100.0)
    # ood_threshold: every (s, a) is below a log-density of 1e9.
    set_('ood_threshold', 1e9)
    said = len(probe.diag_with('out of distribution'))
    command()
    assert wait_for(lambda: len(probe.diag_with('out of distribution')) > said)
    set_('ood_threshold', float('nan'))
    # anomaly_threshold: a score of 2 passes at 3 and stops the policy at 1.
    assert wait_for(lambda: node._anomaly == 2.0, every=lambda: anomaly.publish(Float64(data=2.0)))
    said = len(probe.diag_with('anomaly'))
    command()
    assert len(probe.diag_with('anomaly')) == said
    set_('anomaly_threshold', 1.0)
    command()
    assert wait_for(lambda: len(probe.diag_with('anomaly')) > said)
    set_('anomaly_threshold', 3.0)
    assert node.live.anomaly_threshold == 3.0 and node.params['anomaly_threshold'] == 3.0


def test_stale_timeout_and_control_rate_apply_at_once(ros, bundle):  # noqa: F811
    tag = 'rate'
    node = make_policy(ros, bundle, tag, trigger='timer', control_rate_hz=50.0)
    node.trigger_configure()
    node.trigger_activate()
    probe = Probe(ros, f'/{tag}/obs', f'/{tag}/cmd')
    # Without observations the timer still publishes (the fault action, 'waiting') each tick.
    assert wait_for(lambda: len(probe.commands) > 10)
    fast = _commands_in(probe, 1.0)
    assert node.set_parameters([Parameter('control_rate_hz', value=5.0)])[0].successful
    time.sleep(0.3)
    slow = _commands_in(probe, 1.0)
    assert slow <= 8 < 20 <= fast, (slow, fast)
    # A timeout shorter than any message's age makes every step stale, at once.
    obs = [0.1, 0.2, 0.3, 0.4]
    assert wait_for(lambda: node.counters['stale'] == 0 and
                    probe.commands and any(probe.commands[-1].data),
                    every=lambda: probe.send(obs))
    assert node.set_parameters([Parameter('stale_timeout_s', value=1e-6)])[0].successful
    assert wait_for(lambda: node.counters['stale'] > 0, every=lambda: probe.send(obs))
    assert node.set_parameters([Parameter('stale_timeout_s', value=0.5)])[0].successful


def test_configure_time_parameters_are_refused_with_the_reason(ros, bundle):  # noqa: F811
    from dgm_policy_ros.ros.policy_node import LIVE_PARAMETERS, PARAMETERS

    node = make_policy(ros, bundle, 'fixed')
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    fixed = sorted(set(PARAMETERS) - LIVE_PARAMETERS - {'autostart'})
    assert {'model_file_path', 'observation_spec', 'trigger', 'action_topic'} <= set(fixed)
    for name in fixed:
        before = node.get_parameter(name).value
        value = {bool: lambda v: not v, str: lambda v: v + 'x', float: lambda v: v + 1.0,
                 int: lambda v: v + 1, list: lambda v: v + ['x']}[type(before)](before)
        if name in ('backend', 'precision', 'action_type', 'trigger'):
            value = {'backend': 'onnxruntime', 'precision': 'fp16',
                     'action_type': 'trajectory_msgs/JointTrajectory',
                     'trigger': 'timer'}[name]
        if name == 'target_return':
            value = 10.0
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful, name
        assert 'cleanup first' in result.reason, (name, result.reason)
        assert node.get_parameter(name).value == before or name == 'target_return'
    result = node.set_parameters([Parameter('autostart', value=True)])[0]
    assert not result.successful and 'read-only' in result.reason
    # Unconfigured, they are taken (and read at the next configure).
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert node.set_parameters([Parameter('trigger', value='timer')])[0].successful


# ------------------------------------------------------------------ the fuzz test
def _spawn(args, tmp_path, name):
    log = open(tmp_path / f'{name}.log', 'w')
    return subprocess.Popen([sys.executable, '-m', *args], stdout=log,
                            stderr=subprocess.STDOUT), tmp_path / f'{name}.log'


def _stop(proc, log, sig):
    proc.send_signal(sig)
    try:
        code = proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f'did not stop on {sig!r}:\n{log.read_text()[-2000:]}')
    text = log.read_text()
    assert code == 0 and 'Traceback' not in text, f'exit {code} on {sig!r}:\n{text[-3000:]}'


@pytest.mark.slow
def test_fuzzed_joint_states_never_kill_the_node_nor_leave_it_stuck(ros, bundle, tmp_path):  # noqa: F811
    import signal

    tag = 'fuzz'
    rate, stale = 20.0, 0.3
    spec = tmp_path / 'spec.yaml'
    spec.write_text(JointProbe.SPEC % tag)
    proc, log = _spawn(['dgm_policy_ros.ros.policy_node', '--ros-args',
                        '-r', '__node:=policy_fuzz',
                        '-p', f'model_file_path:={bundle}', '-p', f'observation_spec:={spec}',
                        '-p', 'backend:=onnxruntime-cpu', '-p', f'action_topic:=/{tag}/cmd',
                        '-p', f'control_rate_hz:={rate}', '-p', f'stale_timeout_s:={stale}',
                        '-p', 'on_fault:=zero', '-p', 'autostart:=true'], tmp_path, 'policy')
    probe = JointProbe(ros, tag)
    received = []  # (receive time, values)
    probe.node.create_subscription(Float64MultiArray, f'/{tag}/cmd',
                                   lambda m: received.append((time.monotonic(), list(m.data))),
                                   50)
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu')
    low, high = runner.low, runner.high
    good = np.array([0.2, -0.1, 0.3, 0.05])

    def moving():
        return received and any(v != 0.0 for v in received[-1][1])

    try:
        assert wait_for(moving, timeout=60, every=lambda: probe.send_joints(good)), \
            log.read_text()[-2000:]
        rng = np.random.default_rng(0)
        huge = [np.nan, np.inf, -np.inf, 1e37, 3e38, -3e38, 1e308]
        cases = ['value', 'short', 'long', 'missing', 'renamed', 'mismatch', 'old', 'zero',
                 'future', 'max_stamp', 'burst', 'good']
        deadline = time.monotonic() + 20.0
        for i in range(300):  # bounded in count and in time
            if time.monotonic() > deadline:
                break
            case = cases[i % len(cases)] if i < len(cases) else rng.choice(cases)
            values = good + rng.normal(0, 0.1, 4)
            if case == 'value':
                values[rng.integers(4)] = rng.choice(huge)
                probe.send_joints(values)
            elif case == 'short':
                probe.send_joints(values[:3])  # 2 names, 1 position, 2 velocities
            elif case == 'long':
                msg = JointState(name=['a', 'b'], position=[1.0, 2.0, 3.0], velocity=[0.0] * 2)
                msg.header.stamp = probe.node.get_clock().now().to_msg()
                probe.joints.publish(msg)
            elif case == 'missing':
                probe.send_joints(values, names=('a', 'c'))
            elif case == 'renamed':
                probe.send_joints(values, names=('A', 'B'))
            elif case == 'mismatch':
                msg = JointState(name=['a', 'b', 'c'], position=[1.0, 2.0], velocity=[])
                msg.header.stamp = probe.node.get_clock().now().to_msg()
                probe.joints.publish(msg)
            elif case == 'old':
                probe.send_joints(values, offset_s=-30.0)
            elif case == 'zero':
                probe.send_joints(values, stamp=(0, 0))
            elif case == 'future':
                probe.send_joints(values, offset_s=float(rng.uniform(1, 1e6)))
            elif case == 'max_stamp':
                probe.send_joints(values, stamp=(2**31 - 1, 999_999_999))
            elif case == 'burst':
                for _ in range(100):
                    probe.send_joints(good + rng.normal(0, 0.1, 4))
            else:
                probe.send_joints(values)
            time.sleep(float(rng.uniform(0, 0.02)))
            assert proc.poll() is None, log.read_text()[-3000:]
        # Good input returns: normal actions resume.
        assert wait_for(moving, timeout=10, every=lambda: probe.send_joints(good))
        # Then silence: the fault action within one control period after stale_timeout_s.
        # Counted in the node's control ticks (commands), not in this process's receive times,
        # which a loaded 2-core machine delays; a few commands may still be in flight.
        for _ in range(10):
            probe.send_joints(good)
            time.sleep(0.01)
        last_sent, count = time.monotonic(), len(received)
        assert wait_for(lambda: received[-1][1] == [0.0, 0.0], timeout=10)
        after = [v for _, v in received[count:]]
        normal_ticks = next(i for i, v in enumerate(after) if v == [0.0, 0.0])
        in_flight = 3
        assert normal_ticks <= int(np.ceil(stale * rate)) + 1 + in_flight, after
        assert received[count + normal_ticks][0] - last_sent < 3.0
        assert wait_for(moving, timeout=10, every=lambda: probe.send_joints(good))
        assert proc.poll() is None, log.read_text()[-3000:]
        values = np.asarray([v for _, v in received])
        assert np.isfinite(values).all()
        assert np.all(values >= low - 1e-9) and np.all(values <= high + 1e-9)
        _stop(proc, log, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize('signame', ['SIGINT', 'SIGTERM'])
def test_every_node_shuts_down_cleanly_on_a_signal(ros, bundle, world_model_bundle,  # noqa: F811
                                                   tmp_path, signame):
    import signal

    spec = tmp_path / 'spec.yaml'
    spec.write_text(f'- {{topic: /sig/obs, type: std_msgs/Float64MultiArray, size: {OBS_DIM}}}')
    wm_spec = tmp_path / 'wm_spec.yaml'  # the world model's linear system has 3 states
    wm_spec.write_text('- {topic: /sig/state, type: std_msgs/Float64MultiArray, size: 3}')
    nodes = {
        'policy': ['dgm_policy_ros.ros.policy_node', '--ros-args', '-p',
                   f'model_file_path:={bundle}', '-p', f'observation_spec:={spec}',
                   '-p', 'backend:=onnxruntime-cpu', '-p', 'autostart:=true',
                   '-p', 'action_topic:=/sig/policy_cmd'],
        'sim': ['dgm_policy_ros.ros.mujoco_sim_node', '--ros-args', '-r', '__node:=sig_sim',
                '-p', 'env_id:=HalfCheetah-v5', '-p', 'mode:=realtime'],
        'sim_lockstep': ['dgm_policy_ros.ros.mujoco_sim_node', '--ros-args',
                         '-r', '__node:=sig_sim_lockstep', '-p', 'mode:=lockstep',
                         '-p', 'lockstep_resend_s:=0.001'],
        'world_model': ['dgm_policy_ros.ros.world_model_node', '--ros-args', '-p',
                        f'model_file_path:={world_model_bundle}', '-p',
                        f'observation_spec:={wm_spec}', '-p', 'backend:=onnxruntime-cpu'],
    }
    procs = {name: _spawn(args, tmp_path, name) for name, args in nodes.items()}
    probe = rclpy.create_node('sig_probe')
    names = {'dgm_policy', 'sig_sim', 'sig_sim_lockstep', 'dgm_world_model'}
    try:
        # Each node in the graph (imports done, rclpy's signal handling installed), then a
        # moment for its timers to fire: a signal during a slow start is another test.
        assert wait_for(lambda: names <= set(probe.get_node_names()) or any(
            proc.poll() is not None for proc, _ in procs.values()), timeout=120)
        time.sleep(2.0)
        for name, (proc, log) in procs.items():
            assert proc.poll() is None, f'{name} exited early:\n{log.read_text()[-2000:]}'
        for name, (proc, log) in procs.items():
            _stop(proc, log, getattr(signal, signame))
    finally:
        probe.destroy_node()
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_a_damaged_bundle_fails_configure_with_the_reason_and_the_node_stays_up(ros, tmp_path):  # noqa: F811
    from diagnostic_msgs.msg import DiagnosticStatus
    from test_untrusted_bundles import _outside_graph, copy_bundle

    damaged = copy_bundle(tmp_path, lambda m, f: _outside_graph(m, f, '../elsewhere/policy.onnx'))
    spec = '- {topic: /damaged/obs, type: std_msgs/Float64MultiArray, size: 11}'
    node = make_policy(ros, damaged, 'damaged', observation_spec=spec)
    probe = Probe(ros, '/damaged/obs', '/damaged/cmd')
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert wait_for(lambda: [d for d in probe.diag_with('configure failed: BundleError')
                             if d.level == DiagnosticStatus.ERROR and
                             'must be a path inside the bundle folder' in d.message])
    node.set_parameters([Parameter('model_file_path', value=str(FLOW))])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    # As a process with autostart: up and unconfigured, not exited.
    proc, log = _spawn(['dgm_policy_ros.ros.policy_node', '--ros-args', '-r',
                        '__node:=policy_damaged', '-p', f'model_file_path:={damaged}', '-p',
                        f'observation_spec:={FLOW / "manifest.yaml"}', '-p',
                        'autostart:=true'], tmp_path, 'damaged')
    try:
        assert not wait_for(lambda: proc.poll() is not None, timeout=6.0), log.read_text()
        assert 'must be a path inside the bundle folder' in log.read_text()
        import signal

        _stop(proc, log, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # A node that takes its bundle at start says why in one line and exits 2.
    proc, log = _spawn(['dgm_policy_ros.ros.world_model_node', '--ros-args', '-p',
                        f'model_file_path:={damaged}'], tmp_path, 'world_model')
    assert proc.wait(60) == 2
    text = log.read_text()
    assert 'Traceback' not in text and 'error:' in text and 'bundle folder' in text, text


def test_a_bundle_without_a_training_range_needs_max_obs_sigma_off(ros, tmp_path):  # noqa: F811
    from test_untrusted_bundles import copy_bundle

    bare = copy_bundle(tmp_path, lambda m, f: m.pop('normalization'))
    spec = '- {topic: /bare/obs, type: std_msgs/Float64MultiArray, size: 11}'
    node = make_policy(ros, bare, 'bare', observation_spec=spec)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    node.set_parameters([Parameter('max_obs_sigma', value=0.0)])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS



def test_an_asof_source_older_than_its_tolerance_gives_the_fault_action(ros, bundle):  # noqa: F811
    tag = 'asof'
    spec = (JointProbe.SPEC % tag).replace('}', ', align: asof, tolerance_s: 0.2}')
    node = make_policy(ros, bundle, tag, trigger='timer', on_fault='zero',
                       stale_timeout_s=5.0, observation_spec=spec)
    node.trigger_configure()
    node.trigger_activate()
    probe = JointProbe(ros, tag)
    obs = np.array([0.3, -0.2, 0.5, 1.0])
    expected = PolicyRunner(bundle, backend='onnxruntime-cpu').infer(obs)[0, 0]
    assert wait_for(lambda: probe.commands and np.allclose(probe.commands[-1].data, expected,
                                                           atol=1e-6),
                    every=lambda: probe.send_joints(obs))
    # No newer message: the latest grows older than the tolerance while still within the
    # stale timeout (5 s): out of sync, the fault action.
    assert wait_for(lambda: probe.diag_with('out of sync') and
                    np.allclose(probe.commands[-1].data, 0.0), timeout=4.0)
    assert node.counters['out of sync'] > 0
