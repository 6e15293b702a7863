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
    - {topic: /sim/observation, type: std_msgs/Float64MultiArray, size: 39, indices: [0, 1]}
    - {topic: /camera/image_raw, type: sensor_msgs/Image, camera: corner2, align: drop}
    - {topic: /wrist/image/compressed, type: sensor_msgs/CompressedImage, camera: wrist}

Camera sources feed the bundle's image input ``images/<camera>`` instead of the vector (rgb8,
bgr8, rgba8, bgra8, mono8; JPEG or PNG compressed), turned to the frame size and channels the
bundle declares (``runtime/image_decoding.py``). Extraction is plain attribute access on the
message, so this module needs no rclpy; the same spec is used by the policy node and by the
rosbag converter.

Alignment, per source (``align``), as the ROS 2 <-> LeRobot bridges define it: ``hold`` uses the
latest message (within the node's stale timeout); ``asof`` uses the latest message only if it
is at most ``tolerance_s`` older than the step (else the fault ``out of sync``); ``drop`` uses
a message only if it arrived since the previous control step: with ``trigger: observation`` the
step waits for it (so a simulator in lockstep pairs each frame with its own step, whichever
topic arrives first), with the timer a step without one faults ``stale``. A step's time is
the node's clock when it runs (the receive time of a trigger without a header); in
``bag2minari`` the pacing message's time. ``bag2minari`` applies ``hold`` and ``asof`` alike,
and ``drop`` as ``hold``.
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
    'sensor_msgs/Image': ('sensor_msgs.msg', 'Image'),
    'sensor_msgs/CompressedImage': ('sensor_msgs.msg', 'CompressedImage'),
}
CAMERA_TYPES = ('sensor_msgs/Image', 'sensor_msgs/CompressedImage')
ALIGNMENTS = ('hold', 'asof', 'drop')
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
    camera: Optional[str] = None  # Image, CompressedImage: the bundle input images/<camera>
    indices: Optional[list[int]] = None  # Float64MultiArray: the elements taken, in order
    align: str = 'hold'  # hold: the latest; asof: within tolerance_s; drop: a new one only
    tolerance_s: float = 0.05  # asof: how much older than the step its message may be
    # Image, CompressedImage in a dataset converted from a bag: frames of this size, and mono
    # (1 channel) or color (3); unset: the first frame's own size, mono only for mono8.
    frame_size: Optional[list[int]] = None  # [height, width]
    channels: Optional[int] = None

    def validate(self) -> None:
        if self.type not in MESSAGE_TYPES:
            raise ConfigError(f'observation source {self.topic}: type {self.type!r} is not one '
                              f'of {sorted(MESSAGE_TYPES)}')
        if self.align not in ALIGNMENTS:
            raise ConfigError(f'observation source {self.topic}: align must be one of '
                              f'{ALIGNMENTS}, got {self.align!r}')
        if not self.tolerance_s >= 0:
            raise ConfigError(f'observation source {self.topic}: tolerance_s must be >= 0')
        if self.indices is not None and (self.type != 'std_msgs/Float64MultiArray' or
                                         not self.indices or self.size is None or
                                         not all(0 <= i < self.size for i in self.indices)):
            raise ConfigError(f'observation source {self.topic}: indices select elements '
                              'of a Float64MultiArray, each in [0, size)')
        if (self.frame_size is not None or self.channels is not None) and not self.is_camera:
            raise ConfigError(f'observation source {self.topic}: frame_size and channels '
                              'belong to camera sources')
        if self.frame_size is not None and (len(self.frame_size) != 2 or
                                            min(self.frame_size) < 8):
            raise ConfigError(f'observation source {self.topic}: frame_size is [height, '
                              'width], each >= 8')
        if self.channels not in (None, 1, 3):
            raise ConfigError(f'observation source {self.topic}: channels must be 1 or 3')
        if self.is_camera != bool(self.camera):
            raise ConfigError(f'observation source {self.topic}: camera names the bundle '
                              'image input of an Image or CompressedImage source, and only '
                              'of those')
        if self.is_camera:
            return
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
    def is_camera(self) -> bool:
        return self.type in CAMERA_TYPES

    @property
    def input_name(self) -> str:
        """The bundle input a camera source feeds."""
        return f'images/{self.camera}'

    def frame_shape(self, msg: Any) -> tuple[int, int, int]:
        """The (H, W, C) a dataset stores this camera's frames at: the declared size, else
        this (first) message's own."""
        channels = self.channels or (1 if getattr(msg, 'encoding', '') == 'mono8' else 3)
        if self.frame_size:
            return (int(self.frame_size[0]), int(self.frame_size[1]), channels)
        if self.type == 'sensor_msgs/Image':
            return (int(msg.height), int(msg.width), channels)
        import io

        from PIL import Image

        from dgm_policy_ros.runtime.runner import ObservationError

        try:
            with Image.open(io.BytesIO(memoryview(msg.data))) as image:
                return (image.height, image.width, channels)
        except (OSError, ValueError) as exc:
            raise ObservationError('undecodable', f'{self.topic}: {exc}') from exc

    def frame(self, msg: Any, shape: tuple[int, int, int]) -> np.ndarray:
        """A camera source's message as the bundle's uint8 (H, W, C) frame, or
        ObservationError with the reason."""
        from dgm_policy_ros.runtime.image_decoding import decode_compressed, decode_image

        decode = decode_image if self.type == 'sensor_msgs/Image' else decode_compressed
        return decode(msg, tuple(shape), self.topic)

    @property
    def width(self) -> int:
        if self.is_camera:
            return 0  # frames go to their own input, not into the vector
        if self.type == 'sensor_msgs/JointState':
            return len(self.joints) * len(self.fields or ['position'])
        if self.type == 'std_msgs/Float64MultiArray':
            return len(self.indices) if self.indices else int(self.size)
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
            return data[self.indices] if self.indices else data
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
    cameras = [s.camera for s in sources if s.is_camera]
    if len(set(cameras)) != len(cameras):
        raise ConfigError(f'the observation spec feeds a camera input twice: {cameras}')
    return sources


def check_cameras(sources: list[ObservationSource], image_inputs: dict) -> None:
    """Every image input of the bundle fed by exactly one camera source, and no other."""
    fed = {s.input_name for s in sources if s.is_camera}
    if fed != set(image_inputs):
        raise ConfigError(f'the observation spec feeds camera inputs {sorted(fed)}, the '
                          f'bundle takes {sorted(image_inputs)}')


def spec_width(sources: list[ObservationSource]) -> int:
    return sum(s.width for s in sources)
