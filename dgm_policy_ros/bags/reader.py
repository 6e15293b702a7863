# SPDX-License-Identifier: Apache-2.0
"""Reading rosbag2 bags (MCAP and sqlite3, one bag, several, or folders of them) into sorted
per-topic message lists, recovering what a damaged bag still holds.

Complete bags are read with ``rosbags``' AnyReader. It needs ``metadata.yaml`` and, for MCAP,
an intact footer; a bag cut short (a recorder killed, a disk filled) has neither. Such files
are read record by record instead: MCAP with the ``mcap`` library's stream reader (up to the
first damaged record), sqlite3 with plain SQL (its transactions keep committed rows). Every
message that cannot be decoded, and every duplicate, is dropped and counted per topic.
"""
from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
import sqlite3
from typing import Any, Iterator

from dgm_policy_ros.bags.topics import ROS_TYPES
from dgm_policy_ros.bags.writer import typestore


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
              keep_places: bool = False) -> tuple[dict[str, list[Stamped]], ReadReport]:
    """Messages of ``topics`` (topic -> our type name), per topic, sorted by bag time;
    ``progress``: a progress bar per bag (large recordings); ``keep_places``: an undecodable
    message stays in its place as ``Stamped(stamp, None)`` (still counted as dropped), so
    what is paired by order or time around it stays paired right."""
    store = typestore()
    report = ReadReport()
    raw: dict[str, list[tuple[int, bytes]]] = {t: [] for t in topics}
    for bag in find_bags(paths):
        report.bags.append(str(bag))
        try:
            records, listed = _read_complete(bag, topics, store, report, progress)
        except Exception as exc:  # noqa: BLE001 - any failure: fall back to recovery
            report.recovered.append(str(bag))
            report.errors.append(f'{bag}: {type(exc).__name__}: {exc}')
            records = list(_read_damaged(bag, topics, report))
        else:
            records = _check_against_storage(bag, topics, records, listed, report)
        for topic, stamp, data in records:
            raw[topic].append((stamp, data))
    out: dict[str, list[Stamped]] = {}
    for topic, items in raw.items():
        stamps = [stamp for stamp, _ in items]
        if any(a > b for a, b in zip(stamps, stamps[1:])):
            items.sort(key=lambda item: item[0])  # out-of-order writes (several bags, clocks)
        msgtype, deserialize = ROS_TYPES[topics[topic]], store.deserialize_cdr
        messages, last_stamp, last_data = [], None, None
        for stamp, data in items:
            if stamp == last_stamp and data == last_data:
                report.drop(topic, 'duplicate')
                continue
            last_stamp, last_data = stamp, data
            try:
                msg = deserialize(data, msgtype)
            except Exception:  # noqa: BLE001 - a corrupt payload
                report.drop(topic, 'undecodable')
                if keep_places:
                    messages.append(Stamped(stamp, None))
                continue
            messages.append(Stamped(stamp, msg))
        report.read[topic] += sum(m.msg is not None for m in messages)
        out[topic] = messages
    return out, report


def _read_complete(bag: Path, topics, store, report, progress: bool = False
                   ) -> tuple[list[tuple[str, int, bytes]], collections.Counter]:
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
                records.append((conn.topic, stamp, bytes(data)))
    return records, listed


def _check_against_storage(bag: Path, topics, records, listed: collections.Counter,
                           report: ReadReport) -> list[tuple[str, int, bytes]]:
    """rosbags yields a topic's messages only where metadata.yaml and the storage file agree
    (on the QoS too: a bag whose metadata was rewritten, or written by another tool, can read
    as empty with no error). A topic read short of its listed count, or one metadata.yaml does
    not list, is read again from the storage itself; what that finds is used, and said."""
    got = collections.Counter(topic for topic, _, _ in records)
    other_type = {t for t in topics if report.available.get(t, ROS_TYPES[topics[t]]) !=
                  ROS_TYPES[topics[t]]}  # refused for their type already: not missing
    # Short of what metadata.yaml lists, or absent from it (then only the storage can tell);
    # a topic listed with no messages is silent, not missing, and costs no second read.
    suspect = sorted(t for t in topics if t not in other_type and
                     (got[t] < listed[t] or t not in report.available))
    if not suspect:
        return records
    scratch = ReadReport()
    direct = [r for r in _read_damaged(bag, topics, scratch) if r[0] not in other_type]
    found = collections.Counter(topic for topic, _, _ in direct)
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


def _read_damaged(bag: Path, topics, report) -> Iterator[tuple[str, int, bytes]]:
    for file in sorted(bag.glob('*.mcap')):
        yield from _recover_mcap(file, topics, report)
    for file in sorted(bag.glob('*.db3')):
        yield from _recover_sqlite(file, topics, report)


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
                        yield topic, int(record.log_time), bytes(record.data)
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
            yield topic, int(stamp), bytes(data)
