# SPDX-License-Identifier: Apache-2.0
"""Reading rosbag2 bags (MCAP and sqlite3, one bag, several, or folders of them) into sorted
per-topic message lists, recovering what a damaged bag still holds.

Complete bags are read with ``rosbags``' AnyReader. It needs ``metadata.yaml`` and, for MCAP,
an intact footer; a bag cut short (a recorder killed, a disk filled) has neither. Such files
are read record by record instead: MCAP with the ``mcap`` library's stream reader (up to the
first damaged record), sqlite3 with plain SQL (its transactions keep committed rows). Every
message that cannot be decoded, and every duplicate, is dropped and counted per topic.

Payloads are kept as views of what the storage library read (no copy). Topics given a
``reduce`` function (camera frames: a 640x480 frame is 0.9 MB, an hour of it 100 GB) are
deserialized as they are read and only the function's result is kept, so memory holds what
the conversion needs, not the recording; a function may hand its heavy part (decoding a JPEG,
resizing) to worker threads by returning it as ``Later``, so frames decode on every core.
"""
from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
import dataclasses
import gc
import os
from pathlib import Path
import sqlite3
from typing import Any, Callable, Iterator
import zlib

from dgm_policy_ros.bags.topics import ROS_TYPES
from dgm_policy_ros.bags.writer import typestore

# Threads that finish ``Later`` reductions (image decoders release the GIL), and how many
# reductions may wait for them at once: each holds its deserialized message (~1 MB a frame).
DECODE_THREADS = min(4, os.cpu_count() or 1)
DECODE_WINDOW = 4 * DECODE_THREADS


@dataclasses.dataclass(frozen=True, slots=True)
class Later:
    """What a ``reduce`` function returns for work that may run on another thread: ``work()``
    gives the result kept for the message. The reading thread calls the function itself in
    bag order, so whatever it decides from the first messages stays deterministic."""

    work: Callable[[], Any]


@dataclasses.dataclass
class ReadReport:
    bags: list[str] = dataclasses.field(default_factory=list)
    read: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    dropped: dict[str, collections.Counter] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    recovered: list[str] = dataclasses.field(default_factory=list)  # bags read record by record
    errors: list[str] = dataclasses.field(default_factory=list)
    available: dict[str, str] = dataclasses.field(default_factory=dict)  # every topic: type

    def drop(self, topic: str, reason: str, n: int = 1) -> None:
        self.dropped[topic][reason] += n

    def to_dict(self) -> dict[str, Any]:
        return {'bags': self.bags, 'read': dict(self.read),
                'dropped': {t: dict(c) for t, c in self.dropped.items()},
                'recovered': self.recovered, 'errors': self.errors,
                'topics_in_bags': dict(sorted(self.available.items()))}


@dataclasses.dataclass(slots=True)
class Stamped:
    stamp_ns: int  # the bag's (receive) timestamp
    msg: Any  # None: an undecodable message kept in its place (read_bags(keep_places=True))

    def header_ns(self) -> int | None:
        header = getattr(self.msg, 'header', None)
        if header is None:
            return None
        return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class LazyStamped:
    """A message decoded when first used: a high-rate topic of which a conversion uses one
    message in ten (joint states at 1 kHz, control at 100 Hz) costs its reading only. One
    that turns out undecodable reads as None (as ``Stamped``'s kept places do) and is counted
    then."""

    __slots__ = ('stamp_ns', '_msg', '_data', '_context')
    header_ns = Stamped.header_ns

    def __init__(self, stamp_ns: int, data, context: tuple) -> None:
        self.stamp_ns, self._data, self._context, self._msg = stamp_ns, data, context, _PENDING

    @property
    def msg(self) -> Any:
        if self._msg is _PENDING:
            topic, store, msgtype, report = self._context
            self._msg, self._data = _deserialize(store, self._data, msgtype), None
            if self._msg is _Undecodable:
                self._msg = None
                report.drop(topic, 'undecodable')
                report.read[topic] -= 1
        return self._msg


_PENDING = object()


def find_bags(paths: list[str | Path]) -> list[Path]:
    """Bag folders under ``paths``: folders with metadata.yaml or .mcap/.db3 files."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f'{path}: no such bag or folder')
        if path.is_file():
            found.append(path.parent)
            continue
        if _is_bag(path):
            found.append(path)
            continue
        found += sorted({p.parent for p in path.rglob('*') if p.is_file() and
                         (p.name == 'metadata.yaml' or p.suffix in ('.mcap', '.db3'))})
    if not found:
        raise FileNotFoundError(f'no rosbag2 bags under {[str(p) for p in paths]}')
    return list(dict.fromkeys(found))


def _is_bag(folder: Path) -> bool:
    return (folder / 'metadata.yaml').is_file() or any(
        p.suffix in ('.mcap', '.db3') for p in folder.iterdir())


def read_bags(paths: list[str | Path], topics: dict[str, str], progress: bool = False,
              keep_places: bool = False, reduce: dict[str, Callable[[Any], Any]] | None = None,
              lazy: frozenset[str] | set[str] = frozenset()
              ) -> tuple[dict[str, list[Stamped]], ReadReport]:
    """Messages of ``topics`` (topic -> our type name), per topic, sorted by bag time;
    ``progress``: a progress bar per bag (large recordings); ``keep_places``: an undecodable
    message stays in its place as ``Stamped(stamp, None)`` (still counted as dropped), so
    what is paired by order or time around it stays paired right; ``reduce``: per topic, a
    function of each decoded message whose result (or its ``Later`` work's result) is kept
    instead of the message; ``lazy``: topics whose messages are decoded when first used
    (``LazyStamped``, with ``keep_places``)."""
    store = typestore()
    report = ReadReport()
    reduce = reduce or {}
    raw: dict[str, list[tuple[int, Any, Any]]] = {t: [] for t in topics}  # stamp, key, data
    workers = ThreadPoolExecutor(DECODE_THREADS) if reduce else None
    waiting: collections.deque[Future] = collections.deque()

    def record(topic: str, stamp: int, data) -> tuple[str, int, Any, Any]:
        """(topic, stamp, what tells duplicates apart, what is kept) of one message."""
        if topic in reduce:  # decoded now: its payload is freed as the read goes on
            kept = _decoded(store, data, topics[topic], reduce[topic])
            if isinstance(kept, Later):
                kept = workers.submit(kept.work)
                waiting.append(kept)
                if len(waiting) > DECODE_WINDOW:
                    waiting.popleft().result()  # the read waits for the decoders
            return topic, stamp, zlib.crc32(data), kept
        return topic, stamp, data, data

    enabled = gc.isenabled()
    gc.disable()  # millions of small objects kept: the cyclic collector would rescan them all
    try:
        for bag in find_bags(paths):
            report.bags.append(str(bag))
            try:
                records, listed = _read_complete(bag, topics, store, report, progress, record)
            except Exception as exc:  # noqa: BLE001 - any failure: fall back to recovery
                report.recovered.append(str(bag))
                report.errors.append(f'{bag}: {type(exc).__name__}: {exc}')
                records = _read_damaged(bag, topics, report, record)
            else:
                records = _check_against_storage(bag, topics, records, listed, report, record)
            for topic, stamp, key, data in records:
                raw[topic].append((stamp, key, data))
        return {topic: _messages(topic, items, topics[topic], store, report, keep_places,
                                 topic in reduce, topic in lazy and keep_places)
                for topic, items in raw.items()}, report
    finally:
        if workers is not None:
            workers.shutdown(cancel_futures=True)
        if enabled:
            gc.enable()


class _Undecodable:
    """A message that did not deserialize."""


def _deserialize(store, data, msgtype: str) -> Any:
    """The message, or ``_Undecodable`` for a corrupt payload."""
    try:
        return store.deserialize_cdr(data, msgtype)
    except Exception:  # noqa: BLE001 - a corrupt payload
        return _Undecodable


def _decoded(store, data, kind: str, reduce: Callable[[Any], Any]) -> Any:
    msg = _deserialize(store, data, ROS_TYPES[kind])
    return msg if msg is _Undecodable else reduce(msg)


def _messages(topic: str, items: list, kind: str, store, report: ReadReport, keep_places: bool,
              reduced: bool, lazy: bool) -> list[Stamped]:
    """One topic's records sorted by stamp, duplicates (same stamp, same bytes) dropped,
    decoded."""
    stamps = [stamp for stamp, _, _ in items]
    if any(a > b for a, b in zip(stamps, stamps[1:])):
        items.sort(key=lambda item: item[0])  # out-of-order writes (several bags, clocks)
    msgtype = ROS_TYPES[kind]
    messages, last = [], (None, None)
    context = (topic, store, msgtype, report)
    for stamp, key, data in items:
        if (stamp, key) == last:
            report.drop(topic, 'duplicate')
            continue
        last = (stamp, key)
        if lazy:
            messages.append(LazyStamped(stamp, data, context))
            report.read[topic] += 1
            continue
        if not reduced:
            msg = _deserialize(store, data, msgtype)
        else:  # reduced as read, or by a decoding thread
            msg = data.result() if isinstance(data, Future) else data
        if msg is _Undecodable:
            report.drop(topic, 'undecodable')
            if keep_places:
                messages.append(Stamped(stamp, None))
            continue
        messages.append(Stamped(stamp, msg))
    if not lazy:
        report.read[topic] += sum(m.msg is not None for m in messages)
    return messages


def _read_complete(bag: Path, topics, store, report, progress: bool, record
                   ) -> tuple[list[tuple], collections.Counter]:
    """The bag's messages on ``topics`` through rosbags, and how many metadata.yaml lists."""
    from rosbags.highlevel import AnyReader
    from tqdm.auto import tqdm

    records, listed = [], collections.Counter()
    with AnyReader([bag], default_typestore=store) as reader:
        wanted = []
        for conn in reader.connections:
            report.available.setdefault(conn.topic, conn.msgtype)
            if conn.topic not in topics:
                continue
            if conn.msgtype != ROS_TYPES[topics[conn.topic]]:
                report.drop(conn.topic, f'type {conn.msgtype}', conn.msgcount)
                continue
            wanted.append(conn)
            listed[conn.topic] += conn.msgcount
        with tqdm(total=sum(listed.values()), unit='msg', desc=bag.name,
                  disable=not progress, mininterval=1.0) as bar:
            # (rosbags reads every connection when given none: read none then.)
            for conn, stamp, data in reader.messages(connections=wanted) if wanted else ():
                bar.update(1)
                records.append(record(conn.topic, stamp, data))
    return records, listed


def _check_against_storage(bag: Path, topics, records, listed: collections.Counter,
                           report: ReadReport, record) -> list[tuple]:
    """rosbags yields a topic's messages only where metadata.yaml and the storage file agree
    (on the QoS too: a bag whose metadata was rewritten, or written by another tool, can read
    as empty with no error). A topic read short of its listed count, or one metadata.yaml does
    not list, is read again from the storage itself; what that finds is used, and said."""
    got = collections.Counter(r[0] for r in records)
    other_type = {t for t in topics if report.available.get(t, ROS_TYPES[topics[t]]) !=
                  ROS_TYPES[topics[t]]}  # refused for their type already: not missing
    # Short of what metadata.yaml lists, or absent from it (then only the storage can tell);
    # a topic listed with no messages is silent, not missing, and costs no second read.
    suspect = sorted(t for t in topics if t not in other_type and
                     (got[t] < listed[t] or t not in report.available))
    if not suspect:
        return records
    scratch = ReadReport()
    direct = [r for r in _read_damaged(bag, topics, scratch, record) if r[0] not in other_type]
    found = collections.Counter(r[0] for r in direct)
    if any(found[t] > got[t] for t in topics):
        report.recovered.append(str(bag))
        report.errors.append(
            f'{bag}: metadata.yaml and the storage disagree on '
            f'{[t for t in suspect if found[t] > got[t]]} (rosbags read '
            f'{dict((t, got[t]) for t in suspect)}, the storage holds '
            f'{dict((t, found[t]) for t in suspect)}): read from the storage directly')
        report.errors += scratch.errors
        return direct
    short = [t for t in suspect if got[t] < listed[t]]
    if short:
        report.errors.append(f'{bag}: metadata.yaml lists {dict((t, listed[t]) for t in short)} '
                             f'messages, the storage holds {dict((t, found[t]) for t in short)}')
    return records


def _read_damaged(bag: Path, topics, report, record) -> Iterator[tuple]:
    for file in sorted(bag.glob('*.mcap')):
        for message in _recover_mcap(file, topics, report):
            yield record(*message)
    for file in sorted(bag.glob('*.db3')):
        for message in _recover_sqlite(file, topics, report):
            yield record(*message)


def _recover_mcap(file: Path, topics, report) -> Iterator[tuple[str, int, bytes]]:
    import mcap.records as records
    from mcap.stream_reader import StreamReader

    channels: dict[int, str] = {}
    with open(file, 'rb') as stream:
        try:
            for record in StreamReader(stream, emit_chunks=False).records:
                if isinstance(record, records.Channel):
                    channels[record.id] = record.topic
                    report.available.setdefault(record.topic, '?')
                elif isinstance(record, records.Message):
                    topic = channels.get(record.channel_id)
                    if topic in topics:
                        yield topic, int(record.log_time), record.data
        except Exception as exc:  # noqa: BLE001 - the damaged tail: stop here
            report.errors.append(f'{file}: stopped at a damaged record ({type(exc).__name__})')


def _recover_sqlite(file: Path, topics, report) -> Iterator[tuple[str, int, bytes]]:
    try:
        db = sqlite3.connect(f'file:{file}?mode=ro', uri=True)
        for name, kind in db.execute('SELECT name, type FROM topics').fetchall():
            report.available.setdefault(name, kind)
        rows = db.execute('SELECT topics.name, messages.timestamp, messages.data FROM messages '
                          'JOIN topics ON messages.topic_id = topics.id ORDER BY '
                          'messages.timestamp').fetchall()
        db.close()
    except sqlite3.Error as exc:
        report.errors.append(f'{file}: {exc}')
        return
    for topic, stamp, data in rows:
        if topic in topics:
            yield topic, int(stamp), data
