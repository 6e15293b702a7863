# SPDX-License-Identifier: Apache-2.0
"""Read and write Minari datasets.

A dataset is named by a Minari id (``dgm/hopper/medium-v0``, looked up under
``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``) or by a filesystem path to a dataset
folder (the one holding ``data/``). Writing is atomic: the dataset is built in a staging
folder and moved into place only when complete, so a crash never leaves half a dataset.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import re
import shutil
import tempfile
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from dgm_policy_ros.data.episodes import IMAGES_KEY, STATE_KEY, DatasetError, Episode

PROVENANCE_KEY = 'dgm_provenance'


def datasets_root() -> Path:
    """The Minari datasets root this process reads and writes."""
    root = os.environ.get('MINARI_DATASETS_PATH')
    return Path(root) if root else Path.home() / '.minari' / 'datasets'


def resolve_dataset_path(dataset: str | os.PathLike) -> Path:
    """Map a dataset id or a path to the dataset folder (the parent of ``data/``)."""
    path = Path(dataset)
    for candidate in (path, path.parent if path.name == 'data' else None,
                      datasets_root() / str(dataset)):
        if candidate is not None and (candidate / 'data' / 'metadata.json').is_file():
            return candidate
    raise DatasetError(
        f'dataset {str(dataset)!r} not found: not a dataset folder and not an id under '
        f'{datasets_root()} (set MINARI_DATASETS_PATH or pass --data-dir)')


@dataclass
class LoadedDataset:
    """Episodes plus what a trainer needs to know about where they came from."""

    dataset_id: str
    path: Path
    episodes: list[Episode]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def obs_dim(self) -> int:
        return int(self.episodes[0].observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.episodes[0].actions.shape[1])

    @property
    def image_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Camera name -> (H, W, C) of its frames; empty for a dataset without cameras."""
        images = self.episodes[0].images or {}
        return {camera: tuple(int(d) for d in frames.shape[1:])
                for camera, frames in images.items()}

    @property
    def env_id(self) -> str | None:
        spec = self.metadata.get('env_spec')
        if isinstance(spec, str):
            with contextlib.suppress(ValueError):
                spec = json.loads(spec)
        if isinstance(spec, dict):
            return spec.get('id')
        return self.provenance.get('env_id')

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.metadata.get(PROVENANCE_KEY) or {})

    @property
    def spaces(self):
        """(observation space, action space) as Minari recorded them."""
        return self.metadata['observation_space'], self.metadata['action_space']

    @property
    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the action space; the data's range where the space is unbounded."""
        space = self.metadata.get('action_space')
        low = np.asarray(getattr(space, 'low', np.full(self.act_dim, -np.inf)), np.float32)
        high = np.asarray(getattr(space, 'high', np.full(self.act_dim, np.inf)), np.float32)
        data = np.concatenate([ep.actions for ep in self.episodes])
        low = np.where(np.isfinite(low), low, data.min(0)).astype(np.float32)
        high = np.where(np.isfinite(high), high, data.max(0)).astype(np.float32)
        return low, high

    @property
    def total_steps(self) -> int:
        return sum(len(ep) for ep in self.episodes)

    def returns(self) -> np.ndarray:
        return np.array([ep.total_return for ep in self.episodes], dtype=np.float64)


def load_dataset(dataset: str | os.PathLike) -> LoadedDataset:
    """Load every episode of a Minari dataset, validating each one."""
    import minari

    path = resolve_dataset_path(dataset)
    try:
        mds = minari.MinariDataset(path / 'data')
    except Exception as exc:  # noqa: BLE001 - minari raises many types for bad files
        raise DatasetError(f'dataset {path}: cannot be opened by Minari: {exc}') from exc
    metadata = dict(mds.storage.metadata)
    dataset_id = str(metadata.get('dataset_id', dataset))
    episodes = []
    for index in range(mds.total_episodes):
        episodes.append(_read_episode(mds, index, dataset_id))
    if not episodes:
        raise DatasetError(f'dataset {dataset_id}: has no episodes')
    dims = {(ep.observations.shape[1], ep.actions.shape[1]) for ep in episodes}
    if len(dims) > 1:
        raise DatasetError(f'dataset {dataset_id}: episodes disagree on (obs, action) sizes '
                           f'{sorted(dims)}')
    _check_cameras(episodes, dataset_id)
    _check_totals(metadata, episodes, dataset_id)
    return LoadedDataset(dataset_id=dataset_id, path=path, episodes=episodes,
                         metadata=metadata)


def _check_totals(metadata: dict[str, Any], episodes: list[Episode], dataset_id: str) -> None:
    """The metadata's counts must describe the data (a file edited or mixed up is refused)."""
    counted = {'total_episodes': len(episodes), 'total_steps': sum(len(e) for e in episodes)}
    for key, actual in counted.items():
        if key not in metadata:
            continue
        try:
            recorded = int(np.asarray(metadata[key]).item())
        except (TypeError, ValueError) as exc:
            raise DatasetError(f'dataset {dataset_id}: metadata {key} is not a number: '
                               f'{metadata[key]!r}') from exc
        if recorded != actual:
            raise DatasetError(f'dataset {dataset_id}: metadata says {key} = {recorded}, the '
                               f'data holds {actual}')


def _check_cameras(episodes: list[Episode], dataset_id: str) -> None:
    """Every episode must see through the same cameras at the same image sizes."""
    def cameras(ep: Episode) -> dict[str, tuple]:
        return {name: frames.shape[1:] for name, frames in (ep.images or {}).items()}

    first = cameras(episodes[0])
    for ep in episodes[1:]:
        if cameras(ep) != first:
            raise DatasetError(f'dataset {dataset_id}: episode {ep.id} has cameras (name: '
                               f'H, W, C) {cameras(ep)}, episode {episodes[0].id} has {first}')


def _read_episode(mds, index: int, dataset_id: str) -> Episode:
    try:
        raw = next(iter(mds.storage.get_episodes([int(mds.episode_indices[index])])))
    except KeyError as exc:
        # h5py words it "... object 'rewards' doesn't exist"; name just the field.
        found = re.search(r"'(\w+)' doesn't exist", str(exc))
        field = found.group(1) if found else (exc.args[0] if exc.args else str(exc))
        raise DatasetError(f'dataset {dataset_id}: episode {index} is missing field '
                           f'{field!r}') from exc
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(f'dataset {dataset_id}: episode {index} cannot be read: '
                           f'{type(exc).__name__}: {exc}') from exc
    return Episode.from_arrays(raw.get('id', index), raw, source=f'dataset {dataset_id}')


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    """Point Minari at ``root`` for the duration (Minari reads the path from the env)."""
    old = os.environ.get('MINARI_DATASETS_PATH')
    os.environ['MINARI_DATASETS_PATH'] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop('MINARI_DATASETS_PATH', None)
        else:
            os.environ['MINARI_DATASETS_PATH'] = old


def write_dataset(dataset_id: str, episodes: Sequence[Episode], *, env_id: str | None = None,
                  observation_space=None, action_space=None,
                  provenance: dict[str, Any] | None = None, algorithm_name: str = '',
                  description: str = '', ref_scores: tuple[float, float] | None = None,
                  overwrite: bool = False) -> Path:
    """Write ``episodes`` as the Minari dataset ``dataset_id`` under :func:`datasets_root`.

    Either ``env_id`` (a registered Gymnasium id) or both spaces must be given. Extra
    provenance (behaviour policy, noise, seed, return statistics, source bags...) goes into
    the dataset's metadata under ``dgm_provenance``.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    if not episodes:
        raise DatasetError(f'refusing to write dataset {dataset_id} with no episodes')
    root = datasets_root()
    final = root / dataset_id
    if final.exists() and not overwrite:
        raise FileExistsError(f'dataset {dataset_id} already exists at {final} '
                              '(pass overwrite=True / --overwrite to replace it)')
    root.mkdir(parents=True, exist_ok=True)
    if episodes[0].images:
        _check_cameras(list(episodes), dataset_id)
        observation_space = observation_space or image_observation_space(episodes[0])
    staging = Path(tempfile.mkdtemp(prefix='.staging-', dir=root))
    try:
        buffers = [EpisodeBuffer(
            id=i, observations=_minari_observations(ep), actions=ep.actions,
            rewards=ep.rewards.astype(np.float64), terminations=ep.terminations,
            truncations=ep.truncations, infos={}) for i, ep in enumerate(episodes)]
        kwargs: dict[str, Any] = {}
        if ref_scores is not None:
            kwargs.update(ref_min_score=float(ref_scores[0]), ref_max_score=float(ref_scores[1]))
        with _minari_root(staging):
            mds = minari.create_dataset_from_buffers(
                dataset_id=dataset_id, buffer=buffers, env=env_id, eval_env=env_id,
                observation_space=observation_space, action_space=action_space,
                algorithm_name=algorithm_name or 'unknown', author='dgm_policy_ros',
                author_email='dev@dgm-policy-ros.invalid',
                code_permalink='dgm_policy_ros', description=description or dataset_id,
                **kwargs)
            mds.storage.update_metadata({PROVENANCE_KEY: _jsonable(provenance or {})})
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix='.old-', dir=root))
            os.replace(final, old / 'old')
            shutil.rmtree(old, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / dataset_id, final)
        _copy_namespace_metadata(staging, root, dataset_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def image_observation_space(episode: Episode):
    """The Dict space of an episode with cameras: the state Box and a uint8 Box per camera
    (0..255, which Minari stores JPEG-compressed)."""
    from gymnasium import spaces

    return spaces.Dict({
        STATE_KEY: spaces.Box(-np.inf, np.inf, episode.observations.shape[1:], np.float32),
        IMAGES_KEY: spaces.Dict({
            camera: spaces.Box(0, 255, frames.shape[1:], np.uint8)
            for camera, frames in episode.images.items()})})


def _minari_observations(episode: Episode):
    if not episode.images:
        return episode.observations
    return {STATE_KEY: episode.observations, IMAGES_KEY: dict(episode.images)}


def _copy_namespace_metadata(staging: Path, root: Path, dataset_id: str) -> None:
    """Minari keeps a namespace_metadata.json per namespace level; keep ours in the real root."""
    parts = dataset_id.split('/')[:-1]
    for depth in range(1, len(parts) + 1):
        rel = Path(*parts[:depth]) / 'namespace_metadata.json'
        if (staging / rel).is_file() and not (root / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staging / rel, root / rel)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def concatenate(dataset_id: str, sources: Iterable[str | os.PathLike], *,
                overwrite: bool = False, description: str = '') -> Path:
    """Write a dataset made of every episode of ``sources`` in order (e.g. medium-expert)."""
    loaded = [load_dataset(s) for s in sources]
    env_ids = {d.env_id for d in loaded}
    if len(env_ids) != 1:
        raise DatasetError('cannot concatenate datasets of different envs '
                           f'{sorted(map(str, env_ids))}')
    episodes = [ep for d in loaded for ep in d.episodes]
    returns = np.array([ep.total_return for ep in episodes])
    provenance = {
        'kind': 'concatenation',
        'sources': [d.dataset_id for d in loaded],
        'env_id': loaded[0].env_id,
        'source_provenance': [d.provenance for d in loaded],
        **return_statistics(returns, episodes),
    }
    first = loaded[0]
    obs_space, act_space = first.spaces
    return write_dataset(dataset_id, episodes, env_id=first.env_id,
                         observation_space=obs_space, action_space=act_space,
                         provenance=provenance, algorithm_name='concatenation',
                         description=description or ' + '.join(d.dataset_id for d in loaded),
                         overwrite=overwrite)



def return_statistics(returns: np.ndarray, episodes: Sequence[Episode]) -> dict[str, Any]:
    returns = np.asarray(returns, dtype=np.float64)
    return {
        'episodes': int(len(episodes)),
        'transitions': int(sum(len(ep) for ep in episodes)),
        'return_mean': float(returns.mean()) if returns.size else float('nan'),
        'return_std': float(returns.std()) if returns.size else float('nan'),
        'return_min': float(returns.min()) if returns.size else float('nan'),
        'return_max': float(returns.max()) if returns.size else float('nan'),
    }
