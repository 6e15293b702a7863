# SPDX-License-Identifier: Apache-2.0
"""Checks that run without a GPU: will TensorRT's ONNX parser take this graph?

``TRT10_PARSER_OPS`` is the onnx-tensorrt operator support matrix (docs/operators.md, TensorRT
10.x) minus the operators its changelog adds after 10.3 (JetPack 6's TensorRT), so a graph that
passes here parses on a Jetson too.
"""
from __future__ import annotations

from pathlib import Path

TRT10_PARSER_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast
CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu
Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid
Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())


def graph_ops(onnx_path: str | Path) -> set[str]:
    import onnx

    model = onnx.load(str(onnx_path))
    ops = set()
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            if node.domain not in ('', 'ai.onnx'):
                ops.add(f'{node.domain}::{node.op_type}')
            else:
                ops.add(node.op_type)
            stack += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return ops


def unsupported_ops(onnx_path: str | Path) -> set[str]:
    return graph_ops(onnx_path) - TRT10_PARSER_OPS


def non_batch_dynamic_dims(onnx_path: str | Path) -> dict[str, list]:
    """Inputs/outputs with a symbolic dimension other than the first (batch) one."""
    import onnx

    model = onnx.load(str(onnx_path))
    bad = {}
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shape = [d.dim_param or d.dim_value for d in dims]
        if any(not isinstance(d, int) or d <= 0 for d in shape[1:]):
            bad[value.name] = shape
    return bad
