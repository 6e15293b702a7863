# SPDX-License-Identifier: Apache-2.0
"""Simulation layer: MuJoCo/Gymnasium rollouts of behaviour policies into Minari datasets,
MetaWorld tasks, cameras and the evaluation loop."""
import os

# MuJoCo picks its GL backend when it is first imported: headless EGL unless told otherwise.
os.environ.setdefault('MUJOCO_GL', 'egl')
