# SPDX-License-Identifier: Apache-2.0
"""The shared family tester: every registered algorithm meets the same contract."""
import copy
import dataclasses
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from conftest import TEST_SIZES
import numpy as np
import pytest
import torch
import yaml

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data import Episode, minari_io
from dgm_policy_ros.data.normalization import DatasetSplit
from dgm_policy_ros.training.algorithm import DataSpec, to_tensors
from dgm_policy_ros.training.registry import ALGORITHMS, get_algorithm
from dgm_policy_ros.training.run_folder import load_run
from dgm_policy_ros.training.trainer import TrainConfig, Trainer

LOW = np.array([-1.0, -2.0], np.float32)
HIGH = np.array([1.0, 0.5], np.float32)
OBS_DIM = 4
# Small, fast settings per algorithm (the defaults are sized for MuJoCo benchmarks).
SMALL = {'batch_size': 64, 'hidden': [64, 64]}


def _expert(obs):
    """A smooth deterministic 'behaviour policy' inside the asymmetric bounds."""
    unit = np.tanh(obs[..., :2] * [0.8, -0.6] + obs[..., 2:] * [0.3, 0.5])
    return (LOW + (unit + 1) / 2 * (HIGH - LOW)).astype(np.float32)


def _episodes(n=12, steps=40, seed=0):
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(n):
        obs = np.cumsum(rng.normal(0, 0.3, size=(steps + 1, OBS_DIM)), 0).astype(np.float32)
        act = _expert(obs[:-1]) + rng.normal(0, 0.02, size=(steps, 2)).astype(np.float32)
        act = np.clip(act, LOW, HIGH)
        rew = -np.abs(obs[1:, 0]).astype(np.float32)
        terms = np.zeros(steps, bool)
        truncs = np.zeros(steps, bool)
        truncs[-1] = True
        eps.append(Episode(i, obs, act, rew, terms, truncs))
    return eps


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory):
    import gymnasium as gym

    root = tmp_path_factory.mktemp('minari')
    os.environ['MINARI_DATASETS_PATH'] = str(root)
    minari_io.write_dataset(
        'test/synthetic/tiny-v0', _episodes(),
        observation_space=gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32),
        action_space=gym.spaces.Box(LOW, HIGH, dtype=np.float32))
    return root / 'test/synthetic/tiny-v0'


def _spec(episodes):
    stats = DatasetSplit.create(episodes, 0.0).stats
    return DataSpec(OBS_DIM, 2, stats, LOW, HIGH)


def _make(name, **overrides):
    cls = get_algorithm(name)
    cfg = cls.config_class.from_dict({**SMALL, **TEST_SIZES.get(cls.name, {}),
                                      **overrides})
    torch.manual_seed(0)
    return cls(cfg, _spec(_episodes()))


def policy_inputs(algo, seed, step):
    """What ``predict`` takes at ``step`` of each episode: the observation, or for a sequence
    policy the history window a deployed runtime would hold by then."""
    from dgm_policy_ros.runtime.history import HistoryBuffer, stack_feeds

    episodes = _episodes(seed=seed)
    spec = algo.history_spec()
    if spec is None:
        return np.stack([e.observations[step] for e in episodes])
    windows = []
    for e in episodes:
        buffer = HistoryBuffer(spec, OBS_DIM, 2)
        for t in range(step + 1):
            buffer.push(e.observations[t])
            if t < step:
                buffer.record_action(e.actions[t])
                buffer.record_reward(e.rewards[t])
        windows.append(buffer.feeds())
    return stack_feeds(windows)


def _as_tensors(algo, inputs):
    if isinstance(inputs, dict):
        return [torch.from_numpy(inputs[name]) for name in algo.input_names()]
    return [torch.from_numpy(inputs)]


ALL = sorted(ALGORITHMS)
# Optional settings that change the model or its graph meet the same contract: (name, settings,
# test id suffix).
EXTRA_VARIANTS = [('gan_bc', {'q_weight': 1.0}, 'q'), ('flow_bc', {'q_weight': 1.0}, 'q'),
                  ('diffusion_bc', {'eta': 1.0}, 'eta'),
                  ('diffusion_bc', {'n_obs_steps': 2}, 'obs2'),
                  ('diffusion_bc', {'denoiser': 'unet'}, 'unet'),
                  ('diffusion_bc', {'inference_ema': 0.9}, 'ema'),
                  ('idql', {'denoiser': 'resnet'}, 'resnet'),
                  ('dt', {'state_encoder': 'relu'}, 'relu')]
VARIANTS = [(name, {}) for name in ALL] + [(name, extra) for name, extra, _ in EXTRA_VARIANTS]
VARIANT_IDS = list(ALL) + [f'{name}-{tag}' for name, _, tag in EXTRA_VARIANTS]


@pytest.mark.parametrize('name,extra', VARIANTS, ids=VARIANT_IDS)
def test_loss_falls_and_predictions_are_valid(name, extra):
    algo = _make(name, **extra)
    sampler = algo.make_sampler(_episodes(), seed=0)
    history = []
    for _ in range(300):
        history.append(algo.update(to_tensors(sampler.sample())))
    key = algo.monitored_loss
    values = [h[key] for h in history if key in h]
    first, last = np.mean(values[:30]), np.mean(values[-30:])
    assert last < first, f'{name}: {key} did not fall ({first:.4f} -> {last:.4f})'
    obs = policy_inputs(algo, seed=3, step=5)
    actions = algo.predict(obs, rng=np.random.default_rng(0))
    assert actions.shape == (12, algo.chunk_size, 2)
    assert np.isfinite(actions).all()
    assert (actions >= LOW - 1e-5).all() and (actions <= HIGH + 1e-5).all()


@pytest.mark.parametrize('name,extra', VARIANTS, ids=VARIANT_IDS)
def test_export_module_equals_predict_for_the_same_noise(name, extra):
    algo = _make(name, **extra)
    sampler = algo.make_sampler(_episodes(), seed=0)
    for _ in range(20):
        algo.update(to_tensors(sampler.sample()))
    obs = policy_inputs(algo, seed=5, step=3)
    noise = algo.draw_noise(12, np.random.default_rng(1))
    expected = algo.predict(obs, noise=noise)
    module = algo.export_module().eval()
    with torch.no_grad():
        got = module(*_as_tensors(algo, obs), *[torch.from_numpy(n) for n in noise]).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # Noise is an input, not hidden state: the same inputs give the same output twice.
    np.testing.assert_array_equal(algo.predict(obs, noise=noise), expected)


def _train(name, out, steps, resume=False, dataset=None, extra=None, **kw):
    cfg = TrainConfig(algo=name, dataset=str(dataset), out=str(out), steps=steps,
                      checkpoint_every=20, log_every=10, eval_every=-1, seed=3,
                      tensorboard=False, progress=False,
                      algo_config={**SMALL, **TEST_SIZES.get(name, {}), **(extra or {})}, **kw)
    return Trainer(cfg, resume=resume).run()


def _params(run):
    algo, _, _ = load_run(run)
    return {k: v.clone() for k, v in algo.state_dict().items()}


def _crash_and_resume(name, extra, dataset, tmp_path, monkeypatch, **kw):
    """Parameters of an uninterrupted 60-step run and of one killed at step 51 and resumed
    from its step-40 checkpoint."""
    _train(name, tmp_path / 'straight', 60, dataset=dataset, extra=extra, **kw)
    cls = get_algorithm(name)
    original = cls.update
    calls = {'n': 0}

    def crashing_update(self, batch):
        calls['n'] += 1
        if calls['n'] == 51:  # after the checkpoint at step 40
            raise KeyboardInterrupt('simulated kill')
        return original(self, batch)

    monkeypatch.setattr(cls, 'update', crashing_update)
    with pytest.raises(KeyboardInterrupt):
        _train(name, tmp_path / 'crashed', 60, dataset=dataset, extra=extra, **kw)
    monkeypatch.setattr(cls, 'update', original)
    assert json.loads((tmp_path / 'crashed/checkpoints/latest.json').read_text())['step'] == 40
    result = _train(name, tmp_path / 'crashed', 60, resume=True, dataset=dataset,
                    extra=extra, **kw)
    assert result['resumed_from'] == 40
    a, b = _params(tmp_path / 'straight'), _params(tmp_path / 'crashed')
    assert a.keys() == b.keys()
    return a, b


@pytest.mark.parametrize('name,extra', VARIANTS, ids=VARIANT_IDS)
def test_crash_and_resume_equals_uninterrupted(name, extra, tiny_dataset, tmp_path,
                                               monkeypatch):
    a, b = _crash_and_resume(name, extra, tiny_dataset, tmp_path, monkeypatch)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


NEEDS_GPU = pytest.mark.skipif(not torch.cuda.is_available(),
                               reason='needs an NVIDIA GPU: torch sees no CUDA device here')


@NEEDS_GPU
@pytest.mark.parametrize('name,extra', VARIANTS, ids=VARIANT_IDS)
def test_gpu_training_resumes_and_deploys_on_the_cpu(name, extra, tiny_dataset, tmp_path,
                                                     monkeypatch):
    """On a GPU a killed run resumes to the uninterrupted run's parameters (to rounding: some
    CUDA kernels sum in a varying order), and the weights load on the CPU, where deployment
    runs, predicting what the GPU predicts for the same inputs and noise."""
    a, b = _crash_and_resume(name, extra, tiny_dataset, tmp_path, monkeypatch, device='cuda')
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    cpu, _, _ = load_run(tmp_path / 'straight')
    assert cpu.device.type == 'cpu'
    gpu = copy.deepcopy(cpu).to('cuda')
    obs = policy_inputs(cpu, seed=5, step=3)
    noise = cpu.draw_noise(12, np.random.default_rng(1))
    # cuDNN may convolve in TF32 (the unet denoiser): agreement to 1e-3 of the action range.
    np.testing.assert_allclose(gpu.predict(obs, noise=noise), cpu.predict(obs, noise=noise),
                               rtol=0, atol=1e-3)


@NEEDS_GPU
def test_a_cpu_run_resumes_on_the_gpu(tiny_dataset, tmp_path):
    """The device is not part of a run's identity: a run moves to a GPU mid-way."""
    _train('idql', tmp_path / 'run', 40, dataset=tiny_dataset)
    result = _train('idql', tmp_path / 'run', 60, resume=True, dataset=tiny_dataset,
                    device='cuda')
    assert result['resumed_from'] == 40 and result['steps'] == 60
    assert yaml.safe_load((tmp_path / 'run/config.yaml').read_text())['device'] == 'cuda'
    algo, _, _ = load_run(tmp_path / 'run')
    assert np.isfinite(algo.predict(policy_inputs(algo, seed=1, step=2),
                                    rng=np.random.default_rng(0))).all()


def test_training_device_is_checked_with_a_reason(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="'auto', 'cpu', 'cuda' or 'cuda:N'"):
        TrainConfig(algo='bc', dataset='d', out='o', device='gpu')
    if not torch.cuda.is_available():
        # Refused before anything is read or written.
        with pytest.raises(ConfigError, match='sees no CUDA GPU'):
            _train('bc', tmp_path / 'cuda', 10, dataset=tiny_dataset, device='cuda')
        assert not (tmp_path / 'cuda').exists()
    # 'auto' takes the GPU when there is one and the CPU otherwise.
    assert _train('bc', tmp_path / 'auto', 10, dataset=tiny_dataset, device='auto')['steps'] == 10


def test_a_run_is_read_with_the_config_it_was_trained_with(tiny_dataset, tmp_path):
    """A run saves its whole resolved algorithm config; one saved before a setting existed
    is read with the value it was trained with (``legacy``), not today's default."""
    run = tmp_path / 'idql'
    _train('idql', run, 20, dataset=tiny_dataset)
    saved = yaml.safe_load((run / 'config.yaml').read_text())
    cls = get_algorithm('idql').config_class
    assert set(saved['algo_config']) == {f.name for f in dataclasses.fields(cls)}
    assert cls.legacy, 'idql has settings older runs predate'
    for key in cls.legacy:  # as a run from before these settings would have saved it
        del saved['algo_config'][key]
    (run / 'config.yaml').write_text(yaml.safe_dump(saved))
    algo, cfg, _ = load_run(run)
    for key, value in cls.legacy.items():
        assert getattr(algo.cfg, key) == value and cfg.algo_config[key] == value
    assert algo.schedule.prediction == cls.legacy['prediction']
    # Resuming it with the settings given again as for a new run keeps what it started with.
    result = _train('idql', run, 30, resume=True, dataset=tiny_dataset)
    assert result['resumed_from'] == 20
    resumed = yaml.safe_load((run / 'config.yaml').read_text())['algo_config']
    assert {k: resumed[k] for k in cls.legacy} == cls.legacy


@pytest.mark.parametrize('name', ALL)
def test_config_round_trip_and_bad_values(name):
    cls = get_algorithm(name).config_class
    cfg = cls.from_dict(SMALL)
    assert cls.from_yaml(cfg.to_yaml()) == cfg
    with pytest.raises(ConfigError, match='batch_size must be >= 1'):
        cls.from_dict({'batch_size': 0})
    with pytest.raises(ConfigError, match='unknown key'):
        cls.from_dict({'learning_rate': 1e-3})


def test_diffusion_settings_are_checked_with_a_reason():
    cls = get_algorithm('diffusion_bc').config_class
    with pytest.raises(ConfigError, match='not divisible'):  # two halvings of 6 steps
        cls.from_dict({'denoiser': 'unet', 'hidden': [32, 64, 128], 'horizon': 6})
    assert cls.from_dict({'denoiser': 'unet', 'hidden': [32, 64, 128], 'horizon': 8})
    with pytest.raises(ConfigError, match='denoiser must be one of'):
        cls.from_dict({'denoiser': 'transformer'})
    for name in ('diffusion_bc', 'idql', 'diffusion_ql'):
        with pytest.raises(ConfigError, match='prediction must be one of'):
            get_algorithm(name).config_class.from_dict({'prediction': 'velocity'})
    with pytest.raises(ConfigError, match='denoiser must be one of'):  # single actions
        get_algorithm('idql').config_class.from_dict({'denoiser': 'unet'})


def test_inference_samples_the_averaged_denoiser():
    algo = _make('idql', inference_ema=0.9)
    sampler = algo.make_sampler(_episodes(), seed=0)
    for _ in range(20):
        algo.update(to_tensors(sampler.sample()))
    trained = dict(algo.denoiser.named_parameters())
    averaged = dict(algo.averaged_denoiser.named_parameters())
    assert all(not p.requires_grad for p in averaged.values())
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained)  # it lags behind
    assert any(k.startswith('averaged_denoiser.') for k in algo.state_dict())  # checkpointed
    obs = policy_inputs(algo, seed=3, step=5)
    noise = algo.draw_noise(len(obs), np.random.default_rng(0))
    with_average = algo.predict(obs, noise)
    algo.averaged_denoiser.load_state_dict(algo.denoiser.state_dict())
    assert not np.allclose(algo.predict(obs, noise), with_average)  # the average is what samples
    assert _make('idql').averaged_denoiser is None  # off by default: the trained weights sample


@pytest.mark.parametrize('name', ['diffusion_bc', 'cvae_bc'])
def test_chunk_padding_is_left_out_or_learned_as_configured(name):
    algo = _make(name, horizon=8, n_action_steps=4)
    sampler = algo.make_sampler(_episodes(steps=10), seed=0)
    batch = to_tensors(sampler.starting_at(np.array([6, 9])))  # chunks past the episode's end
    _, chunk, mask = algo.chunk_targets(batch, observe=False)
    assert mask.view(2, 8, 2)[:, :, 0].tolist() == [[1] * 4 + [0] * 4, [1] + [0] * 7]
    repeated = chunk.view(2, 8, 2)
    assert torch.equal(repeated[1], repeated[1, :1].expand(8, 2))  # the last action, repeated
    _, _, learned = _make(name, horizon=8, n_action_steps=4,
                          learn_padding=True).chunk_targets(batch, observe=False)
    assert bool((learned == 1).all())


@pytest.mark.parametrize('name,noise', [('idql', 'candidate_noise'),
                                        ('diffusion_bc', 'initial_noise')])
def test_diffusion_temperature_scales_the_initial_noise_at_deploy_time(name, noise,
                                                                        tiny_dataset,
                                                                        tmp_path):
    """A deploy-time setting: the same weights sample their learned distribution at
    temperature 1 and one deterministic action per observation at 0; the bundle records the
    scale with its noise input, so the runner draws as ``predict`` does."""
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime import PolicyRunner

    run = tmp_path / 'run'
    _train(name, run, 20, dataset=tiny_dataset)
    warm, _, _ = load_run(run)
    cold, _, _ = load_run(run, overrides={'temperature': 0.0})
    obs = policy_inputs(warm, seed=2, step=3)
    draws = [cold.predict(obs, rng=np.random.default_rng(seed)) for seed in (0, 1)]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.allclose(warm.predict(obs, rng=np.random.default_rng(0)),
                           warm.predict(obs, rng=np.random.default_rng(1)))
    bundle = export_bundle(run, tmp_path / 'bundle', fp16=False,
                           overrides={'temperature': 0.5})
    spec = next(n for n in PolicyRunner(bundle, backend='onnxruntime-cpu').bundle.noise_inputs
                if n.name == noise)
    assert spec.scale == 0.5
    assert abs(float(spec.draw(2000, np.random.default_rng(0)).std()) - 0.5) < 0.02
    with pytest.raises(ConfigError, match='temperature'):
        load_run(run, overrides={'temperature': -1.0})


def test_idql_weights_its_behaviour_loss_by_advantage_when_asked():
    def weights_seen(algo):
        seen, loss = [], algo.behaviour_loss
        algo.behaviour_loss = lambda obs, act, weights=None: seen.append(weights) or \
            loss(obs, act, weights)
        sampler = algo.make_sampler(_episodes(), seed=0)
        for _ in range(30):
            algo.update(to_tensors(sampler.sample()))
        return seen

    plain = weights_seen(_make('idql'))
    assert len(plain) == 30 and all(w is None for w in plain)  # the paper's: plain imitation
    seen = weights_seen(_make('idql', awr_temperature=3.0))
    assert len(seen) == 30
    assert all(w.shape == (SMALL['batch_size'],) and (w > 0).all() and (w <= 100).all()
               for w in seen)
    assert float(seen[-1].std()) > 0  # one weight per action, from its advantage


def test_diffusion_ql_clips_both_gradients_when_asked():
    def step(algo):
        """One update; the gradient norm each optimizer saw when it stepped."""
        seen = {}
        for name, opt in algo.optimizers().items():
            def stepped(*args, _opt=opt, _step=opt.step, _name=name, **kwargs):
                grads = [p.grad.norm() for g in _opt.param_groups for p in g['params']
                         if p.grad is not None]
                seen[_name] = float(torch.linalg.vector_norm(torch.stack(grads)))
                return _step(*args, **kwargs)
            opt.step = stepped
        sampler = algo.make_sampler(_episodes(), seed=0)
        return algo.update(to_tensors(sampler.sample())), seen

    metrics, plain = step(_make('diffusion_ql'))
    assert not {'actor_grad_norm', 'critic_grad_norm'} & set(metrics)  # off by default
    assert plain['denoiser'] > 1e-3 and plain['critic'] > 1e-3
    metrics, seen = step(_make('diffusion_ql', grad_clip=1e-3))
    assert seen['denoiser'] <= 1e-3 * (1 + 1e-4) and seen['critic'] <= 1e-3 * (1 + 1e-4)
    # What is logged is the norm before clipping: for the critic, which steps first from the
    # same seed and batch, the unclipped run's.
    assert metrics['critic_grad_norm'] == pytest.approx(plain['critic'], rel=1e-5)
    assert metrics['actor_grad_norm'] > 1e-3
    with pytest.raises(ConfigError, match='grad_clip must be >= 0'):
        get_algorithm('diffusion_ql').config_class.from_dict({'grad_clip': -1.0})


def test_run_folder_has_logs_plot_and_refuses_to_clobber(tiny_dataset, tmp_path):
    run = tmp_path / 'bc'
    result = _train('bc', run, 40, dataset=tiny_dataset)
    assert result['steps'] == 40
    for name in ('config.yaml', 'spec.json', 'metrics.csv', 'model.safetensors',
                 'learning_curve.png', 'result.json'):
        assert (run / name).is_file(), name
    rows = (run / 'metrics.csv').read_text().splitlines()
    assert rows[0] == 'step,tag,value,wall_time' and any(',train/loss,' in r for r in rows)
    with pytest.raises(ConfigError, match='already holds a run'):
        _train('bc', run, 40, dataset=tiny_dataset)
    with pytest.raises(ConfigError, match='different'):
        _train('bc', run, 40, resume=True, val_fraction=0.5, dataset=tiny_dataset)


def test_unknown_algorithm_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown algorithm 'ppo'; known: \['bc'"):
        TrainConfig(algo='ppo', dataset='x', out='y')


@pytest.mark.slow
def test_sigkill_then_resume_via_cli(tiny_dataset, tmp_path):
    """A real kill -9 of `dgm train`, then `dgm train --resume` finishes the run."""
    run = tmp_path / 'killed'
    cmd = [sys.executable, '-m', 'dgm_policy_ros.cli.main', 'train', '--algo', 'bc',
           '--dataset', str(tiny_dataset), '--steps', '200000', '--out', str(run),
           '--checkpoint-every', '50', '--eval-every', '-1', '--quiet']
    proc = subprocess.Popen(cmd)
    latest = run / 'checkpoints' / 'latest.json'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if latest.is_file() and json.loads(latest.read_text())['step'] >= 100:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    step = json.loads(latest.read_text())['step']
    assert 100 <= step < 200000
    out = subprocess.run([*cmd[:cmd.index('--steps') + 1], str(step + 100), '--out', str(run),
                          '--resume', '--quiet', '--checkpoint-every', '50', '--eval-every',
                          '-1'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    out = out.stdout
    assert json.loads(out[out.index('{'):])['resumed_from'] == step
    assert Path(run / 'model.safetensors').is_file()


def test_resumed_log_drops_rows_past_the_checkpoint_and_half_written_rows(tmp_path):
    from dgm_policy_ros.training.logger import RunLogger, read_metrics

    (tmp_path / 'metrics.csv').write_text(
        'step,tag,value,wall_time\n10,train/loss,1.0,5.0\n20,train/loss,0.5,6.0\n'
        '30,train/loss,0.25,7.0\n40,train/lo')
    logger = RunLogger(tmp_path, resume_step=20, tensorboard=False)
    logger.log(30, {'train/loss': 0.3})
    logger.close()
    assert read_metrics(tmp_path)['train/loss'] == [(10, 1.0), (20, 0.5), (30, 0.3)]


@pytest.mark.slow
def test_torchrun_ddp_two_processes_keep_parameters_identical(tiny_dataset, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    run = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_addr', '127.0.0.1', '--master_port', str(port),
           '-m', 'dgm_policy_ros.cli.main', 'train', '--algo', 'bc', '--dataset',
           str(tiny_dataset), '--steps', '60', '--out', str(run), '--checkpoint-every', '30',
           '--eval-every', '-1', '--seed', '3', '--quiet']
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = [json.loads((run / f'rank{r}_params.json').read_text()) for r in (0, 1)]
    assert digests[0]['world_size'] == 2
    assert digests[0]['sha256'] == digests[1]['sha256']
    assert json.loads((run / 'spec.json').read_text())['world_size'] == 2
    # Each rank drew its own batches (different sampler seeds), saved with the checkpoint.
    latest = json.loads((run / 'checkpoints' / 'latest.json').read_text())
    states = latest['extra']['sampler_state']
    assert set(states) == {'0', '1'} and states['0'] != states['1']
    # Same seed, same steps: DDP's averaged gradients of two ranks' batches differ from what
    # one process alone computes.
    single = _train('bc', tmp_path / 'single', 60, dataset=tiny_dataset)
    assert single['steps'] == 60
    a, b = _params(run), _params(tmp_path / 'single')
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_flow_log_prob_is_a_density_over_the_action_box():
    """exp(log_prob) integrates to 1 over the bounds: the tanh and scaling Jacobians are right,
    and the density is higher on the behaviour policy's actions than away from them."""
    algo = _make('flow_bc')
    sampler = algo.make_sampler(_episodes(), seed=0)
    for _ in range(200):
        algo.update(to_tensors(sampler.sample()))
    obs = torch.from_numpy(_episodes(seed=4)[0].observations[7:8])
    n = 400
    a0 = torch.linspace(LOW[0], HIGH[0], n + 1)
    a1 = torch.linspace(LOW[1], HIGH[1], n + 1)
    c0, c1 = (a0[:-1] + a0[1:]) / 2, (a1[:-1] + a1[1:]) / 2  # cell centres
    grid = torch.stack(torch.meshgrid(c0, c1, indexing='ij'), -1).reshape(-1, 2)
    with torch.no_grad():
        density = algo.log_prob(obs.expand(len(grid), -1), grid).exp()
        cell = float((HIGH[0] - LOW[0]) * (HIGH[1] - LOW[1])) / n**2
        assert float(density.sum()) * cell == pytest.approx(1.0, abs=0.03)
        expert = torch.from_numpy(_expert(obs.numpy()))
        far = torch.from_numpy(np.where(expert.numpy() > (LOW + HIGH) / 2, LOW, HIGH) * 0.95)
        assert algo.log_prob(obs, expert) > algo.log_prob(obs, far) + 2.0


def test_the_algorithm_contract_is_checked_when_a_class_is_made():
    from dgm_policy_ros.training.algorithm import Algorithm

    with pytest.raises(TypeError, match='family must be one of'):
        type('Odd', (Algorithm,), {'name': 'odd', 'family': 'magic'})
    with pytest.raises(TypeError, match='declares log_prob but has no log_prob'):
        type('NoDensity', (Algorithm,), {'name': 'nd', 'family': 'flow',
                                         'extra_graphs': frozenset({'log_prob'})})
    half = type('Half', (Algorithm,), {'name': 'half', 'family': 'baseline'})
    with pytest.raises(TypeError, match='abstract'):  # act, update, optimizers: required
        half(None, None)
    for name in ALL:  # every registered algorithm declares what it is
        cls = get_algorithm(name)
        assert cls.name == name and cls.kind == 'policy'
