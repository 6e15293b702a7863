# SPDX-License-Identifier: Apache-2.0
"""The project's error base: an error its user can fix (bad input, a bad file, a setting).

``dgm`` reports a :class:`DgmError` in one line (exit 2); anything else is a bug and keeps its
traceback. Each layer's own errors (ConfigError, DatasetError, BundleError, ...) derive from
it, and from the builtin they were before (ValueError, RuntimeError) for callers that catch
those.
"""


class DgmError(Exception):
    """A problem with the user's input, files or settings, said in one line."""
