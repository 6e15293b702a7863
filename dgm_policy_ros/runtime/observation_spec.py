# SPDX-License-Identifier: Apache-2.0
"""The observation spec: which topics and fields, in which order, make the policy's input.

A YAML list of sources, assembled in order into one vector whose size must equal the bundle's
observation size::

    - {topic: /joint_states, type: sensor_msgs/JointState, joints: [hip, knee],
       fields: [position, velocity]}
    - {topic: /odom, type: nav_msgs/Odometry,
       fields: [pose.pose.position.z, twist.twist.linear.x]}
    - {topic: /imu, type: sensor_msgs/Imu, fields: [angular_velocity, linear_acceleration]}
    - {topic: /dgm/observation, type: std_msgs/Float64MultiArray, size: 11}

Extraction is plain attribute access on the message, so this module needs no rclpy; the same
spec is used by the policy node and by the rosbag converter.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

from dgm_policy_ros.config import Config, ConfigError

MESSAGE_TYPES = {
    'sensor_msgs/JointState': ('sensor_msgs.msg', 'JointState'),
    'std_msgs/Float64MultiArray': ('std_msgs.msg', 'Float64MultiArray'),
    'nav_msgs/Odometry': ('nav_msgs.msg', 'Odometry'),
    'sensor_msgs/Imu': ('sensor_msgs.msg', 'Imu'),
}
JOINT_FIELDS = ('position', 'velocity', 'effort')
VECTOR3 = ('x', 'y', 'z')
QUATERNION = ('x', 'y', 'z', 'w')


@dataclasses.dataclass
class ObservationSource(Config):
    topic: str
    type: str
    fields: list[str] = dataclasses.field(default_factory=list)
    joints: list[str] = dataclasses.field(default_factory=list)
    size: Optional[int] = None  # Float64MultiArray: expected length
    use_header_stamp: bool = True  # staleness from header.stamp (else receive time)

    def validate(self) -> None:
        if self.type not in MESSAGE_TYPES:
            raise ConfigError(f'observation source {self.topic}: type {self.type!r} is not one '
                              f'of {sorted(MESSAGE_TYPES)}')
        if self.type == 'sensor_msgs/JointState':
            if not self.joints:
                raise ConfigError(f'observation source {self.topic}: JointState needs joints')
            bad = [f for f in self.fields or ['position'] if f not in JOINT_FIELDS]
            if bad:
                raise ConfigError(f'observation source {self.topic}: JointState fields must be '
                                  f'in {JOINT_FIELDS}, got {bad}')
        elif self.type == 'std_msgs/Float64MultiArray':
            if self.size is None or self.size < 1:
                raise ConfigError(f'observation source {self.topic}: Float64MultiArray needs '
                                  'size >= 1')
        elif not self.fields:
            raise ConfigError(f'observation source {self.topic}: {self.type} needs fields')

    @property
    def has_header(self) -> bool:
        return self.type != 'std_msgs/Float64MultiArray'

    @property
    def width(self) -> int:
        if self.type == 'sensor_msgs/JointState':
            return len(self.joints) * len(self.fields or ['position'])
        if self.type == 'std_msgs/Float64MultiArray':
            return int(self.size)
        return sum(_field_width(f) for f in self.fields)

    def message_class(self):
        import importlib

        module, name = MESSAGE_TYPES[self.type]
        return getattr(importlib.import_module(module), name)

    def extract(self, msg: Any) -> np.ndarray:
        """The source's slice of the observation; ValueError says what is missing."""
        if self.type == 'std_msgs/Float64MultiArray':
            data = np.asarray(msg.data, dtype=np.float64)
            if data.shape != (self.size,):
                raise ValueError(f'{self.topic}: expected {self.size} values, got {data.size}')
            return data
        if self.type == 'sensor_msgs/JointState':
            index = {name: i for i, name in enumerate(msg.name)}
            missing = [j for j in self.joints if j not in index]
            if missing:
                raise ValueError(f'{self.topic}: joints {missing} not in the message')
            out = []
            for field in self.fields or ['position']:
                values = getattr(msg, field)
                if len(values) != len(msg.name):
                    raise ValueError(f'{self.topic}: {field} has {len(values)} values for '
                                     f'{len(msg.name)} joints')
                out.extend(values[index[j]] for j in self.joints)
            return np.asarray(out, dtype=np.float64)
        return np.concatenate([_read_field(msg, f) for f in self.fields])


def _field_width(path: str) -> int:
    last = path.split('.')[-1]
    if last in ('orientation',):
        return 4
    if last in ('position', 'linear', 'angular', 'angular_velocity', 'linear_acceleration'):
        return 3
    return 1


def _read_field(msg: Any, path: str) -> np.ndarray:
    value = msg
    for part in path.split('.'):
        if not hasattr(value, part):
            raise ValueError(f'message has no field {path!r}')
        value = getattr(value, part)
    if hasattr(value, 'w'):
        return np.array([getattr(value, k) for k in QUATERNION], dtype=np.float64)
    if hasattr(value, 'x'):
        return np.array([getattr(value, k) for k in VECTOR3], dtype=np.float64)
    return np.array([float(value)], dtype=np.float64)


def load_observation_spec(spec: str | list | Path) -> list[ObservationSource]:
    """From a YAML file path, a YAML string, or an already parsed list."""
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.strip().endswith(
            ('.yaml', '.yml')) and '\n' not in spec):
        spec = yaml.safe_load(Path(spec).read_text())
    elif isinstance(spec, str):
        spec = yaml.safe_load(spec)
    if isinstance(spec, dict) and 'observation' in spec:
        spec = spec['observation']
    if not isinstance(spec, list) or not spec:
        raise ConfigError('the observation spec must be a non-empty list of sources')
    sources = [ObservationSource.from_dict(s) for s in spec]
    topics = [s.topic for s in sources]
    if len(set(topics)) != len(topics):
        raise ConfigError(f'the observation spec names a topic twice: {topics}')
    return sources


def spec_width(sources: list[ObservationSource]) -> int:
    return sum(s.width for s in sources)
