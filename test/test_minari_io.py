# SPDX-License-Identifier: Apache-2.0
"""Real Minari round trips, corrupt-file errors, and atomic dataset writes."""
from conftest import make_episode
import h5py
import numpy as np
import pytest

from dgm_policy_ros.data import DatasetError, minari_io


def _spaces(obs_dim=3, act_dim=2):
    import gymnasium as gym

    return (gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
            gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32))


def _write(dataset_id, episodes, **kw):
    obs_space, act_space = _spaces()
    return minari_io.write_dataset(dataset_id, episodes, observation_space=obs_space,
                                   action_space=act_space, **kw)


def test_round_trip_preserves_every_field(episodes, minari_root):
    path = _write('test/tiny/data-v0', episodes, provenance={'behaviour': 'hand', 'seed': 4})
    assert path == minari_root / 'test/tiny/data-v0'
    for by in ('test/tiny/data-v0', path, path / 'data'):
        loaded = minari_io.load_dataset(by)
        assert loaded.dataset_id == 'test/tiny/data-v0'
        assert [len(e) for e in loaded.episodes] == [5, 3, 7]
        for got, want in zip(loaded.episodes, episodes):
            for field in ('observations', 'actions', 'rewards', 'terminations', 'truncations'):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    assert loaded.provenance == {'behaviour': 'hand', 'seed': 4}
    assert (loaded.obs_dim, loaded.act_dim, loaded.total_steps) == (3, 2, 15)
    # Minari itself reads it too (the format is not ours).
    import minari

    assert minari.load_dataset('test/tiny/data-v0').total_episodes == 3


def test_existing_dataset_is_not_overwritten_by_accident(episodes):
    _write('test/tiny/data-v0', episodes)
    with pytest.raises(FileExistsError, match='already exists'):
        _write('test/tiny/data-v0', episodes[:1])
    _write('test/tiny/data-v0', episodes[:1], overwrite=True)
    assert len(minari_io.load_dataset('test/tiny/data-v0').episodes) == 1


def test_failed_write_leaves_no_half_dataset(episodes, minari_root, monkeypatch):
    import minari

    def explode(*args, **kwargs):
        raise RuntimeError('disk full')

    monkeypatch.setattr(minari, 'create_dataset_from_buffers', explode)
    with pytest.raises(RuntimeError, match='disk full'):
        _write('test/tiny/data-v0', episodes)
    assert not (minari_root / 'test/tiny/data-v0').exists()
    assert not any(p.name.startswith('.staging') for p in minari_root.iterdir())


def test_missing_dataset_message(minari_root):
    with pytest.raises(DatasetError, match='not found'):
        minari_io.load_dataset('test/none/nothing-v0')


def _corrupt(path, episode, mutate):
    with h5py.File(path / 'data' / 'main_data.hdf5', 'a') as f:
        mutate(f[f'episode_{episode}'])


@pytest.mark.parametrize('mutate,pattern', [
    (lambda g: g.__delitem__('rewards'), r"episode 1 is missing field 'rewards'"),
    (lambda g: (g.__delitem__('actions'), g.create_dataset('actions', data=np.zeros((2, 2)))),
     r'episode 1 field actions has 2 rows, expected 3'),
    (lambda g: g['observations'].__setitem__((1, 0), np.nan),
     r'episode 1 field observations has a non-finite value at step 1'),
])
def test_corrupt_files_name_episode_and_field(episodes, mutate, pattern):
    path = _write('test/tiny/data-v0', episodes)
    _corrupt(path, 1, mutate)
    with pytest.raises(DatasetError, match=pattern):
        minari_io.load_dataset('test/tiny/data-v0')


def test_concatenate_keeps_order_and_provenance(episodes):
    import gymnasium as gym

    env = gym.make('Hopper-v5')
    obs_space, act_space = env.observation_space, env.action_space
    eps = [make_episode(i, steps=4, obs_dim=11, act_dim=3, seed=i) for i in range(3)]
    for name, part in (('a', eps[:1]), ('b', eps[1:])):
        minari_io.write_dataset(f'test/hop/{name}-v0', part, env_id='Hopper-v5',
                                observation_space=obs_space, action_space=act_space,
                                provenance={'env_id': 'Hopper-v5', 'name': name})
    minari_io.concatenate('test/hop/ab-v0', ['test/hop/a-v0', 'test/hop/b-v0'])
    merged = minari_io.load_dataset('test/hop/ab-v0')
    assert [e.observations[0, 0] for e in merged.episodes] == [0.0, 100.0, 200.0]
    assert merged.provenance['sources'] == ['test/hop/a-v0', 'test/hop/b-v0']
    assert merged.env_id == 'Hopper-v5'
