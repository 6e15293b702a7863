# SPDX-License-Identifier: Apache-2.0
"""Policies that see camera frames: the encoder in the graph, the same contract as every family
(train, bit-exact resume, export with its parity gate and fp16 graph, the runner's checks), and
a MetaWorld task scored from rendered images through the runner."""
import json

from conftest import TEST_SIZES
import numpy as np
import pytest
import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.episodes import Episode
from dgm_policy_ros.data.minari_io import write_dataset
from dgm_policy_ros.export.onnx_export import export_bundle
from dgm_policy_ros.networks.image_encoder import ImageEncoder
from dgm_policy_ros.runtime import PolicyRunner
from dgm_policy_ros.runtime.runner import ObservationError
from dgm_policy_ros.training.registry import get_algorithm
from dgm_policy_ros.training.run_folder import load_run
from dgm_policy_ros.training.trainer import TrainConfig, Trainer

IMAGE_FAMILIES = ('bc', 'diffusion_bc', 'cvae_bc')
SIZE = 40
SMALL = {'batch_size': 16, 'hidden': [32, 32], 'image_features': 16}


def _episode(i: int, steps: int, rng) -> Episode:
    """The action is where a bright square sits in the frame: only the image tells it."""
    frames = np.zeros((steps + 1, SIZE, SIZE, 3), np.uint8)
    where = rng.uniform(-1, 1, (steps + 1, 2)).astype(np.float32)
    for t, (x, y) in enumerate(where):
        r, c = int((y + 1) / 2 * (SIZE - 8)), int((x + 1) / 2 * (SIZE - 8))
        frames[t, r:r + 8, c:c + 8] = 255
    state = rng.standard_normal((steps + 1, 6)).astype(np.float32)
    truncs = np.zeros(steps, bool)
    truncs[-1] = True
    return Episode(i, state, where[:-1].copy(), np.zeros(steps, np.float32),
                   np.zeros(steps, bool), truncs, images={'front': frames})


def make_image_dataset():
    """Four episodes of frames with a square to find, in the test's Minari root."""
    from gymnasium import spaces

    rng = np.random.default_rng(0)
    episodes = [_episode(i, 15, rng) for i in range(4)]
    return write_dataset('test/squares-v0', episodes,
                         action_space=spaces.Box(-1, 1, (2,), np.float32),
                         provenance={'proprio_indices': [0, 2]})


@pytest.fixture
def image_dataset(minari_root):
    return make_image_dataset()


def _train(name, dataset, out, steps, resume=False, **extra):
    cfg = TrainConfig(algo=name, dataset=str(dataset), out=str(out), steps=steps, seed=1,
                      checkpoint_every=4, log_every=2, eval_every=-1, tensorboard=False,
                      progress=False,
                      algo_config={**(SMALL if get_algorithm(name).sees_images else {}),
                                   **TEST_SIZES.get(name, {}), **extra})
    return Trainer(cfg, resume=resume).run()


# Diffusion Policy's own denoiser, the temporal U-Net, conditioned on the image features too.
VARIANTS = [(name, {}) for name in IMAGE_FAMILIES] + [('diffusion_bc', {'denoiser': 'unet'})]


@pytest.mark.parametrize('name, extra', VARIANTS,
                         ids=[n + ''.join(f'-{v}' for v in e.values()) for n, e in VARIANTS])
def test_an_image_policy_trains_exports_and_runs_through_the_runner(name, extra, image_dataset,
                                                                    tmp_path):
    _train(name, image_dataset, tmp_path / 'run', 6, **extra)
    algo, _, info = load_run(tmp_path / 'run')
    assert algo.spec.obs_dim == 2 and algo.spec.state_indices == (0, 2)  # the proprio choice
    assert algo.input_names()[:2] == ['obs', 'images/front']
    bundle = export_bundle(tmp_path / 'run', tmp_path / 'bundle')  # the parity gate passes
    manifest = json.loads(json.dumps(__import__('yaml').safe_load(
        (bundle / 'manifest.yaml').read_text())))
    image = next(i for i in manifest['inputs'] if i['name'] == 'images/front')
    assert image == {'name': 'images/front', 'shape': ['batch', SIZE, SIZE, 3],
                     'dtype': 'uint8'}
    assert manifest['observation']['state_indices'] == [0, 2]
    assert manifest['parity']['onnxruntime_vs_torch_max_abs_error']['fp16'] < 0.05

    from dgm_policy_ros.export.tensorrt_ops import non_batch_dynamic_dims, unsupported_ops

    for graph in ('policy.onnx', 'policy_fp16.onnx'):  # what TensorRT's parser must take
        assert not unsupported_ops(bundle / graph), (name, graph)
        assert not non_batch_dynamic_dims(bundle / graph), (name, graph)

    runner = PolicyRunner(bundle, backend='onnxruntime-cpu')
    frames = np.zeros((3, SIZE, SIZE, 3), np.uint8)
    out = runner.infer({'obs': np.zeros((3, 2), np.float32), 'images/front': frames})
    assert out.shape == (3, runner.bundle.chunk_size, 2) and np.isfinite(out).all()
    action = runner.act({'obs': np.zeros(2, np.float32), 'images/front': frames[0]})
    assert action.shape == (2,)
    bad = [({'obs': np.zeros(2), 'images/front': frames[0].astype(np.float32)},
            'wrong encoding'),
           ({'obs': np.zeros(2), 'images/front': frames[0, :20]}, 'wrong size'),
           ({'obs': np.zeros(2)}, 'missing input'),
           (np.zeros(2), 'missing images')]
    for inputs, reason in bad:
        with pytest.raises(ObservationError) as caught:
            runner.infer(inputs)
        assert caught.value.reason == reason


def test_the_encoder_crops_at_random_in_training_and_at_the_centre_after():
    torch.manual_seed(0)
    encoder = ImageEncoder('conv', 20, 20, 3, 8, crop=0.5)
    frames = torch.arange(20 * 20, dtype=torch.int32).view(1, 20, 20, 1).expand(4, 20, 20, 3)
    encoder.eval()
    centre = encoder.crop(frames)
    assert centre.shape == (4, 10, 10, 3) and int(centre[0, 0, 0, 0]) == 5 * 20 + 5
    encoder.train()
    crops = encoder.crop(frames)
    corners = {int(c) for c in crops[:, 0, 0, 0]}
    assert crops.shape == (4, 10, 10, 3) and len(corners) > 1  # each sample its own offset
    for k, corner in enumerate(crops[:, 0, 0, 0].tolist()):  # a contiguous window
        row, col = divmod(corner, 20)
        expected = frames[k, row:row + 10, col:col + 10]
        assert torch.equal(crops[k], expected)


def test_an_image_run_resumes_bit_exactly(image_dataset, tmp_path):
    _train('diffusion_bc', image_dataset, tmp_path / 'straight', 8)
    _train('diffusion_bc', image_dataset, tmp_path / 'halves', 4)
    _train('diffusion_bc', image_dataset, tmp_path / 'halves', 8, resume=True)
    a = load_run(tmp_path / 'straight')[0].state_dict()
    b = load_run(tmp_path / 'halves')[0].state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_the_averaged_diffusion_policy_averages_its_image_encoder_too(image_dataset,
                                                                       tmp_path):
    """With ``inference_ema`` the features the averaged denoiser samples from come from an
    averaged encoder, checkpointed and exported with it (the graph passes its parity gate)."""
    _train('diffusion_bc', image_dataset, tmp_path / 'run', 6, inference_ema=0.9)
    algo = load_run(tmp_path / 'run')[0]
    trained = dict(algo.vision.named_parameters())
    averaged = dict(algo.averaged_vision.named_parameters())
    assert all(not p.requires_grad for p in averaged.values())
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained)  # it lags behind
    assert any(k.startswith('averaged_vision.') for k in algo.state_dict())
    rng = np.random.default_rng(0)
    inputs = {'obs': np.zeros((4, 2), np.float32),
              'images/front': rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)}
    noise = algo.draw_noise(4, np.random.default_rng(1))
    with_average = algo.predict(inputs, noise)
    algo.averaged_vision.load_state_dict(algo.vision.state_dict())
    assert not np.allclose(algo.predict(inputs, noise), with_average)  # the average sees
    export_bundle(tmp_path / 'run', tmp_path / 'bundle')  # parity with the averaged model


def test_a_diffusion_policy_sees_a_window_of_frames(image_dataset, tmp_path):
    """``n_obs_steps`` 2 with cameras (Diffusion Policy's setting): the graph takes each
    camera's last two frames, the runner keeps that window (the first frame repeated at the
    start, as training pads), and the earlier frame changes the action."""
    _train('diffusion_bc', image_dataset, tmp_path / 'run', 6, n_obs_steps=2)
    bundle = export_bundle(tmp_path / 'run', tmp_path / 'bundle')  # the parity gate passes
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu', seed=0)
    inputs = {i['name']: i for i in runner.bundle.manifest['inputs']}
    assert inputs['images/front'] == {'name': 'images/front', 'shape': ['batch', 2, SIZE, SIZE, 3],
                                      'dtype': 'uint8'}
    assert inputs['obs']['shape'] == ['batch', 2, 2]
    assert runner.bundle.image_inputs == {'images/front': (SIZE, SIZE, 3)}

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2))
    state = np.zeros(2, np.float32)

    def second_action(first_frame):
        runner.reset()
        runner.rng = np.random.default_rng(1)  # the same noise for both
        runner.queue.n_action_steps = 1  # infer at every step
        runner.act({'obs': state, 'images/front': first_frame})
        window = runner.history.feeds()['images/front']
        assert np.array_equal(window[0], first_frame) and np.array_equal(window[1], first_frame)
        action = runner.act({'obs': state, 'images/front': b})
        window = runner.history.feeds()['images/front']
        assert np.array_equal(window[0], first_frame) and np.array_equal(window[1], b)
        return action

    assert not np.allclose(second_action(a), second_action(b))  # the earlier frame is seen
    windows = {'obs': np.zeros((3, 2, 2), np.float32),
               'images/front': np.zeros((3, 2, SIZE, SIZE, 3), np.uint8)}
    assert runner.infer(windows).shape == (3, runner.bundle.chunk_size, 2)
    with pytest.raises(ObservationError) as caught:
        runner.infer({**windows, 'images/front': windows['images/front'][:, :1]})
    assert caught.value.reason == 'wrong size'
    with pytest.raises(ObservationError) as caught:
        runner.infer({**windows, 'images/front': windows['images/front'].astype(np.float32)})
    assert caught.value.reason == 'wrong encoding'


def test_state_policies_train_on_an_image_dataset_without_its_cameras(image_dataset,
                                                                      tmp_path):
    _train('td3bc', image_dataset, tmp_path / 'td3bc', 2, **{'hidden': [16, 16]})
    assert load_run(tmp_path / 'td3bc')[0].spec.obs_dim == 6  # the whole state, no images
    _train('bc', image_dataset, tmp_path / 'bc', 2, use_images=False)
    algo = load_run(tmp_path / 'bc')[0]
    assert algo.vision is None and algo.input_names() == ['obs']
    with pytest.raises(ConfigError, match='image_encoder must be one of'):
        get_algorithm('bc').config_class.from_dict({'image_encoder': 'vgg'})
    from dgm_policy_ros.data.transitions_file import save_transitions

    extra = tmp_path / 'extra.safetensors'
    n = 4
    save_transitions(extra, {'observations': np.zeros((n, 2), np.float32),
                             'actions': np.zeros((n, 2), np.float32),
                             'rewards': np.zeros(n, np.float32),
                             'next_observations': np.zeros((n, 2), np.float32),
                             'terminals': np.zeros(n, np.float32)}, {})
    cfg = TrainConfig(algo='bc', dataset=str(image_dataset), out=str(tmp_path / 'mixed'),
                      steps=1, eval_every=-1, tensorboard=False, progress=False,
                      extra_transitions=str(extra), algo_config=SMALL)
    with pytest.raises(ConfigError, match='extra transitions hold no camera frames'):
        Trainer(cfg).run()


@pytest.mark.parametrize('name,extra', [('bc', {}), ('diffusion_bc', {'n_obs_steps': 2})],
                         ids=['bc', 'diffusion_bc-window'])
def test_a_metaworld_image_policy_is_scored_from_rendered_frames(minari_root, tmp_path, name,
                                                                 extra):
    """Through the runner, from frames rendered as the dataset's were (a window of them for a
    policy that sees the last two)."""
    from conftest import collect_or_skip

    from dgm_policy_ros.sim.evaluate import evaluate_runner

    collect_or_skip(env='metaworld/reach-v3', agent='expert', episodes=2, n_envs=2,
                    images=True, image_size=48, out='test/reach-frames-v0')
    _train(name, 'test/reach-frames-v0', tmp_path / 'run', 4, **extra)
    bundle = export_bundle(tmp_path / 'run', tmp_path / 'bundle')
    runner = PolicyRunner(bundle, backend='onnxruntime-cpu')
    assert runner.bundle.image_inputs == {'images/corner2': (48, 48, 3)}
    assert runner.bundle.camera_views[0]['camera'] == 'corner2'
    result = evaluate_runner(runner, episodes=2, seed=0)
    assert result.successes is not None and result.lengths.max() <= 500
    assert runner.latencies_ms  # every step went through the runner


def test_the_resnet18_encoder_exports_within_the_parity_gate(image_dataset, tmp_path):
    """ResNet-18 with GroupNorm and spatial softmax (Diffusion Policy's encoder) through the
    same export: parity with torch, static shapes, every op in TensorRT's parser."""
    from dgm_policy_ros.export.tensorrt_ops import non_batch_dynamic_dims, unsupported_ops

    _train('bc', image_dataset, tmp_path / 'run', 1, image_encoder='resnet18')
    bundle = export_bundle(tmp_path / 'run', tmp_path / 'bundle')
    assert not unsupported_ops(bundle / 'policy.onnx')
    assert not non_batch_dynamic_dims(bundle / 'policy.onnx')
    params = sum(p.numel() for p in load_run(tmp_path / 'run')[0].vision.parameters())
    assert 11e6 < params < 12e6  # ResNet-18's 11.2 M, less its classifier, plus the head
