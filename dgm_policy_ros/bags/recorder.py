# SPDX-License-Identifier: Apache-2.0
"""``dgm record``: a node that writes the policy's topics into a rosbag2 bag.

It subscribes to every topic of a :class:`RecordingSpec` with ``raw=True``, so messages go to
the bag as the CDR bytes that arrived (no decode, no re-encode), stamped with their receive
time. Observations are subscribed best effort (as sensors publish) with a deep queue;
commands, rewards and episode ends reliably. It stops after ``episodes`` episode-end
messages, after ``duration_s``, or on Ctrl-C, and only then moves the finished bag under its
name.
"""
from __future__ import annotations

import importlib
from pathlib import Path
import threading
import time

from dgm_policy_ros.bags.topics import ROS_TYPES, RecordingSpec
from dgm_policy_ros.bags.writer import BagWriter, qos_from_rclpy


def make_recorder_node(spec: RecordingSpec, writer: BagWriter, episodes: int = 0,
                       node_name: str = 'dgm_recorder'):
    """An rclpy node feeding ``writer``; ``node.done`` is set after ``episodes`` episodes."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    node = rclpy.create_node(node_name)
    node.done = threading.Event()
    node.episodes_seen = 0
    node.recorded = {}  # topic -> subscription (get_publisher_count: who is matched)
    node.received = {topic: 0 for topic in spec.topics()}  # messages written per topic
    node.qos_known: set[str] = set()
    node.error = None  # a failure to write: the recording stops, and its owner raises it
    reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    # Best effort, as observation publishers offer, but a deep queue: a recorder that falls
    # behind for a moment must not drop what it is there to keep.
    sensor = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=qos_profile_sensor_data.durability)
    observed = {s.topic for s in spec.sources()}

    def callback(topic: str):
        def on_message(data: bytes) -> None:
            if writer.closed or node.error is not None:
                return
            if topic not in node.qos_known:  # what its publishers offer, as ros2 bag does
                node.qos_known.add(topic)
                offered = [qos_from_rclpy(info.qos_profile)
                           for info in node.get_publishers_info_by_topic(topic)]
                if offered:
                    writer.set_qos(topic, dict.fromkeys(offered))
            try:
                writer.write_raw(topic, node.get_clock().now().nanoseconds, data)
            except Exception as exc:  # noqa: BLE001 - stops the recording, said by its owner
                node.error = exc
                node.done.set()
                return
            node.received[topic] += 1
            if topic == spec.episode_topic:
                node.episodes_seen += 1
                if episodes and node.episodes_seen >= episodes:
                    node.done.set()
        return on_message

    for topic, kind in spec.topics().items():
        package, _, name = ROS_TYPES[kind].split('/')  # e.g. sensor_msgs/msg/JointState
        msg_class = getattr(importlib.import_module(f'{package}.msg'), name)
        qos = sensor if topic in observed else reliable
        node.recorded[topic] = node.create_subscription(msg_class, topic, callback(topic), qos,
                                                        raw=True)
    return node


def record(spec: RecordingSpec, out: str | Path, storage: str = 'mcap', episodes: int = 0,
           duration_s: float = 0.0, overwrite: bool = False) -> dict:
    """Record until ``episodes`` episodes ended, ``duration_s`` passed, or Ctrl-C."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    writer = BagWriter(out, spec.topics(), storage=storage, overwrite=overwrite)
    rclpy.init()
    node = make_recorder_node(spec, writer, episodes)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    started = time.monotonic()
    try:
        while not node.done.is_set():
            executor.spin_once(timeout_sec=0.1)
            if duration_s and time.monotonic() - started >= duration_s:
                break
    except KeyboardInterrupt:
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if node.error is not None:
        writer.abort()
        raise node.error
    path = writer.close()
    return {'bag': str(path), 'storage': storage, 'messages': dict(writer.counts),
            'episodes': node.episodes_seen, 'seconds': round(time.monotonic() - started, 2)}
