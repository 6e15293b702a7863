# SPDX-License-Identifier: Apache-2.0
"""Augmentation: MOPO rollouts penalize where the ensemble disagrees; SynthER samples stay in
bounds and follow the data; synthetic transitions mix into training batches as configured."""
import numpy as np
import pytest
from test_policies import tiny_dataset  # noqa: F401 - fixture
from test_world_models import HIGH, LOW, linear_episodes, trained

from dgm_policy_ros.augment.mopo import mopo_rollouts
from dgm_policy_ros.augment.synther import TransitionDiffusion
from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.transitions_file import load_transitions, save_transitions


def policy(obs):
    return np.clip(-0.5 * obs[:, :2], -1, 1)


def test_mopo_penalty_grows_where_the_ensemble_disagrees():
    model = trained('wm_ensemble', steps=800)
    near = linear_episodes(n=5, seed=3)
    far = [e.__class__(e.id, e.observations * 6.0, e.actions, e.rewards, e.terminations,
                       e.truncations) for e in near]
    arrays, info = mopo_rollouts(model, policy, near, starts=300, horizon=3, penalty=2.0)
    np.testing.assert_allclose(arrays['rewards'],
                               arrays['raw_rewards'] - 2.0 * arrays['uncertainty'], rtol=1e-5)
    assert info['transitions'] == len(arrays['rewards']) > 0
    far_arrays, _ = mopo_rollouts(model, policy, far, starts=300, horizon=3, penalty=2.0,
                                  margin=10.0)
    near_penalty = np.mean(arrays['raw_rewards'] - arrays['rewards'])
    far_penalty = np.mean(far_arrays['raw_rewards'] - far_arrays['rewards'])
    assert far_penalty > 3 * near_penalty
    # Rollouts continue from where the model went: horizon steps from each start at most.
    assert len(arrays['rewards']) <= 300 * 3


@pytest.mark.parametrize('prediction', ['epsilon', 'sample'])
def test_synther_samples_respect_bounds_and_follow_the_data(prediction):
    import torch

    torch.manual_seed(0)
    episodes = linear_episodes(n=20)
    model = TransitionDiffusion(episodes, LOW, HIGH, hidden=(128, 128), diffusion_steps=50,
                                sampling_steps=10, prediction=prediction)
    losses = model.fit(1500, batch_size=256)
    assert np.mean(losses[-100:]) < np.mean(losses[:100])
    samples = model.sample(3000, seed=1)
    data = np.concatenate([e.observations[:-1] for e in episodes])
    assert np.all(samples['observations'] >= data.min(0) - 1e-6)
    assert np.all(samples['observations'] <= data.max(0) + 1e-6)
    assert np.all(samples['actions'] >= LOW) and np.all(samples['actions'] <= HIGH)
    assert set(np.unique(samples['terminals'])) <= {0.0, 1.0}
    np.testing.assert_array_less(np.abs(samples['observations'].mean(0) - data.mean(0)),
                                 0.5 * data.std(0))
    # The dynamics carry over: s' ~ A s + B a on synthetic transitions, roughly.
    from test_world_models import A, B

    predicted = samples['observations'] @ A.T + samples['actions'] @ B.T
    error = np.median(np.abs(samples['next_observations'] - predicted))
    assert error < 0.5 * np.median(np.abs(samples['next_observations']))


def test_transitions_file_round_trip_and_refusals(tmp_path):
    arrays = {'observations': np.ones((3, 4)), 'actions': np.zeros((3, 2)),
              'rewards': np.arange(3.0), 'next_observations': np.ones((3, 4)),
              'terminals': np.array([0.0, 1.0, 0.0])}
    path = save_transitions(tmp_path / 'synth.safetensors', arrays, {'method': 'test'})
    loaded, info = load_transitions(path)
    assert info == {'method': 'test'}
    np.testing.assert_array_equal(loaded['rewards'], [0, 1, 2])
    with pytest.raises(ValueError, match='lack'):
        save_transitions(tmp_path / 'bad.safetensors', {'rewards': np.zeros(3)}, {})
    (tmp_path / 'junk.safetensors').write_bytes(b'not a file')
    with pytest.raises(ValueError, match='not a transitions file'):
        load_transitions(tmp_path / 'junk.safetensors')


def test_training_mixes_synthetic_transitions_as_configured(tiny_dataset, tmp_path):  # noqa: F811
    from test_policies import OBS_DIM, _train

    from dgm_policy_ros.data.samplers import (
        MixedSampler,
        TransitionSampler,
        transitions_from_arrays,
    )

    n = 500
    rng = np.random.default_rng(0)
    synthetic = {'observations': rng.normal(size=(n, OBS_DIM)),
                 'actions': rng.uniform(-1, 0.5, (n, 2)), 'rewards': np.full(n, 7.0),
                 'next_observations': rng.normal(size=(n, OBS_DIM)),
                 'terminals': np.zeros(n)}
    path = save_transitions(tmp_path / 'synth.safetensors', synthetic, {'method': 'test'})
    real = transitions_from_arrays({**synthetic, 'rewards': np.zeros(n)})
    mixed = MixedSampler(TransitionSampler(real, 64, 0),
                         TransitionSampler(transitions_from_arrays(synthetic), 64, 1), 0.25)
    batch = mixed.sample()
    assert len(batch['rewards']) == 64 and (batch['rewards'] == 7.0).sum() == 16
    state = mixed.get_state()
    again = mixed.sample()
    mixed.set_state(state)
    np.testing.assert_array_equal(mixed.sample()['observations'], again['observations'])
    result = _train('td3bc', tmp_path / 'run', 40, dataset=tiny_dataset,
                    extra_transitions=str(path), synthetic_ratio=0.25)
    assert result['steps'] == 40
    with pytest.raises(ConfigError, match='transition-sampling'):
        _train('dt', tmp_path / 'dt', 10, dataset=tiny_dataset, extra_transitions=str(path))
