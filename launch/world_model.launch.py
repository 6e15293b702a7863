# SPDX-License-Identifier: Apache-2.0
"""A world model watching a robot beside its policy: ros2 launch dgm_policy_ros
world_model.launch.py model_file_path:=/path/to/world_model_bundle
observation_spec:=/path/to/observation.yaml (the policy node's own spec)"""
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description():
    share = FindPackageShare('dgm_policy_ros')
    args = [
        DeclareLaunchArgument('model_file_path', description='world-model bundle folder'),
        DeclareLaunchArgument(
            'observation_spec', description="the policy node's observation spec YAML",
            default_value=PathJoinSubstitution([share, 'config',
                                                'robot_observation_example.yaml'])),
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([share, 'config',
                                                                  'world_model.yaml'])),
        DeclareLaunchArgument('backend', default_value='auto'),
    ]
    node = Node(package='dgm_policy_ros', executable='world_model_node',
                name='dgm_world_model', output='screen',
                parameters=[LaunchConfiguration('params_file'), {
                    'model_file_path': LaunchConfiguration('model_file_path'),
                    'observation_spec': LaunchConfiguration('observation_spec'),
                    'backend': LaunchConfiguration('backend')}])
    return LaunchDescription([*args, node])
