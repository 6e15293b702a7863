# SPDX-License-Identifier: Apache-2.0
"""The ``dgm`` command line: one entry point, one subcommand per pipeline step."""
