# SPDX-License-Identifier: Apache-2.0
"""dgm_policy_ros: deep generative model policies, trained offline, deployed on ROS 2.

Layers, one sub-package each: ``data`` (Minari datasets, samplers, scores), ``sim`` (MuJoCo
rollouts and behaviour policies), ``cli`` (the ``dgm`` command). Importing this package imports
nothing heavy: torch, MuJoCo and rclpy are loaded only by the layers that need them.
"""

__version__ = '0.1.0'
