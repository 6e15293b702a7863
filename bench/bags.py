# SPDX-License-Identifier: Apache-2.0
"""rosbag2 throughput: writing, reading and converting a bag of >= 1e6 messages
(bench/results/bags.md).

The bag is a robot's hour in miniature: joint states at 1 kHz, and at a 100 Hz control rate
an observation, a command and a reward, with an episode end every 1000 steps. Peers, timed in
the same run on the same bag: reading with ``rosbags``' AnyReader alone (raw bytes, and
deserialized), against our reader (which also sorts, de-duplicates and decodes), and the whole
conversion (reading plus alignment into episodes).

A second bag is a camera arm's: at a 30 Hz control rate the joint states, a 640x480 rgb8 camera
frame (raw, as ``usb_cam``/``realsense`` publish it, or JPEG ``CompressedImage``), a command and
a reward; converted into 96 px image observations as the policy node would see them. Its rate
is in MB/s of the bag.
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


FRAME = (480, 640, 3)


def camera_spec_dict(compressed: bool) -> dict:
    camera = ({'topic': '/camera/image_raw/compressed', 'type': 'sensor_msgs/CompressedImage'}
              if compressed else {'topic': '/camera/image_raw', 'type': 'sensor_msgs/Image'})
    return {'observation': [{'topic': '/joint_states', 'type': 'sensor_msgs/JointState',
                             'joints': ['shoulder', 'elbow', 'wrist'],
                             'fields': ['position', 'velocity']},
                            {**camera, 'camera': 'wrist', 'frame_size': [96, 96]}],
            'action_topic': '/cmd', 'reward_topic': '/reward'}


def spec(spec_dict: dict | None = None):
    from dgm_policy_ros.bags.topics import RecordingSpec

    return RecordingSpec.from_dict(spec_dict or SPEC_DICT)


def camera_frames(n: int = 16) -> list:
    """A few distinct frames with texture (JPEG of a flat frame would be unrealistically small)."""
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (FRAME[0] // 8, FRAME[1] // 8, 3), dtype=np.uint8)
    big = np.kron(base, np.ones((8, 8, 1), np.uint8))
    return [np.roll(big, 8 * k, axis=1) for k in range(n)]


def make_camera_bag(path: Path, steps: int, storage: str, compressed: bool
                    ) -> tuple[int, float]:
    """30 Hz control steps: the joint states, one camera frame, a command, a reward."""
    import io

    import numpy as np
    from PIL import Image

    from dgm_policy_ros.bags.messages import float64, float_array, header, image, joint_state
    from dgm_policy_ros.bags.writer import BagWriter, typestore

    frames = camera_frames()
    jpegs = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format='JPEG', quality=90)
        jpegs.append(buffer.getvalue())
    kind = typestore().types['sensor_msgs/msg/CompressedImage']
    topic = camera_spec_dict(compressed)['observation'][1]['topic']
    period = 1_000_000_000 // 30
    started = time.perf_counter()
    count = 0
    with BagWriter(path, spec(camera_spec_dict(compressed)).topics(), storage=storage) as bag:
        for k in range(steps):
            t = period * (k + 1)
            shot = t - 1_000_000  # the frame arrives just before the joint states it pairs with
            bag.write(topic, shot, kind(header=header(shot), format='jpeg', data=np.frombuffer(
                jpegs[k % len(jpegs)], np.uint8)) if compressed else
                image(shot, frames[k % len(frames)]))
            bag.write('/joint_states', t, joint_state(t, ['shoulder', 'elbow', 'wrist'],
                                                      [k, 0.0, 0.0], [0.0, 0.1, 0.2]))
            bag.write('/cmd', t + 2_000_000, float_array([k / 1e4, 0.0, 0.0]))
            bag.write('/reward', t + 3_000_000, float64(1.0))
            count += 4
    return count, time.perf_counter() - started


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


def measure(bag: Path, count: int, write_s: float, spec_dict: dict, steps: int) -> dict:
    """Seconds per operation on one bag, ours beside rosbags' reading of it."""
    from dgm_policy_ros.bags.convert import bag_to_episodes, read_recording
    from dgm_policy_ros.bags.reader import read_bags

    topics = spec(spec_dict).topics()
    timings = {'write (BagWriter, incl. serializing)': write_s}
    started = time.perf_counter()
    assert anyreader(bag, deserialize=False) == count
    timings['read raw: rosbags AnyReader'] = time.perf_counter() - started
    started = time.perf_counter()
    anyreader(bag, deserialize=True)
    timings[PEER] = time.perf_counter() - started
    if not spec(spec_dict).sources()[1].is_camera:  # every frame of a raw bag would not fit
        started = time.perf_counter()
        streams, _ = read_bags([bag], topics)
        assert sum(map(len, streams.values())) == count
        timings['read + decode: ours (sorted, de-duplicated)'] = time.perf_counter() - started
        del streams
    started = time.perf_counter()
    streams, _ = read_recording([bag], spec(spec_dict))
    assert sum(map(len, streams.values())) == count
    timings[READ_AS_CONVERTED] = time.perf_counter() - started
    del streams
    started = time.perf_counter()
    episodes, report = bag_to_episodes([bag], spec(spec_dict))
    timings['bag2minari conversion (read + align)'] = time.perf_counter() - started
    assert report.steps == steps, report.to_dict()
    if spec(spec_dict).sources()[1].is_camera:  # the same, frames decoded on one thread
        from dgm_policy_ros.bags import reader

        threads, reader.DECODE_THREADS = reader.DECODE_THREADS, 1
        try:
            started = time.perf_counter()
            bag_to_episodes([bag], spec(spec_dict))
            timings[ONE_THREAD] = time.perf_counter() - started
        finally:
            reader.DECODE_THREADS = threads
    return timings


PEER = 'read + decode: rosbags AnyReader'
ONE_THREAD = 'bag2minari conversion, frames decoded on one thread (as before 2026-12-04)'
READ_AS_CONVERTED = ('read as bag2minari reads: ours (frames decoded to 96 px as read, '
                     'high-rate sources when used)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--steps', type=int, default=77_000, help='control steps (13 msgs each)')
    parser.add_argument('--camera-steps', type=int, default=1500,
                        help='control steps of the camera bags (4 msgs each, one a frame)')
    parser.add_argument('--storages', nargs='+', default=['mcap', 'sqlite3'])
    args = parser.parse_args()

    rows = []
    work = Path(tempfile.mkdtemp(prefix='dgm-bags-bench-'))
    bags = [('small messages', SPEC_DICT, args.steps,
             lambda path, storage: make_bag(path, args.steps, storage))]
    for compressed in (False, True):
        bags.append((f"camera ({'JPEG' if compressed else 'raw rgb8'})",
                     camera_spec_dict(compressed), args.camera_steps,
                     lambda path, storage, c=compressed: make_camera_bag(
                         path, args.camera_steps, storage, c)))
    try:
        for kind, spec_dict, steps, make in bags:
            for storage in args.storages:
                bag = work / storage
                count, write_s = make(bag, storage)
                mb = size_mb(bag)
                for name, seconds in measure(bag, count, write_s, spec_dict, steps).items():
                    rows.append((kind, storage, name, count, mb, seconds))
                    print(f'{kind:18s} {storage:8s} {name:45s} {count / seconds:12,.0f} msg/s '
                          f'{mb / seconds:8.1f} MB/s', flush=True)
                shutil.rmtree(bag)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes = '; '.join(f'{r[0]}: {r[3]:,} messages, {r[1]} {r[4]:.0f} MB' for r in rows
                      if r[2].startswith('write'))
    lines = [f'Bags written and read on this machine, one process: small messages '
             f'({args.steps:,} control steps at 100 Hz with 1 kHz joint states), and a camera '
             f'arm ({args.camera_steps:,} steps at 30 Hz, each a 640x480 frame, raw or JPEG, '
             f'with joint states, a command and a reward; converted to 96 px frames). Sizes: '
             f"{sizes}. Ratios against rosbags' own read + decode of the same bag in the same "
             'run.', '']
    table = Table('bag', 'storage', 'operation', 'messages/s', 'MB/s',
                  'vs AnyReader read + decode')
    for kind, storage, name, count, mb, seconds in rows:
        peer = next(r[5] for r in rows if r[:2] == (kind, storage) and r[2] == PEER)
        table.add(kind, storage, name, f'{count / seconds:,.0f}', f'{mb / seconds:.1f}',
                  f'{peer / seconds:.2f}x')
    lines += table.lines()
    body = '\n'.join(lines) + '\n'
    print(body)
    write_result('bags', 'rosbag2 throughput: write, read, convert', body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
