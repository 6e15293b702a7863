# SPDX-License-Identifier: Apache-2.0
"""A real DDS round trip between two processes: the ROS 2 wheels work in this venv."""
import subprocess
import sys
import textwrap
import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy not installed (install the ros-wheels '
                            'extra or source a ROS 2 install)')
from std_msgs.msg import Float64MultiArray  # noqa: E402

ECHO_NODE = textwrap.dedent("""
    import rclpy
    from std_msgs.msg import Float64MultiArray
    rclpy.init()
    node = rclpy.create_node('dgm_echo')
    pub = node.create_publisher(Float64MultiArray, 'pong', 10)
    def on_ping(msg):
        pub.publish(Float64MultiArray(data=[2.0 * x for x in msg.data]))
    node.create_subscription(Float64MultiArray, 'ping', on_ping, 10)
    print('ready', flush=True)
    try:
        rclpy.spin(node)
    except Exception:
        pass
""")


@pytest.mark.ros
def test_publish_subscribe_round_trip_between_processes():
    echo = subprocess.Popen([sys.executable, '-c', ECHO_NODE], stdout=subprocess.PIPE,
                            text=True)
    rclpy.init()
    try:
        assert echo.stdout.readline().strip() == 'ready'
        node = rclpy.create_node('dgm_smoke_test')
        received = threading.Event()
        replies = []

        def on_pong(msg):
            replies.append(list(msg.data))
            received.set()

        node.create_subscription(Float64MultiArray, 'pong', on_pong, 10)
        pub = node.create_publisher(Float64MultiArray, 'ping', 10)
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        # Publish until the echo answers: discovery time varies, so wait on the event, with
        # a deadline, rather than sleeping a fixed time.
        deadline = time.monotonic() + 30.0
        while not received.is_set() and time.monotonic() < deadline:
            pub.publish(Float64MultiArray(data=[1.5, -2.0]))
            received.wait(0.2)
        assert received.is_set(), 'no reply over DDS within 30 s'
        assert replies[0] == [3.0, -4.0]
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        echo.terminate()
        try:
            echo.wait(10)
        except subprocess.TimeoutExpired:  # DDS teardown can stall under load: not our test
            echo.kill()
            echo.wait(10)
