# SPDX-License-Identifier: Apache-2.0
"""Building blocks shared by every model: MLPs and the (de)normalization layers baked into
exported graphs. Plain torch ops only, so everything exports to ONNX and TensorRT."""
from dgm_policy_ros.networks.layers import ActionScaler, ObsNormalizer, mlp

__all__ = ['ActionScaler', 'ObsNormalizer', 'mlp']
