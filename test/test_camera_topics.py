# SPDX-License-Identifier: Apache-2.0
"""Camera topics in: Image and CompressedImage sources in the observation spec, decoded into the
bundle's frames (every malformed image an ObservationError with its reason), and the policy node
driving a bundle that sees images from real topics, with the fault action on a bad frame."""
import io

import numpy as np
import pytest

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.runtime.observation_spec import check_cameras, load_observation_spec
from dgm_policy_ros.runtime.runner import ObservationError

sensor_msgs = pytest.importorskip('sensor_msgs.msg', reason='ROS 2 messages not installed')
Image, CompressedImage = sensor_msgs.Image, sensor_msgs.CompressedImage
from test_ros_nodes import Probe, make_policy, ros, wait_for  # noqa: E402,F401


def raw(frame: np.ndarray, encoding: str, pad: int = 0) -> Image:
    height, width = frame.shape[:2]
    rows = frame.reshape(height, -1)
    if pad:
        rows = np.concatenate([rows, np.zeros((height, pad), np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


def compressed(frame: np.ndarray, fmt: str) -> CompressedImage:
    from PIL import Image as PilImage

    buffer = io.BytesIO()
    PilImage.fromarray(frame).save(buffer, format=fmt.upper())
    msg = CompressedImage(format=fmt)
    msg.data = buffer.getvalue()
    return msg


SPEC = """
- {topic: /cam/obs, type: std_msgs/Float64MultiArray, size: 2}
- {topic: /cam/image, type: sensor_msgs/Image, camera: front}
"""


def test_camera_sources_are_parsed_and_matched_to_the_bundle_inputs():
    sources = load_observation_spec(SPEC)
    assert [s.is_camera for s in sources] == [False, True] and sources[1].width == 0
    assert sources[1].input_name == 'images/front'
    check_cameras(sources, {'images/front': (40, 40, 3)})
    with pytest.raises(ConfigError, match=r"feeds camera inputs \['images/front'\], the "
                                          r"bundle takes \['images/wrist'\]"):
        check_cameras(sources, {'images/wrist': (40, 40, 3)})
    with pytest.raises(ConfigError, match='camera names the bundle image input'):
        load_observation_spec('- {topic: /x, type: sensor_msgs/Image}')
    with pytest.raises(ConfigError, match='feeds a camera input twice'):
        load_observation_spec('- {topic: /a, type: sensor_msgs/Image, camera: c}\n'
                              '- {topic: /b, type: sensor_msgs/CompressedImage, camera: c}')


def test_images_decode_to_the_bundle_frame_and_bad_ones_say_why():
    source = load_observation_spec(SPEC)[1]
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    shape = (40, 40, 3)
    np.testing.assert_array_equal(source.frame(raw(frame, 'rgb8'), shape), frame)
    np.testing.assert_array_equal(source.frame(raw(frame[..., ::-1].copy(), 'bgr8'), shape),
                                  frame)
    np.testing.assert_array_equal(source.frame(raw(frame, 'rgb8', pad=8), shape), frame)
    rgba = np.concatenate([frame, np.full((40, 40, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(source.frame(raw(rgba, 'rgba8'), shape), frame)
    gray = frame[..., 0].copy()
    np.testing.assert_array_equal(source.frame(raw(gray, 'mono8'), (40, 40, 1))[..., 0], gray)
    big = np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)
    assert source.frame(raw(big, 'rgb8'), shape).shape == shape  # resized to the bundle's

    jpeg = load_observation_spec('- {topic: /j, type: sensor_msgs/CompressedImage, '
                                 'camera: front}')[0]
    smooth = np.repeat(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], 40, 0)
    smooth = np.repeat(smooth, 3, axis=2)
    assert np.abs(jpeg.frame(compressed(smooth, 'jpeg'), shape).astype(int) - smooth).max() < 12
    np.testing.assert_array_equal(jpeg.frame(compressed(frame, 'png'), shape), frame)
    # A camera-sized JPEG for a small frame decodes at a reduced DCT scale: same picture.
    wide = np.repeat(np.repeat(smooth, 12, axis=0), 16, axis=1)  # 480 x 640
    small = jpeg.frame(compressed(wide, 'jpeg'), shape)
    assert small.shape == shape and np.abs(small.astype(int) - smooth).max() < 12

    truncated = raw(frame, 'rgb8')
    truncated.data = bytes(truncated.data)[:1000]
    corrupt = compressed(frame, 'jpeg')
    corrupt.data = bytes(corrupt.data)[:30]
    tiff = compressed(frame, 'tiff')
    cases = [(source, raw(frame, '16UC1'), 'wrong encoding'),
             (source, raw(gray, 'mono8'), 'wrong encoding'),  # one channel for three
             (source, truncated, 'truncated'),
             (source, Image(height=40, width=40, encoding='rgb8', step=10), 'wrong size'),
             (jpeg, corrupt, 'undecodable'),
             (jpeg, tiff, 'wrong encoding')]
    for src, msg, reason in cases:
        with pytest.raises(ObservationError) as caught:
            src.frame(msg, shape)
        assert caught.value.reason == reason, (msg.encoding if hasattr(msg, 'encoding')
                                               else msg.format, caught.value)


def test_the_node_drives_an_image_bundle_from_camera_topics(ros, minari_root,  # noqa: F811
                                                           tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.qos import qos_profile_sensor_data
    from test_image_policies import _train, make_image_dataset

    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime import PolicyRunner

    _train('bc', make_image_dataset(), tmp_path / 'run', 2)
    bundle = export_bundle(tmp_path / 'run', tmp_path / 'bundle', fp16=False)
    node = make_policy(ros, bundle, 'cam', observation_spec=SPEC, stale_timeout_s=5.0,
                       control_rate_hz=10.0, on_fault='zero')
    unfed = SPEC.split('\n- {topic: /cam/image')[0]  # no source for the bundle's camera
    assert make_policy(ros, bundle, 'nocam', observation_spec=unfed).trigger_configure() == \
        TransitionCallbackReturn.FAILURE
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    probe = Probe(ros, '/cam/obs', '/cam/cmd')
    camera = probe.node.create_publisher(Image, '/cam/image', qos_profile_sensor_data)
    frame = np.zeros((40, 40, 3), np.uint8)
    frame[10:18, 20:28] = 255
    obs = np.array([0.1, -0.3])

    def send(image, step):
        image.header.stamp = probe.node.get_clock().now().to_msg()
        camera.publish(image)
        if '/cam/image' in node.latest:  # the frame first: the vector topic triggers the step
            probe.send(obs, step=step)

    assert wait_for(lambda: probe.command_for(1), every=lambda: send(raw(frame, 'rgb8'), 1))
    expected = PolicyRunner(bundle, backend='onnxruntime-cpu').infer(
        {'obs': obs, 'images/front': frame})[0, 0]
    np.testing.assert_allclose(probe.command_for(1).data, expected, atol=1e-5)

    bad = raw(frame, 'rgb8')
    bad.data = bytes(bad.data)[:500]
    steps = iter(range(100, 10_000))  # a new step each time: a repeated one is only resent
    assert wait_for(lambda: probe.diag_with('truncated'), every=lambda: send(bad, next(steps)))
    assert node.counters['truncated'] >= 1
    faulted = [c for c in probe.commands if c.layout.data_offset >= 100]
    assert faulted and np.allclose(faulted[-1].data, 0.0)  # the fault action (on_fault: zero)
    steps = iter(range(1000, 10_000))

    def recovered():
        return [c for c in probe.commands if c.layout.data_offset >= 1000 and
                np.allclose(c.data, expected, atol=1e-5)]

    assert wait_for(recovered, every=lambda: send(raw(frame, 'rgb8'), next(steps)))


def test_a_lockstep_image_sim_loop_equals_in_process_evaluation(minari_root, tmp_path):
    """The simulator node renders the bundle's camera and publishes it beside the state; the
    policy node pairs each frame with its own step ('drop'); per-episode results equal the
    in-process evaluation of the same bundle and seeds, bit for bit."""
    from conftest import collect_or_skip
    from test_image_policies import _train

    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime import PolicyRunner
    from dgm_policy_ros.sim.evaluate import evaluate_runner
    from dgm_policy_ros.workflows.sim_loop import run_sim_loop

    collect_or_skip(env='metaworld/reach-v3', agent='expert', episodes=2, n_envs=2,
                    images=True, image_size=48, out='test/reach-loop-v0')
    _train('diffusion_bc', 'test/reach-loop-v0', tmp_path / 'run', 4)
    bundle = export_bundle(tmp_path / 'run', tmp_path / 'bundle', fp16=False)
    result = run_sim_loop(bundle, 'metaworld/reach-v3', episodes=2, lockstep=True, seed=7,
                          backend='onnxruntime-cpu', timeout_s=300)
    local = evaluate_runner(PolicyRunner(bundle, backend='onnxruntime-cpu'),
                            'metaworld/reach-v3', 2, seed=7, parallel=False)
    assert result['lengths'] == local.lengths.tolist()
    assert result['returns'] == local.returns.tolist()  # bit for bit


@pytest.mark.slow
def test_fuzzed_camera_frames_never_kill_the_node(ros, minari_root, tmp_path):  # noqa: F811
    """Hostile Image messages (wrong encodings, absurd sizes, truncated, empty, old, future,
    bursts) at a policy_node process driving an image bundle: the process stays up, every
    command is finite and within bounds, and normal commands resume on good frames."""
    import time

    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Float64MultiArray
    from test_image_policies import _train, make_image_dataset
    from test_node_reliability import _spawn

    from dgm_policy_ros.export.onnx_export import export_bundle

    _train('bc', make_image_dataset(), tmp_path / 'run', 2)
    bundle = export_bundle(tmp_path / 'run', tmp_path / 'bundle', fp16=False)
    spec = tmp_path / 'spec.yaml'
    spec.write_text(SPEC.replace('/cam/', '/fz/'))
    proc, log = _spawn(['dgm_policy_ros.ros.policy_node', '--ros-args', '-r',
                        '__node:=policy_fuzz_cam', '-p', f'model_file_path:={bundle}',
                        '-p', f'observation_spec:={spec}', '-p', 'backend:=onnxruntime-cpu',
                        '-p', 'action_topic:=/fz/cmd', '-p', 'control_rate_hz:=20.0',
                        '-p', 'stale_timeout_s:=0.3', '-p', 'on_fault:=zero',
                        '-p', 'autostart:=true'], tmp_path, 'policy')
    probe = Probe(ros, '/fz/obs', '/fz/unused')
    camera = probe.node.create_publisher(Image, '/fz/image', qos_profile_sensor_data)
    received = []
    probe.node.create_subscription(Float64MultiArray, '/fz/cmd',
                                   lambda m: received.append(list(m.data)), 50)
    rng = np.random.default_rng(1)
    frame = np.zeros((40, 40, 3), np.uint8)
    frame[5:13, 25:33] = 255

    def stamped(msg, offset_s=0.0):
        now = probe.node.get_clock().now().nanoseconds + int(offset_s * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(max(now, 1), 1_000_000_000)
        return msg

    def send_good():
        camera.publish(stamped(raw(frame, 'rgb8')))
        probe.send([0.1, -0.3])

    def moving():
        return received and any(v != 0.0 for v in received[-1])

    try:
        assert wait_for(moving, timeout=60, every=send_good), log.read_text()[-2000:]
        cases = ['encoding', 'mono', 'truncated', 'empty', 'huge', 'step', 'oversized', 'old',
                 'future', 'burst', 'good']
        deadline = time.monotonic() + 20.0
        for i in range(300):  # bounded in count and in time
            if time.monotonic() > deadline:
                break
            case = cases[i % len(cases)] if i < len(cases) else rng.choice(cases)
            msg = raw(frame, 'rgb8')
            if case == 'encoding':
                msg.encoding = str(rng.choice(['16UC1', 'yuv422', '', 'RGB8x', '32FC3']))
            elif case == 'mono':
                msg = raw(frame[..., 0].copy(), 'mono8')
            elif case == 'truncated':
                msg.data = bytes(msg.data)[:int(rng.integers(0, 4800))]
            elif case == 'empty':
                msg = Image(encoding='rgb8')
            elif case == 'huge':
                msg.height, msg.width, msg.step = 2**31, 2**31, 2**32 - 1
            elif case == 'step':
                msg.step = int(rng.integers(0, 119))
            elif case == 'oversized':
                msg = raw(rng.integers(0, 256, (400, 300, 3), dtype=np.uint8), 'bgr8')
            if case == 'burst':
                for _ in range(50):
                    camera.publish(stamped(raw(frame, 'rgb8')))
            else:
                offset = {'old': -30.0, 'future': float(rng.uniform(1, 1e6))}.get(case, 0.0)
                camera.publish(stamped(msg, offset))
            probe.send([0.1, -0.3] + rng.normal(0, 0.1, 2))
            time.sleep(float(rng.uniform(0, 0.02)))
            assert proc.poll() is None, log.read_text()[-3000:]
        assert wait_for(moving, timeout=10, every=send_good)
        assert proc.poll() is None, log.read_text()[-3000:]

        def counted(reason):  # the node's own fault counters, on /diagnostics
            return any(kv.key == reason and kv.value not in ('', '0')
                       for d in probe.diags for kv in d.values)

        assert wait_for(lambda: all(counted(r) for r in ('wrong_encoding', 'truncated',
                                                          'wrong_size')), timeout=5), \
            sorted({kv.key for d in probe.diags for kv in d.values})
        values = np.asarray(received)
        assert np.isfinite(values).all() and np.abs(values).max() <= 1.0 + 1e-9
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)
    assert 'Traceback' not in log.read_text(), log.read_text()[-3000:]


def test_the_visuomotor_demo_runs_its_embedded_bundle_and_writes_a_video(tmp_path):
    pytest.importorskip('metaworld', reason='metaworld not installed (make venv installs it)')
    from dgm_policy_ros.resources import share_path
    from dgm_policy_ros.runtime.bundle import load_bundle
    from dgm_policy_ros.workflows.demo import VISUOMOTOR_BUNDLES, run_visuomotor_demo

    for task, name in VISUOMOTOR_BUNDLES.items():
        folder = share_path('models', name)
        assert sum(f.stat().st_size for f in folder.rglob('*') if f.is_file()) <= 20e6
        assert load_bundle(folder).image_inputs  # it sees images
    from dgm_policy_ros.sim.cameras import default_views
    from dgm_policy_ros.sim.environments import make_env

    try:  # the simulator node renders in its own process: check here that it can
        make_env('metaworld/button-press-topdown-v3',
                 default_views('metaworld/button-press-topdown-v3')).close()
    except ConfigError as exc:
        if 'cannot render headless' in str(exc):
            pytest.skip(str(exc))
        raise
    assert run_visuomotor_demo('metaworld/button-press-topdown-v3', episodes=1,
                               video=str(tmp_path / 'rollout.gif')) == 0
    import imageio.v2 as imageio

    frames = imageio.mimread(tmp_path / 'rollout.gif')
    assert len(frames) > 10 and frames[0].shape[:2] == (96, 96)
