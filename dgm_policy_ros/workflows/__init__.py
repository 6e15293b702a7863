# SPDX-License-Identifier: Apache-2.0
"""Workflows that cross layers: training scored as it ships (export and score), retraining a
bundle, the sim-in-the-loop run over ROS 2, and the demo. They sit above training, export and
the simulator, and below the command line and the ROS nodes, so the layers below never import
each other in circles.
"""
