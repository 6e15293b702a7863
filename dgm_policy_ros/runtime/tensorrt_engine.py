# SPDX-License-Identifier: Apache-2.0
"""TensorRT engines from a bundle's ONNX: build, name, check, and run (torch-free).

Written against the TensorRT 10 Python API (JetPack 6 ships 10.3) and 11.x (x86):

- 10.x: networks may be weakly typed; fp16 is ``BuilderFlag.FP16`` on the fp32 graph.
- 11.x: weak typing and ``BuilderFlag.FP16`` are gone; precision comes from the graph's types,
  so fp16 means building the bundle's ``policy_fp16.onnx`` (fp16 inside, fp32 I/O) with the
  ``STRONGLY_TYPED`` network flag.

An engine only runs on the GPU architecture and TensorRT version it was built with. Engines are
named ``<graph>.<precision>.sm<major><minor>.trt<version>.engine`` and carry a JSON sidecar
(compute capability, TensorRT version, sha256 of the source ONNX, precision); one that does not
match this machine or its bundle is rebuilt, or refused with a clear message when rebuilding is
disabled. It is never loaded silently.

Device memory and streams come from cuda-python (``cuda.bindings.runtime``, or the older
``cuda.cudart``), so the runtime needs neither torch nor pycuda.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dgm_policy_ros.errors import DgmError
from dgm_policy_ros.utils.atomic import atomic_write_bytes, atomic_write_json
from dgm_policy_ros.utils.hashing import sha256_file

PRECISIONS = ('fp32', 'fp16')


class EngineError(DgmError, RuntimeError):
    """An engine cannot be built, or does not fit this machine or bundle."""


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:  # cuda-python < 12.6.1
        from cuda import cudart
    return cudart


def _check(ret):
    """cuda-python returns (err, value...) tuples: raise on error, return the value(s)."""
    cudart = _cudart()
    err, rest = ret[0], ret[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        raise EngineError(f'CUDA error {err}')
    return rest[0] if len(rest) == 1 else (rest or None)


def cuda_device_count() -> int:
    try:
        return int(_check(_cudart().cudaGetDeviceCount()))
    except Exception:  # noqa: BLE001 - no cuda-python, no driver, or no device
        return 0


def compute_capability(device: int = 0) -> tuple[int, int]:
    props = _check(_cudart().cudaGetDeviceProperties(device))
    return int(props.major), int(props.minor)


def tensorrt_version() -> str:
    import tensorrt as trt

    return trt.__version__


def engine_filename(graph: str, precision: str, capability: tuple[int, int],
                    trt_version: str) -> str:
    return f'{graph}.{precision}.sm{capability[0]}{capability[1]}.trt{trt_version}.engine'


def engine_mismatch(meta: dict[str, Any], capability: tuple[int, int], trt_version: str,
                    onnx_sha256: str, precision: str) -> str | None:
    """Why an engine (by its sidecar) cannot be used here; None when it can."""
    if tuple(meta.get('compute_capability', ())) != tuple(capability):
        return (f"built for sm{''.join(map(str, meta.get('compute_capability', [])))}, this "
                f'GPU is sm{capability[0]}{capability[1]}')
    if meta.get('tensorrt_version') != trt_version:
        return f"built with TensorRT {meta.get('tensorrt_version')}, this is {trt_version}"
    if meta.get('onnx_sha256') != onnx_sha256:
        return 'built from a different ONNX graph than this bundle holds'
    if meta.get('precision') != precision:
        return f"built for {meta.get('precision')}, {precision} requested"
    return None


def build_engine(onnx_path: Path, engine_path: Path, precision: str = 'fp32',
                 timing_cache: Path | None = None, max_batch: int = 32,
                 workspace_bytes: int = 1 << 30) -> Path:
    """Build and serialize an engine (atomically), with its sidecar and timing cache."""
    import tensorrt as trt

    if precision not in PRECISIONS:
        raise EngineError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    major = int(trt.__version__.split('.')[0])
    strongly_typed = major >= 11 or precision == 'fp16' and _is_fp16_graph(onnx_path)
    if major >= 11 and precision == 'fp16' and not _is_fp16_graph(onnx_path):
        raise EngineError('TensorRT >= 11 builds fp16 only from an fp16 graph: use the '
                          "bundle's policy_fp16.onnx")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = '\n'.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f'TensorRT cannot parse {onnx_path}:\n{errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision == 'fp16' and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)  # TensorRT 10.x weak typing
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise EngineError(f'input {tensor.name} has a dynamic non-batch dimension {rest}')
        profile.set_shape(tensor.name, (1, *rest), (1, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    blob = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b''
    config.set_timing_cache(config.create_timing_cache(blob), ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f'TensorRT failed to build an engine from {onnx_path}')
    atomic_write_bytes(engine_path, bytes(plan))
    if timing_cache is not None:
        atomic_write_bytes(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    atomic_write_json(Path(f'{engine_path}.json'), {
        'compute_capability': list(compute_capability()), 'tensorrt_version': trt.__version__,
        'onnx_sha256': sha256_file(onnx_path), 'precision': precision, 'max_batch': max_batch,
        'strongly_typed': bool(strongly_typed)})
    return engine_path


def _is_fp16_graph(onnx_path: Path) -> bool:
    return Path(onnx_path).stem.endswith('_fp16')


def source_graph(fp32_graph: Path, fp16_graph: Path | None, precision: str) -> Path:
    """Which ONNX file an engine of ``precision`` is built from on this TensorRT."""
    import tensorrt as trt

    if precision == 'fp16' and int(trt.__version__.split('.')[0]) >= 11:
        if fp16_graph is None or not Path(fp16_graph).is_file():
            raise EngineError("TensorRT >= 11 needs the bundle's fp16 graph for fp16: "
                              're-export with fp16 enabled')
        return Path(fp16_graph)
    return Path(fp32_graph)


def resolve_engine(onnx_path: Path, engine_path: Path | None = None, precision: str = 'fp32',
                   force_rebuild: bool = False, rebuild: bool = True) -> Path:
    """The engine to load for ``onnx_path`` on this machine, building it when needed."""
    capability, version = compute_capability(), tensorrt_version()
    onnx_path = Path(onnx_path)
    if engine_path is None:
        engine_path = onnx_path.parent / 'engines' / engine_filename(
            onnx_path.stem, precision, capability, version)
    engine_path = Path(engine_path)
    sidecar = Path(f'{engine_path}.json')
    reason = None
    if force_rebuild:
        reason = 'force_engine_update is set'
    elif not engine_path.is_file() or not sidecar.is_file():
        reason = 'no engine yet'
    else:
        reason = engine_mismatch(json.loads(sidecar.read_text()), capability, version,
                                 sha256_file(onnx_path), precision)
    if reason is None:
        return engine_path
    if not rebuild:
        raise EngineError(f'{engine_path} cannot be used ({reason}) and rebuilding is '
                          'disabled: build it with `dgm build-engine` on this machine')
    cache = engine_path.parent / f'timing.sm{capability[0]}{capability[1]}.trt{version}.cache'
    return build_engine(onnx_path, engine_path, precision, timing_cache=cache)


class TensorRTBackend:
    """Runs a serialized engine with cuda-python buffers (one stream, reused allocations)."""

    name = 'tensorrt'

    def __init__(self, engine_path: Path) -> None:
        import tensorrt as trt

        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(
            Path(engine_path).read_bytes())
        if self.engine is None:
            raise EngineError(f'TensorRT could not deserialize {engine_path}')
        self.context = self.engine.create_execution_context()
        self.stream = _check(_cudart().cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names
                       if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    @classmethod
    def from_onnx(cls, onnx_path: Path, engine_path: Path | None = None,
                  force_rebuild: bool = False, rebuild: bool = True, precision: str = 'fp32',
                  fp16_onnx_path: Path | None = None) -> 'TensorRTBackend':
        graph = source_graph(onnx_path, fp16_onnx_path, precision)
        return cls(resolve_engine(graph, engine_path, precision, force_rebuild, rebuild))

    def input_names(self) -> list[str]:
        return list(self.inputs)

    def _device(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(_cudart().cudaFree(ptr))
            ptr = int(_check(_cudart().cudaMalloc(max(nbytes, 1))))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        cudart, trt = _cudart(), self.trt
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.inputs:
            array = np.ascontiguousarray(
                feeds[name], dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_input_shape(name, array.shape)
            ptr = self._device(name, array.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, h2d,
                                          self.stream))
            self.context.set_tensor_address(name, ptr)
        host = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            host[name] = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_tensor_address(name, self._device(name, host[name].nbytes))
        if not self.context.execute_async_v3(stream_handle=int(self.stream)):
            raise EngineError('TensorRT execute_async_v3 failed')
        for name, array in host.items():
            _check(cudart.cudaMemcpyAsync(array.ctypes.data, self._buffers[name][0],
                                          array.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return host[self.outputs[0]]

    def __del__(self) -> None:
        try:
            for ptr, _ in self._buffers.values():
                _check(_cudart().cudaFree(ptr))
            _check(_cudart().cudaStreamDestroy(self.stream))
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

