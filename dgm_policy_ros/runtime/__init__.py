# SPDX-License-Identifier: Apache-2.0
"""The deployment runtime: numpy + onnxruntime (or TensorRT), never torch.

What runs on a robot: load a bundle, check it, pick a backend, validate observations, draw
noise, keep action queues, clip, and time every call. The ROS node, the MuJoCo evaluation of
bundles and the latency benchmark all use this one implementation.
"""
from dgm_policy_ros.runtime.bundle import Bundle, BundleError, load_bundle
from dgm_policy_ros.runtime.runner import ObservationError, PolicyRunner

__all__ = ['Bundle', 'BundleError', 'ObservationError', 'PolicyRunner', 'load_bundle']
