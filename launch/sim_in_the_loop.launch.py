# SPDX-License-Identifier: Apache-2.0
"""The policy node against the MuJoCo simulator node (what `dgm sim-loop` starts):
ros2 launch dgm_policy_ros sim_in_the_loop.launch.py model_file_path:=/path/to/bundle
[record:=/path/to/new_bag]  (records the loop with `dgm record`, for `dgm bag2minari`)"""
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description():
    share = FindPackageShare('dgm_policy_ros')
    args = [
        DeclareLaunchArgument(
            'model_file_path', description='model bundle folder',
            default_value=PathJoinSubstitution([share, 'models', 'hopper_flow_bc'])),
        DeclareLaunchArgument('observation_spec',
                              default_value=PathJoinSubstitution(
                                  [share, 'config', 'hopper_observation.yaml'])),
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution(
                                  [share, 'config', 'sim_in_the_loop.yaml'])),
        DeclareLaunchArgument('env_id', default_value='Hopper-v5'),
        DeclareLaunchArgument('episodes', default_value='10'),
        DeclareLaunchArgument('backend', default_value='auto'),
        DeclareLaunchArgument('record', default_value='',
                              description='a bag folder to record the loop into (empty: off)'),
    ]
    sim = Node(package='dgm_policy_ros', executable='mujoco_sim_node', name='mujoco_sim',
               output='screen', parameters=[LaunchConfiguration('params_file'), {
                   'env_id': LaunchConfiguration('env_id'),
                   'episodes': LaunchConfiguration('episodes')}])
    policy = LifecycleNode(
        package='dgm_policy_ros', executable='policy_node', name='dgm_policy', namespace='',
        output='screen',
        parameters=[LaunchConfiguration('params_file'), {
            'model_file_path': LaunchConfiguration('model_file_path'),
            'observation_spec': LaunchConfiguration('observation_spec'),
            'backend': LaunchConfiguration('backend'),
            'autostart': True}])
    record = ExecuteProcess(
        cmd=['dgm', 'record', '--spec',
             PathJoinSubstitution([share, 'config', 'sim_recording.yaml']),
             '--out', LaunchConfiguration('record')],
        output='screen',
        condition=IfCondition(PythonExpression(["'", LaunchConfiguration('record'), "' != ''"])))
    return LaunchDescription([*args, record, policy, sim])
