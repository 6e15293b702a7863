# SPDX-License-Identifier: Apache-2.0
"""TensorRT: what can be checked without a GPU runs here; the rest skips with its reason and
runs unchanged on a machine with TensorRT and a CUDA GPU."""
import numpy as np
import pytest
from test_export_runtime import bundles  # noqa: F401 - fixture
from test_policies import VARIANT_IDS, tiny_dataset  # noqa: F401 - fixture

from dgm_policy_ros.export.tensorrt_ops import (
    TRT10_PARSER_OPS,
    non_batch_dynamic_dims,
    unsupported_ops,
)
from dgm_policy_ros.runtime import load_bundle
from dgm_policy_ros.runtime.tensorrt_engine import EngineError, engine_filename, engine_mismatch


@pytest.mark.parametrize('ident', VARIANT_IDS)
def test_every_op_is_one_tensorrt_parses_and_only_batch_is_dynamic(bundles, ident):  # noqa: F811
    bundle = load_bundle(bundles[ident])
    assert {'policy', 'policy_fp16'} <= set(bundle.manifest['graphs'])
    for graph in bundle.manifest['graphs']:  # policy, fp16 variant, flow log-density
        path = bundle.file(graph)
        assert unsupported_ops(path) == set(), graph
        assert non_batch_dynamic_dims(path) == {}, graph


def test_op_check_catches_an_unsupported_op(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node('Unique', ['x'], ['y'])
    graph = helper.make_graph([node], 'g', [helper.make_tensor_value_info(
        'x', TensorProto.FLOAT, ['batch', 3])], [helper.make_tensor_value_info(
            'y', TensorProto.FLOAT, ['n'])])
    onnx.save(helper.make_model(graph), tmp_path / 'u.onnx')
    assert unsupported_ops(tmp_path / 'u.onnx') == {'Unique'}
    assert 'Gemm' in TRT10_PARSER_OPS and 'Attention' not in TRT10_PARSER_OPS


def test_engine_names_and_mismatch_reasons():
    assert engine_filename('policy', 'fp16', (8, 7), '10.3.0') == \
        'policy.fp16.sm87.trt10.3.0.engine'
    meta = {'compute_capability': [8, 7], 'tensorrt_version': '10.3.0', 'onnx_sha256': 'abc',
            'precision': 'fp16'}
    assert engine_mismatch(meta, (8, 7), '10.3.0', 'abc', 'fp16') is None
    assert 'sm87, this GPU is sm90' in engine_mismatch(meta, (9, 0), '10.3.0', 'abc', 'fp16')
    assert 'TensorRT 10.3.0, this is 11.0' in engine_mismatch(meta, (8, 7), '11.0', 'abc',
                                                              'fp16')
    assert 'different ONNX' in engine_mismatch(meta, (8, 7), '10.3.0', 'xyz', 'fp16')
    assert 'built for fp16' in engine_mismatch(meta, (8, 7), '10.3.0', 'abc', 'fp32')


def _gpu_reason():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return 'TensorRT is not installed on this machine'
    from dgm_policy_ros.runtime.tensorrt_engine import cuda_device_count

    if cuda_device_count() == 0:
        return 'no CUDA GPU (or cuda-python) on this machine'
    return None


needs_gpu = pytest.mark.skipif(_gpu_reason() is not None, reason=str(_gpu_reason()))


@needs_gpu
@pytest.mark.parametrize('precision,atol', [('fp32', 1e-4), ('fp16', 2e-2)])
@pytest.mark.parametrize('ident', ['bc', 'bcq', 'flow_bc', 'cvae_bc'])
def test_engine_matches_onnxruntime_and_mismatch_is_rebuilt(bundles, ident, precision, atol,  # noqa: F811
                                                            tmp_path):
    import json

    from dgm_policy_ros.runtime import PolicyRunner

    bundle = load_bundle(bundles[ident])
    ort = PolicyRunner(bundle, backend='onnxruntime-cpu', seed=1)
    engine = tmp_path / 'policy.engine'
    trt = PolicyRunner(bundle, backend='tensorrt', seed=1, engine_path=engine,
                       precision=precision)
    obs = np.random.default_rng(0).standard_normal((8, bundle.obs_size)).astype(np.float32)
    np.testing.assert_allclose(trt.infer(obs), ort.infer(obs), atol=atol)
    sidecar = json.loads(engine.with_name('policy.engine.json').read_text())
    sidecar['tensorrt_version'] = '0.0'
    engine.with_name('policy.engine.json').write_text(json.dumps(sidecar))
    with pytest.raises(EngineError, match='rebuilding is disabled'):
        from dgm_policy_ros.runtime.tensorrt_engine import resolve_engine

        resolve_engine(bundle.file('policy'), engine, precision, rebuild=False)
    PolicyRunner(bundle, backend='tensorrt', engine_path=engine, precision=precision)
    assert json.loads(engine.with_name('policy.engine.json').read_text())[
        'tensorrt_version'] != '0.0'
