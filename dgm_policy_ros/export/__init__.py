# SPDX-License-Identifier: Apache-2.0
"""From a training run to a deployable bundle: ONNX graph(s), fp16 variant, manifest with
hashes; TensorRT engines built from the bundle's ONNX. Needs torch (the runtime does not)."""
