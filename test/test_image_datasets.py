# SPDX-License-Identifier: Apache-2.0
"""Datasets with cameras: Minari Dict observations (state + JPEG-compressed uint8 frames),
malformed image fields named, samplers that gather frames with their steps."""
from conftest import make_episode
import h5py
import numpy as np
import pytest

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.episodes import DatasetError, Episode
from dgm_policy_ros.data.minari_io import load_dataset, write_dataset
from dgm_policy_ros.data.samplers import ChunkSampler, TransitionSampler


def with_frames(episode: Episode, size: int = 40, camera: str = 'front') -> Episode:
    """Frames whose brightness encodes the step (step * 10 + episode), flat so JPEG keeps it."""
    steps = np.arange(len(episode) + 1)
    level = (steps * 10 + episode.id) % 256
    frames = np.broadcast_to(level[:, None, None, None], (len(steps), size, size, 3))
    return Episode(episode.id, episode.observations, episode.actions, episode.rewards,
                   episode.terminations, episode.truncations,
                   images={camera: frames.astype(np.uint8).copy()})


def _action_space():
    from gymnasium import spaces

    return spaces.Box(-1, 1, (2,), np.float32)


def test_image_episodes_round_trip_through_minari_compressed(minari_root):
    eps = [with_frames(make_episode(i, steps=12)) for i in range(3)]
    path = write_dataset('test/images-v0', eps, action_space=_action_space())
    loaded = load_dataset('test/images-v0')
    assert loaded.image_shapes == {'front': (40, 40, 3)} and loaded.obs_dim == 3
    for got, want in zip(loaded.episodes, eps):
        np.testing.assert_array_equal(got.observations, want.observations)
        assert got.images['front'].dtype == np.uint8
        assert np.abs(got.images['front'].astype(int) - want.images['front']).max() <= 2
    with h5py.File(path / 'data' / 'main_data.hdf5') as f:
        stored = f['episode_0/observations/images/front']
        jpeg = bytes(stored[0][:2]) if stored.dtype.kind == 'O' else bytes(stored[0, :2])
        assert jpeg == b'\xff\xd8'  # each frame a JPEG (start-of-image marker)


def test_a_malformed_image_field_names_dataset_episode_and_field(minari_root):
    eps = [with_frames(make_episode(i, steps=6)) for i in range(2)]
    path = write_dataset('test/broken-images-v0', eps, action_space=_action_space())
    with h5py.File(path / 'data' / 'main_data.hdf5', 'a') as f:
        frames = f['episode_1/observations/images/front'][()]
        del f['episode_1/observations/images/front']
        stored = f.create_dataset('episode_1/observations/images/front', (len(frames) - 2,),
                                  dtype=h5py.vlen_dtype(np.uint8))
        for i, frame in enumerate(frames[:-2]):
            stored[i] = frame
    with pytest.raises(DatasetError, match=r'test/broken-images-v0: episode 1 field '
                                           r'images/front has 5 frames, expected 7'):
        load_dataset('test/broken-images-v0')

    base = make_episode(0, steps=4)
    arrays = {'actions': base.actions, 'rewards': base.rewards,
              'terminations': base.terminations, 'truncations': base.truncations}
    cases = [
        ({'state': base.observations, 'images': {'cam': np.zeros((5, 8, 8, 3), np.float32)}},
         'field images/cam holds float32, not uint8'),
        ({'state': base.observations, 'images': {'cam': np.zeros((5, 8, 8, 4), np.uint8)}},
         r'field images/cam has shape \(5, 8, 8, 4\)'),
        ({'state': base.observations, 'depth': base.observations}, "keys \\['depth', 'state'\\]"),
    ]
    for observations, message in cases:
        with pytest.raises(DatasetError, match=f'dataset x: episode 3 .*{message}'):
            Episode.from_arrays(3, {**arrays, 'observations': observations}, source='dataset x')

    other = with_frames(make_episode(1, steps=4), size=48)
    with pytest.raises(DatasetError, match='episode 1 has cameras'):
        write_dataset('test/mixed-v0', [with_frames(make_episode(0, steps=4)), other],
                      action_space=_action_space())


def test_samplers_gather_each_steps_frames_and_frame_history():
    eps = [with_frames(make_episode(i, steps=s)) for i, s in ((0, 6), (1, 4))]
    level = lambda batch: batch['images/front'][..., 0, 0, 0].astype(int)  # noqa: E731
    transitions = TransitionSampler(eps, batch_size=32, seed=0).sample()
    step = transitions['observations'][:, 0] % 100  # make_episode: obs = step + 100 * episode
    episode = transitions['observations'][:, 0] // 100
    np.testing.assert_array_equal(level(transitions), step * 10 + episode)
    assert transitions['images/front'].shape == (32, 40, 40, 3)

    chunks = ChunkSampler(eps, horizon=3, batch_size=16, n_obs_steps=2, seed=1).sample()
    assert chunks['images/front'].shape == (16, 2, 40, 40, 3)
    step = chunks['observations'][..., 0] % 100
    episode = chunks['observations'][..., 0] // 100
    np.testing.assert_array_equal(level(chunks), step * 10 + episode)


def test_collect_writes_camera_frames_and_the_proprio_choice(minari_root):
    from conftest import collect_or_skip

    from dgm_policy_ros.sim.collect import CollectConfig

    prov = collect_or_skip(env='metaworld/reach-v3', agent='expert', episodes=2, n_envs=2,
                           images=True, image_size=48, out='test/metaworld/reach-images-v0')
    assert prov['proprio_indices'] == [0, 1, 2, 3]
    assert prov['cameras'][0]['camera'] == 'corner2' and prov['cameras'][0]['width'] == 48
    loaded = load_dataset('test/metaworld/reach-images-v0')
    assert loaded.image_shapes == {'corner2': (48, 48, 3)} and loaded.obs_dim == 39
    episode = loaded.episodes[0]
    assert episode.images['corner2'].shape[0] == len(episode) + 1 < 501  # ends at success
    assert episode.images['corner2'].std() > 5
    with pytest.raises(ConfigError, match='need images'):
        CollectConfig(env='metaworld/reach-v3', out='test/x-v0', image_size=48)
    assert CollectConfig(env='metaworld/reach-v3', out='test/x-v0').episodes == 50
