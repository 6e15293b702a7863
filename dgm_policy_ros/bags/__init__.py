# SPDX-License-Identifier: Apache-2.0
"""Recording robots' topics into rosbag2 bags and turning bags into Minari datasets, with the
``rosbags`` library (no ROS install needed to read or write a bag)."""
