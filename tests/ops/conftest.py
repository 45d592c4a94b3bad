"""The litellm_ops package's tests. They import the package as installed: `make venv` installs
tools/litellm-ops into .venv (editable), with the dependency releases of its requirements.lock."""

from __future__ import annotations

from importlib import metadata

import pytest

try:
    metadata.distribution("litellm-ops")
except metadata.PackageNotFoundError:
    raise pytest.UsageError(
        "litellm-ops is not installed in this Python: `make venv` installs it (pip install -e tools/litellm-ops)"
    ) from None
