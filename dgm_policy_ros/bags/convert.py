# SPDX-License-Identifier: Apache-2.0
"""``dgm bag2minari``: recorded topics -> Minari episodes, with the policy node's own
observation spec, so a dataset holds exactly what a deployed policy would have seen.

Alignment, per control step (one per message on the pacing topic: the spec's first source, or
``pace_topic``: a robot's joint states at 1 kHz with a policy run at the camera's 30 Hz paces
by the camera, a teleoperated recording by its commands):

- observation: each source's latest message at or before the step (a source not heard from
  yet drops the step); values extracted by the same code as the policy node's; camera sources
  give the step's frame, decoded and sized as the node does (a dataset with images);
- action: the first command after the observation and before the next one (the command that
  answered it); with none in that window, the command in force (the last one before), or the
  step is dropped if there was none;
- reward: the sum of rewards received until the next step;
- episodes end at an episode-end message (``{"terminated": true}`` in it marks a true
  terminal, otherwise a truncation), at a change of the pacing message's episode label
  (``layout.dim[0].label``, as ``mujoco_sim_node`` sends), at a time gap longer than
  ``gap_s``, and at the end of each bag when ``episode_per_bag`` is set.

Lockstep recordings (``mujoco_sim_node`` and ``policy_node`` in lockstep: observations carry
an episode label and a step index in ``layout.data_offset``, commands echo that index) align
by step index instead of time (``match: auto`` detects them): exact whatever order a busy
recorder stamped the topics in. The simulator publishes one reward per step, in order, so the
step index also picks the reward, and the episode-end message naming an episode says how it
ended.

Damage costs only its own step: an undecodable message keeps its time and place, so a
missing, undecodable, malformed or non-finite observation, command or reward drops that step
(counted by reason) and splits the episode there; nothing around it shifts. What is written
is finite in float32, so the dataset loader always accepts it.

The observation after an episode's last step was never published (the simulator or robot
resets first), so an episode's final next-observation repeats its last observation; value
learners do not bootstrap from it for terminals, and for truncations it is the best estimate.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dgm_policy_ros.bags.reader import Later, ReadReport, Stamped, find_bags, read_bags
from dgm_policy_ros.bags.topics import RecordingSpec
from dgm_policy_ros.config import Config, ConfigError
from dgm_policy_ros.data.episodes import DatasetError, Episode
from dgm_policy_ros.runtime.runner import ObservationError
from dgm_policy_ros.utils.hashing import sha256_bytes


@dataclasses.dataclass
class AlignConfig(Config):
    time_source: str = 'receive'  # receive (bag time) | header (header.stamp where present)
    gap_s: float = 1.0  # a longer silence on the pacing topic ends the episode; 0: never
    # The topic whose messages are the control steps (a camera, the command topic); None: the
    # observation spec's first source. Every observation source is then taken as of each step.
    pace_topic: Optional[str] = None
    episode_per_bag: bool = False  # each bag ends its episode (one demonstration per bag)
    min_episode_steps: int = 1  # shorter episodes are dropped (counted in the report)
    match: str = 'auto'  # time | step (lockstep step indices) | auto
    # Rewards from a function instead of the reward topic: 'package.module:function', called
    # per episode as f(observations (T, O), actions (T, A), next_observations (T, O)) -> (T,).
    reward_function: Optional[str] = None

    def validate(self) -> None:
        if self.time_source not in ('receive', 'header'):
            raise ConfigError("AlignConfig.time_source must be 'receive' or 'header'")
        if self.match not in ('auto', 'time', 'step'):
            raise ConfigError("AlignConfig.match must be 'auto', 'time' or 'step'")
        if self.reward_function is not None and ':' not in self.reward_function:
            raise ConfigError("AlignConfig.reward_function must read 'module:function'")
        if self.gap_s < 0 or self.min_episode_steps < 1:
            raise ConfigError('AlignConfig: gap_s >= 0 and min_episode_steps >= 1')

    def rewards(self):
        """The reward function named in the config, imported (None: the recorded rewards)."""
        if self.reward_function is None:
            return None
        import importlib

        module, name = self.reward_function.split(':')
        return getattr(importlib.import_module(module), name)


@dataclasses.dataclass
class ConversionReport:
    read: ReadReport
    steps: int = 0
    episodes: int = 0
    dropped_steps: dict[str, int] = dataclasses.field(default_factory=dict)
    held_actions: int = 0
    missing_rewards: int = 0
    # Episodes with fewer steps than their episode-end message says they had; the first one
    # of a recording that began after its episode did is 'started_mid_episode'.
    short_episodes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    started_mid_episode: bool = False
    splits: int = 0  # episodes split where a step was lost (no transition spans a gap)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped_steps[reason] = self.dropped_steps.get(reason, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {'steps': self.steps, 'episodes': self.episodes,
                'dropped_steps': self.dropped_steps, 'held_actions': self.held_actions,
                'missing_rewards': self.missing_rewards,
                'started_mid_episode': self.started_mid_episode, 'splits': self.splits,
                'short_episodes': self.short_episodes,
                **self.read.to_dict()}


def _times(messages: list[Stamped], cfg: AlignConfig) -> np.ndarray:
    if cfg.time_source == 'header':
        return np.array([m.header_ns() if m.header_ns() is not None else m.stamp_ns
                         for m in messages], dtype=np.int64)
    return np.array([m.stamp_ns for m in messages], dtype=np.int64)


def _label(msg: Any) -> str | None:
    layout = getattr(msg, 'layout', None)
    if layout is not None and len(layout.dim):
        return layout.dim[0].label
    return None


F32_MAX = float(np.finfo(np.float32).max)


def _storable(values: np.ndarray) -> bool:
    """Finite also as float32 (the dataset's dtype): 1e308 is not."""
    return bool(np.isfinite(values).all() and np.all(np.abs(values) <= F32_MAX))


def align(streams: dict[str, list[Stamped]], spec: RecordingSpec, cfg: AlignConfig,
          report: ConversionReport) -> list[Episode]:
    """One bag's (or several bags' merged) messages -> episodes.

    Every topic is paired to its control step by stamp or step index, never by position in
    a list of good messages: undecodable messages keep their place (``msg`` None). A step
    that cannot be made (a message missing, undecodable, malformed or not finite) is dropped
    and counted, and the episode is split there, so no step takes another step's data and
    no transition spans the gap: the part before ends truncated, its last next-observation
    the dropped step's own when that was good.
    """
    sources = spec.sources()
    by_first = cfg.pace_topic in (None, sources[0].topic)  # paced by the observation itself
    pacing = streams[sources[0].topic if by_first else cfg.pace_topic]
    if not pacing:
        return []
    if by_first:
        kept = [pacing[0]] + [m for prev, m in zip(pacing, pacing[1:])
                              if not _is_resend(m.msg, prev.msg)]
        report.drop('repeated observation', len(pacing) - len(kept))
        pacing = kept
    t_steps = _times(pacing, cfg)
    looked_up = sources[1:] if by_first else sources  # each taken as of the step's time
    others = {s.topic: (_times(streams[s.topic], cfg), streams[s.topic]) for s in looked_up}
    commands = streams[spec.action_topic]
    t_cmd = np.array([m.stamp_ns for m in commands], dtype=np.int64)
    rewards = streams.get(spec.reward_topic, []) if spec.reward_topic else []
    t_rew = np.array([m.stamp_ns for m in rewards], dtype=np.int64)
    # An undecodable reward keeps its place as NaN: it costs its own step only.
    r_val = np.array([float(m.msg.data) if m.msg is not None else np.nan for m in rewards])
    ends = streams.get(spec.episode_topic, []) if spec.episode_topic else []
    t_end = np.array([m.stamp_ns for m in ends], dtype=np.int64)
    gap_ns = int(cfg.gap_s * 1e9)
    by_step = by_first and (cfg.match == 'step' or
                            (cfg.match == 'auto' and _is_lockstep(pacing, commands)))
    if by_step:
        answer = {}
        for command in commands:  # the first answer to each step (the node may re-send)
            if command.msg is not None:
                answer.setdefault(int(command.msg.layout.data_offset), command)
        # One reward per step from step 0: the index picks it, if the bag holds step 0.
        head = next((m.msg for m in pacing if m.msg is not None), None)
        reward_by_index = head is not None and int(head.layout.data_offset) == 0
        ended, lengths = {}, {}
        for end in ends:
            info = _episode_info(end.msg.data) if end.msg is not None else {}
            if 'episode' in info:
                ended[f"episode {info['episode']}"] = bool(info.get('terminated', False))
                if isinstance(info.get('length'), int):
                    lengths[f"episode {info['episode']}"] = info['length']

    frames: list[dict[str, np.ndarray]] = []  # the frames of each step in ``current``
    episodes: list[Episode] = []
    current: list[tuple[np.ndarray, np.ndarray, float]] = []
    opening = {'open': True, 'step': None}  # the recording's first episode; its first step
    previous_step = [None]  # lockstep: the step index of the last step kept

    def close(terminated: bool, length: Any = None, label: str | None = None,
              last_step: int | None = None, next_obs: np.ndarray | None = None) -> None:
        was_first, opening['open'] = opening['open'], False
        if isinstance(length, int) and len(current) < length:
            short = {'episode': label or len(episodes), 'recorded_steps': len(current),
                     'length': length}
            if last_step is not None and opening['step'] is not None:  # lockstep: exact
                short['missing_at_start'] = max(0, opening['step'] - (last_step - length + 1))
                mid = short['missing_at_start'] > 0
            else:
                mid = True
            report.short_episodes.append(short)
            report.started_mid_episode |= was_first and mid
        if len(current) >= cfg.min_episode_steps:
            last = current[-1][0] if next_obs is None else next_obs
            obs = np.stack([c[0] for c in current] + [last]).astype(np.float32)
            act = np.stack([c[1] for c in current]).astype(np.float32)
            rew = np.array([c[2] for c in current], np.float32)
            term = np.zeros(len(current), bool)
            trunc = np.zeros(len(current), bool)
            (term if terminated else trunc)[-1] = True
            # The frames after the last step were never recorded with it: the last repeats.
            images = {c: np.stack([f[c] for f in frames] + [frames[-1][c]])
                      for c in frames[0]} if frames and frames[0] else None
            episodes.append(Episode(len(episodes), obs, act, rew, term, trunc, images))
        elif current:
            report.drop('episode too short')
        current.clear()
        frames.clear()

    def drop_step(reason: str, observation: np.ndarray | None = None) -> None:
        """This step is lost: count it, and end the episode part before it there."""
        report.drop(reason)
        if current:
            report.splits += 1
            close(terminated=False, next_obs=observation)

    for k, (t, stamped) in enumerate(zip(t_steps, pacing)):
        t_next = t_steps[k + 1] if k + 1 < len(t_steps) else t + max(gap_ns, 1)
        if k > 0 and (
                (gap_ns and not by_step and t - t_steps[k - 1] > gap_ns) or
                _label(stamped.msg) != _label(pacing[k - 1].msg)):
            if current:
                close(terminated=False)
            opening['open'], opening['step'] = False, None
        if stamped.msg is None:
            drop_step('undecodable observation' if by_first else 'undecodable pacing message')
            continue
        if by_step and opening['step'] is None and opening['open']:
            opening['step'] = int(stamped.msg.layout.data_offset)
            # Step indices count from the simulator's start: the first episode from step 0.
            report.started_mid_episode |= _label(stamped.msg) == 'episode 0' and \
                opening['step'] > 0
        step_frames: dict[str, np.ndarray] = {}
        try:
            parts = [sources[0].extract(stamped.msg)] if by_first else []
            for source in looked_up:
                times, msgs = others[source.topic]
                i = int(np.searchsorted(times, t, side='right')) - 1
                if i < 0:
                    raise LookupError(f'no {source.topic} yet')
                if source.align == 'asof' and t - times[i] > source.tolerance_s * 1e9:
                    raise _OutOfSync(source.topic)
                if msgs[i].msg is None:
                    raise ValueError(f'{source.topic}: undecodable')
                if source.is_camera:
                    step_frames[source.camera] = msgs[i].msg.pixels()
                else:
                    parts.append(source.extract(msgs[i].msg))
        except _OutOfSync:
            drop_step('observation out of sync')
            continue
        except LookupError:
            drop_step('observation source not heard from yet')
            continue
        except ObservationError as exc:
            drop_step(f'malformed image ({exc.reason})')
            continue
        except ValueError:
            drop_step('malformed observation')
            continue
        obs = np.concatenate(parts)
        if not _storable(obs):
            drop_step('non-finite observation')
            continue
        if by_step:
            step = int(stamped.msg.layout.data_offset)
            if current and previous_step[0] is not None and step != previous_step[0] + 1:
                report.splits += 1  # steps missing from the recording: no transition across
                close(terminated=False)
            if step not in answer:
                drop_step('no command for this step', obs)
                continue
            action = np.asarray(answer[step].msg.data, np.float64)
            if reward_by_index:
                reward = float(r_val[step]) if step < len(r_val) else 0.0
                report.missing_rewards += int(spec.reward_topic is not None and
                                              step >= len(r_val))
            else:  # joined mid-run: which reward is which step is unknown; go by time
                reward = float(r_val[(t_rew > t) & (t_rew <= t_next)].sum())
            if current and action.shape != current[0][1].shape:
                drop_step('command of another size', obs)
                continue
            if not _storable(action) or not np.isfinite(reward):
                drop_step('non-finite command' if not _storable(action) else
                          'undecodable or non-finite reward', obs)
                continue
            current.append((obs, action, reward))
            frames.append(step_frames)
            previous_step[0] = step
            report.steps += 1
            label = _label(stamped.msg)
            last = k + 1 == len(pacing) or _label(pacing[k + 1].msg) != label
            if last and label in ended:
                close(terminated=ended[label], length=lengths.get(label), label=label,
                      last_step=step)
            continue
        first = int(np.searchsorted(t_cmd, t, side='left'))
        if first < len(t_cmd) and t_cmd[first] < t_next:
            command = commands[first]
        elif first > 0:
            command = commands[first - 1]
            report.held_actions += 1
        else:
            drop_step('no command yet', obs)
            continue
        if command.msg is None:
            drop_step('undecodable command', obs)
            continue
        action = np.asarray(command.msg.data, np.float64)
        if current and action.shape != current[0][1].shape:
            drop_step('command of another size', obs)
            continue
        window = (t_rew > t) & (t_rew <= t_next)
        reward = float(r_val[window].sum())
        if not _storable(action) or not np.isfinite(reward):
            drop_step('non-finite command' if not _storable(action) else
                      'undecodable or non-finite reward', obs)
            continue
        current.append((obs, action, reward))
        frames.append(step_frames)
        report.steps += 1
        ended_here = np.flatnonzero((t_end > t) & (t_end <= t_next))
        if len(ended_here):  # an undecodable end still ends the episode (as a truncation)
            end = ends[int(ended_here[0])]
            info = _episode_info(end.msg.data) if end.msg is not None else {}
            close(terminated=bool(info.get('terminated', False)), length=info.get('length'))
    if current:
        close(terminated=False)
    return episodes


@dataclasses.dataclass(slots=True)
class DecodedFrame:
    """A camera message as read: its header (stamps) and its frame at the dataset's size, or
    why it has none. Frames are decoded as the bag is read, so the recording's full-size
    frames are never all in memory."""

    header: Any
    frame: Optional[np.ndarray]
    error: Optional[ObservationError] = None

    def pixels(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        return self.frame


def frame_decoder(source):
    """``read_bags``' reduction for a camera source: each message to a :class:`DecodedFrame`
    at the declared frame size, else the size of the camera's first frame read (decided in
    bag order; the decoding itself runs on ``read_bags``' worker threads)."""
    shape: list = []

    def failed(msg, exc: Exception) -> DecodedFrame:
        if not isinstance(exc, ObservationError):  # any other malformation costs its step only
            exc = ObservationError('undecodable', f'{source.topic}: {type(exc).__name__}: {exc}')
        return DecodedFrame(getattr(msg, 'header', None), None, exc)

    def decode(msg) -> DecodedFrame | Later:
        try:
            if not shape:
                shape.append(source.frame_shape(msg))
        except Exception as exc:  # noqa: BLE001 - see failed()
            return failed(msg, exc)
        size = shape[0]

        def work() -> DecodedFrame:
            try:
                return DecodedFrame(msg.header, source.frame(msg, size))
            except Exception as exc:  # noqa: BLE001 - see failed()
                return failed(msg, exc)
        return Later(work)
    return decode


class _OutOfSync(Exception):
    """An ``asof`` source's latest message is older than its tolerance at the step."""


def _is_lockstep(pacing: list[Stamped], commands: list[Stamped]) -> bool:
    """Observations with episode labels and step indices, commands echoing the indices."""
    head = next((m.msg for m in pacing if m.msg is not None), None)
    return (head is not None and _label(head) is not None and
            any(int(c.msg.layout.data_offset) for c in commands[:100] if c.msg is not None))


def _is_resend(msg: Any, previous: Any) -> bool:
    """The lockstep simulator re-sends a step's observation until a command arrives: same
    episode label, same step index (``layout.data_offset``), same values."""
    label = _label(msg)
    return (label is not None and label == _label(previous) and
            msg.layout.data_offset == previous.layout.data_offset and
            np.array_equal(msg.data, previous.data))


def _episode_info(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
        return info if isinstance(info, dict) else {}
    except (json.JSONDecodeError, TypeError):
        return {}


def read_recording(paths: list[str | Path], spec: RecordingSpec, progress: bool = False,
                   pace_topic: str | None = None
                   ) -> tuple[dict[str, list[Stamped]], ReadReport]:
    """The spec's topics as the conversion reads them: camera frames decoded to the dataset's
    size as they are read, the vector sources besides the pacing one decoded when a step uses
    them (a step uses one of their messages), undecodable messages kept in their places."""
    sources = spec.sources()
    pace = pace_topic or sources[0].topic
    return read_bags(paths, spec.topics(), progress, keep_places=True,
                     reduce={s.topic: frame_decoder(s) for s in sources if s.is_camera},
                     lazy={s.topic for s in sources if not s.is_camera} - {pace})


def bag_to_episodes(paths: list[str | Path], spec: RecordingSpec,
                    cfg: AlignConfig | None = None, progress: bool = False
                    ) -> tuple[list[Episode], ConversionReport]:
    cfg = cfg or AlignConfig()
    reward_fn = cfg.rewards()
    if cfg.pace_topic is not None and cfg.pace_topic not in spec.topics():
        raise ConfigError(f'AlignConfig.pace_topic {cfg.pace_topic} is not a topic of the '
                          f'recording spec: {sorted(spec.topics())}')
    groups = [[bag] for bag in find_bags(paths)] if cfg.episode_per_bag else [list(paths)]
    episodes: list[Episode] = []
    report = None
    for group in groups:
        streams, read = read_recording(group, spec, progress, cfg.pace_topic)
        if report is None:
            report = ConversionReport(read)
        else:
            _merge(report.read, read)
        for episode in align(streams, spec, cfg, report):
            if reward_fn is not None:
                obs = episode.observations
                rewards = np.asarray(reward_fn(obs[:-1], episode.actions, obs[1:]), np.float32)
                if rewards.shape != episode.rewards.shape:
                    raise ConfigError(f'{cfg.reward_function} returned shape {rewards.shape}, '
                                     f'expected {episode.rewards.shape}')
                episode = dataclasses.replace(episode, rewards=rewards)
            episodes.append(dataclasses.replace(episode, id=len(episodes)))
    report.episodes = len(episodes)
    for topic, role in ((cfg.pace_topic or spec.sources()[0].topic, 'the pacing topic'),
                        (spec.action_topic, 'the command topic')):
        if not report.read.read[topic]:
            held = dict(sorted(report.read.available.items()))
            dropped = dict(report.read.dropped.get(topic, {}))
            errors = '; '.join(report.read.errors[:3])
            why = (f'is not in the bag(s), which hold {held}' if held and topic not in held
                   else f'is not in the bag(s): no topic could be read ({errors})'
                   if topic not in held else
                   f'has no readable messages (dropped: {dropped})' if dropped else
                   'has no messages in the bag(s)')
            raise DatasetError(f'{topic} ({role} of the recording spec) {why}')
    return episodes, report


def _merge(into: ReadReport, other: ReadReport) -> None:
    into.bags += other.bags
    into.read.update(other.read)
    for topic, counter in other.dropped.items():
        into.dropped[topic].update(counter)
    into.recovered += other.recovered
    into.errors += other.errors
    for topic, kind in other.available.items():
        into.available.setdefault(topic, kind)


def bag2minari(paths: list[str | Path], spec: RecordingSpec, dataset_id: str,
               cfg: AlignConfig | None = None, env_id: str | None = None,
               action_low=None, action_high=None, overwrite: bool = False,
               progress: bool = False) -> tuple[Path, ConversionReport]:
    """Convert and write the Minari dataset (atomically: all of it or nothing)."""
    import gymnasium as gym

    from dgm_policy_ros.data.minari_io import write_dataset

    cfg = cfg or AlignConfig()
    episodes, report = bag_to_episodes(paths, spec, cfg, progress)
    if not episodes:
        raise DatasetError(f'no complete control steps in {[str(p) for p in paths]}: '
                         f'{report.to_dict()}')
    obs_dim, act_dim = episodes[0].observations.shape[1], episodes[0].actions.shape[1]
    actions = np.concatenate([e.actions for e in episodes])
    low = np.asarray(action_low if action_low is not None else actions.min(0), np.float32)
    high = np.asarray(action_high if action_high is not None else actions.max(0), np.float32)
    provenance = {
        'source': 'rosbag2', 'bags': report.read.bags, 'recording_spec': spec.to_dict(),
        'spec_sha256': sha256_bytes(spec.to_yaml().encode()), 'align': cfg.to_dict(),
        'report': report.to_dict()}
    kwargs: dict[str, Any] = {'env_id': env_id} if env_id else {
        'observation_space': gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
        'action_space': gym.spaces.Box(low, high, (act_dim,), np.float32)}
    if episodes[0].images:  # the state and the frames: write_dataset makes that Dict space
        kwargs.pop('observation_space', None)
    path = write_dataset(dataset_id, episodes, provenance=provenance,
                         description='converted from rosbag2 recordings by dgm bag2minari',
                         overwrite=overwrite, **kwargs)
    return path, report
