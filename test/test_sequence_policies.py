# SPDX-License-Identifier: Apache-2.0
"""Sequence policies: the runtime's history window, Decision Transformer conditioning and
masking, and the deployed runner keeping the window itself."""
import numpy as np
import pytest
from test_export_runtime import bundles  # noqa: F401 - fixture
from test_policies import OBS_DIM, _episodes, _make, tiny_dataset  # noqa: F401 - fixture

from dgm_policy_ros.data.samplers import SequenceSampler
from dgm_policy_ros.runtime import ObservationError, PolicyRunner
from dgm_policy_ros.runtime.history import HistoryBuffer, HistorySpec
from dgm_policy_ros.training.algorithm import to_tensors

FIELDS = ('past_actions', 'returns_to_go', 'timesteps', 'mask')


def _fill(buffer, episode, step):
    """Run ``episode`` up to ``step`` through a buffer, as the runner does."""
    for t in range(step + 1):
        buffer.push(episode.observations[t])
        if t < step:
            buffer.record_action(episode.actions[t])
            buffer.record_reward(episode.rewards[t])
    return buffer.feeds()


@pytest.mark.parametrize('step', [0, 2, 6, 11])
def test_history_buffer_holds_what_the_training_sampler_draws(step):
    """The window a robot keeps equals the window the model was trained on (bar the current
    action, which is not known yet at run time)."""
    episodes = _episodes(n=2, steps=12)
    sampler = SequenceSampler(episodes, context=5, batch_size=1)
    want = sampler.ending_at(np.array([step]))
    episode = episodes[0]
    spec = HistorySpec(5, FIELDS, 'zeros', target_return=float(episode.rewards.sum()))
    got = _fill(HistoryBuffer(spec, OBS_DIM, 2), episode, step)
    np.testing.assert_allclose(got['obs'], want['observations'][0])
    np.testing.assert_allclose(got['returns_to_go'], want['returns_to_go'][0], rtol=1e-5,
                               atol=1e-4)
    np.testing.assert_array_equal(got['timesteps'], want['timesteps'][0])
    np.testing.assert_array_equal(got['mask'], want['mask'][0])
    np.testing.assert_allclose(got['past_actions'][:-1], want['actions'][0][:-1])
    assert not got['past_actions'][-1].any()


def test_history_buffer_padding_reset_and_saturation():
    spec = HistorySpec(3, ('timesteps',), 'repeat_first', max_timestep=4)
    buffer = HistoryBuffer(spec, 2, 1)
    with pytest.raises(RuntimeError, match='empty'):
        buffer.feeds()
    buffer.push(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(buffer.feeds()['obs'], [[1, 2], [1, 2], [1, 2]])
    for value in (3.0, 4.0, 5.0, 6.0):
        buffer.push(np.array([value, value]))
    assert buffer.feeds()['timesteps'].tolist() == [2, 3, 3]  # saturates at max_timestep - 1
    buffer.reset()
    buffer.push(np.array([9.0, 9.0]))
    np.testing.assert_array_equal(buffer.feeds()['obs'], np.full((3, 2), 9.0))
    with pytest.raises(ValueError, match='target_return'):
        HistorySpec(3, ('returns_to_go',))
    with pytest.raises(ValueError, match='unknown history fields'):
        HistorySpec(3, ('rewards',))


def _trained_dt():
    algo = _make('dt')
    sampler = algo.make_sampler(_episodes(), seed=0)
    for _ in range(150):
        algo.update(to_tensors(sampler.sample()))
    return algo.eval()


def _window(algo, step=3):
    episode = _episodes(seed=4)[0]
    feeds = _fill(HistoryBuffer(algo.history_spec(), OBS_DIM, 2), episode, step)
    return {k: v[None] for k, v in feeds.items()}


def test_dt_return_conditioning_changes_the_action():
    algo = _trained_dt()
    window = _window(algo)
    low, high = dict(window), dict(window)
    low['returns_to_go'] = window['returns_to_go'] * 0.0 - 50.0
    high['returns_to_go'] = window['returns_to_go'] * 0.0 + 50.0
    a_low, a_high = algo.predict(low), algo.predict(high)
    assert np.abs(a_low - a_high).max() > 1e-3
    np.testing.assert_array_equal(algo.predict(window), algo.predict(dict(window)))


def test_dt_padding_mask_ignores_padded_tokens():
    algo = _trained_dt()
    window = _window(algo, step=2)  # 3 real steps in a context of 5: 2 padded slots
    assert window['mask'][0].tolist() == [0, 0, 1, 1, 1]
    garbage = {k: v.copy() for k, v in window.items()}
    rng = np.random.default_rng(0)
    for name in ('obs', 'past_actions', 'returns_to_go'):
        garbage[name][0, :2] = rng.normal(0, 100, garbage[name][0, :2].shape)
    garbage['timesteps'][0, :2] = [7, 9]
    np.testing.assert_allclose(algo.predict(garbage), algo.predict(window), rtol=0, atol=1e-6)
    # ...while the same change in a real slot does change the action.
    changed = {k: v.copy() for k, v in window.items()}
    changed['obs'][0, 2] += 5.0
    assert np.abs(algo.predict(changed) - algo.predict(window)).max() > 1e-4


def test_dt_causal_attention_never_sees_the_current_action():
    algo = _trained_dt()
    window = _window(algo)
    peeked = {k: v.copy() for k, v in window.items()}
    peeked['past_actions'][0, -1] = [0.9, -1.5]
    np.testing.assert_allclose(algo.predict(peeked), algo.predict(window), rtol=0, atol=1e-6)


def test_runner_keeps_the_history_and_matches_torch(bundles):  # noqa: F811
    from dgm_policy_ros.training.run_folder import load_run

    runner = PolicyRunner(bundles['dt'], backend='onnxruntime-cpu')
    history = runner.bundle.history
    best = max(float(e.rewards.sum()) for e in _episodes())  # the training data's best return
    assert history is not None and history.length == 5
    assert history.target_return == pytest.approx(best, rel=1e-6)
    algo, _, _ = load_run(runner.bundle.manifest['training']['run'])
    episode = _episodes(seed=6)[1]
    buffer = HistoryBuffer(algo.history_spec(), OBS_DIM, 2)
    runner.reset()
    for t in range(8):
        action = runner.act(episode.observations[t])
        buffer.push(episode.observations[t])
        expected = algo.predict({k: v[None] for k, v in buffer.feeds().items()})[0, 0]
        np.testing.assert_allclose(action, expected, atol=1e-5)
        if t % 2:  # what the node does when it sends another action (exploration noise)
            action = action + 0.3
            runner.record_action(action)
        buffer.record_action(action)
        runner.record_reward(episode.rewards[t])
        buffer.record_reward(episode.rewards[t])
    # A new target return is a reset argument; a wrong-sized window is refused.
    runner.reset(target_return=123.0)
    assert runner.history.return_to_go == 123.0 and runner.history.steps == 0
    bad = runner.zero_inputs(2)
    bad['mask'] = np.zeros((2, 4), np.float32)
    with pytest.raises(ObservationError, match='mask'):
        runner.infer(bad)
    with pytest.raises(ObservationError, match='sequence policy'):
        runner.infer(np.zeros((1, OBS_DIM)))


@pytest.mark.parametrize('selection', ['argmax', 'expectile'])
def test_q_guided_selection_picks_by_q_and_draws_by_expectile_weights(selection):
    import torch

    algo = _make('idql', selection=selection, n_candidates=4, expectile=0.8)
    # A scripted critic: Q of a candidate is its first component, V = 0.
    algo.critic.q_min = lambda obs, act: act[:, 0]
    algo.value.forward = lambda obs: torch.zeros(obs.shape[0])
    # The denoiser's candidates, made to order: first components -0.5, 0.1, -0.2, 0.4.
    first = torch.tensor([-0.5, 0.1, -0.2, 0.4])
    algo.sample = lambda denoiser, obs_n, noise: torch.stack(
        [first.repeat(obs_n.shape[0] // 4), torch.zeros(obs_n.shape[0])], 1)
    names = [n.name for n in algo.noise_specs()]
    b = 2000
    obs = torch.zeros(b, OBS_DIM)
    noise = torch.zeros(b, 4, 2)
    u = torch.linspace(0, 1, b + 1)[:-1, None]  # evenly over [0, 1): exact frequencies
    with torch.no_grad():
        if selection == 'argmax':
            assert names == ['candidate_noise']
            chosen = algo.unit_actions(algo.act(obs, noise))[:, 0, 0]
            torch.testing.assert_close(chosen, torch.full((b,), 0.4))
            return
        assert names == ['candidate_noise', 'selection_noise']
        chosen = algo.unit_actions(algo.act(obs, noise, u))[:, 0, 0]
    # Weights 0.2, 0.8, 0.2, 0.8 (Q > V = 0 for the 2nd and 4th): drawn 10%, 40%, 10%, 40%.
    share = [(chosen - v).abs().lt(1e-5).float().mean().item() for v in first.tolist()]
    np.testing.assert_allclose(share, [0.1, 0.4, 0.1, 0.4], atol=1e-3)
    with pytest.raises(Exception, match='selection must be one of'):
        _make('diffusion_ql', selection='expectile')
