# SPDX-License-Identifier: Apache-2.0
"""Data layer: flattening, samplers against hand-computed values, splits, scores."""
import json

from conftest import make_episode
import numpy as np
import pytest

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data import (
    ChunkSampler,
    DatasetError,
    DatasetSplit,
    Episode,
    SequenceSampler,
    TransitionSampler,
    flatten_episodes,
    normalized_score,
    reference_returns,
)
from dgm_policy_ros.data.transitions import returns_to_go


def test_flatten_keeps_terminals_and_timeouts_apart(episodes):
    tr = flatten_episodes(episodes)
    assert len(tr) == 5 + 3 + 7
    assert tr.episode_starts.tolist() == [0, 5, 8]
    # Episode 0 ends in a terminal, 1 and 2 in truncations: never both, never elsewhere.
    assert np.flatnonzero(tr.terminals).tolist() == [4]
    assert np.flatnonzero(tr.timeouts).tolist() == [7, 14]
    # next_observations is the following row of the same episode, never the next episode.
    np.testing.assert_array_equal(tr.next_observations[7], episodes[1].observations[3])
    np.testing.assert_array_equal(tr.observations[8], episodes[2].observations[0])
    assert tr.step_in_episode.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3, 4, 5, 6]


def test_episode_that_just_stops_counts_as_timeout():
    ep = make_episode(steps=4)
    ep = Episode(0, ep.observations, ep.actions, ep.rewards, np.zeros(4, bool),
                 np.zeros(4, bool))
    tr = flatten_episodes([ep])
    assert tr.timeouts.tolist() == [False, False, False, True]
    assert not tr.terminals.any()


def test_returns_to_go_by_hand():
    np.testing.assert_allclose(returns_to_go(np.array([1, 2, 3, 4.0])), [10, 9, 7, 4])
    np.testing.assert_allclose(returns_to_go(np.array([1, 1, 1.0]), gamma=0.5),
                               [1 + 0.5 + 0.25, 1.5, 1])


def test_sequence_sampler_matches_hand_computed_window(episodes):
    sampler = SequenceSampler(episodes, context=4, batch_size=2, seed=0)
    # Global step 6 is step 1 of episode 1 (rewards 1, 2, 3): window [pad, pad, s0, s1].
    batch = sampler.ending_at(np.array([6, 4]))
    assert batch['mask'][0].tolist() == [0, 0, 1, 1]
    assert batch['timesteps'][0].tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(batch['returns_to_go'][0, :, 0], [0, 0, 6, 5])
    np.testing.assert_array_equal(batch['observations'][0, 2], episodes[1].observations[0])
    np.testing.assert_array_equal(batch['observations'][0, :2], 0)
    np.testing.assert_array_equal(batch['actions'][0, 3], episodes[1].actions[1])
    # Global step 4 is the last step of episode 0 (rewards 1..5): a full window of steps 1..4.
    assert batch['mask'][1].tolist() == [1, 1, 1, 1]
    assert batch['timesteps'][1].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(batch['returns_to_go'][1, :, 0], [14, 12, 9, 5])
    assert batch['observations'].shape == (2, 4, 3)
    assert batch['actions'].shape == (2, 4, 2)


def test_chunk_sampler_pads_at_episode_ends(episodes):
    sampler = ChunkSampler(episodes, horizon=4, batch_size=2, n_obs_steps=2, seed=0)
    batch = sampler.starting_at(np.array([6, 5]))  # steps 1 and 0 of episode 1 (3 steps)
    ep = episodes[1]
    assert batch['action_mask'][0].tolist() == [1, 1, 0, 0]
    np.testing.assert_array_equal(batch['actions'][0], ep.actions[[1, 2, 2, 2]])
    np.testing.assert_array_equal(batch['observations'][0], ep.observations[[0, 1]])
    # At the episode start the first observation is repeated.
    np.testing.assert_array_equal(batch['observations'][1], ep.observations[[0, 0]])
    assert batch['action_mask'][1].tolist() == [1, 1, 1, 0]


def test_samplers_are_seeded_and_resumable(episodes):
    a = TransitionSampler(episodes, 8, seed=3)
    b = TransitionSampler(episodes, 8, seed=3)
    np.testing.assert_array_equal(a.sample()['observations'], b.sample()['observations'])
    state = json.loads(json.dumps(a.get_state()))  # survives a JSON checkpoint
    expected = a.sample()['actions']
    c = TransitionSampler(episodes, 8, seed=99)
    c.set_state(state)
    np.testing.assert_array_equal(c.sample()['actions'], expected)
    for sampler in (SequenceSampler(episodes, 3, 5, seed=1), ChunkSampler(episodes, 3, 5, seed=1)):
        assert all(v.shape[0] == 5 for v in sampler.sample().values())


def test_transition_batch_content(episodes):
    batch = TransitionSampler(episodes, 4).at(np.array([4, 7]))
    assert batch['terminals'].tolist() == [1.0, 0.0]
    assert batch['timeouts'].tolist() == [0.0, 1.0]
    assert batch['rewards'].tolist() == [5.0, 3.0]


def test_split_is_reproducible_and_stats_use_train_only(episodes, tmp_path):
    eps = [make_episode(i, steps=4 + i, seed=i) for i in range(10)]
    split = DatasetSplit.create(eps, val_fraction=0.2, seed=1)
    assert len(split.val_episodes) == 2 and len(split.train_episodes) == 8
    assert not set(split.val_episodes) & set(split.train_episodes)
    train_obs = np.concatenate([eps[i].observations[:-1] for i in split.train_episodes])
    np.testing.assert_allclose(split.stats.obs_mean, train_obs.mean(0), rtol=1e-6)
    saved = DatasetSplit.load_or_create(tmp_path, eps, 0.2, 1)
    assert saved.to_dict() == split.to_dict()
    files = list((tmp_path / 'dgm').glob('split-*.json'))
    assert len(files) == 1
    # A second call reads the saved file instead of recomputing.
    data = json.loads(files[0].read_text())
    data['stats']['obs_mean'] = [42.0] * 3
    files[0].write_text(json.dumps(data))
    again = DatasetSplit.load_or_create(tmp_path, eps, 0.2, 1)
    assert again.stats.obs_mean.tolist() == [42.0] * 3


def test_constant_dimension_is_not_blown_up():
    ep = make_episode(steps=6)
    obs = ep.observations.copy()
    obs[:, 1] = 3.0
    ep = Episode(0, obs, ep.actions, ep.rewards, ep.terminations, ep.truncations)
    stats = DatasetSplit.create([ep, ep], 0.0).stats
    normalized = stats.normalize_obs(obs)
    assert np.isfinite(normalized).all() and np.allclose(normalized[:, 1], 0)


def test_normalized_score_known_values():
    assert normalized_score('Hopper-v5', 15.3) == pytest.approx(0.0)
    assert normalized_score('Hopper-v5', 3252.0) == pytest.approx(100.0)
    assert normalized_score('HalfCheetah-v5', [-266.2, 7018.0]) == pytest.approx([0, 100])
    # D4RL's own references for v2 names: hopper-medium-v2 at 1422.06 is the published 44.3.
    assert normalized_score('hopper-medium-v2', 1422.06) == pytest.approx(44.3, abs=0.05)
    assert reference_returns('halfcheetah-medium-expert-v2') == (-280.178953, 12135.0)
    with pytest.raises(ConfigError, match='no reference returns'):
        normalized_score('Ant-v5', 1.0)


@pytest.mark.parametrize('field,bad,message', [
    ('rewards', lambda e: np.append(e.rewards, 1.0), 'field observations has 6 rows'),
    ('actions', lambda e: e.actions[:-1], 'field actions has 4 rows, expected 5'),
    ('observations', lambda e: np.where(np.arange(6)[:, None] == 2, np.nan, e.observations),
     'field observations has a non-finite value at step 2'),
    ('rewards', lambda e: np.where(np.arange(5) == 3, np.inf, e.rewards),
     'field rewards has a non-finite value at step 3'),
    ('terminations', lambda e: np.array([0, 1, 0, 0, 1], bool), 'ends the episode early'),
])
def test_bad_episodes_fail_naming_episode_and_field(field, bad, message):
    ep = make_episode(7, steps=5, terminal=True)
    data = {f: getattr(ep, f) for f in ('observations', 'actions', 'rewards', 'terminations',
                                        'truncations')}
    data[field] = bad(ep)
    with pytest.raises(DatasetError, match='episode 7') as info:
        Episode.from_arrays(7, data, source='dataset x')
    assert message in str(info.value)


def test_missing_field_is_named():
    ep = make_episode(3)
    data = {'observations': ep.observations, 'actions': ep.actions, 'rewards': ep.rewards,
            'terminations': ep.terminations}
    with pytest.raises(DatasetError, match=r"episode 3 is missing field\(s\) \['truncations'\]"):
        Episode.from_arrays(3, data)
