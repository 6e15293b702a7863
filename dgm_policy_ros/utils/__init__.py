# SPDX-License-Identifier: Apache-2.0
"""Small shared helpers with no third-party dependencies beyond numpy/yaml."""
