# SPDX-License-Identifier: Apache-2.0
"""World models: each learns a known linear system; the contract (resume, config) holds;
uncertainty rises away from the data."""
from conftest import TEST_SIZES
import numpy as np
import pytest
from test_policies import NEEDS_GPU, tiny_dataset  # noqa: F401 - fixture
import torch

from dgm_policy_ros.data.episodes import Episode
from dgm_policy_ros.data.normalization import DatasetSplit
from dgm_policy_ros.training.algorithm import DataSpec, to_tensors
from dgm_policy_ros.training.registry import WORLD_MODELS, get_algorithm

A = np.array([[0.9, 0.1, 0.0], [-0.1, 0.9, 0.05], [0.0, 0.0, 0.95]], np.float32)
B = np.array([[0.5, 0.0], [0.0, 0.3], [0.2, -0.2]], np.float32)
C = np.array([1.0, -0.5, 0.25], np.float32)
LOW, HIGH = -np.ones(2, np.float32), np.ones(2, np.float32)
MODELS = sorted(WORLD_MODELS)


def linear_episodes(n=40, steps=50, seed=0, a=A):
    """s' = A s + B u, r = C . s, under random actions in [-1, 1]."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        obs = np.zeros((steps + 1, 3), np.float32)
        obs[0] = rng.normal(0, 1, 3)
        act = rng.uniform(-1, 1, (steps, 2)).astype(np.float32)
        for t in range(steps):
            obs[t + 1] = a @ obs[t] + B @ act[t]
        rew = (obs[:-1] @ C).astype(np.float32)
        trunc = np.zeros(steps, bool)
        trunc[-1] = True
        episodes.append(Episode(i, obs, act, rew, np.zeros(steps, bool), trunc))
    return episodes


def make(name, episodes, **overrides):
    cls = get_algorithm(name)
    cfg = cls.config_class.from_dict({'hidden': [64, 64], 'batch_size': 128,
                                      **TEST_SIZES.get(cls.name, {}), **overrides})
    torch.manual_seed(0)
    stats = DatasetSplit.create(episodes, 0.0).stats
    return cls(cfg, DataSpec(3, 2, stats, LOW, HIGH))


def trained(name, steps=1500):
    episodes = linear_episodes()
    model = make(name, episodes)
    sampler = model.make_sampler(episodes, seed=0)
    for _ in range(steps):
        model.update(to_tensors(sampler.sample()))
    return model


@pytest.mark.parametrize('name', MODELS)
def test_world_model_learns_a_known_linear_system(name):
    model = trained(name)
    held_out = linear_episodes(n=10, seed=1)
    m = model.metrics(held_out, horizons=(1, 5, 20))
    # Targets have unit spread: an error of 0.05 is 5% of the signal.
    assert m['one_step_mse'] < 0.05, m
    assert m['open_loop_mse_h1'] < 0.05, m
    assert m['open_loop_mse_h5'] < 0.25, m
    assert np.isfinite(m['open_loop_mse_h20'])
    obs = held_out[0].observations[:5]
    act = held_out[0].actions[:5]
    next_obs, reward, uncertainty = model.predict_step(obs, act, np.random.default_rng(0))
    np.testing.assert_allclose(next_obs, obs @ A.T + act @ B.T, atol=0.15)
    np.testing.assert_allclose(reward, obs @ C, atol=0.15)
    assert uncertainty.shape == (5,) and np.all(uncertainty >= 0)


def test_ensemble_disagrees_more_away_from_the_data():
    model = trained('wm_ensemble', steps=800)
    episodes = linear_episodes(n=5, seed=2)
    obs = np.concatenate([e.observations[:-1] for e in episodes])
    act = np.concatenate([e.actions for e in episodes])
    _, _, near = model.predict_step(obs, act)
    _, _, far = model.predict_step(obs * 8.0, act)
    assert np.median(far) > 3 * np.median(near)


@pytest.mark.parametrize('name', MODELS)
def test_world_model_nll_and_config(name):
    cls = get_algorithm(name).config_class
    cfg = cls.from_dict({'hidden': [32]})
    assert cls.from_yaml(cfg.to_yaml()) == cfg
    with pytest.raises(Exception, match='must be'):
        cls.from_dict({'batch_size': 0})


@pytest.mark.parametrize('name', MODELS)
def test_world_model_training_resumes_exactly_and_reports_held_out_metrics(
        name, tiny_dataset, tmp_path, monkeypatch):  # noqa: F811
    import json

    from test_policies import _params

    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    def _train(out, resume=False):
        cfg = TrainConfig(algo=name, dataset=str(tiny_dataset), out=str(out), steps=60,
                          checkpoint_every=20, log_every=10, eval_every=0, seed=3,
                          val_fraction=0.25, tensorboard=False, progress=False,
                          algo_config={'hidden': [32, 32], 'batch_size': 64,
                                       **TEST_SIZES.get(name, {})})
        return Trainer(cfg, resume=resume).run()

    result = _train(tmp_path / 'straight')
    assert {'one_step_mse', 'open_loop_mse_h5'} <= set(result), result
    cls = get_algorithm(name)
    original = cls.update
    calls = {'n': 0}

    def crashing_update(self, batch):
        calls['n'] += 1
        if calls['n'] == 51:
            raise KeyboardInterrupt('simulated kill')
        return original(self, batch)

    monkeypatch.setattr(cls, 'update', crashing_update)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / 'crashed')
    monkeypatch.setattr(cls, 'update', original)
    assert json.loads((tmp_path / 'crashed/checkpoints/latest.json').read_text())['step'] == 40
    _train(tmp_path / 'crashed', resume=True)
    a, b = _params(tmp_path / 'straight'), _params(tmp_path / 'crashed')
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@NEEDS_GPU
@pytest.mark.parametrize('name', MODELS)
def test_world_model_trains_on_the_gpu_and_steps_alike_on_the_cpu(
        name, tiny_dataset, tmp_path):  # noqa: F811
    """Trained on the GPU, with held-out metrics computed there; the saved weights step on
    the CPU as they do on the GPU, for the same inputs and noise."""
    import copy

    from test_policies import _episodes

    from dgm_policy_ros.training.run_folder import load_run
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    cfg = TrainConfig(algo=name, dataset=str(tiny_dataset), out=str(tmp_path / 'run'),
                      steps=60, log_every=10, eval_every=0, seed=3, val_fraction=0.25,
                      tensorboard=False, progress=False, device='cuda',
                      algo_config={'hidden': [32, 32], 'batch_size': 64,
                                   **TEST_SIZES.get(name, {})})
    result = Trainer(cfg).run()
    assert np.isfinite(result['one_step_mse']) and np.isfinite(result['open_loop_mse_h5'])
    cpu, _, _ = load_run(tmp_path / 'run')
    gpu = copy.deepcopy(cpu).to('cuda')
    episode = _episodes()[0]
    obs, act = episode.observations[:8], episode.actions[:8]
    on_cpu = cpu.predict_step(obs, act, np.random.default_rng(0))
    on_gpu = gpu.predict_step(obs, act, np.random.default_rng(0))
    for a, b in zip(on_gpu, on_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


OTHER = np.array([[0.6, -0.4, 0.0], [0.4, 0.6, 0.0], [0.0, 0.3, 0.7]], np.float32)


@pytest.fixture(scope='module')
def world_model_bundle(tmp_path_factory):
    """An ensemble trained on the linear system (a Minari dataset), exported."""
    import os

    import gymnasium as gym

    from dgm_policy_ros.data import minari_io
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    root = tmp_path_factory.mktemp('wm')
    old = os.environ.get('MINARI_DATASETS_PATH')
    os.environ['MINARI_DATASETS_PATH'] = str(root / 'minari')
    try:
        minari_io.write_dataset(
            'test/linear/random-v0', linear_episodes(),
            observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
            action_space=gym.spaces.Box(LOW, HIGH, dtype=np.float32))
        Trainer(TrainConfig(algo='wm_ensemble', dataset='test/linear/random-v0',
                            out=str(root / 'run'), steps=1000, eval_every=-1, val_fraction=0.1,
                            tensorboard=False, progress=False,
                            algo_config={'hidden': [64, 64], 'members': 3})).run()
        yield export_bundle(root / 'run', root / 'bundle')
    finally:
        if old is None:
            os.environ.pop('MINARI_DATASETS_PATH', None)
        else:
            os.environ['MINARI_DATASETS_PATH'] = old


def test_world_model_bundle_runs_torch_free_and_scores_anomalies(world_model_bundle):
    from dgm_policy_ros.runtime import BundleError, PolicyRunner, load_bundle
    from dgm_policy_ros.runtime.world_model_runner import WorldModelRunner
    from dgm_policy_ros.training.run_folder import load_run

    bundle = load_bundle(world_model_bundle)
    assert bundle.manifest['kind'] == 'world_model' and bundle.manifest['residual_scale'] > 0
    runner = WorldModelRunner(bundle, backend='onnxruntime-cpu')
    model, _, _ = load_run(bundle.path / 'training')
    ep = linear_episodes(n=1, seed=5)[0]
    got = runner.predict(ep.observations[:-1], ep.actions)
    want = model.predict_step(ep.observations[:-1], ep.actions)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-4)
    same = runner.anomaly(ep.observations[:-1], ep.actions, ep.observations[1:])
    other = linear_episodes(n=1, seed=5, a=OTHER)[0]
    moved = runner.anomaly(other.observations[:-1], other.actions, other.observations[1:])
    assert np.median(same) < 2.0 and np.median(moved) > 3 * np.median(same)
    with pytest.raises(BundleError, match='not a policy'):
        PolicyRunner(bundle, backend='onnxruntime-cpu')
