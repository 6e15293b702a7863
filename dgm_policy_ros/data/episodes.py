# SPDX-License-Identifier: Apache-2.0
"""One episode of experience, as Minari stores it, with validation that names what is wrong."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from dgm_policy_ros.errors import DgmError

REQUIRED_FIELDS = ('observations', 'actions', 'rewards', 'terminations', 'truncations')
# An observation with cameras, as Minari stores it: a Dict of the state vector and the images.
STATE_KEY, IMAGES_KEY = 'state', 'images'
IMAGE_CHANNELS = (1, 3)


class DatasetError(DgmError, ValueError):
    """A dataset is malformed; the message names the dataset, episode and field."""


@dataclass(frozen=True)
class Episode:
    """T steps: ``observations`` has T+1 rows (the last is the final next-observation).

    ``terminations[t]`` marks a true terminal state (no bootstrapping), ``truncations[t]`` a
    time limit or collection cut (bootstrap from the next observation). They are kept apart
    because conflating them biases every value-based learner.
    """

    id: int
    observations: np.ndarray  # (T+1, obs_dim) float32
    actions: np.ndarray  # (T, act_dim) float32
    rewards: np.ndarray  # (T,) float32
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    # Camera name -> (T+1, H, W, C) uint8 frames, one per observation row; None: no cameras.
    images: Optional[Mapping[str, np.ndarray]] = None

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))

    @classmethod
    def from_arrays(cls, episode_id: int, data: dict, source: str = 'dataset') -> 'Episode':
        """Build and validate an episode from a mapping of arrays (e.g. Minari EpisodeData)."""
        missing = [f for f in REQUIRED_FIELDS if data.get(f) is None]
        if missing:
            raise DatasetError(f'{source}: episode {episode_id} is missing field(s) {missing}')
        obs, images = data['observations'], None
        if isinstance(obs, dict):
            if set(obs) != {STATE_KEY, IMAGES_KEY} or not isinstance(obs[IMAGES_KEY], dict):
                raise DatasetError(
                    f'{source}: episode {episode_id} field observations is a dict space with '
                    f'keys {sorted(obs)}; the known one is {{{STATE_KEY!r}: vector, '
                    f'{IMAGES_KEY!r}: {{camera: uint8 (H, W, C) frames}}}}: flatten others to '
                    'a Box')
            obs, images = obs[STATE_KEY], {
                str(camera): _image_frames(frames, f'{source}: episode {episode_id}', camera)
                for camera, frames in obs[IMAGES_KEY].items()}
        episode = cls(
            id=int(episode_id),
            observations=_as_2d(obs, np.float32),
            actions=_as_2d(data['actions'], np.float32),
            rewards=np.asarray(data['rewards'], dtype=np.float32).reshape(-1),
            terminations=np.asarray(data['terminations'], dtype=bool).reshape(-1),
            truncations=np.asarray(data['truncations'], dtype=bool).reshape(-1),
            images=images,
        )
        validate_episode(episode, source)
        return episode

    def without_images(self) -> 'Episode':
        return dataclasses.replace(self, images=None)


def _image_frames(frames, where: str, camera: str) -> np.ndarray:
    """A camera's frames as uint8 (N, H, W, C), or a DatasetError naming the field."""
    field = f'{IMAGES_KEY}/{camera}'
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise DatasetError(f'{where} field {field} holds {arr.dtype}, not uint8 images')
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in IMAGE_CHANNELS or min(arr.shape[1:3]) < 1:
        raise DatasetError(f'{where} field {field} has shape {arr.shape}, not (frames, '
                           f'height, width, {" or ".join(map(str, IMAGE_CHANNELS))})')
    return arr


def _as_2d(value, dtype) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    return arr.reshape(arr.shape[0], -1) if arr.ndim != 2 else arr


def validate_episode(episode: Episode, source: str = 'dataset') -> None:
    """Raise :class:`DatasetError` naming the episode and field of the first problem found."""
    where = f'{source}: episode {episode.id}'
    steps = len(episode)
    if steps == 0:
        raise DatasetError(f'{where} has no steps')
    expected = {
        'observations': steps + 1,
        'actions': steps,
        'terminations': steps,
        'truncations': steps,
    }
    for field, rows in expected.items():
        got = getattr(episode, field).shape[0]
        if got != rows:
            raise DatasetError(
                f'{where} field {field} has {got} rows, expected {rows} '
                f'(rewards has {steps} steps)')
    for field in ('observations', 'actions', 'rewards'):
        values = getattr(episode, field)
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            raise DatasetError(f'{where} field {field} has a non-finite value at step {row}')
    for camera, frames in (episode.images or {}).items():
        frames = _image_frames(frames, where, camera)
        if frames.shape[0] != steps + 1:
            raise DatasetError(f'{where} field {IMAGES_KEY}/{camera} has {frames.shape[0]} '
                               f'frames, expected {steps + 1} (one per observation)')
    if episode.terminations[:-1].any() or episode.truncations[:-1].any():
        field = 'terminations' if episode.terminations[:-1].any() else 'truncations'
        row = int(np.argmax(getattr(episode, field)[:-1]))
        raise DatasetError(f'{where} field {field} ends the episode early, at step {row}')
