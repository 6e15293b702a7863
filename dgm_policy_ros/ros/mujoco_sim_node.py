# SPDX-License-Identifier: Apache-2.0
"""``mujoco_sim_node``: a Gymnasium MuJoCo task (or any MJCF file) as a ROS 2 robot.

Publishes ``/joint_states`` (every 1-DoF joint), ``~/observation`` (the task's observation
vector, ``layout.data_offset`` = global step index, ``layout.dim[0].label`` = 'episode N'),
``/clock`` (simulation time), ``~/reward`` (std_msgs/Float64) and ``~/episode_end``
(std_msgs/String, JSON: episode, return, length, terminated, seed, and success for tasks that
report it; transient local); with ``cameras``, each camera's frame as ``~/image/<camera>``
(sensor_msgs/Image, rgb8), published before the step's observation;
subscribes to the command topic (std_msgs/Float64MultiArray, a forward command controller's).
Services in mujoco_ros2_control's style: ``~/reset_world``
(std_srvs/Trigger), ``~/set_pause`` (std_srvs/SetBool), ``~/step_simulation``
(std_srvs/Trigger).

Modes: ``realtime`` steps at the task's control rate on the wall clock with the latest command;
``lockstep`` advances one control step only when the command for the current step arrives
(its ``layout.data_offset`` equals the step index), so results do not depend on machine load;
the observation is re-sent only if no command for it comes within ``lockstep_resend_s``.

Episode i is reset with seed ``seed + i``, as ``dgm eval`` seeds its environment i.
"""
from __future__ import annotations

import json
import time

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import ParameterType as PT
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, MultiArrayDimension, String
from std_srvs.srv import SetBool, Trigger
import yaml

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.ros import run_node
from dgm_policy_ros.ros.guard import guarded, guarded_service
from dgm_policy_ros.sim.mjcf_env import MjcfEnv


def _desc(text: str, kind: int) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, type=kind)


PARAMETERS = {
    'env_id': ('Hopper-v5', _desc('Gymnasium task id', PT.PARAMETER_STRING)),
    'mjcf_file': ('', _desc('an MJCF file instead of a Gymnasium task (observation: qpos, '
                            'qvel; no reward)', PT.PARAMETER_STRING)),
    'keyframe': ('', _desc("MJCF: the keyframe episodes start from (empty: the model's "
                           'first, if any)', PT.PARAMETER_STRING)),
    'frame_skip': (1, _desc('MJCF: physics steps per control step', PT.PARAMETER_INTEGER)),
    'max_episode_steps': (1000, _desc('MJCF: control steps before an episode is truncated',
                                      PT.PARAMETER_INTEGER)),
    'reset_noise': (0.0, _desc('MJCF: uniform noise added to qpos and qvel at reset, seeded '
                               'by the episode seed (0: exact keyframe)', PT.PARAMETER_DOUBLE)),
    'mode': ('realtime', _desc('realtime or lockstep', PT.PARAMETER_STRING)),
    'seed': (0, _desc('episode i is reset with seed + i', PT.PARAMETER_INTEGER)),
    'episodes': (0, _desc('stop stepping after this many episodes (0: forever)',
                          PT.PARAMETER_INTEGER)),
    'command_topic': ('/forward_command_controller/commands',
                      _desc('Float64MultiArray commands', PT.PARAMETER_STRING)),
    'publish_clock': (True, _desc('publish /clock (simulation time)', PT.PARAMETER_BOOL)),
    'lockstep_resend_s': (0.5, _desc('re-send the observation after this long without a '
                                     'command (lockstep)', PT.PARAMETER_DOUBLE)),
    'start_paused': (False, _desc('start paused (use ~/set_pause or ~/step_simulation)',
                                  PT.PARAMETER_BOOL)),
    'cameras': ('', _desc("cameras published as sensor_msgs/Image on ~/image/<camera>: '' "
                          "none, 'default' the task's default views, or a YAML list of views "
                          '({camera, width, height, position, flip})', PT.PARAMETER_STRING)),
}


class MujocoSimNode(Node):
    def __init__(self, node_name: str = 'mujoco_sim', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if p['mode'] not in ('realtime', 'lockstep'):
            raise ConfigError(f"mode must be realtime or lockstep, got {p['mode']!r}")
        self.p = p
        self.views: list = []  # cameras rendered and published (sim.cameras.CameraView)
        if p['mjcf_file']:
            self.env = MjcfEnv(p['mjcf_file'], p['frame_skip'], p['keyframe'],
                               p['max_episode_steps'], p['reset_noise'])
            if self.env.unlimited:
                self.get_logger().warning(
                    f'actuators without ctrlrange (commands to them are not clipped): '
                    f'{self.env.unlimited}')
        else:
            from dgm_policy_ros.sim.environments import make_env

            self.views = self._camera_views(p['cameras'], p['env_id'])
            self.env = make_env(p['env_id'], self.views)
        self.dt = float(self.env.unwrapped.dt)
        model = self.env.unwrapped.model
        self.joints = []  # (name, qpos address, dof address) of 1-DoF joints
        for j in range(model.njnt):
            if model.jnt_type[j] in (2, 3):  # slide, hinge
                self.joints.append((model.joint(j).name, int(model.jnt_qposadr[j]),
                                    int(model.jnt_dofadr[j])))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_joints = self.create_publisher(JointState, '/joint_states',
                                                qos_profile_sensor_data)
        self.pub_obs = self.create_publisher(Float64MultiArray, '~/observation',
                                             qos_profile_sensor_data)
        self.pub_clock = self.create_publisher(Clock, '/clock', 10) \
            if p['publish_clock'] else None
        self.pub_reward = self.create_publisher(Float64, '~/reward', reliable)
        # Transient local: a monitor that joins late (or an episode that ends within the
        # first discovery round-trip) still receives every episode's end.
        latched = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_end = self.create_publisher(String, '~/episode_end', latched)
        self.pub_images = {view.camera: self.create_publisher(
            Image, f'~/image/{view.camera}', qos_profile_sensor_data) for view in self.views}
        self.create_subscription(Float64MultiArray, p['command_topic'],
                                 guarded(self, 'command', self._on_command), reliable)
        self.create_service(Trigger, '~/reset_world',
                            guarded_service(self, 'reset_world', self._srv_reset))
        self.create_service(SetBool, '~/set_pause',
                            guarded_service(self, 'set_pause', self._srv_pause))
        self.create_service(Trigger, '~/step_simulation',
                            guarded_service(self, 'step_simulation', self._srv_step))
        self.paused = bool(p['start_paused'])
        self._last_publish = time.monotonic()
        self.resends = 0
        self.step_index = 0
        self.episode = 0
        self.done = False
        self.command: np.ndarray | None = None
        self._reset_episode()
        if p['mode'] == 'realtime':
            self.create_timer(self.dt, guarded(self, 'step timer', self._on_tick))
        else:
            # Checked four times per resend period, so a lost command is re-asked for within
            # 1.25 periods, and a loop that gets its commands in time is never re-sent to.
            self.create_timer(p['lockstep_resend_s'] / 4,
                              guarded(self, 'resend timer', self._resend))

    @staticmethod
    def _camera_views(setting: str, env_id: str) -> list:
        if not setting.strip():
            return []
        from dgm_policy_ros.sim.cameras import CameraView, default_views

        if setting.strip() == 'default':
            return default_views(env_id)
        views = yaml.safe_load(setting)
        if not isinstance(views, list) or not views:
            raise ConfigError(f"cameras must be '', 'default' or a YAML list of views, got "
                              f'{setting!r}')
        return [CameraView.from_dict(v) for v in views]

    # ---------------------------------------------------------------- simulation
    @property
    def sim_time(self) -> float:
        return self.step_index * self.dt

    def _reset_episode(self) -> None:
        seed = int(self.p['seed']) + self.episode
        self.obs, _ = self.env.reset(seed=seed)
        self.episode_return, self.episode_length, self.seed_used = 0.0, 0, seed
        self.episode_success: bool | None = None  # None: the task reports no success
        self._publish_state()

    def _step(self, action: np.ndarray) -> None:
        if self.done:
            return
        space = self.env.action_space
        # In the action space's dtype, as a Gymnasium agent passes it (the task's control
        # cost is then computed in the same precision as in `dgm eval`).
        action = np.clip(np.asarray(action, dtype=space.dtype), space.low, space.high)
        self.obs, reward, terminated, truncated, info = self.env.step(action)
        if 'success' in info:  # manipulation tasks: success at any step of the episode
            self.episode_success = bool(self.episode_success) or bool(info['success'])
        self.step_index += 1
        self.episode_return += float(reward)
        self.episode_length += 1
        self.pub_reward.publish(Float64(data=float(reward)))
        if terminated or truncated:
            self.pub_end.publish(String(data=json.dumps({
                'episode': self.episode, 'return': self.episode_return,
                'length': self.episode_length, 'terminated': bool(terminated),
                'seed': self.seed_used,
                **({} if self.episode_success is None else {'success': self.episode_success})})))
            self.episode += 1
            if self.p['episodes'] and self.episode >= self.p['episodes']:
                self.done = True
                return
            self._reset_episode()
            return
        self._publish_state()

    def _publish_state(self) -> None:
        self._last_publish = time.monotonic()
        stamp = rclpy.time.Time(seconds=self.sim_time).to_msg()
        if self.pub_clock is not None:
            self.pub_clock.publish(Clock(clock=stamp))
        data = self.env.unwrapped.data
        joints = JointState(name=[j[0] for j in self.joints],
                            position=[float(data.qpos[j[1]]) for j in self.joints],
                            velocity=[float(data.qvel[j[2]]) for j in self.joints])
        joints.header.stamp = stamp
        self.pub_joints.publish(joints)
        state = self.obs
        if isinstance(self.obs, dict):  # with cameras: the frames first, then the state
            state = self.obs['state']
            for camera, frame in self.obs['images'].items():
                image = Image(height=frame.shape[0], width=frame.shape[1], encoding='rgb8',
                              step=frame.shape[1] * 3)
                image.header.stamp = stamp
                image.header.frame_id = camera
                image.data = frame.tobytes()
                self.pub_images[camera].publish(image)
        values = np.asarray(state, np.float64)
        obs = Float64MultiArray(data=values.tolist())
        obs.layout.data_offset = self.step_index
        # The episode travels with the observation, so a policy that keeps state (action
        # queues, histories) resets in order, whatever order the topics arrive in.
        obs.layout.dim = [MultiArrayDimension(label=f'episode {self.episode}',
                                              size=values.size, stride=values.size)]
        self.pub_obs.publish(obs)

    # ---------------------------------------------------------------- inputs
    def _on_command(self, msg: Float64MultiArray) -> None:
        size = self.env.action_space.shape[0]
        action = np.asarray(msg.data, dtype=np.float64)
        if action.shape != (size,) or not np.isfinite(action).all():
            self.get_logger().warning(f'ignoring a bad command ({action.size} values, '
                                   f'finite={bool(np.isfinite(action).all())})',
                                   throttle_duration_sec=1.0)
            return
        self.command = action
        if self.p['mode'] == 'lockstep' and not self.paused and \
                int(msg.layout.data_offset) == self.step_index:
            self._step(action)

    def _on_tick(self) -> None:
        if not self.paused:
            self._step(self.command if self.command is not None
                       else np.zeros(self.env.action_space.shape))

    def _resend(self) -> None:
        """No command for the current step within ``lockstep_resend_s``: a lost observation or a
        late-joining policy (or recorder) hears it again. Paused, too: the policy's answer
        to a repeat is the same command, so a paused loop shows its subscribers it is live."""
        if not self.done and time.monotonic() - self._last_publish >= self.p['lockstep_resend_s']:
            self.resends += 1
            self._publish_state()

    # ---------------------------------------------------------------- services
    def _srv_reset(self, request, response):
        self.done = False
        self.command = None
        self._reset_episode()
        response.success, response.message = True, f'episode {self.episode} reset ' \
            f'with seed {self.seed_used}'
        return response

    def _srv_pause(self, request, response):
        self.paused = bool(request.data)
        response.success, response.message = True, 'paused' if self.paused else 'running'
        return response

    def _srv_step(self, request, response):
        if not self.paused:
            response.success, response.message = False, 'pause the simulation first'
            return response
        before = self.step_index
        self._step(self.command if self.command is not None
                   else np.zeros(self.env.action_space.shape))
        response.success = self.step_index == before + 1
        response.message = f'step {self.step_index}, t = {self.sim_time:.4f} s'
        return response


def main(args=None) -> None:
    run_node(MujocoSimNode)


if __name__ == '__main__':
    main()
