# SPDX-License-Identifier: Apache-2.0
"""Writing rosbag2 bags (MCAP by default, or sqlite3) with ``rosbags``: no ROS install needed,
and ``ros2 bag info`` / ``ros2 bag play`` read the result.

A bag is written into ``.<name>.partial/<name>`` next to its final place and moved to
``<path>`` when closed, so a bag under its final name is always complete. A recorder killed
mid-way leaves the partial bag, whose messages ``bag2minari`` still recovers up to the last
complete MCAP chunk (rosbags flushes a chunk every MiB).

One thread owns the bag (sqlite3 connections must stay on the thread that opened them): any
thread may call :meth:`BagWriter.write_raw`, which only queues. A failure in that thread is
kept in :attr:`BagWriter.error` and raised, with its cause, by the next write and by close.

Each topic is written with the QoS its publishers offered (``offered_qos_profiles``, as
``ros2 bag record`` writes them, so ``ros2 bag play`` replays a transient-local topic as
transient local) and its type hash (``type_description_hash`` in metadata.yaml and
``topic_type_hash`` in the MCAP channel, as rosbag2 Jazzy/Kilted write them).
"""
from __future__ import annotations

from io import BytesIO
import os
from pathlib import Path
import queue
import shutil
import threading
from typing import Any, Iterable

from dgm_policy_ros.bags.topics import ROS_TYPES
from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.errors import DgmError

STORAGES = ('mcap', 'sqlite3')
_CLOSE = object()


class BagWriteError(DgmError):
    """The bag could not be written; the cause is chained."""


def typestore():
    """The message definitions bags are written with (ROS 2 Kilted's; the standard messages
    used here are unchanged since Humble)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def rosbags_qos(reliability: str, durability: str, depth: int, history: str = 'keep_last'):
    """A rosbags QoS record from policy names ('reliable', 'transient_local', ...)."""
    from rosbags import interfaces as ri

    never = ri.QosTime(sec=0, nsec=0)
    return ri.Qos(history=ri.QosHistory[history.upper()], depth=int(depth),
                  reliability=ri.QosReliability[reliability.upper()],
                  durability=ri.QosDurability[durability.upper()], deadline=never,
                  lifespan=never, liveliness=ri.QosLiveliness.AUTOMATIC,
                  liveliness_lease_duration=never, avoid_ros_namespace_conventions=False)


def qos_from_rclpy(profile) -> Any:
    """The rosbags QoS record of an rclpy ``QoSProfile`` (a publisher's offered QoS)."""
    from rosbags import interfaces as ri

    def time(duration) -> Any:
        ns = int(getattr(duration, 'nanoseconds', 0))
        return ri.QosTime(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)

    def enum(kind, policy):
        return kind.__members__.get(policy.name.upper(), kind.__members__['UNKNOWN'])

    return ri.Qos(history=enum(ri.QosHistory, profile.history), depth=int(profile.depth),
                  reliability=enum(ri.QosReliability, profile.reliability),
                  durability=enum(ri.QosDurability, profile.durability),
                  deadline=time(profile.deadline), lifespan=time(profile.lifespan),
                  liveliness=enum(ri.QosLiveliness, profile.liveliness),
                  liveliness_lease_duration=time(profile.liveliness_lease_duration),
                  avoid_ros_namespace_conventions=bool(
                      profile.avoid_ros_namespace_conventions))


def _rosbags_writer_class():
    """rosbags' Writer, whose MCAP channels also carry ``topic_type_hash`` (rosbags writes
    only ``offered_qos_profiles`` there; rosbag2 Jazzy and later write both)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.storage_mcap import Channel, McapWriter, write_channel, write_string

    class HashedMcapWriter(McapWriter):
        def add_connection(self, connection, offered_qos_profiles: str) -> None:
            metadata = BytesIO()
            for key, value in (('offered_qos_profiles', offered_qos_profiles),
                               ('topic_type_hash', connection.digest or '')):
                write_string(metadata, key)
                write_string(metadata, value)
            self.channels.append(Channel(connection.id, connection.msgtype, connection.topic,
                                         connection.ext.serialization_format,
                                         metadata.getvalue()))
            self.channel_stats[connection.id] = 0
            write_channel(self.chunk.bio, self.channels[-1], self.schemas)

    class HashedWriter(Writer):
        STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: HashedMcapWriter}

    return HashedWriter


class BagWriter:
    def __init__(self, path: str | Path, topics: dict[str, str], storage: str = 'mcap',
                 overwrite: bool = False, qos: dict[str, Iterable[Any]] | None = None) -> None:
        """``topics``: topic -> type name; ``qos``: topic -> the offered QoS profiles (rosbags
        records, see :func:`rosbags_qos`), used for topics whose publishers' QoS
        :meth:`set_qos` has not given before their first message."""
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
        self.topics = dict(topics)
        self.storage = storage
        self.qos = {topic: list(profiles) for topic, profiles in (qos or {}).items()}
        self.counts = {topic: 0 for topic in topics}
        self.error: BaseException | None = None
        self.closed = False
        self._overwrite = overwrite
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f'bag {self.path.name}',
                                        daemon=True)
        self._thread.start()
        self._opened.wait()
        self._raise_error()

    # ------------------------------------------------------------------ any thread
    def set_qos(self, topic: str, profiles: Iterable[Any]) -> None:
        """The QoS the topic's publishers offer (before its first message is written)."""
        self.qos[topic] = list(profiles)

    def write_raw(self, topic: str, stamp_ns: int, cdr: bytes) -> None:
        """Already serialized (CDR) bytes, e.g. from an rclpy ``raw=True`` subscription."""
        self._raise_error()
        if self.closed:
            raise BagWriteError(f'{self.path}: the bag is closed')
        if topic not in self.topics:
            raise ConfigError(f'{topic} is not a topic of {self.path}')
        self.counts[topic] += 1
        self._queue.put((topic, int(stamp_ns), bytes(cdr)))

    def write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """A rosbags message object (see :func:`typestore`)."""
        msgtype = ROS_TYPES[self.topics[topic]]
        self.write_raw(topic, stamp_ns, self.store.serialize_cdr(msg, msgtype))

    def close(self) -> Path:
        """Finish the bag and move it under its final name; raises if writing failed."""
        if self.closed:
            self._raise_error()
            return self.path
        self._finish()
        self._raise_error()
        if self.path.exists() and self._overwrite:
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        self.staging.rmdir()
        return self.path

    def abort(self) -> Path:
        """Stop writing and keep what was written under the ``.partial`` name only."""
        if not self.closed:
            self._finish()
        return self.partial

    def _finish(self) -> None:
        self.closed = True
        self._queue.put(_CLOSE)
        self._thread.join()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise BagWriteError(f'{self.path}: writing the bag failed: '
                                f'{type(self.error).__name__}: {self.error}') from self.error

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # keep what was written, under the .partial name
            self.abort()

    # ------------------------------------------------------------------ the bag's thread
    def _run(self) -> None:
        from rosbags.rosbag2 import StoragePlugin

        writer, connections = None, {}
        try:
            plugin = StoragePlugin.MCAP if self.storage == 'mcap' else StoragePlugin.SQLITE3
            writer = _rosbags_writer_class()(self.partial, version=9, storage_plugin=plugin)
            writer.open()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            self.error = exc
            self._opened.set()
            return
        self._opened.set()

        def connection(topic: str):
            if topic not in connections:
                connections[topic] = writer.add_connection(
                    topic, ROS_TYPES[self.topics[topic]], typestore=self.store,
                    offered_qos_profiles=self.qos.get(topic, ()))
            return connections[topic]

        try:
            while True:
                item = self._queue.get()
                if item is _CLOSE:
                    break
                if self.error is None:
                    topic, stamp, data = item
                    writer.write(connection(topic), stamp, data)
            if self.error is None:
                for topic in self.topics:  # topics that stayed silent are listed too
                    connection(topic)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
        finally:
            try:
                writer.close()
            except BaseException as exc:  # noqa: BLE001
                self.error = self.error or exc
