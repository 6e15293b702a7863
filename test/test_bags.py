# SPDX-License-Identifier: Apache-2.0
"""rosbag2 recording and conversion, on hand-built bags with known timing (no ROS needed)."""
import json
import shutil
import time

import numpy as np
import pytest

pytest.importorskip('rosbags', reason='rosbags not installed (bags extra)')

from dgm_policy_ros.bags.convert import AlignConfig, bag2minari, bag_to_episodes  # noqa: E402
from dgm_policy_ros.bags.messages import (  # noqa: E402
    float64,
    float_array,
    header,
    joint_state,
    string,
)
from dgm_policy_ros.bags.reader import DECODE_WINDOW, read_bags  # noqa: E402
from dgm_policy_ros.bags.topics import RecordingSpec  # noqa: E402
from dgm_policy_ros.bags.writer import BagWriter, typestore  # noqa: E402
from dgm_policy_ros.config import ConfigError  # noqa: E402
from dgm_policy_ros.data.episodes import DatasetError  # noqa: E402
from dgm_policy_ros.runtime.runner import ObservationError  # noqa: E402

STORE = typestore()
T = STORE.types
MS = 1_000_000  # ns
_header, array, scalar, text = header, float_array, float64, string


def joints(ns, names, pos, vel):
    return joint_state(ns, names, pos, vel)


SPEC = RecordingSpec.from_dict({
    'observation': [{'topic': '/obs', 'type': 'std_msgs/Float64MultiArray', 'size': 2},
                    {'topic': '/joint_states', 'type': 'sensor_msgs/JointState',
                     'joints': ['knee'], 'fields': ['position']}],
    'action_topic': '/cmd', 'reward_topic': '/reward', 'episode_topic': '/episode_end'})


def record(path, steps=10, drop_command=(), end_after=(), label_from=None, storage='mcap',
           start_ns=0, jitter_seed=0):
    """A control loop at 100 Hz: joint states at 1 kHz, observation at t_k (with jitter),
    command at t_k + 2 ms (encodes k), reward k/10 at t_k + 3 ms, episode ends as asked."""
    rng = np.random.default_rng(jitter_seed)
    messages = []  # written in time order, as a recorder does
    for j in range(steps * 10 + 10):
        ns = start_ns + j * MS
        messages.append((ns, '/joint_states', joints(ns, ['hip', 'knee'], [0.0, j], [0.0, 0.0])))
    for k in range(steps):
        t = start_ns + 10 * MS * (k + 1) + int(rng.integers(-MS // 2, MS // 2))
        label = None if label_from is None else f'episode {int(k >= label_from)}'
        messages.append((t, '/obs', array([k, -k], label=label, offset=k)))
        if k not in drop_command:
            messages.append((t + 2 * MS, '/cmd', array([k / 100.0])))
        messages.append((t + 3 * MS, '/reward', scalar(k / 10.0)))
        if k in end_after:
            messages.append((t + 4 * MS, '/episode_end', text(json.dumps(
                {'episode': k, 'terminated': k == end_after[0]}))))
    messages.sort(key=lambda m: m[0])
    with BagWriter(path, SPEC.topics(), storage=storage) as bag:
        for ns, topic, msg in messages:
            bag.write(topic, ns, msg)
    return path


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_every_message_type_round_trips(tmp_path, storage):
    topics = {'/a': 'std_msgs/Float64MultiArray', '/j': 'sensor_msgs/JointState',
              '/o': 'nav_msgs/Odometry', '/i': 'sensor_msgs/Imu', '/r': 'std_msgs/Float64',
              '/s': 'std_msgs/String'}
    odom = T['nav_msgs/msg/Odometry'](
        header=_header(5), child_frame_id='base',
        pose=T['geometry_msgs/msg/PoseWithCovariance'](
            pose=T['geometry_msgs/msg/Pose'](
                position=T['geometry_msgs/msg/Point'](x=1.0, y=2.0, z=3.0),
                orientation=T['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0)),
            covariance=np.zeros(36)),
        twist=T['geometry_msgs/msg/TwistWithCovariance'](
            twist=T['geometry_msgs/msg/Twist'](
                linear=T['geometry_msgs/msg/Vector3'](x=0.5, y=0.0, z=0.0),
                angular=T['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.25)),
            covariance=np.zeros(36)))
    imu = T['sensor_msgs/msg/Imu'](
        header=_header(6), orientation=T['geometry_msgs/msg/Quaternion'](x=0, y=0, z=0, w=1),
        orientation_covariance=np.zeros(9),
        angular_velocity=T['geometry_msgs/msg/Vector3'](x=0.1, y=0.2, z=0.3),
        angular_velocity_covariance=np.zeros(9),
        linear_acceleration=T['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=9.8),
        linear_acceleration_covariance=np.zeros(9))
    sent = {'/a': array([1.5, 2.5], label='episode 3', offset=7),
            '/j': joints(4, ['a', 'b'], [1.0, 2.0], [3.0, 4.0]), '/o': odom, '/i': imu,
            '/r': scalar(-0.5), '/s': text('{"terminated": true}')}
    with BagWriter(tmp_path / 'bag', topics, storage=storage) as bag:
        for i, (topic, msg) in enumerate(sent.items()):
            bag.write(topic, 100 + i, msg)
    streams, report = read_bags([tmp_path / 'bag'], topics)
    assert not report.recovered and dict(report.read) == {t: 1 for t in topics}
    got = {t: s[0].msg for t, s in streams.items()}
    np.testing.assert_array_equal(got['/a'].data, [1.5, 2.5])
    assert got['/a'].layout.dim[0].label == 'episode 3' and got['/a'].layout.data_offset == 7
    assert list(got['/j'].name) == ['a', 'b'] and list(got['/j'].velocity) == [3.0, 4.0]
    assert got['/o'].pose.pose.position.z == 3.0 and got['/o'].twist.twist.angular.z == 0.25
    assert got['/i'].linear_acceleration.z == pytest.approx(9.8)
    assert got['/r'].data == -0.5 and json.loads(got['/s'].data) == {'terminated': True}
    assert streams['/j'][0].header_ns() == 4 and streams['/j'][0].stamp_ns == 101


def test_alignment_with_jitter_and_a_dropped_command(tmp_path):
    record(tmp_path / 'bag', steps=10, drop_command=(5,))
    episodes, report = bag_to_episodes([tmp_path / 'bag'], SPEC)
    assert len(episodes) == 1 and len(episodes[0]) == 10
    ep = episodes[0]
    # The observation: /obs values, then the knee position in force at t_k (~10 (k+1) ms).
    np.testing.assert_array_equal(ep.observations[:10, :2],
                                  np.stack([np.arange(10), -np.arange(10)], 1))
    knee = ep.observations[:10, 2]
    assert np.all(np.abs(knee - 10 * (np.arange(10) + 1)) <= 1)
    # The command answering step k, except step 5, which holds step 4's (in force).
    expected = np.arange(10) / 100.0
    expected[5] = 0.04
    np.testing.assert_allclose(ep.actions[:, 0], expected, atol=1e-7)
    assert report.held_actions == 1
    np.testing.assert_allclose(ep.rewards, np.arange(10) / 10.0, atol=1e-6)
    assert ep.truncations[-1] and not ep.terminations.any()  # the bag ended: a cut
    np.testing.assert_array_equal(ep.observations[-1], ep.observations[-2])


def test_episode_segmentation_rules(tmp_path):
    # Episode-end messages: the first (k=3) says terminated, the second (k=6) does not.
    record(tmp_path / 'ends', steps=10, end_after=(3, 6))
    episodes, _ = bag_to_episodes([tmp_path / 'ends'], SPEC)
    assert [len(e) for e in episodes] == [4, 3, 3]
    assert episodes[0].terminations[-1] and not episodes[0].truncations[-1]
    assert episodes[1].truncations[-1] and not episodes[1].terminations[-1]
    # A change of the lockstep simulator's episode label.
    record(tmp_path / 'labels', steps=10, label_from=7)
    episodes, _ = bag_to_episodes([tmp_path / 'labels'], SPEC)
    assert [len(e) for e in episodes] == [7, 3]
    # A time gap: two recordings 5 s apart read as one stream.
    record(tmp_path / 'gap' / 'a', steps=4)
    record(tmp_path / 'gap' / 'b', steps=6, start_ns=5_000 * MS)
    episodes, report = bag_to_episodes([tmp_path / 'gap'], SPEC, AlignConfig(gap_s=1.0))
    assert [len(e) for e in episodes] == [4, 6] and len(report.read.bags) == 2
    # One episode per bag, whatever the timing.
    record(tmp_path / 'per' / 'a', steps=4)
    record(tmp_path / 'per' / 'b', steps=6, start_ns=50 * MS)
    episodes, _ = bag_to_episodes([tmp_path / 'per'], SPEC,
                                  AlignConfig(gap_s=0, episode_per_bag=True))
    assert [len(e) for e in episodes] == [4, 6]
    assert [e.id for e in episodes] == [0, 1]


def test_out_of_order_and_duplicate_messages(tmp_path):
    spec = RecordingSpec.from_dict({
        'observation': [{'topic': '/obs', 'type': 'std_msgs/Float64MultiArray', 'size': 1}],
        'action_topic': '/cmd'})
    with BagWriter(tmp_path / 'bag', spec.topics()) as bag:
        for k in (2, 0, 1, 1, 3):  # late, and one written twice
            bag.write('/obs', (k + 1) * 10 * MS, array([k]))
            bag.write('/cmd', (k + 1) * 10 * MS + MS, array([k]))
    episodes, report = bag_to_episodes([tmp_path / 'bag'], spec)
    np.testing.assert_array_equal(episodes[0].observations[:4, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(episodes[0].actions[:, 0], [0, 1, 2, 3])
    assert report.read.dropped['/obs']['duplicate'] == 1


def test_truncated_bag_converts_what_is_readable(tmp_path):
    bag = record(tmp_path / 'bag', steps=3000)  # > 1 MiB: several MCAP chunks
    mcap = next(bag.glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * 0.7)])
    episodes, report = bag_to_episodes([bag], SPEC)
    assert report.read.recovered == [str(bag)]
    assert any('damaged record' in e for e in report.read.errors)
    steps = sum(len(e) for e in episodes)
    assert 300 < steps < 3000
    # What was recovered is exact: the first steps of the recording, in order.
    np.testing.assert_array_equal(episodes[0].observations[:50, 0], np.arange(50))


def test_a_recorder_killed_mid_way_leaves_a_recoverable_partial_bag(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with BagWriter(tmp_path / 'bag', {'/obs': 'std_msgs/Float64MultiArray'}) as bag:
            for k in range(20):
                bag.write('/obs', k, array([k]))
            raise KeyboardInterrupt
    assert not (tmp_path / 'bag').exists()  # never under the final name when incomplete
    streams, _ = read_bags([tmp_path], {'/obs': 'std_msgs/Float64MultiArray'})
    assert len(streams['/obs']) == 20


def test_bag2minari_writes_a_dataset_with_provenance_or_nothing(tmp_path, minari_root):
    from dgm_policy_ros.data.minari_io import load_dataset

    record(tmp_path / 'bag', steps=12, end_after=(5,))
    path, report = bag2minari([tmp_path / 'bag'], SPEC, 'robot/test/bag-v0',
                              action_low=[-1.0], action_high=[1.0])
    ds = load_dataset('robot/test/bag-v0')
    assert [len(e) for e in ds.episodes] == [6, 6]
    assert ds.obs_dim == 3 and ds.act_dim == 1
    np.testing.assert_allclose(ds.action_bounds[0], [-1.0])
    assert report.steps == 12
    import minari

    meta = minari.load_dataset('robot/test/bag-v0').storage.metadata
    provenance = json.loads(meta['dgm_provenance']) if isinstance(
        meta['dgm_provenance'], str) else meta['dgm_provenance']
    assert provenance['source'] == 'rosbag2' and provenance['bags'] == [str(tmp_path / 'bag')]
    assert len(provenance['spec_sha256']) == 64
    # Nothing to convert: an error, and no dataset left behind.
    with BagWriter(tmp_path / 'empty', SPEC.topics()):
        pass
    with pytest.raises(DatasetError, match='pacing topic .* has no messages'):
        bag2minari([tmp_path / 'empty'], SPEC, 'robot/test/empty-v0')
    assert not (minari_root / 'robot/test/empty-v0').exists()


def knee_progress(observations, actions, next_observations):
    """A reward function for the test below: how far the knee moved, minus effort."""
    return next_observations[:, 2] - observations[:, 2] - 0.5 * (actions ** 2).sum(1)


def test_rewards_from_a_function_named_in_the_config(tmp_path):
    record(tmp_path / 'bag', steps=8)
    cfg = AlignConfig(reward_function='test_bags:knee_progress')
    episodes, _ = bag_to_episodes([tmp_path / 'bag'], SPEC, cfg)
    ep = episodes[0]
    expected = ep.observations[1:, 2] - ep.observations[:-1, 2] - 0.5 * ep.actions[:, 0] ** 2
    np.testing.assert_allclose(ep.rewards, expected, rtol=1e-6)
    with pytest.raises(Exception, match="must read 'module:function'"):
        AlignConfig(reward_function='knee_progress')


def test_header_stamps_instead_of_receive_times(tmp_path):
    """Joint states stamped 5 ms after they were received (a sensor clock ahead): with
    time_source=header the observation takes the sample stamped before the step."""
    spec = RecordingSpec.from_dict({
        'observation': [{'topic': '/obs', 'type': 'std_msgs/Float64MultiArray', 'size': 1},
                        {'topic': '/joint_states', 'type': 'sensor_msgs/JointState',
                         'joints': ['knee']}], 'action_topic': '/cmd'})
    with BagWriter(tmp_path / 'bag', spec.topics()) as bag:
        for j in range(100):
            bag.write('/joint_states', j * MS, joint_state(j * MS + 5 * MS, ['knee'], [j]))
        for k in range(1, 9):
            bag.write('/obs', 10 * k * MS, float_array([k]))
            bag.write('/cmd', 10 * k * MS + MS, float_array([k]))
    receive, _ = bag_to_episodes([tmp_path / 'bag'], spec)
    header, _ = bag_to_episodes([tmp_path / 'bag'], spec, AlignConfig(time_source='header'))
    np.testing.assert_array_equal(receive[0].observations[:8, 1], 10 * np.arange(1, 9))
    np.testing.assert_array_equal(header[0].observations[:8, 1], 10 * np.arange(1, 9) - 5)


@pytest.mark.parametrize('first_step', [0, 40])
def test_lockstep_bags_align_by_step_index_whatever_the_stamps(tmp_path, first_step):
    """Commands and rewards stamped late (a busy recorder): step indices still pair them; a
    recording that joined mid-run pairs rewards by time instead of by index."""
    spec = RecordingSpec.from_dict({
        'observation': [{'topic': '/obs', 'type': 'std_msgs/Float64MultiArray', 'size': 1}],
        'action_topic': '/cmd', 'reward_topic': '/reward', 'episode_topic': '/episode_end'})
    with BagWriter(tmp_path / 'bag', spec.topics()) as bag:
        for i, k in enumerate(range(first_step, first_step + 6)):
            episode = 0 if i < 4 else 1
            t = (i + 1) * 10 * MS
            bag.write('/obs', t, float_array([k], label=f'episode {episode}', offset=k))
            bag.write('/obs', t + MS // 2, float_array([k], label=f'episode {episode}',
                                                       offset=k))  # a re-send
            bag.write('/cmd', t + 12 * MS, float_array([k / 10], offset=k))  # after t_(k+1)
            bag.write('/reward', t + 5 * MS, float64(k))
            if i == 3:
                bag.write('/episode_end', t + 6 * MS,
                          string(json.dumps({'episode': 0, 'terminated': True})))
    episodes, report = bag_to_episodes([tmp_path / 'bag'], spec)
    assert [len(e) for e in episodes] == [4, 2]
    steps = np.arange(first_step, first_step + 6)
    np.testing.assert_allclose(np.concatenate([e.actions[:, 0] for e in episodes]), steps / 10,
                               rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([e.rewards for e in episodes]),
                               steps, rtol=1e-6)
    assert episodes[0].terminations[-1] and episodes[1].truncations[-1]
    assert report.dropped_steps['repeated observation'] == 6 and report.held_actions == 0


# ------------------------------------------------------------ bags other tools replay and read
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bags_are_written_from_any_thread(tmp_path, storage):
    import threading

    writer = BagWriter(tmp_path / 'bag', {'/a': 'std_msgs/Float64', '/b': 'std_msgs/Float64'},
                       storage=storage)

    def produce(topic, offset):  # as an executor thread calls a recorder's callbacks
        for k in range(50):
            writer.write(topic, offset + 2 * k * MS, scalar(k))

    threads = [threading.Thread(target=produce, args=(t, o)) for t, o in (('/a', 0), ('/b', MS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    streams, report = read_bags([tmp_path / 'bag'], {'/a': 'std_msgs/Float64',
                                                    '/b': 'std_msgs/Float64'})
    assert [len(streams['/a']), len(streams['/b'])] == [50, 50] and not report.errors


def test_a_failing_bag_stops_with_its_cause_and_never_takes_the_final_name(tmp_path,
                                                                          monkeypatch):
    from rosbags.rosbag2 import Writer

    from dgm_policy_ros.bags.writer import BagWriteError

    def disk_full(self, connection, timestamp, data):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(Writer, 'write', disk_full)
    writer = BagWriter(tmp_path / 'bag', {'/a': 'std_msgs/Float64'}, storage='sqlite3')
    writer.write('/a', 0, scalar(1.0))
    with pytest.raises(BagWriteError, match='No space left on device'):
        for k in range(1000):  # the failure reaches the writing side at once
            writer.write('/a', k, scalar(1.0))
            time.sleep(0.001)
    with pytest.raises(BagWriteError):
        writer.close()
    assert not (tmp_path / 'bag').exists() and writer.partial.exists()


def test_bags_carry_the_offered_qos_and_the_type_hash(tmp_path):
    import yaml

    from dgm_policy_ros.bags.writer import rosbags_qos

    latched = rosbags_qos('reliable', 'transient_local', 1000)
    with BagWriter(tmp_path / 'bag', SPEC.topics(), qos={'/episode_end': [latched]}) as bag:
        bag.set_qos('/obs', [rosbags_qos('best_effort', 'volatile', 5)])
        bag.write('/obs', 1, array([0.0, 1.0]))
        bag.write('/episode_end', 2, text('{}'))
    meta = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    topics = {t['topic_metadata']['name']: t['topic_metadata']
              for t in meta['rosbag2_bagfile_information']['topics_with_message_count']}
    assert set(topics) == set(SPEC.topics())  # silent topics are listed too
    assert topics['/episode_end']['offered_qos_profiles'][0]['durability'] == 'transient_local'
    assert topics['/obs']['offered_qos_profiles'][0]['reliability'] == 'best_effort'
    assert all(t['type_description_hash'].startswith('RIHS01_') for t in topics.values())
    from mcap.reader import make_reader

    with open(next((tmp_path / 'bag').glob('*.mcap')), 'rb') as stream:
        channels = make_reader(stream).get_summary().channels.values()
        by_topic = {c.topic: c.metadata for c in channels}
    assert by_topic['/episode_end']['topic_type_hash'] == topics['/episode_end'][
        'type_description_hash']
    assert 'transient_local' in by_topic['/episode_end']['offered_qos_profiles']


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_topic_rosbags_reads_as_empty_is_read_from_the_storage(tmp_path, storage):
    import yaml

    from dgm_policy_ros.bags.writer import rosbags_qos

    with BagWriter(tmp_path / 'bag', {'/topic': 'std_msgs/String'}, storage=storage,
                   qos={'/topic': [rosbags_qos('reliable', 'volatile', 10)]}) as bag:
        for k in range(10):
            bag.write('/topic', 1000 + k, text(f'hello {k}'))
    # Another tool's metadata: the same topic with other QoS than the storage file records
    # (as in ros2/rosbag2's own 'talker' test bags). rosbags then yields nothing for it.
    path = tmp_path / 'bag' / 'metadata.yaml'
    meta = yaml.safe_load(path.read_text())
    topic = meta['rosbag2_bagfile_information']['topics_with_message_count'][0]
    topic['topic_metadata']['offered_qos_profiles'][0]['durability'] = 'transient_local'
    path.write_text(yaml.safe_dump(meta))
    streams, report = read_bags([tmp_path / 'bag'], {'/topic': 'std_msgs/String'})
    assert [m.msg.data for m in streams['/topic']] == [f'hello {k}' for k in range(10)]
    assert report.recovered == [str(tmp_path / 'bag')]
    assert 'metadata.yaml and the storage disagree' in report.errors[0]


def _lockstep_bag(path, first_step, last_step, length, episode=0):
    """A lockstep loop's recording of steps first_step..last_step of one episode."""
    with BagWriter(path, SPEC.topics()) as bag:
        for step in range(first_step, last_step + 1):
            t = step * 10 * MS
            bag.write('/joint_states', t, joints(t, ['knee'], [step], [0.0]))
            bag.write('/obs', t + 1, array([step, -step], label=f'episode {episode}',
                                            offset=step))
            cmd = array([step / 1000.0])
            cmd.layout.data_offset = step
            bag.write('/cmd', t + 2 * MS, cmd)
            bag.write('/reward', t + 3 * MS, scalar(1.0))
        bag.write('/episode_end', (last_step + 1) * 10 * MS, text(json.dumps(
            {'episode': episode, 'length': length, 'terminated': False, 'return': 0.0})))
    return path


def test_a_recording_that_starts_mid_episode_is_flagged(tmp_path, minari_root):
    whole = _lockstep_bag(tmp_path / 'whole', 0, 99, 100)
    episodes, report = bag_to_episodes([whole], SPEC)
    assert [len(e) for e in episodes] == [100]
    assert not report.started_mid_episode and report.short_episodes == []
    late = _lockstep_bag(tmp_path / 'late', 34, 99, 100)  # the recorder joined at step 34
    episodes, report = bag_to_episodes([late], SPEC)
    assert [len(e) for e in episodes] == [66]
    assert report.started_mid_episode
    assert report.short_episodes == [{'episode': 'episode 0', 'recorded_steps': 66,
                                      'length': 100, 'missing_at_start': 34}]
    import minari

    bag2minari([late], SPEC, 'robot/test/late-v0')
    meta = minari.load_dataset('robot/test/late-v0').storage.metadata
    provenance = json.loads(meta['dgm_provenance']) if isinstance(
        meta['dgm_provenance'], str) else meta['dgm_provenance']
    assert provenance['report']['started_mid_episode'] is True


def test_a_bag_without_the_command_topic_says_so_and_lists_its_topics(tmp_path):
    with BagWriter(tmp_path / 'bag', {'/obs': 'std_msgs/Float64MultiArray',
                                      '/joint_states': 'sensor_msgs/JointState'}) as bag:
        for k in range(5):
            bag.write('/joint_states', k * 10 * MS, joints(k * 10 * MS, ['knee'], [k], [0.0]))
            bag.write('/obs', k * 10 * MS + 1, array([k, -k]))
    with pytest.raises(DatasetError, match=r"/cmd \(the command topic of the recording spec\) "
                                           r"is not in the bag\(s\), which hold .*'/obs'"):
        bag_to_episodes([tmp_path / 'bag'], SPEC)


# ------------------------------------------------------------ damaged messages cost their step
GARBAGE = b'\x00\x01\x00\x00\xff\xff\xff\x7f'  # a CDR header, then a length past the end


def _lockstep_bag_with(path, steps, damage):
    """A lockstep recording (one episode) in which damage[(topic, step)] replaces a message:
    'garbage' (undecodable), or a message object written instead."""
    with BagWriter(path, SPEC.topics()) as bag:
        def put(topic, ns, step, msg):
            bad = damage.get((topic, step))
            if bad == 'garbage':
                bag.write_raw(topic, ns, GARBAGE)
            elif bad is not None:
                bag.write(topic, ns, bad)
            else:
                bag.write(topic, ns, msg)

        for step in range(steps):
            t = step * 10 * MS
            put('/joint_states', t, step, joints(t, ['knee'], [step], [0.0]))
            put('/obs', t + 1, step, array([step, -step], label='episode 0', offset=step))
            cmd = array([step / 1000.0])
            cmd.layout.data_offset = step
            put('/cmd', t + 2 * MS, step, cmd)
            put('/reward', t + 3 * MS, step, scalar(step / 10.0))
        bag.write('/episode_end', steps * 10 * MS, text(json.dumps(
            {'episode': 0, 'length': steps, 'terminated': False})))
    return path


def _assert_every_step_is_its_own(episodes):
    """obs[0] encodes the step; the action, the reward and the next observation must be
    that step's (or, at the end of a part, the step itself repeated)."""
    for episode in episodes:
        steps = episode.observations[:-1, 0]
        np.testing.assert_allclose(episode.actions[:, 0], steps / 1000.0, rtol=1e-6)
        np.testing.assert_allclose(episode.rewards, steps / 10.0, rtol=1e-6)
        following = episode.observations[1:, 0]
        assert np.all((following == steps + 1) | ((following == steps) &
                                                  (np.arange(len(steps)) == len(steps) - 1)))


def test_an_undecodable_reward_costs_its_own_step_only(tmp_path):
    bag = _lockstep_bag_with(tmp_path / 'bag', 300, {('/reward', 50): 'garbage'})
    episodes, report = bag_to_episodes([bag], SPEC)
    assert [len(e) for e in episodes] == [50, 249]  # split where step 50 was lost
    _assert_every_step_is_its_own(episodes)
    assert episodes[0].observations[-1, 0] == 50  # its next observation: step 50's own
    assert report.dropped_steps == {'undecodable or non-finite reward': 1}
    assert report.read.dropped['/reward'] == {'undecodable': 1}


def test_damaged_observations_and_commands_cost_their_own_steps(tmp_path):
    damage = {('/obs', 10): 'garbage', ('/obs', 20): array([1.0, 2.0, 3.0], label='episode 0',
                                                            offset=20),
              ('/joint_states', 30): 'garbage', ('/cmd', 40): 'garbage',
              ('/obs', 60): array([np.nan, 0.0], label='episode 0', offset=60),
              ('/obs', 70): array([1e308, 0.0], label='episode 0', offset=70)}
    bag = _lockstep_bag_with(tmp_path / 'bag', 100, damage)
    episodes, report = bag_to_episodes([bag], SPEC)
    _assert_every_step_is_its_own(episodes)
    kept = sorted(int(s) for e in episodes for s in e.observations[:-1, 0])
    assert kept == [s for s in range(100) if s not in (10, 20, 30, 40, 60, 70)]
    assert sum(report.dropped_steps.values()) == 6


def test_time_aligned_damage_costs_its_own_step_only(tmp_path):
    """Without step indices (a robot's recording), pairing is by time: an undecodable
    observation keeps its time, so the steps around it keep their own commands and rewards."""
    path = tmp_path / 'bag'
    with BagWriter(path, SPEC.topics()) as bag:
        for k in range(40):
            t = 10 * MS * (k + 1)
            bag.write('/joint_states', t - MS, joints(t - MS, ['knee'], [k], [0.0]))
            if k in (7, 21):
                bag.write_raw('/obs', t, GARBAGE)
            else:
                bag.write('/obs', t, array([k, -k]))
            if k == 15:
                bag.write_raw('/cmd', t + 2 * MS, GARBAGE)
            else:
                bag.write('/cmd', t + 2 * MS, array([k / 1000.0]))
            bag.write('/reward', t + 3 * MS, scalar(k / 10.0))
    episodes, report = bag_to_episodes([path], SPEC, AlignConfig(match='time'))
    _assert_every_step_is_its_own(episodes)
    assert report.held_actions == 0  # step 15 is not given step 14's command
    kept = sorted(int(s) for e in episodes for s in e.observations[:-1, 0])
    assert kept == [k for k in range(40) if k not in (7, 15, 21)]


def test_a_converted_dataset_is_always_one_the_loader_accepts(tmp_path, minari_root):
    from dgm_policy_ros.data.minari_io import load_dataset

    damage = {('/obs', 5): array([np.inf, 0.0], label='episode 0', offset=5),
              ('/reward', 9): scalar(float('nan')), ('/cmd', 12): array([1e308])}
    damage[('/cmd', 12)].layout.data_offset = 12
    bag = _lockstep_bag_with(tmp_path / 'bag', 40, damage)
    bag2minari([bag], SPEC, 'robot/test/damaged-v0')
    loaded = load_dataset('robot/test/damaged-v0')
    assert sum(len(e) for e in loaded.episodes) == 37  # the three bad steps dropped
    assert all(np.isfinite(e.observations).all() and np.isfinite(e.rewards).all()
               for e in loaded.episodes)


def test_dataset_metadata_must_agree_with_the_data(tmp_path, minari_root):
    from dgm_policy_ros.data.minari_io import load_dataset

    bag2minari([_lockstep_bag_with(tmp_path / 'bag', 20, {})], SPEC, 'robot/test/meta-v0')
    path = next(minari_root.rglob('metadata.json'))
    meta = json.loads(path.read_text())
    meta['total_steps'] = 9999
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match='metadata says total_steps = 9999, the data holds 20'):
        load_dataset('robot/test/meta-v0')


def test_a_topic_of_another_type_is_refused_once_and_named(tmp_path):
    topics = {'/obs': 'std_msgs/String', '/cmd': 'std_msgs/Float64MultiArray'}
    with BagWriter(tmp_path / 'bag', topics) as bag:
        for k in range(4):
            bag.write('/obs', k, text('not numbers'))
    with pytest.raises(DatasetError, match=r"/obs .* has no readable messages \(dropped: "
                                           r"\{'type std_msgs/msg/String': 4\}\)"):
        bag_to_episodes([tmp_path / 'bag'], SPEC)
    streams, report = read_bags([tmp_path / 'bag'], {'/obs': 'std_msgs/Float64MultiArray'})
    assert report.recovered == []
    assert dict(report.dropped['/obs']) == {'type std_msgs/msg/String': 4}


def test_camera_topics_convert_into_a_dataset_with_images(tmp_path, minari_root):
    """Raw and JPEG camera topics go into image observations, paired by time with their step
    as vectors are; a damaged frame costs its own step only."""
    import io

    from PIL import Image as PilImage

    from dgm_policy_ros.bags.messages import image
    from dgm_policy_ros.data.minari_io import load_dataset

    spec = RecordingSpec.from_dict({
        'observation': [{'topic': '/obs', 'type': 'std_msgs/Float64MultiArray', 'size': 2},
                        {'topic': '/front', 'type': 'sensor_msgs/Image', 'camera': 'front'},
                        {'topic': '/wrist', 'type': 'sensor_msgs/CompressedImage',
                         'camera': 'wrist', 'frame_size': [16, 16]}],
        'action_topic': '/cmd'})

    def frame(k):  # brightness encodes the step
        return np.full((32, 32, 3), 10 * k, np.uint8)

    def jpeg(ns, k):
        buffer = io.BytesIO()
        PilImage.fromarray(frame(k)).save(buffer, format='JPEG')
        return T['sensor_msgs/msg/CompressedImage'](
            header=header(ns), format='jpeg', data=np.frombuffer(buffer.getvalue(), np.uint8))

    with BagWriter(tmp_path / 'bag', spec.topics()) as bag:
        for k in range(12):
            t = 10 * MS * (k + 1)
            bag.write('/front', t - MS, image(t - MS, frame(k)))
            damaged = jpeg(t - MS, k)
            if k == 5:
                damaged.data = damaged.data[:20]
            bag.write('/wrist', t - MS, damaged)
            bag.write('/obs', t, array([k, -k]))
            bag.write('/cmd', t + 2 * MS, array([k / 100.0]))
    path, report = bag2minari([tmp_path / 'bag'], spec, 'test/bag-images-v0')
    assert report.to_dict()['dropped_steps'] == {'malformed image (undecodable)': 1}
    loaded = load_dataset('test/bag-images-v0')
    assert loaded.image_shapes == {'front': (32, 32, 3), 'wrist': (16, 16, 3)}
    for episode in loaded.episodes:
        steps = episode.observations[:-1, 0].astype(int)
        front = episode.images['front'][:-1, 0, 0, 0].astype(int)
        np.testing.assert_allclose(front, 10 * steps, atol=2)  # JPEG in the dataset
        np.testing.assert_allclose(episode.images['wrist'][:-1, 0, 0, 0], 10 * steps, atol=3)
    assert sorted(len(e) for e in loaded.episodes) == [5, 6]  # split at the damaged step


def test_camera_frames_are_decoded_as_the_bag_is_read(tmp_path):
    """Only the frames at the dataset's size are kept (a recording's raw frames would not fit
    in memory), each frame's damage stays with it, and a bag read twice is de-duplicated."""
    from dgm_policy_ros.bags.convert import frame_decoder
    from dgm_policy_ros.bags.messages import image

    spec = RecordingSpec.from_dict({
        'observation': [{'topic': '/obs', 'type': 'std_msgs/Float64MultiArray', 'size': 1},
                        {'topic': '/cam', 'type': 'sensor_msgs/Image', 'camera': 'front',
                         'frame_size': [24, 32]}],
        'action_topic': '/cmd'})
    n = 4 * DECODE_WINDOW  # more frames than wait for the decoding threads at once
    with BagWriter(tmp_path / 'bag', spec.topics()) as bag:
        for k in range(n):
            frame = image(k * MS, np.full((120, 160, 3), 5 * k, np.uint8))
            if k == 3:
                frame.encoding = 'yuv422'
            bag.write('/cam', k * MS, frame)
    shutil.copytree(tmp_path / 'bag', tmp_path / 'copy')
    streams, report = read_bags([tmp_path / 'bag', tmp_path / 'copy'],
                                {'/cam': 'sensor_msgs/Image'},
                                reduce={'/cam': frame_decoder(spec.sources()[1])})
    frames = streams['/cam']
    assert len(frames) == n and report.dropped['/cam'] == {'duplicate': n}
    assert [f.msg.header.stamp.nanosec for f in frames] == [k * MS for k in range(n)]
    for k, stamped in enumerate(frames):
        if k == 3:
            assert stamped.msg.frame is None and stamped.msg.error.reason == 'wrong encoding'
            with pytest.raises(ObservationError):
                stamped.msg.pixels()
        else:
            assert stamped.msg.pixels().shape == (24, 32, 3)
            assert int(stamped.msg.pixels()[0, 0, 0]) == 5 * k


def test_frames_without_a_declared_size_keep_the_first_frames_size(tmp_path):
    """Frames decode on several threads; the size a camera without ``frame_size`` is stored
    at is still its first frame's, in bag order, whichever frame finishes decoding first."""
    from dgm_policy_ros.bags.convert import frame_decoder
    source = RecordingSpec.from_dict({'observation': [
        {'topic': '/obs', 'type': 'std_msgs/Float64MultiArray', 'size': 1},
        {'topic': '/cam', 'type': 'sensor_msgs/CompressedImage', 'camera': 'front'}]}
    ).sources()[1]
    import io

    from PIL import Image as PilImage

    def jpeg(ns, frame):
        buffer = io.BytesIO()
        if frame is not None:
            PilImage.fromarray(frame).save(buffer, format='JPEG')
        return T['sensor_msgs/msg/CompressedImage'](
            header=header(ns), format='jpeg',
            data=np.frombuffer(buffer.getvalue() or b'not a jpeg', np.uint8))

    big = np.zeros((48, 64, 3), np.uint8)
    with BagWriter(tmp_path / 'bag', {'/cam': 'sensor_msgs/CompressedImage'}) as bag:
        bag.write('/cam', 0, jpeg(0, None))  # no size from this one
        bag.write('/cam', MS, jpeg(MS, big))
        for k in range(2, 3 * DECODE_WINDOW):
            bag.write('/cam', k * MS, jpeg(k * MS, big[:24, :32]))
    streams, _ = read_bags([tmp_path / 'bag'], {'/cam': 'sensor_msgs/CompressedImage'},
                           reduce={'/cam': frame_decoder(source)})
    frames = [s.msg for s in streams['/cam']]
    assert frames[0].error is not None and frames[0].error.reason == 'undecodable'
    assert {f.pixels().shape for f in frames[1:]} == {(48, 64, 3)}


def test_a_robot_recording_is_paced_by_the_topic_the_user_names(tmp_path):
    """A teleoperated arm: joint states at 1 kHz, a camera at 30 Hz, commands at 30 Hz just
    after each frame. Paced by the joint states (the spec's first source), every joint state
    is a step; paced by the camera, each frame is one, with the joint state as of it and the
    command that followed it."""
    from dgm_policy_ros.bags.messages import image

    spec = RecordingSpec.from_dict({
        'observation': [{'topic': '/joint_states', 'type': 'sensor_msgs/JointState',
                         'joints': ['elbow'], 'fields': ['position']},
                        {'topic': '/cam', 'type': 'sensor_msgs/Image', 'camera': 'wrist',
                         'frame_size': [8, 8]}],
        'action_topic': '/cmd'})
    period, frames = 33 * MS, 12
    with BagWriter(tmp_path / 'bag', spec.topics()) as bag:
        for j in range(frames * 33):
            bag.write('/joint_states', j * MS, joints(j * MS, ['elbow'], [j], [0.0]))
        for k in range(frames):
            t = k * period + MS // 2
            bag.write('/cam', t, image(t, np.full((16, 16, 3), 10 * k, np.uint8)))
            bag.write('/cmd', t + MS, array([k]))
    by_joints, report = bag_to_episodes([tmp_path / 'bag'], spec)
    assert report.steps == frames * 33 - 1  # before the first frame: dropped
    (episode,), report = bag_to_episodes([tmp_path / 'bag'], spec,
                                         AlignConfig(pace_topic='/cam'))
    assert report.steps == frames and len(episode) == frames
    np.testing.assert_array_equal(episode.actions[:, 0], np.arange(frames))
    np.testing.assert_array_equal(episode.images['wrist'][:-1, 0, 0, 0], 10 * np.arange(frames))
    # the joint state as of each frame: joint state j is stamped j ms, the frame k*33.5 ms
    np.testing.assert_array_equal(episode.observations[:-1, 0], 33 * np.arange(frames))
    with pytest.raises(ConfigError, match='pace_topic /nope is not a topic'):
        bag_to_episodes([tmp_path / 'bag'], spec, AlignConfig(pace_topic='/nope'))


@pytest.mark.parametrize('tolerance_s,out_of_sync', [(0.002, False), (1e-5, True)])
def test_asof_sources_pair_within_their_tolerance_or_drop_the_step(tmp_path, tolerance_s,
                                                                    out_of_sync):
    """Joint states at 1 kHz, steps at 100 Hz with jitter: within 2 ms every step pairs; with
    a 10 us tolerance the latest joint state is too old for almost every step."""
    spec = RecordingSpec.from_dict({**SPEC.to_dict(), 'observation': [
        SPEC.to_dict()['observation'][0],
        {**SPEC.to_dict()['observation'][1], 'align': 'asof', 'tolerance_s': tolerance_s}]})
    episodes, report = bag_to_episodes([record(tmp_path / 'bag', steps=20)], spec)
    dropped = report.to_dict()['dropped_steps'].get('observation out of sync', 0)
    assert (dropped >= 15) if out_of_sync else (dropped == 0 and report.steps == 20), \
        report.to_dict()
