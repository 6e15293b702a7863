# SPDX-License-Identifier: Apache-2.0
"""Policy families, one file each; ``critics`` holds the Q/V machinery they share."""
