# SPDX-License-Identifier: Apache-2.0
"""Bundles: export parity, hash/consistency checks, the torch-free runner."""
import json
import subprocess
import sys

import numpy as np
import pytest
from test_policies import (
    HIGH,
    LOW,
    OBS_DIM,
    VARIANT_IDS,
    VARIANTS,
    _episodes,
    _train,
    policy_inputs,
    tiny_dataset,  # noqa: F401 - fixture
)
import yaml

from dgm_policy_ros.runtime import BundleError, ObservationError, PolicyRunner, load_bundle


@pytest.fixture(scope='module')
def bundles(tiny_dataset, tmp_path_factory):  # noqa: F811
    from dgm_policy_ros.export.onnx_export import export_bundle

    root = tmp_path_factory.mktemp('bundles')
    out = {}
    for (name, extra), ident in zip(VARIANTS, VARIANT_IDS):
        run = root / f'run-{ident}'
        _train(name, run, 30, dataset=tiny_dataset, extra=extra)
        out[ident] = export_bundle(run, root / ident)
    return out


@pytest.mark.parametrize('ident', VARIANT_IDS)
def test_export_parity_and_manifest(bundles, ident):
    bundle = load_bundle(bundles[ident])
    m = bundle.manifest
    parity = m['parity']['onnxruntime_vs_torch_max_abs_error']
    assert parity['fp32'] <= 1e-5
    assert np.isfinite(parity['fp16'])
    rows_off = m['parity']['fp16_rows_off']
    assert rows_off['rows'] == 64 and 0 <= rows_off['over'] <= 64
    assert (rows_off['over'] == 0) == (parity['fp16'] <= rows_off['tolerance'])
    assert m['observation']['size'] == OBS_DIM and m['action']['size'] == 2
    np.testing.assert_allclose(m['action']['low'], LOW)
    training = {'training/model.safetensors', 'training/config.yaml', 'training/spec.json'}
    assert set(m['files']) == set(m['graphs'].values()) | training
    assert m['inputs'][0]['name'] == 'obs'
    given = len(bundle.input_names)  # obs, then any history fields, then the noise
    assert given == (1 if bundle.history is None else 1 + len(bundle.history.fields))
    assert [n['name'] for n in m['noise_inputs']] == [i['name'] for i in m['inputs'][given:]]
    assert m['exporter']['opset'] >= 17
    fp32_off = m['parity']['fp32_rows_off']
    assert fp32_off['rows'] == 64 and fp32_off['tolerance'] == 1e-5
    assert fp32_off['over'] <= (3 if ident.split('-')[0] in ('bcq', 'idql', 'diffusion_ql')
                                else 0)


def test_fp32_parity_allows_near_ties_only_to_a_policy_that_chooses():
    """A rounding flip between near-equal candidates is one or two rows; a wrong graph is off
    on many: the check tells them apart, and never lets a non-choosing policy off."""
    from dgm_policy_ros.export.onnx_export import ExportError, check_fp32_parity

    rows = np.full(64, 2e-7)
    rows[5] = 0.3  # one flipped choice
    error, off = check_fp32_parity(rows, 1e-5, chooses=True, what='run')
    assert error == pytest.approx(2e-7) and off == {
        'tolerance': 1e-5, 'relative_tolerance': 1e-4, 'rows': 64, 'over': 1}
    with pytest.raises(ExportError, match='1 of 64'):
        check_fp32_parity(rows, 1e-5, chooses=False, what='run')
    rows[:10] = 0.3  # off on many rows: a wrong graph, whatever the policy
    with pytest.raises(ExportError, match='10 of 64'):
        check_fp32_parity(rows, 1e-5, chooses=True, what='run')
    assert check_fp32_parity(np.zeros(64), 1e-5, chooses=False, what='run')[1]['over'] == 0


def test_fp32_parity_scales_with_the_outputs_magnitude():
    """Rounding in a deep or iterated graph grows with what it carries: 1.1e-5 on a row whose
    largest action is 1 is rounding (a diffusion sampler over two frames), on a row of zeros it
    is not; an error of 1e-3 is a wrong graph at either scale."""
    from dgm_policy_ros.export.onnx_export import ExportError, check_fp32_parity

    rows = np.full(64, 1.1e-5)
    error, off = check_fp32_parity(rows, 1e-5, False, 'run', scales=np.ones(64))
    assert error == pytest.approx(1.1e-5) and off['over'] == 0
    with pytest.raises(ExportError, match='64 of 64'):
        check_fp32_parity(rows, 1e-5, False, 'run', scales=np.zeros(64))
    with pytest.raises(ExportError, match='64 of 64'):
        check_fp32_parity(np.full(64, 1e-3), 1e-5, False, 'run', scales=np.ones(64))


@pytest.mark.parametrize('ident', VARIANT_IDS)
def test_runner_matches_torch_predict_for_the_same_noise(bundles, ident):
    from dgm_policy_ros.training.run_folder import load_run

    bundle = load_bundle(bundles[ident])
    algo, _, _ = load_run(bundle.manifest['training']['run'])
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu', seed=11)
    obs = policy_inputs(algo, seed=9, step=4)
    got = runner.infer(obs)
    expected = algo.predict(obs, rng=np.random.default_rng(11))  # same draws, same order
    np.testing.assert_allclose(got, np.clip(expected, LOW, HIGH), atol=1e-5)
    assert got.shape == (12, bundle.chunk_size, 2)


def test_action_queue_executes_n_action_steps_per_inference(bundles):
    runner = PolicyRunner(bundles['cvae_bc'], backend='onnxruntime-cpu')
    assert (runner.bundle.chunk_size, runner.bundle.n_action_steps) == (4, 2)
    obs = _episodes(seed=2)[0].observations
    first_chunk = runner.infer(obs[0])[0]
    runner.latencies_ms.clear()
    actions = [runner.act(obs[t]) for t in range(4)]
    assert len(runner.latencies_ms) == 2  # inference at steps 0 and 2 only
    np.testing.assert_allclose(actions[0], first_chunk[0], atol=1e-6)
    np.testing.assert_allclose(actions[1], first_chunk[1], atol=1e-6)
    runner.reset()
    assert len(runner.queue) == 0


def test_bad_observations_are_refused(bundles):
    runner = PolicyRunner(bundles['bc'], backend='onnxruntime-cpu')
    with pytest.raises(ObservationError, match='wrong size') as info:
        runner.act(np.zeros(OBS_DIM + 1))
    assert info.value.reason == 'wrong size'
    with pytest.raises(ObservationError, match='non-finite'):
        runner.act(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ObservationError, match='non-finite'):
        runner.infer(np.array([[0.0, 0.0, np.inf, 0.0]]))
    with pytest.raises(ObservationError, match='not numeric'):
        runner.act(['a', 'b', 'c', 'd'])
    assert np.isfinite(runner.act(np.zeros(OBS_DIM))).all()


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_or_inconsistent_bundles_are_refused(bundles, tmp_path):
    bad = _copy(bundles['bc'], tmp_path / 'flipped')
    data = bytearray((bad / 'policy.onnx').read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / 'policy.onnx').write_bytes(bytes(data))
    with pytest.raises(BundleError, match='policy.onnx fails its sha256'):
        load_bundle(bad)
    missing = _copy(bundles['bc'], tmp_path / 'missing')
    (missing / 'policy_fp16.onnx').unlink()
    with pytest.raises(BundleError, match='listed in the manifest but missing'):
        load_bundle(missing)
    with pytest.raises(BundleError, match='not a model bundle'):
        load_bundle(tmp_path / 'nowhere')
    renamed = _copy(bundles['gan_bc'], tmp_path / 'renamed')
    manifest = yaml.safe_load((renamed / 'manifest.yaml').read_text())
    manifest['inputs'][1]['name'] = 'z'
    (renamed / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    with pytest.raises(BundleError, match='manifest lists inputs'):
        PolicyRunner(renamed, backend='onnxruntime-cpu')
    resized = _copy(bundles['bc'], tmp_path / 'resized')
    manifest = yaml.safe_load((resized / 'manifest.yaml').read_text())
    manifest['observation']['size'] = 5
    manifest['inputs'][0]['shape'] = ['batch', 5]
    manifest.pop('normalization')  # consistent with the new size, so the graph tells
    (resized / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    with pytest.raises(BundleError, match=r'input obs is \[4\]'):
        PolicyRunner(resized, backend='onnxruntime-cpu')
    newer = _copy(bundles['bc'], tmp_path / 'newer')
    manifest['format_version'] = 99
    (newer / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    with pytest.raises(BundleError, match='newer than this runtime'):
        load_bundle(newer)


def test_export_refuses_to_overwrite_and_leaves_nothing_half_written(bundles, tmp_path):
    from dgm_policy_ros.export.onnx_export import ExportError, export_bundle

    run = load_bundle(bundles['bc']).manifest['training']['run']
    with pytest.raises(FileExistsError):
        export_bundle(run, bundles['bc'])
    with pytest.raises(ExportError, match='differs from torch'):
        export_bundle(run, tmp_path / 'strict', parity_atol=-1.0)
    assert not (tmp_path / 'strict').exists()
    assert not [p for p in tmp_path.iterdir() if 'staging' in p.name]


def test_flow_bundle_ships_its_log_density(bundles):
    import onnxruntime as ort

    bundle = load_bundle(bundles['flow_bc'])
    session = ort.InferenceSession(str(bundle.file('log_prob')))
    obs = _episodes(seed=1)[0].observations[:3]
    act = np.zeros((3, 2), np.float32)
    logp = session.run(None, {'obs': obs, 'action': act})[0]
    assert logp.shape == (3,) and np.isfinite(logp).all()


def test_runtime_never_imports_torch(bundles):
    code = (
        'import sys, numpy as np\n'
        'from dgm_policy_ros.runtime import PolicyRunner\n'
        f'r = PolicyRunner({str(bundles["bcq"])!r}, backend="onnxruntime-cpu")\n'
        f'a = r.act(np.zeros({OBS_DIM}, np.float32))\n'
        'assert a.shape == (2,)\n'
        'print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.strip().replace("'", '"')) == []


@pytest.mark.slow
def test_bundle_eval_in_mujoco_reproduces_the_training_evaluation(tmp_path, capsys):
    from dgm_policy_ros.cli.main import main
    from dgm_policy_ros.sim.collect import CollectConfig, collect
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    collect(CollectConfig(env='Hopper-v5', out='test/hopper/tiny-v0', steps=600, n_envs=2),
            progress=False)
    from dgm_policy_ros.workflows.evaluation import score_snapshot

    run = tmp_path / 'run'
    # A policy that draws noise: the training evaluation must run what ships, the exported
    # bundle in the deployment runner with its seeded noise, to be reproduced exactly.
    trained = Trainer(TrainConfig(algo='gan_bc', dataset='test/hopper/tiny-v0', out=str(run),
                                  steps=200, eval_every=0, eval_episodes=3, tensorboard=False,
                                  progress=False, algo_config={'hidden': [64, 64],
                                                               'inference_noise': 'normal'}),
                      evaluate=score_snapshot).run()
    assert trained['eval_backend'] == 'onnxruntime-cpu'
    # Evaluating mid-run must leave torch's generator as it was (a resumed run restores it
    # from the checkpoint written just before).
    import torch

    from dgm_policy_ros.training.run_folder import load_run
    trainer = Trainer(TrainConfig(algo='gan_bc', dataset='test/hopper/tiny-v0', out=str(run),
                                  tensorboard=False, progress=False), evaluate=score_snapshot)
    algo = load_run(run)[0]
    before = torch.get_rng_state()
    trainer._evaluate(algo)
    assert torch.equal(torch.get_rng_state(), before)
    assert main(['export', str(run), '--out', str(tmp_path / 'bundle')]) == 0
    manifest = load_bundle(tmp_path / 'bundle').manifest
    assert manifest['control_rate_hz'] == pytest.approx(125.0)  # Hopper-v5: dt = 8 ms
    capsys.readouterr()
    assert main(['eval', '--bundle', str(tmp_path / 'bundle'), '--episodes', '3',
                 '--backend', 'onnxruntime-cpu']) == 0
    result = json.loads(capsys.readouterr().out)
    # Same env seeds, same runner, same noise seed (the run's, 0): the same episodes.
    assert result['score_mean'] == pytest.approx(trained['score_mean'], rel=1e-9)
    assert result['training_score_mean'] == pytest.approx(trained['score_mean'])
    assert result['backend'] == 'onnxruntime' and result['p99_ms'] > 0
    assert result['env'] == 'Hopper-v5'  # the bundle's own environment


def test_eval_of_a_bundle_without_an_environment_says_to_name_one(bundles, capsys):
    from dgm_policy_ros.cli.main import main

    # The synthetic dataset the test bundles come from names no environment.
    assert main(['eval', '--bundle', str(bundles['bc']), '--episodes', '1']) == 2
    assert 'names no environment' in capsys.readouterr().err


def test_the_shipped_default_bundle_verifies_and_acts():
    """models/hopper_flow_bc is what `make demo` runs on a fresh machine."""
    from dgm_policy_ros.export.tensorrt_ops import unsupported_ops
    from dgm_policy_ros.resources import share_path
    from dgm_policy_ros.workflows.demo import DEFAULT_BUNDLE

    bundle = load_bundle(share_path('models', DEFAULT_BUNDLE))  # hashes checked
    m = bundle.manifest
    assert (m['algorithm'], m['training']['env_id']) == ('flow_bc', 'Hopper-v5')
    assert bundle.control_rate_hz == pytest.approx(125.0)
    assert m['training']['score_mean'] > 90  # expert-level Hopper policy
    assert sum((bundle.path / f).stat().st_size for f in m['files']) < 8 * 2**20
    assert all(unsupported_ops(bundle.file(g)) == set() for g in m['graphs'])
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu')
    action = runner.act(np.zeros(11, np.float32))
    assert action.shape == (3,) and np.all(np.abs(action) <= 1)


@pytest.mark.parametrize('ident', ['diffusion_bc', 'diffusion_bc-obs2'])
def test_runner_side_sampling_loop_equals_the_unrolled_graph(bundles, ident):
    """The one-step denoiser graph looped in the runner gives the unrolled graph's actions."""
    from dgm_policy_ros.training.run_folder import load_run

    graph = PolicyRunner(bundles[ident], backend='onnxruntime-cpu', seed=4)
    loop = PolicyRunner(bundles[ident], backend='onnxruntime-cpu', seed=4, sampling='runner')
    assert len(graph.bundle.manifest['sampler']['steps']) == 5  # the test's sampling_steps
    algo, _, _ = load_run(graph.bundle.manifest['training']['run'])
    inputs = policy_inputs(algo, seed=8, step=6)
    np.testing.assert_allclose(loop.infer(inputs), graph.infer(inputs), rtol=0, atol=1e-5)
    with pytest.raises(BundleError, match='no one-step sampler'):
        PolicyRunner(bundles['bc'], backend='onnxruntime-cpu', sampling='runner')
