# SPDX-License-Identifier: Apache-2.0
"""Offline training: the algorithm contract, the registry, and one trainer for every family."""
