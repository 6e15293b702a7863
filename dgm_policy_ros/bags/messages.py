# SPDX-License-Identifier: Apache-2.0
"""Building the recorded message types as ``rosbags`` objects (no ROS install needed): for
writing bags from other sources, and for tests and benchmarks with known contents."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dgm_policy_ros.bags.writer import typestore

_T = typestore().types


def stamp(ns: int):
    return _T['builtin_interfaces/msg/Time'](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def header(ns: int, frame_id: str = ''):
    return _T['std_msgs/msg/Header'](stamp=stamp(ns), frame_id=frame_id)


def float_array(values: Sequence[float], label: str | None = None, offset: int = 0):
    """std_msgs/Float64MultiArray; ``label``/``offset``: the lockstep episode and step."""
    values = np.asarray(values, np.float64)
    dims = [_T['std_msgs/msg/MultiArrayDimension'](label=label, size=values.size,
                                                   stride=values.size)] if label else []
    return _T['std_msgs/msg/Float64MultiArray'](
        layout=_T['std_msgs/msg/MultiArrayLayout'](dim=dims, data_offset=offset), data=values)


def joint_state(ns: int, names: Sequence[str], position: Sequence[float],
                velocity: Sequence[float] = (), effort: Sequence[float] = ()):
    return _T['sensor_msgs/msg/JointState'](
        header=header(ns), name=list(names), position=np.asarray(position, np.float64),
        velocity=np.asarray(velocity, np.float64), effort=np.asarray(effort, np.float64))


def image(ns: int, frame: np.ndarray, encoding: str = 'rgb8'):
    """sensor_msgs/Image of a uint8 (H, W, C) or (H, W) frame."""
    frame = np.ascontiguousarray(frame, np.uint8)
    height, width = frame.shape[:2]
    return _T['sensor_msgs/msg/Image'](
        header=header(ns), height=height, width=width, encoding=encoding, is_bigendian=0,
        step=frame.size // height, data=frame.reshape(-1))


def float64(value: float):
    return _T['std_msgs/msg/Float64'](data=float(value))


def string(value: str):
    return _T['std_msgs/msg/String'](data=value)
