# SPDX-License-Identifier: Apache-2.0
"""rosbag2 throughput: writing, reading and converting a bag of >= 1e6 messages
(bench/results/bags.md).

The bag is a robot's hour in miniature: joint states at 1 kHz, and at a 100 Hz control rate
an observation, a command and a reward, with an episode end every 1000 steps. Peers, timed in
the same run on the same bag: reading with ``rosbags``' AnyReader alone (raw bytes, and
deserialized), against our reader (which also sorts, de-duplicates and decodes), and the whole
conversion (reading plus alignment into episodes).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import sys
import tempfile
import time

from bench.common import Table, write_result

HERE = Path(__file__).resolve().parent

MS = 1_000_000
SPEC_DICT = {
    'observation': [{'topic': '/obs', 'type': 'std_msgs/Float64MultiArray', 'size': 2},
                    {'topic': '/joint_states', 'type': 'sensor_msgs/JointState',
                     'joints': ['knee', 'ankle'], 'fields': ['position', 'velocity']}],
    'action_topic': '/cmd', 'reward_topic': '/reward', 'episode_topic': '/episode_end'}


def spec():
    from dgm_policy_ros.bags.topics import RecordingSpec

    return RecordingSpec.from_dict(SPEC_DICT)


def make_bag(path: Path, steps: int, storage: str) -> tuple[int, float]:
    from dgm_policy_ros.bags.messages import float64, float_array, joint_state, string
    from dgm_policy_ros.bags.writer import BagWriter, typestore

    store = typestore()
    started = time.perf_counter()
    count = 0
    with BagWriter(path, spec().topics(), storage=storage) as bag:
        for k in range(steps):
            t = 10 * MS * (k + 1)
            for j in range(10):
                ns = t - 10 * MS + j * MS
                bag.write_raw('/joint_states', ns, store.serialize_cdr(
                    joint_state(ns, ['hip', 'knee', 'ankle'], [k, j, 0.0], [0.0, 0.1, 0.2]),
                    'sensor_msgs/msg/JointState'))
            bag.write('/obs', t, float_array([k, -k]))
            bag.write('/cmd', t + 2 * MS, float_array([k / 1e4]))
            bag.write('/reward', t + 3 * MS, float64(1.0))
            count += 13
            if k % 1000 == 999:
                bag.write('/episode_end', t + 4 * MS, string(json.dumps({'terminated': False})))
                count += 1
    return count, time.perf_counter() - started


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file()) / 2**20


def anyreader(path: Path, deserialize: bool) -> int:
    from rosbags.highlevel import AnyReader

    from dgm_policy_ros.bags.writer import typestore

    n = 0
    with AnyReader([path], default_typestore=typestore()) as reader:
        for conn, _, raw in reader.messages():
            if deserialize:
                reader.deserialize(raw, conn.msgtype)
            n += 1
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--steps', type=int, default=77_000, help='control steps (13 msgs each)')
    parser.add_argument('--storages', nargs='+', default=['mcap', 'sqlite3'])
    args = parser.parse_args()

    from dgm_policy_ros.bags.convert import bag_to_episodes
    from dgm_policy_ros.bags.reader import read_bags

    rows = []
    work = Path(tempfile.mkdtemp(prefix='dgm-bags-bench-'))
    try:
        for storage in args.storages:
            bag = work / storage
            count, write_s = make_bag(bag, args.steps, storage)
            mb = size_mb(bag)
            timings = {'write (BagWriter, incl. serializing)': write_s}
            started = time.perf_counter()
            assert anyreader(bag, deserialize=False) == count
            timings['read raw: rosbags AnyReader'] = time.perf_counter() - started
            started = time.perf_counter()
            anyreader(bag, deserialize=True)
            timings['read + decode: rosbags AnyReader'] = time.perf_counter() - started
            started = time.perf_counter()
            streams, _ = read_bags([bag], spec().topics())
            assert sum(map(len, streams.values())) == count
            timings['read + decode: ours (sorted, de-duplicated)'] = \
                time.perf_counter() - started
            started = time.perf_counter()
            episodes, report = bag_to_episodes([bag], spec())
            timings['bag2minari conversion (read + align)'] = time.perf_counter() - started
            assert report.steps == args.steps, report.to_dict()
            for name, seconds in timings.items():
                rows.append((storage, name, count, mb, seconds))
                print(f'{storage:8s} {name:45s} {count / seconds:12,.0f} msg/s '
                      f'{mb / seconds:8.1f} MB/s', flush=True)
            shutil.rmtree(bag)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes = ', '.join(f'{r[0]} {r[3]:.0f} MB' for r in rows if r[1].startswith('write'))
    lines = [f'A bag of {rows[0][2]:,} messages ({args.steps:,} control steps at 100 Hz with '
             f'1 kHz joint states; {sizes}), written and read on this machine, one process; '
             "ratios against rosbags' own read + decode of the same bag in the same run.",
             '']
    table = Table('storage', 'operation', 'messages/s', 'MB/s', 'vs AnyReader read + decode')
    for storage, name, count, mb, seconds in rows:
        peer = next(r[4] for r in rows if r[0] == storage and
                    r[1] == 'read + decode: rosbags AnyReader')
        table.add(storage, name, f'{count / seconds:,.0f}', f'{mb / seconds:.1f}',
                  f'{peer / seconds:.2f}x')
    lines += table.lines()
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('bags', 'rosbag2 throughput: write, read, convert', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
