# SPDX-License-Identifier: Apache-2.0
"""Run a policy bundle on a robot: ros2 launch dgm_policy_ros policy.launch.py
model_file_path:=/path/to/bundle observation_spec:=/path/to/observation.yaml"""
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description():
    share = FindPackageShare('dgm_policy_ros')
    args = [
        DeclareLaunchArgument('model_file_path', description='model bundle folder'),
        DeclareLaunchArgument(
            'observation_spec', description='observation spec YAML',
            default_value=PathJoinSubstitution([share, 'config',
                                                'robot_observation_example.yaml'])),
        DeclareLaunchArgument('params_file', description='policy_node parameters',
                              default_value=PathJoinSubstitution([share, 'config',
                                                                  'policy.yaml'])),
        DeclareLaunchArgument('backend', default_value='auto'),
        DeclareLaunchArgument('use_sim_time', default_value='false'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='configure and activate without a lifecycle manager'),
    ]
    policy = LifecycleNode(
        package='dgm_policy_ros', executable='policy_node', name='dgm_policy', namespace='',
        output='screen',
        parameters=[LaunchConfiguration('params_file'), {
            'model_file_path': LaunchConfiguration('model_file_path'),
            'observation_spec': LaunchConfiguration('observation_spec'),
            'backend': LaunchConfiguration('backend'),
            'use_sim_time': LaunchConfiguration('use_sim_time'),
            'autostart': LaunchConfiguration('autostart'),
        }])
    return LaunchDescription([*args, policy])
