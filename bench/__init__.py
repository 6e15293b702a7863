# SPDX-License-Identifier: Apache-2.0
"""Benchmarks, run from the repository root as ``python -m bench.<name>``; each writes
bench/results/<name>.md with the machine and the exact command (``bench.common``)."""
