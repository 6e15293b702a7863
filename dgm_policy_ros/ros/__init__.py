# SPDX-License-Identifier: Apache-2.0
"""ROS 2 layer: the policy node, the MuJoCo simulator node, and what they share.

rclpy and the message packages are imported only here (and only when a node starts), so the
rest of the project works on machines without ROS 2.
"""
