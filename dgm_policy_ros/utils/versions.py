# SPDX-License-Identifier: Apache-2.0
"""Installed versions of named packages, for provenance (datasets, bundles)."""
from __future__ import annotations

import importlib.metadata as md


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """{name: version} of those installed; missing packages are left out."""
    out = {}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out
