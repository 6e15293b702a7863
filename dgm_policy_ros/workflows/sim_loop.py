# SPDX-License-Identifier: Apache-2.0
"""``dgm sim-loop``: the policy node against the MuJoCo simulator node, over real ROS 2.

Starts ``mujoco_sim_node`` and ``policy_node`` as separate processes (they talk over DDS, as on
a robot), watches ``~/episode_end`` and ``/diagnostics`` from a third node, stops both after
the requested episodes, and reports returns, normalized score, inference latency and missed
deadlines, with a plot. The same graph as ``launch/sim_in_the_loop.launch.py``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np

from dgm_policy_ros.config import ConfigError

SIM_NODE = 'mujoco_sim'
POLICY_NODE = 'dgm_policy'


def observation_spec_for_sim(obs_size: int, sim_node: str = SIM_NODE) -> list[dict]:
    return [{'topic': f'/{sim_node}/observation', 'type': 'std_msgs/Float64MultiArray',
             'size': obs_size}]


def camera_setup_for_sim(bundle, env_id: str, lockstep: bool,
                         sim_node: str = SIM_NODE) -> tuple[list[dict], str]:
    """For a bundle that sees images: the policy node's spec (the simulator's state, cut to the
    bundle's elements, then each camera; in lockstep every frame serves its own step, 'drop')
    and the simulator's ``cameras`` parameter (the bundle's views, as JSON)."""
    from dgm_policy_ros.sim.environments import make_env
    from dgm_policy_ros.sim.evaluate import bundle_cameras

    cameras = bundle_cameras(bundle, env_id)
    probe = make_env(env_id)
    size = int(probe.observation_space.shape[0])
    probe.close()
    state = {'topic': f'/{sim_node}/observation', 'type': 'std_msgs/Float64MultiArray',
             'size': size}
    if cameras.state_indices:
        state['indices'] = list(cameras.state_indices)
    # In lockstep the nodes keep no common clock (the policy runs on wall time): frames are
    # then judged by when they arrive.
    spec = [state, *({'topic': f'/{sim_node}/image/{view.camera}', 'type': 'sensor_msgs/Image',
                      'camera': view.camera, 'align': 'drop' if lockstep else 'hold',
                      'use_header_stamp': not lockstep} for view in cameras.views)]
    return spec, json.dumps([view.to_dict() for view in cameras.views])


def recording_spec_for_sim(obs_size: int, sim_node: str = SIM_NODE):
    """What ``dgm sim-loop --record`` records: the policy's observation, its commands, and the
    simulator's reward and episode ends."""
    from dgm_policy_ros.bags.topics import RecordingSpec

    return RecordingSpec(observation=observation_spec_for_sim(obs_size, sim_node),
                         action_topic='/forward_command_controller/commands',
                         reward_topic=f'/{sim_node}/reward',
                         episode_topic=f'/{sim_node}/episode_end')


@dataclasses.dataclass(frozen=True)
class MjcfTarget:
    """A bare MJCF robot as the simulator (``dgm sim-loop --mjcf``): observation qpos, qvel."""

    file: Path
    keyframe: str = ''  # empty: the model's first keyframe, if any
    frame_skip: int = 1
    max_episode_steps: int = 1000

    def parameters(self) -> list[str]:
        args = ['-p', f'mjcf_file:={Path(self.file).resolve()}',
                '-p', f'frame_skip:={int(self.frame_skip)}',
                '-p', f'max_episode_steps:={int(self.max_episode_steps)}']
        return args + (['-p', f'keyframe:={self.keyframe}'] if self.keyframe else [])


def node_commands(bundle: Path, env_id: str, episodes: int, seed: int, lockstep: bool,
                  spec_file: Path, backend: str = 'auto', exploration_noise: float = 0.0,
                  mjcf: MjcfTarget | None = None, cameras: str = ''
                  ) -> tuple[list[str], list[str]]:
    """``cameras``: the simulator's camera views as JSON (a bundle that sees images)."""
    sim = [sys.executable, '-m', 'dgm_policy_ros.ros.mujoco_sim_node', '--ros-args',
           '-r', f'__node:={SIM_NODE}', '-p', f'env_id:={env_id}',
           '-p', f"mode:={'lockstep' if lockstep else 'realtime'}", '-p', f'seed:={seed}',
           '-p', f'episodes:={episodes}', *(mjcf.parameters() if mjcf else []),
           # Quoted: ROS reads a parameter's value as YAML, and this one must stay a string.
           *(['-p', f"cameras:='{cameras}'"] if cameras else [])]
    policy = [sys.executable, '-m', 'dgm_policy_ros.ros.policy_node', '--ros-args',
              '-r', f'__node:={POLICY_NODE}', '-p', f'model_file_path:={bundle}',
              '-p', f'observation_spec:={spec_file}', '-p', f'backend:={backend}',
              '-p', f"trigger:={'observation' if lockstep else 'timer'}",
              '-p', f'episode_reset_topic:=/{SIM_NODE}/episode_end',
              '-p', f'reward_topic:=/{SIM_NODE}/reward', '-p', 'autostart:=true',
              '-p', f'exploration_noise:={float(exploration_noise)}',
              '-p', f"use_sim_time:={'false' if lockstep else 'true'}"]
    return sim, policy


def run_sim_loop(bundle: str | Path, env_id: str | None = None, episodes: int = 10,
                 lockstep: bool = True, seed: int | None = None, backend: str = 'auto',
                 plot: str | Path | None = None, timeout_s: float = 600.0,
                 record: str | Path | None = None, record_storage: str = 'mcap',
                 exploration_noise: float = 0.0,
                 mjcf: MjcfTarget | None = None,
                 video: str | Path | None = None) -> dict[str, Any]:
    """Run the simulator and policy nodes until ``episodes`` episodes end; the summary.

    ``video``: for a bundle that sees images, the frames of its first camera as the policy
    received them over ROS 2, written there (GIF, or mp4 where imageio has ffmpeg).

    ``mjcf``: simulate that MJCF robot instead of a Gymnasium task (``env_id`` then only
    names it in the summary).

    ``record``: also write the loop's topics (observation, commands, reward, episode ends)
    into a rosbag2 bag there, ready for ``dgm bag2minari`` with ``recording_spec_for_sim``.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String
    import yaml

    from dgm_policy_ros.data.scores import has_reference, normalized_score
    from dgm_policy_ros.runtime.bundle import load_bundle

    bundle_path = Path(bundle).resolve()
    loaded = load_bundle(bundle_path)
    manifest = loaded.manifest
    env_id = env_id or (f'mjcf:{Path(mjcf.file).name}' if mjcf else loaded.env_id)
    if not env_id:
        raise ConfigError('the bundle names no environment: pass --env')
    if seed is None:
        seed = loaded.eval_env_seed
    work = Path(tempfile.mkdtemp(prefix='dgm-sim-loop-'))
    spec_file = work / 'observation_spec.yaml'
    spec, cameras = observation_spec_for_sim(manifest['observation']['size']), ''
    if loaded.image_inputs:
        if record or mjcf:
            raise ConfigError('a bundle that sees images runs against a simulated task, '
                              'unrecorded, so far (no --record, no --mjcf)')
        spec, cameras = camera_setup_for_sim(loaded, env_id, lockstep)
    spec_file.write_text(yaml.safe_dump(spec))
    sim_cmd, policy_cmd = node_commands(bundle_path, env_id, episodes, seed, lockstep,
                                        spec_file, backend, exploration_noise=exploration_noise,
                                        mjcf=mjcf, cameras=cameras)
    # Recording, or filming: the simulator starts paused and runs once the recorder (the
    # camera subscription) has heard it, so the bag (video) holds every step from the first; a
    # short episode on a busy machine can end before discovery matches them otherwise.
    # (Counting the simulator's subscribers instead can be fooled by a node of an earlier run
    # still shutting down.)
    start_paused = bool(record) or bool(video and loaded.image_inputs)
    if start_paused:
        sim_cmd += ['-p', 'start_paused:=true']
    ends: list[dict] = []
    diagnostics: dict[str, str] = {}
    finished = threading.Event()
    diagnosed = threading.Event()
    rclpy.init()
    node = rclpy.create_node('dgm_sim_loop_monitor')
    reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def on_end(msg):
        ends.append(json.loads(msg.data))
        if len(ends) >= episodes:
            finished.set()

    def on_diag(msg):
        for status in msg.status:
            if status.name.startswith('dgm_policy'):
                diagnostics.update({kv.key: kv.value for kv in status.values})
                diagnostics['message'] = status.message
                diagnosed.set()

    frames: list[np.ndarray] = []
    filming = None
    if video and loaded.image_inputs:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        camera = next(iter(loaded.image_inputs)).split('/', 1)[1]

        def on_frame(msg):
            frames.append(np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, -1))

        filming = node.create_subscription(Image, f'/{SIM_NODE}/image/{camera}', on_frame,
                                           qos_profile_sensor_data)
    node.create_subscription(String, f'/{SIM_NODE}/episode_end', on_end, reliable)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    writer = recorder = None
    if record:
        from dgm_policy_ros.bags.recorder import make_recorder_node
        from dgm_policy_ros.bags.writer import BagWriter

        rec_spec = recording_spec_for_sim(manifest['observation']['size'])
        writer = BagWriter(record, rec_spec.topics(), storage=record_storage)
        recorder = make_recorder_node(rec_spec, writer)
        executor.add_node(recorder)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    logs = {name: open(work / f'{name}.log', 'w') for name in ('sim', 'policy')}
    completed = False
    procs = []
    started = time.monotonic()
    # Likewise, do not start among the nodes of a loop that is still shutting down.
    if not _wait_quietly(lambda: not _loop_endpoints(node), 15.0):
        raise RuntimeError('the nodes of another sim-in-the-loop run are still on this ROS '
                           'domain (topics of /mujoco_sim); stop them or use another '
                           'ROS_DOMAIN_ID')
    # Discovered while the nodes start, so the paused simulator waits no longer than needed.
    pause = _pause_client(node) if start_paused else None
    try:
        # The policy first: in lockstep the simulator waits for its commands anyway.
        procs.append(subprocess.Popen(policy_cmd, stdout=logs['policy'],
                                      stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(sim_cmd, stdout=logs['sim'], stderr=subprocess.STDOUT))
        if recorder is not None:
            # Paused in lockstep, the simulator re-sends its first observation and the policy
            # answers it: both reach the recorder before the first step is taken.
            flowing: list[str] = []
            if lockstep:
                flowing = [s.topic for s in rec_spec.sources()] + [rec_spec.action_topic]
            _recorder_ready(recorder, procs, timeout_s, flowing)
        if filming is not None:  # in lockstep the paused simulator re-sends its first frame
            _wait(lambda: filming.get_publisher_count() > 0 and (frames or not lockstep),
                  procs, timeout_s, "the simulator's camera")
            del frames[1:]
        if pause is not None:
            _unpause(pause, procs, timeout_s, recorder)
        while not finished.wait(0.5):
            _raise_recorder_error(recorder)
            if diagnostics.get('message', '').startswith('configure failed'):
                raise RuntimeError(f"the policy node did not configure: "
                                   f"{diagnostics['message']}; log: {work / 'policy.log'}")
            for proc, name in zip(procs, ('policy', 'sim')):
                if proc.poll() is not None:
                    raise RuntimeError(f'the {name} node exited ({proc.returncode}); log: '
                                       f'{work / (name + ".log")}\n'
                                       f'{(work / (name + ".log")).read_text()[-2000:]}')
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f'{len(ends)}/{episodes} episodes after {timeout_s:.0f} s; '
                                   f'logs in {work}')
        # The policy node reports once a second: wait for a report made after the last
        # episode, so the counters and latencies cover the whole run.
        diagnosed.clear()
        diagnosed.wait(5.0)
        _raise_recorder_error(recorder)
        completed = True
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in logs.values():
            handle.close()
        # Leave the graph as found: a loop started right after this one (tests, scripts)
        # must not mistake these nodes, still being forgotten by DDS, for its own.
        _wait_quietly(lambda: not _loop_endpoints(node), 15.0)
        executor.shutdown()
        node.destroy_node()
        if recorder is not None:
            recorder.destroy_node()
        rclpy.try_shutdown()
        if writer is not None:  # a bag under its final name only when the loop completed
            if completed:
                writer.close()
            else:
                writer.abort()
    ends.sort(key=lambda e: e['episode'])
    returns = np.array([e['return'] for e in ends])
    result = {
        'bundle': str(bundle_path), 'env': env_id, 'mode': 'lockstep' if lockstep else
        'realtime', 'episodes': len(ends), 'seeds': [e['seed'] for e in ends],
        'returns': returns.tolist(), 'lengths': [e['length'] for e in ends],
        'return_mean': float(returns.mean()), 'return_std': float(returns.std()),
        'wall_s': round(time.monotonic() - started, 2),
        'inference_p50_ms': _num(diagnostics.get('inference_p50_ms')),
        'inference_p99_ms': _num(diagnostics.get('inference_p99_ms')),
        'missed_deadlines': int(_num(diagnostics.get('missed_deadlines')) or 0),
        'achieved_rate_hz': _num(diagnostics.get('achieved_rate_hz')),
        'backend': diagnostics.get('backend'), 'logs': str(work),
    }
    if writer is not None:
        result.update(bag=str(writer.path), bag_messages=dict(writer.counts))
    if all('success' in e for e in ends):
        result['success_rate'] = float(np.mean([e['success'] for e in ends]))
    if video and frames:
        import imageio.v2 as imageio

        rate = loaded.control_rate_hz or 30.0
        imageio.mimsave(str(video), frames, duration=1.0 / rate)
        result.update(video=str(video), video_frames=len(frames))
    if has_reference(env_id):
        scores = normalized_score(env_id, returns)
        result.update(score_mean=float(np.mean(scores)), score_std=float(np.std(scores)))
    if plot:
        _plot(result, Path(plot))
        result['plot'] = str(plot)
    return result


def _loop_endpoints(node) -> int:
    """Publishers of the loop's topics now on the graph (the simulator's and the policy's)."""
    topics = (f'/{SIM_NODE}/observation', f'/{SIM_NODE}/reward',
              '/forward_command_controller/commands')
    return sum(node.count_publishers(topic) for topic in topics)


def _wait_quietly(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _recorder_ready(recorder, procs, timeout_s: float, flowing: list[str]) -> None:
    """Wait until the recorder hears every topic's publisher and has received a message on
    each topic in ``flowing`` (those that flow while paused). Matching seen from the
    recorder's side is not enough: the publisher may not have matched the recorder yet, and a
    reliable volatile publisher drops what it sends before."""
    _wait(lambda: all(sub.get_publisher_count() > 0 for sub in recorder.recorded.values()),
          procs, timeout_s, 'the recorder to match the simulator and the policy node', recorder)
    _wait(lambda: all(recorder.received.get(topic, 1) > 0 for topic in flowing),
          procs, timeout_s, 'the first messages of the paused loop to reach the recorder',
          recorder)


def _pause_client(node):
    from std_srvs.srv import SetBool

    return node.create_client(SetBool, f'/{SIM_NODE}/set_pause')


def _unpause(client, procs, timeout_s: float, recorder=None) -> None:
    """Start the simulator that was started paused."""
    from std_srvs.srv import SetBool

    _wait(client.service_is_ready, procs, timeout_s, "the simulator's set_pause service",
          recorder)
    future = client.call_async(SetBool.Request(data=False))
    _wait(future.done, procs, timeout_s, 'the simulator to start', recorder)


def _raise_recorder_error(recorder) -> None:
    """A recorder that could not write stops the loop at once, with the real cause."""
    if recorder is not None and recorder.error is not None:
        raise RuntimeError(f'recording failed: {recorder.error}') from recorder.error


def _wait(predicate, procs, timeout_s: float, what: str, recorder=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        _raise_recorder_error(recorder)
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f'a node exited ({proc.returncode}) while waiting for '
                                   f'{what}')
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out waiting for {what}')
        time.sleep(0.05)


def _num(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(range(len(result['returns'])), result['returns'], color='tab:blue')
    ax.set_xticks(range(len(result['returns'])))
    ax.set(xlabel='episode', ylabel='return',
           title=f"{Path(result['bundle']).name} on {result['env']} ({result['mode']}): "
                 f"score {result.get('score_mean', float('nan')):.1f}")
    text = (f"inference p50 {result['inference_p50_ms'] or float('nan'):.3f} ms, "
            f"p99 {result['inference_p99_ms'] or float('nan'):.3f} ms, "
            f"missed deadlines {result['missed_deadlines']}")
    ax.text(0.01, 0.97, text, transform=ax.transAxes, va='top', fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)

