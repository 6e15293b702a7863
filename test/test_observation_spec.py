# SPDX-License-Identifier: Apache-2.0
"""Observation spec: sources assembled in order, from real ROS 2 message classes."""
import numpy as np
import pytest

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.runtime.observation_spec import load_observation_spec, spec_width

pytest.importorskip('sensor_msgs', reason='ROS 2 message packages not installed')
from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

SPEC = """
- {topic: /joint_states, type: sensor_msgs/JointState, joints: [knee, hip],
   fields: [position, velocity]}
- {topic: /odom, type: nav_msgs/Odometry, fields: [pose.pose.position.z, twist.twist.linear]}
- {topic: /imu, type: sensor_msgs/Imu, fields: [orientation]}
- {topic: /extra, type: std_msgs/Float64MultiArray, size: 2}
"""


def test_sources_assemble_in_spec_order():
    sources = load_observation_spec(SPEC)
    assert spec_width(sources) == 4 + 4 + 4 + 2
    joints = JointState(name=['hip', 'ankle', 'knee'], position=[1.0, 2.0, 3.0],
                        velocity=[-1.0, -2.0, -3.0])
    odom = Odometry()
    odom.pose.pose.position.z = 0.7
    odom.twist.twist.linear.x, odom.twist.twist.linear.y = 0.5, -0.1
    imu = Imu()
    imu.orientation.w = 1.0
    extra = Float64MultiArray(data=[8.0, 9.0])
    parts = [s.extract(m) for s, m in zip(sources, (joints, odom, imu, extra))]
    np.testing.assert_array_equal(np.concatenate(parts), [
        3.0, 1.0, -3.0, -1.0,  # knee, hip positions then velocities, in spec order
        0.7, 0.5, -0.1, 0.0,  # z, then linear x y z
        0.0, 0.0, 0.0, 1.0,  # quaternion x y z w
        8.0, 9.0])


def test_bad_messages_and_specs_say_what_is_wrong():
    joints, _, _, extra = load_observation_spec(SPEC)
    with pytest.raises(ValueError, match=r"joints \['knee'\] not in the message"):
        joints.extract(JointState(name=['hip'], position=[1.0], velocity=[1.0]))
    with pytest.raises(ValueError, match='velocity has 1 values for 2 joints'):
        joints.extract(JointState(name=['hip', 'knee'], position=[1.0, 2.0], velocity=[1.0]))
    with pytest.raises(ValueError, match='expected 2 values, got 3'):
        extra.extract(Float64MultiArray(data=[1.0, 2.0, 3.0]))
    with pytest.raises(ConfigError, match='JointState needs joints'):
        load_observation_spec('- {topic: /j, type: sensor_msgs/JointState}')
    with pytest.raises(ConfigError, match="type 'sensor_msgs/PointCloud2' is not one of"):
        load_observation_spec('- {topic: /c, type: sensor_msgs/PointCloud2}')
    with pytest.raises(ConfigError, match='names a topic twice'):
        load_observation_spec('- {topic: /a, type: std_msgs/Float64MultiArray, size: 1}\n'
                              '- {topic: /a, type: std_msgs/Float64MultiArray, size: 1}')
