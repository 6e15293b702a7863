# SPDX-License-Identifier: Apache-2.0
"""Inference backends behind one call: ``run({input name: array}) -> first output``.

Selection (``backend='auto'``): a TensorRT engine when the ``tensorrt`` module and a GPU are
there, else ONNX Runtime with the TensorRT or CUDA execution provider when available, else
ONNX Runtime on the CPU. ``backend`` names one explicitly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from dgm_policy_ros.errors import DgmError

BACKENDS = ('auto', 'tensorrt', 'onnxruntime', 'onnxruntime-cpu')


class BackendError(DgmError, RuntimeError):
    """The requested backend cannot run here."""


class Backend(Protocol):
    name: str

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        ...

    def input_names(self) -> list[str]:
        ...


class OnnxRuntimeBackend:
    """ONNX Runtime; providers in preference order, CPU always last."""

    def __init__(self, path: Path, providers: list[str] | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        wanted = providers or ['CPUExecutionProvider']
        chosen = [p for p in wanted if p in available] or ['CPUExecutionProvider']
        try:
            self.session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            detail = ' '.join(str(exc).split())  # one line, as the CLI reports it
            raise BackendError(f'ONNX Runtime cannot load {path}: {detail}') from exc
        self.providers = self.session.get_providers()
        self.name = 'onnxruntime' + ('' if self.providers[0].startswith('CPU')
                                     else f'-{self.providers[0]}')
        self._output = self.session.get_outputs()[0].name

    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def input_shapes(self) -> dict[str, list]:
        return {i.name: list(i.shape) for i in self.session.get_inputs()}

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self._output], feeds)[0]


def onnxruntime_gpu_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return [p for p in ('TensorrtExecutionProvider', 'CUDAExecutionProvider')
            if p in ort.get_available_providers()]


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    from dgm_policy_ros.runtime.tensorrt_engine import cuda_device_count

    return cuda_device_count() > 0


def make_backend(onnx_path: Path, backend: str = 'auto', threads: int = 1,
                 engine_path: Path | None = None, force_engine_update: bool = False,
                 rebuild: bool = True, precision: str = 'fp32',
                 fp16_onnx_path: Path | None = None) -> Backend:
    if backend not in BACKENDS:
        raise BackendError(f'unknown backend {backend!r}; choose one of {BACKENDS}')
    if backend == 'tensorrt' or (backend == 'auto' and tensorrt_available()):
        from dgm_policy_ros.runtime.tensorrt_engine import TensorRTBackend

        if backend == 'tensorrt' and not tensorrt_available():
            raise BackendError('backend tensorrt: the tensorrt module or a CUDA GPU is missing')
        return TensorRTBackend.from_onnx(onnx_path, engine_path=engine_path,
                                         force_rebuild=force_engine_update, rebuild=rebuild,
                                         precision=precision, fp16_onnx_path=fp16_onnx_path)
    if backend in ('auto', 'onnxruntime'):
        return OnnxRuntimeBackend(onnx_path, onnxruntime_gpu_providers() +
                                  ['CPUExecutionProvider'], threads)
    return OnnxRuntimeBackend(onnx_path, ['CPUExecutionProvider'], threads)
