# SPDX-License-Identifier: Apache-2.0
"""Writing rosbag2 bags (MCAP by default, or sqlite3) with ``rosbags``: no ROS install needed,
and ``ros2 bag info`` / ``ros2 bag play`` read the result.

A bag is written into ``.<name>.partial/<name>`` next to its final place and moved to
``<path>`` when closed, so a bag under its final name is always complete. A recorder killed
mid-way leaves the partial bag, whose messages ``bag2minari`` still recovers up to the last
complete MCAP chunk (rosbags flushes a chunk every MiB).
"""
from __future__ import annotations

import os
from pathlib import Path
import shutil
from typing import Any

from dgm_policy_ros.bags.topics import ROS_TYPES
from dgm_policy_ros.config import ConfigError

STORAGES = ('mcap', 'sqlite3')


def typestore():
    """The message definitions bags are written with (ROS 2 Kilted's; the standard messages
    used here are unchanged since Humble)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


class BagWriter:
    def __init__(self, path: str | Path, topics: dict[str, str], storage: str = 'mcap',
                 overwrite: bool = False) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ConfigError(f'storage must be one of {STORAGES}, got {storage!r}')
        unknown = sorted(set(topics.values()) - set(ROS_TYPES))
        if unknown:
            raise ConfigError(f'cannot record message types {unknown}; known: {sorted(ROS_TYPES)}')
        self.path = Path(path)
        self.staging = self.path.parent / f'.{self.path.name}.partial'
        self.partial = self.staging / self.path.name  # rosbags names its files after it
        if self.path.exists() and not overwrite:
            raise FileExistsError(f'{self.path} exists (pass overwrite to replace it)')
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.store = typestore()
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self._writer = Writer(self.partial, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections = {
            topic: self._writer.add_connection(topic, ROS_TYPES[kind], typestore=self.store)
            for topic, kind in topics.items()}
        self.counts = {topic: 0 for topic in topics}
        self._overwrite = overwrite
        self.closed = False

    def write_raw(self, topic: str, stamp_ns: int, cdr: bytes) -> None:
        """Already serialized (CDR) bytes, e.g. from an rclpy ``raw=True`` subscription."""
        self._writer.write(self._connections[topic], int(stamp_ns), cdr)
        self.counts[topic] += 1

    def write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """A rosbags message object (see :func:`typestore`)."""
        conn = self._connections[topic]
        self.write_raw(topic, stamp_ns, self.store.serialize_cdr(msg, conn.msgtype))

    def close(self) -> Path:
        if self.closed:
            return self.path
        self._writer.close()
        if self.path.exists() and self._overwrite:
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        self.staging.rmdir()
        self.closed = True
        return self.path

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # keep what was written, under the .partial name
            self._writer.close()
            self.closed = True
