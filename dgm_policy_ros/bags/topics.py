# SPDX-License-Identifier: Apache-2.0
"""What a recording holds: the policy node's observation sources, its command topic and the
reward / episode signals, as one typed config shared by the recorder and the converter."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import yaml

from dgm_policy_ros.config import Config, ConfigError
from dgm_policy_ros.runtime.observation_spec import ObservationSource, load_observation_spec

# Our type names (as in observation specs) -> ROS 2 interface names (as in bags).
ROS_TYPES = {
    'sensor_msgs/JointState': 'sensor_msgs/msg/JointState',
    'std_msgs/Float64MultiArray': 'std_msgs/msg/Float64MultiArray',
    'nav_msgs/Odometry': 'nav_msgs/msg/Odometry',
    'sensor_msgs/Imu': 'sensor_msgs/msg/Imu',
    'sensor_msgs/Image': 'sensor_msgs/msg/Image',
    'sensor_msgs/CompressedImage': 'sensor_msgs/msg/CompressedImage',
    'std_msgs/Float64': 'std_msgs/msg/Float64',
    'std_msgs/String': 'std_msgs/msg/String',
}
ACTION_TYPE = 'std_msgs/Float64MultiArray'  # ros2_control's forward command form


@dataclasses.dataclass
class RecordingSpec(Config):
    """Topics of one recording. ``observation`` is the policy node's observation spec (a list
    of sources, or a path to its YAML); its first source paces the control steps."""

    observation: list = dataclasses.field(default_factory=list)
    action_topic: str = '/forward_command_controller/commands'
    reward_topic: Optional[str] = None  # std_msgs/Float64
    episode_topic: Optional[str] = None  # std_msgs/String, one message per episode end

    def validate(self) -> None:
        if not self.observation:
            raise ConfigError('RecordingSpec.observation: the observation spec is empty')
        sources = self.sources()  # fails with the spec's own message
        if sources[0].is_camera:
            raise ConfigError('RecordingSpec: the first source paces the steps: make it a '
                              'vector source, not a camera')

    def sources(self) -> list[ObservationSource]:
        return load_observation_spec(self.observation)

    def topics(self) -> dict[str, str]:
        """Topic -> our type name, observation sources first."""
        out = {s.topic: s.type for s in self.sources()}
        if self.action_topic in out:
            raise ConfigError(f'{self.action_topic} is both an observation and the action topic')
        out[self.action_topic] = ACTION_TYPE
        if self.reward_topic:
            out[self.reward_topic] = 'std_msgs/Float64'
        if self.episode_topic:
            out[self.episode_topic] = 'std_msgs/String'
        return out

    @classmethod
    def load(cls, spec: str | Path | dict[str, Any]) -> RecordingSpec:
        """From a dict, a YAML file, or an observation-spec file with the topics given apart."""
        if not isinstance(spec, dict):
            spec = yaml.safe_load(Path(spec).read_text())
        if isinstance(spec, list):
            spec = {'observation': spec}
        return cls.from_dict(spec)
