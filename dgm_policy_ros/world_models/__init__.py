# SPDX-License-Identifier: Apache-2.0
"""Generative world models: p(next observation, reward | observation, action)."""
