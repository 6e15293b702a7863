# SPDX-License-Identifier: Apache-2.0
"""The floor for bench/ros_loop.py: a bare rclpy node that answers each observation with a
command at once (same topics, QoS and step echo as the policy node, no model)."""
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Float64MultiArray


def main() -> None:
    obs_topic, cmd_topic, act_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node('echo_floor')
    pub = node.create_publisher(Float64MultiArray, cmd_topic,
                                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def on_obs(msg):
        out = Float64MultiArray(data=list(msg.data[:act_size]))
        out.layout.data_offset = msg.layout.data_offset
        pub.publish(out)

    node.create_subscription(Float64MultiArray, obs_topic, on_obs, qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
