# SPDX-License-Identifier: Apache-2.0
"""The policy node and the simulator node, with real rclpy over DDS (private ROS_DOMAIN_ID)."""
import json
from pathlib import Path
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy not installed (ros-wheels extra or a '
                            'ROS 2 install)')
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from test_policies import OBS_DIM, _train, tiny_dataset  # noqa: E402,F401
from test_world_models import world_model_bundle  # noqa: E402,F401

from dgm_policy_ros.runtime import PolicyRunner  # noqa: E402

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
_counter = iter(range(10_000))


@pytest.fixture(scope='module')
def bundle(tiny_dataset, tmp_path_factory):  # noqa: F811
    from dgm_policy_ros.export.onnx_export import export_bundle

    root = tmp_path_factory.mktemp('ros-bundle')
    _train('bc', root / 'run', 30, dataset=tiny_dataset)
    return export_bundle(root / 'run', root / 'bundle', control_rate_hz=50.0)


@pytest.fixture
def ros():
    rclpy.init()
    # Single-threaded, as the nodes run in production (spin_until_shutdown): rclpy's
    # MultiThreadedExecutor took ~200 ms per lockstep round trip here (21 steps in 4 s, against
    # 7595 single-threaded).
    executor = SingleThreadedExecutor()
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield executor
    nodes = executor.get_nodes()
    for node in nodes:
        executor.remove_node(node)
    executor.shutdown()
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown()


def wait_for(predicate, timeout=20.0, every=None):
    """Wait on a condition (calling ``every`` meanwhile, e.g. to publish), with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if every:
            every()
        time.sleep(0.02)
    return predicate()


class Probe:
    """A test node: publishes observations, records commands and diagnostics."""

    def __init__(self, executor, obs_topic, cmd_topic):
        self.node = rclpy.create_node(f'probe_{next(_counter)}')
        self.pub = self.node.create_publisher(Float64MultiArray, obs_topic,
                                              qos_profile_sensor_data)
        self.commands, self.diags = [], []
        self.node.create_subscription(Float64MultiArray, cmd_topic,
                                      self.commands.append, RELIABLE)
        self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                      lambda m: self.diags.extend(m.status), 50)
        executor.add_node(self.node)

    def send(self, values, step=0):
        msg = Float64MultiArray(data=[float(v) for v in values])
        msg.layout.data_offset = step
        self.pub.publish(msg)

    def diag_with(self, text):
        return [d for d in self.diags if text in d.message]

    def command_for(self, step):
        """The newest command that answers observation ``step`` (commands echo the step), or
        None. Waiting on this, not on the command count: an observation re-sent while waiting
        may reach the node late, and its answer (a resend of the previous step's action)
        would otherwise pass for the next step's."""
        return next((c for c in reversed(self.commands) if c.layout.data_offset == step), None)


def make_policy(executor, bundle, tag, **params):
    from dgm_policy_ros.ros.policy_node import PolicyNode

    values = {'model_file_path': str(bundle), 'backend': 'onnxruntime-cpu',
              'observation_spec': f'- {{topic: /{tag}/obs, type: std_msgs/Float64MultiArray, '
                                  f'size: {OBS_DIM}}}',
              'action_topic': f'/{tag}/cmd', 'trigger': 'observation', **params}
    node = PolicyNode(f'policy_{tag}', parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()])
    executor.add_node(node)
    return node


def test_observation_in_action_out_with_the_bundle_values(ros, bundle):
    node = make_policy(ros, bundle, 't1')
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    probe = Probe(ros, '/t1/obs', '/t1/cmd')
    obs = np.array([0.3, -0.2, 0.5, 1.0])
    assert wait_for(lambda: probe.commands, every=lambda: probe.send(obs, step=7))
    cmd = probe.commands[0]
    assert cmd.layout.data_offset == 7  # the lockstep handshake echoes the step
    expected = PolicyRunner(bundle, backend='onnxruntime-cpu').infer(obs)[0, 0]
    np.testing.assert_allclose(cmd.data, expected, atol=1e-6)


def test_lifecycle_transitions(ros, bundle):
    node = make_policy(ros, bundle, 't2', model_file_path='/nonexistent/bundle')
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    node.set_parameters([Parameter('model_file_path', value=str(bundle))])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.runner is not None
    probe = Probe(ros, '/t2/obs', '/t2/cmd')
    probe.send([0.1, 0.1, 0.1, 0.1], step=1)
    assert not wait_for(lambda: probe.commands, timeout=0.5)  # inactive: no control
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert wait_for(lambda: probe.commands, every=lambda: probe.send([0.1] * 4, step=2))
    last = list(probe.commands[-1].data)
    count = len(probe.commands)
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert wait_for(lambda: len(probe.commands) > count)
    assert list(probe.commands[-1].data) == last  # on_fault: hold publishes the last action
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert node.runner is None


def test_bad_observations_give_the_fault_action_and_a_diagnostic(ros, bundle):
    node = make_policy(ros, bundle, 't3')
    node.trigger_configure()
    node.trigger_activate()
    probe = Probe(ros, '/t3/obs', '/t3/cmd')
    good = [0.2, 0.1, -0.3, 0.4]
    assert wait_for(lambda: probe.commands, every=lambda: probe.send(good, step=1))
    held = list(probe.commands[-1].data)
    for step, (values, reason) in enumerate([([0.1, float('nan'), 0.0, 0.0], 'non-finite'),
                                             ([0.1, 0.2, 0.3], 'wrong size'),
                                             ([0.1, float('inf'), 0.0, 0.0], 'non-finite')],
                                            start=2):
        said = len(probe.diag_with(reason))
        assert wait_for(lambda s=step: probe.command_for(s),
                        every=lambda v=values, s=step: probe.send(v, step=s))
        assert list(probe.command_for(step).data) == held
        assert wait_for(lambda r=reason, n=said: len(probe.diag_with(r)) > n)
    assert all(d.level == DiagnosticStatus.WARN for d in probe.diag_with('fault action'))
    assert all(np.isfinite(c.data).all() for c in probe.commands)
    keys = {kv.key for d in probe.diags for kv in d.values}
    assert {'inference_p50_ms', 'inference_p99_ms', 'achieved_rate_hz', 'missed_deadlines',
            'backend', 'bundle_sha256', 'non-finite', 'wrong_size', 'stale'} <= keys

    def counted(key):  # the fault counters of the newest report that carries them
        reports = [d for d in probe.diags if any(kv.key == key for kv in d.values)]
        return int(next(kv.value for kv in reports[-1].values if kv.key == key))

    # Reports are periodic, so the one that counts the last fault may still be on its way.
    assert wait_for(lambda: counted('non-finite') >= 2 and counted('wrong_size') >= 1)


def test_stale_observations_are_refused_in_timer_mode(ros, bundle):
    node = make_policy(ros, bundle, 't4', trigger='timer', stale_timeout_s=0.2,
                       on_fault='zero')
    node.trigger_configure()
    node.trigger_activate()
    probe = Probe(ros, '/t4/obs', '/t4/cmd')
    assert wait_for(lambda: any(np.any(np.asarray(c.data) != 0) for c in probe.commands),
                    every=lambda: probe.send([0.5, 0.5, 0.5, 0.5]))
    # Publishing stops here. (A pause under load may already have reported 'stale' while we
    # were still sending: wait for a report that comes after the last observation.)
    stale_before = len(probe.diag_with('stale'))
    assert wait_for(lambda: len(probe.diag_with('stale')) > stale_before, timeout=10)
    count = len(probe.commands)
    assert wait_for(lambda: len(probe.commands) > count + 3)
    np.testing.assert_array_equal(probe.commands[-1].data, [0.0, 0.0])  # on_fault: zero


def test_parameters_are_validated_with_a_reason(ros, bundle):
    node = make_policy(ros, bundle, 't5')
    result = node.set_parameters([Parameter('on_fault', value='explode')])[0]
    assert not result.successful and 'on_fault must be one of' in result.reason
    result = node.set_parameters([Parameter('backend', value='cuda-magic')])[0]
    assert not result.successful and 'backend must be one of' in result.reason
    assert node.describe_parameters(['stale_timeout_s'])[0].description
    node.set_parameters([Parameter('observation_spec', value=(
        '- {topic: /t5/obs, type: std_msgs/Float64MultiArray, size: 7}'))])
    probe = Probe(ros, '/t5/obs', '/t5/cmd')
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert wait_for(lambda: [d for d in probe.diag_with('observation spec yields 7 values')
                             if d.level == DiagnosticStatus.ERROR])


def test_simulator_services_and_lockstep(ros):
    from std_srvs.srv import SetBool, Trigger

    from dgm_policy_ros.ros.mujoco_sim_node import MujocoSimNode

    sim = MujocoSimNode('sim_t6', parameter_overrides=[
        Parameter('mode', value='lockstep'), Parameter('start_paused', value=True),
        Parameter('seed', value=3), Parameter('command_topic', value='/t6/cmd')])
    ros.add_node(sim)
    client = rclpy.create_node(f'client_{next(_counter)}')
    ros.add_node(client)
    joints = []
    client.create_subscription(__import__('sensor_msgs.msg').msg.JointState, '/joint_states',
                               joints.append, qos_profile_sensor_data)

    def call(srv_type, name, request):
        cli = client.create_client(srv_type, f'/sim_t6/{name}')
        assert cli.wait_for_service(timeout_sec=10)
        future = cli.call_async(request)
        assert wait_for(future.done)
        return future.result()

    assert call(Trigger, 'step_simulation', Trigger.Request()).message.startswith('step 1,')
    assert sim.step_index == 1
    assert call(SetBool, 'set_pause', SetBool.Request(data=False)).message == 'running'
    assert not call(Trigger, 'step_simulation', Trigger.Request()).success  # not paused
    pub = client.create_publisher(Float64MultiArray, '/t6/cmd', RELIABLE)
    stale = Float64MultiArray(data=[0.0, 0.0, 0.0])
    stale.layout.data_offset = 0  # a command for a step that is over: ignored
    wait_for(lambda: pub.get_subscription_count() > 0)
    pub.publish(stale)
    fresh = Float64MultiArray(data=[0.1, 0.0, -0.1])
    fresh.layout.data_offset = 1
    assert wait_for(lambda: sim.step_index == 2, every=lambda: pub.publish(fresh))
    reset = call(Trigger, 'reset_world', Trigger.Request())
    assert reset.success and 'seed 3' in reset.message
    assert wait_for(lambda: joints)
    assert {'thigh_joint', 'leg_joint', 'foot_joint'} <= set(joints[-1].name)


def test_lockstep_resends_only_when_the_command_is_late(ros):
    from dgm_policy_ros.ros.mujoco_sim_node import MujocoSimNode

    sim = MujocoSimNode('sim_resend', parameter_overrides=[
        Parameter('mode', value='lockstep'), Parameter('lockstep_resend_s', value=0.2),
        Parameter('command_topic', value='/resend/cmd')])
    ros.add_node(sim)
    client = rclpy.create_node(f'client_{next(_counter)}')
    pub = client.create_publisher(Float64MultiArray, '/resend/cmd', RELIABLE)

    answering = [True]

    def answer(msg):  # a prompt policy: the command for each observation, at once
        if answering[0]:
            pub.publish(Float64MultiArray(data=[0.0, 0.0, 0.0], layout=msg.layout))

    client.create_subscription(Float64MultiArray, '/sim_resend/observation', answer,
                               qos_profile_sensor_data)
    ros.add_node(client)
    assert wait_for(lambda: sim.step_index > 0)  # discovery done: the loop runs
    before, started = sim.resends, time.monotonic()
    assert wait_for(lambda: time.monotonic() - started > 1.5 and sim.step_index > 50)
    assert sim.resends == before  # commands were in time: no re-sends (was one per period)
    answering[0] = False  # the policy goes quiet: now the observation is re-sent
    assert wait_for(lambda: sim.resends > before + 2, timeout=5)


@pytest.mark.slow
def test_lockstep_sim_loop_equals_in_process_evaluation(tmp_path):
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.sim.collect import CollectConfig, collect
    from dgm_policy_ros.sim.evaluate import evaluate_runner
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer
    from dgm_policy_ros.workflows.sim_loop import run_sim_loop

    collect(CollectConfig(env='Hopper-v5', out='test/hopper/loop-v0', steps=600, n_envs=2),
            progress=False)
    Trainer(TrainConfig(algo='cvae_bc', dataset='test/hopper/loop-v0', out=str(tmp_path / 'r'),
                        steps=150, eval_every=-1, tensorboard=False, progress=False,
                        algo_config={'hidden': [64, 64]})).run()
    bundle = export_bundle(tmp_path / 'r', tmp_path / 'b')  # chunked: H=4, 2 per inference
    result = run_sim_loop(bundle, 'Hopper-v5', episodes=3, lockstep=True, seed=500,
                          backend='onnxruntime-cpu', plot=tmp_path / 'loop.png',
                          timeout_s=240, record=tmp_path / 'bag')
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu')
    local = evaluate_runner(runner, 'Hopper-v5', 3, seed=500, parallel=False)
    assert result['seeds'] == [500, 501, 502]
    assert result['lengths'] == local.lengths.tolist()
    assert result['returns'] == local.returns.tolist()  # bit for bit
    assert (tmp_path / 'loop.png').is_file() and result['inference_p99_ms'] > 0
    json.dumps(result)
    # The recording of that loop converts back into exactly those episodes.
    from dgm_policy_ros.bags.convert import bag_to_episodes
    from dgm_policy_ros.bags.topics import RecordingSpec

    spec = RecordingSpec.load(Path(__file__).parents[1] / 'config' / 'sim_recording.yaml')
    episodes, report = bag_to_episodes([result['bag']], spec)
    assert [len(e) for e in episodes] == result['lengths'], report.to_dict()
    np.testing.assert_allclose([e.total_return for e in episodes], result['returns'],
                               rtol=1e-5)
    assert report.held_actions == 0
    # Re-sends only when a command is late (here: a few while the paused loop waits for the
    # recorder and the pause service, seconds on a loaded machine), not one per resend period
    # (0.5 s) of the whole run.
    periods = result['wall_s'] / 0.5
    assert report.to_dict()['dropped_steps'].get('repeated observation', 0) <= \
        max(4, periods / 4), (periods, report.to_dict())


@pytest.mark.slow
def test_sim_loop_records_sqlite3_bags_with_the_offered_qos(tmp_path):
    import yaml

    from dgm_policy_ros.workflows.sim_loop import run_sim_loop

    bundle = Path(__file__).parents[1] / 'models' / 'hopper_flow_bc'
    result = run_sim_loop(bundle, 'Hopper-v5', episodes=1, lockstep=True, seed=7,
                          backend='onnxruntime-cpu', timeout_s=120, record=tmp_path / 'bag',
                          record_storage='sqlite3')
    meta = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    info = meta['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'sqlite3'
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    end = topics['/mujoco_sim/episode_end']
    assert end['message_count'] == 1
    assert end['topic_metadata']['offered_qos_profiles'][0]['durability'] == 'transient_local'
    observation = topics['/mujoco_sim/observation']['topic_metadata']
    assert observation['offered_qos_profiles'][0]['reliability'] == 'best_effort'
    assert topics['/forward_command_controller/commands']['message_count'] >= \
        result['lengths'][0]


@pytest.mark.parametrize('action_type', ['trajectory_msgs/JointTrajectory',
                                         'sensor_msgs/JointState'])
def test_commands_by_joint_name(ros, bundle, action_type):
    import importlib

    package, _, name = action_type.partition('/')
    kind = getattr(importlib.import_module(f'{package}.msg'), name)
    tag = 't7' if name == 'JointTrajectory' else 't8'
    node = make_policy(ros, bundle, tag, action_type=action_type, joint_names=['hip', 'knee'])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    probe = Probe(ros, f'/{tag}/obs', f'/{tag}/unused')
    got = []
    probe.node.create_subscription(kind, f'/{tag}/cmd', got.append, RELIABLE)
    obs = [0.1, 0.2, 0.3, 0.4]
    assert wait_for(lambda: got, every=lambda: probe.send(obs, step=1))
    expected = PolicyRunner(bundle, backend='onnxruntime-cpu').infer(obs)[0, 0]
    if name == 'JointTrajectory':
        traj = got[0]
        assert traj.joint_names == ['hip', 'knee'] and len(traj.points) == 1
        np.testing.assert_allclose(traj.points[0].positions, expected, atol=1e-6)
        assert traj.points[0].time_from_start.nanosec == 20_000_000  # one period at 50 Hz
    else:
        assert list(got[0].name) == ['hip', 'knee'] and got[0].header.stamp.sec > 0
        np.testing.assert_allclose(got[0].position, expected, atol=1e-6)


def test_simulator_runs_a_bare_mjcf_file(ros, tmp_path):
    from std_srvs.srv import Trigger

    from dgm_policy_ros.ros.mujoco_sim_node import MujocoSimNode

    (tmp_path / 'pendulum.xml').write_text("""
<mujoco><worldbody><body name="pole"><joint name="swing" type="hinge" axis="0 1 0"/>
<geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.02"/></body></worldbody>
<actuator><motor joint="swing" ctrlrange="-1 1"/></actuator></mujoco>""")
    sim = MujocoSimNode('sim_t8', parameter_overrides=[
        Parameter('mjcf_file', value=str(tmp_path / 'pendulum.xml')),
        Parameter('start_paused', value=True), Parameter('command_topic', value='/t8/cmd')])
    ros.add_node(sim)
    assert [j[0] for j in sim.joints] == ['swing']
    client = rclpy.create_node(f'client_{next(_counter)}')
    ros.add_node(client)
    cli = client.create_client(Trigger, '/sim_t8/step_simulation')
    assert cli.wait_for_service(timeout_sec=10)
    future = cli.call_async(Trigger.Request())
    assert wait_for(future.done) and future.result().success
    assert sim.step_index == 1 and sim.obs.shape == (2,)  # qpos, qvel of the hinge


TWO_LINK = """
<mujoco><option timestep="0.002"/><worldbody>
<body name="upper"><joint name="shoulder" type="hinge" axis="0 1 0"/>
<geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.02"/>
<body name="lower" pos="0 0 -0.3"><joint name="elbow" type="hinge" axis="0 1 0"/>
<geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.02"/></body></body></worldbody>
<actuator><motor joint="shoulder" gear="5"/><motor joint="elbow" ctrlrange="-1 1"/></actuator>
<keyframe><key name="home" qpos="0.7 -1.2"/><key name="down" qpos="0 0"/></keyframe>
</mujoco>"""


def test_mjcf_robots_use_their_limits_keyframes_frame_skip_and_episode_ends(tmp_path):
    from dgm_policy_ros.sim.mjcf_env import MjcfEnv

    (tmp_path / 'arm.xml').write_text(TWO_LINK)
    env = MjcfEnv(str(tmp_path / 'arm.xml'), frame_skip=5, max_episode_steps=3)
    # No ctrlrange on the shoulder: MuJoCo says (0, 0); it is not clipped to 0, and named.
    assert env.unlimited == ['actuator 0']
    assert env.action_space.low[0] == -np.inf and env.action_space.high[1] == 1.0
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs[:2], [0.7, -1.2])  # the first keyframe, not zeros
    assert env.dt == pytest.approx(0.01)  # 5 physics steps of 2 ms per control step
    ends = [env.step(np.array([3.0, 0.0]))[3] for _ in range(3)]
    assert ends == [False, False, True]  # truncated at max_episode_steps
    assert env.data.qvel[0] != 0.0  # the unclipped command moved the shoulder
    named = MjcfEnv(str(tmp_path / 'arm.xml'), keyframe='down', reset_noise=0.01)
    first = named.reset(seed=4)[0]
    np.testing.assert_allclose(first[:2], [0, 0], atol=0.01)
    np.testing.assert_array_equal(named.reset(seed=4)[0], first)  # seeded
    assert not np.array_equal(named.reset(seed=5)[0], first)
    from dgm_policy_ros.config import ConfigError

    with pytest.raises(ConfigError, match="keyframe 'up' is not in the model"):
        MjcfEnv(str(tmp_path / 'arm.xml'), keyframe='up')


@pytest.mark.slow
def test_sim_loop_runs_an_mjcf_robot(bundle, tmp_path):
    from dgm_policy_ros.workflows.sim_loop import MjcfTarget, run_sim_loop

    (tmp_path / 'arm.xml').write_text(TWO_LINK)  # qpos, qvel: the tiny bundle's 4 values
    result = run_sim_loop(bundle, episodes=2, lockstep=True, seed=0,
                          backend='onnxruntime-cpu', timeout_s=120,
                          mjcf=MjcfTarget(tmp_path / 'arm.xml', keyframe='home', frame_skip=10,
                                          max_episode_steps=25))
    assert result['env'] == 'mjcf:arm.xml'
    assert result['episodes'] == 2 and result['lengths'] == [25, 25]


def test_sequence_policy_node_keeps_the_history_and_counts_rewards(ros, tiny_dataset,  # noqa: F811
                                                                  tmp_path):
    """A Decision Transformer bundle on the node: each command equals a local runner fed the
    same observations and rewards in the same order (history window and returns-to-go)."""
    from std_msgs.msg import Float64

    from dgm_policy_ros.export.onnx_export import export_bundle

    _train('dt', tmp_path / 'run', 20, dataset=tiny_dataset)
    dt_bundle = export_bundle(tmp_path / 'run', tmp_path / 'dt', control_rate_hz=50.0,
                              fp16=False)
    node = make_policy(ros, dt_bundle, 't_dt', reward_topic='/t_dt/reward',
                       target_return=5.0)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    probe = Probe(ros, '/t_dt/obs', '/t_dt/cmd')
    rewards = probe.node.create_publisher(Float64, '/t_dt/reward', 10)
    local = PolicyRunner(dt_bundle, backend='onnxruntime-cpu', target_return=5.0)
    assert wait_for(lambda: rewards.get_subscription_count() > 0)
    rng = np.random.default_rng(0)
    for step in range(1, 8):
        obs = rng.normal(size=OBS_DIM)
        assert wait_for(lambda s=step: probe.command_for(s),
                        every=lambda o=obs, s=step: probe.send(o, step=s))
        np.testing.assert_allclose(probe.command_for(step).data, local.act(obs), atol=1e-5)
        reward = float(step)
        before = node.runner.history.return_to_go
        rewards.publish(Float64(data=reward))  # once: every message counts
        assert wait_for(lambda b=before: node.runner.history.return_to_go == b - reward)
        local.record_reward(reward)
    assert node.runner.history.steps == 7


@pytest.mark.slow
def test_record_convert_retrain_loop(tmp_path):
    """The retraining loop end to end, small: a weak policy runs with exploration noise in
    sim-in-the-loop, the run is recorded, the bag becomes a Minari dataset, the policy is
    fine-tuned on it (with its original data) and the new bundle scores at least as well."""
    from dgm_policy_ros.sim.agents import reference_agents_dir

    if reference_agents_dir() is None:
        pytest.skip('shared/reference_agents (SB3 checkpoints) not found beside the checkout')
    from dgm_policy_ros.bags.convert import bag2minari
    from dgm_policy_ros.bags.topics import RecordingSpec
    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime import load_bundle
    from dgm_policy_ros.sim.collect import CollectConfig, collect
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer
    from dgm_policy_ros.workflows.retrain import retrain
    from dgm_policy_ros.workflows.sim_loop import run_sim_loop

    collect(CollectConfig(env='Hopper-v5', out='test/hopper/expert-v0', steps=3000, n_envs=2,
                          agent='Hopper-v5_375000_steps.zip'), progress=False)
    Trainer(TrainConfig(algo='bc', dataset='test/hopper/expert-v0', out=str(tmp_path / 'weak'),
                        steps=40, eval_every=-1, tensorboard=False, progress=False,
                        algo_config={'hidden': [64, 64]})).run()
    weak = export_bundle(tmp_path / 'weak', tmp_path / 'weak-bundle')
    loop = run_sim_loop(weak, 'Hopper-v5', episodes=3, lockstep=True, seed=700,
                        backend='onnxruntime-cpu', plot=None, timeout_s=240,
                        record=tmp_path / 'bag', exploration_noise=0.1)
    spec = RecordingSpec.load(Path(__file__).parents[1] / 'config' / 'sim_recording.yaml')
    _, report = bag2minari([loop['bag']], spec, 'test/hopper/bags-v0', env_id='Hopper-v5')
    assert report.steps == sum(loop['lengths'])
    recorded = load_dataset('test/hopper/bags-v0')
    np.testing.assert_allclose([e.total_return for e in recorded.episodes], loop['returns'],
                               rtol=1e-5)
    summary = retrain(weak, 'test/hopper/bags-v0', tmp_path / 'fine', tmp_path / 'new-bundle',
                      steps=600, mix_original=True, eval_episodes=5, progress=False)
    assert summary['dataset'] == 'test/hopper/bags-with-parent-v0'
    child = load_bundle(summary['bundle'])
    assert child.manifest['parent'].startswith(str(load_bundle(weak).path))
    assert summary['retrained']['return_mean'] >= summary['parent']['return_mean'], summary


def test_world_model_node_scores_rise_on_a_different_system(ros, world_model_bundle):  # noqa: F811
    """Fed the trained linear system, then another one: the published anomaly scores rise and
    /diagnostics turns WARN."""
    from std_msgs.msg import Float64
    from test_world_models import OTHER, linear_episodes

    from dgm_policy_ros.ros.world_model_node import WorldModelNode

    node = WorldModelNode('wm_t', parameter_overrides=[Parameter(k, value=v) for k, v in {
        'model_file_path': str(world_model_bundle), 'backend': 'onnxruntime-cpu',
        'observation_spec': '- {topic: /wm_t/obs, type: std_msgs/Float64MultiArray, size: 3}',
        'action_topic': '/wm_t/cmd', 'anomaly_threshold': 3.0, 'smoothing': 0.3}.items()])
    ros.add_node(node)
    probe = rclpy.create_node(f'probe_{next(_counter)}')
    obs_pub = probe.create_publisher(Float64MultiArray, '/wm_t/obs', RELIABLE)
    cmd_pub = probe.create_publisher(Float64MultiArray, '/wm_t/cmd', RELIABLE)
    scores, diags = [], []
    probe.create_subscription(Float64, '/wm_t/anomaly', lambda m: scores.append(m.data),
                              RELIABLE)
    probe.create_subscription(DiagnosticArray, '/diagnostics', lambda m: diags.extend(
        s for s in m.status if s.name.startswith('dgm_world_model')), 50)
    ros.add_node(probe)
    assert wait_for(lambda: obs_pub.get_subscription_count() and
                    cmd_pub.get_subscription_count() and
                    node.pub_anomaly.get_subscription_count())
    same = linear_episodes(n=1, seed=7)[0]
    other = linear_episodes(n=1, seed=8, a=OTHER)[0]
    observed = 0
    for ep in (same, other):
        for t in range(25):
            obs_pub.publish(Float64MultiArray(data=ep.observations[t].astype(float).tolist()))
            observed += 1
            assert wait_for(lambda n=observed: node.current is not None)
            cmd_pub.publish(Float64MultiArray(data=ep.actions[t].astype(float).tolist()))
            assert wait_for(lambda: node.pending is not None)
    assert wait_for(lambda: len(scores) >= 48)
    before, after = np.median(scores[:24]), np.median(scores[26:49])
    assert before < 2.0 and after > 3 * before, (before, after)
    assert wait_for(lambda: diags and diags[-1].level == DiagnosticStatus.WARN)


def test_policy_node_gated_by_anomaly_scores_publishes_the_fault_action(ros, bundle):
    from std_msgs.msg import Float64

    node = make_policy(ros, bundle, 't_gate', anomaly_topic='/t_gate/anomaly',
                       anomaly_threshold=3.0, on_fault='zero')
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    probe = Probe(ros, '/t_gate/obs', '/t_gate/cmd')
    scores = probe.node.create_publisher(Float64, '/t_gate/anomaly', 10)
    assert wait_for(lambda: scores.get_subscription_count() > 0)
    obs = np.array([0.3, -0.2, 0.5, 1.0])
    expected = PolicyRunner(bundle, backend='onnxruntime-cpu').infer(obs)[0, 0]
    scores.publish(Float64(data=0.8))
    assert wait_for(lambda: node._anomaly == 0.8)
    assert wait_for(lambda: probe.commands, every=lambda: probe.send(obs, step=1))
    np.testing.assert_allclose(probe.commands[-1].data, expected, atol=1e-6)
    scores.publish(Float64(data=12.0))
    assert wait_for(lambda: node._anomaly == 12.0)
    assert wait_for(lambda: probe.command_for(2), every=lambda: probe.send(obs, step=2))
    np.testing.assert_allclose(probe.command_for(2).data, np.zeros(2), atol=1e-12)
    assert node.counters['anomaly'] >= 1
