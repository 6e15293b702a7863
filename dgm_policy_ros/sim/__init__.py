# SPDX-License-Identifier: Apache-2.0
"""Simulation layer: MuJoCo/Gymnasium rollouts of behaviour policies into Minari datasets."""
