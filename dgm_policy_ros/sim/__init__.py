# SPDX-License-Identifier: Apache-2.0
"""Simulation layer: MuJoCo/Gymnasium rollouts of behaviour policies into Minari datasets,
MetaWorld tasks, cameras and the evaluation loop."""
import ctypes.util
import os

# MuJoCo picks its GL backend when it is first imported: headless EGL, or OSMesa where this
# machine has no EGL library, unless MUJOCO_GL says otherwise.
if 'MUJOCO_GL' not in os.environ:
    os.environ['MUJOCO_GL'] = 'osmesa' if not ctypes.util.find_library('EGL') and \
        ctypes.util.find_library('OSMesa') else 'egl'
