"""The remediation scenario reuses the default scenario's helpers (same host, same inventory).

Its conftest is loaded here under another name and its names re-exported, so that this
scenario's tests, and the default tests' modules they import helpers from, find them as
``conftest``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DEFAULT_TESTS = Path(__file__).resolve().parents[2] / "default" / "tests"
sys.path.insert(0, str(DEFAULT_TESTS))
_spec = importlib.util.spec_from_file_location("default_conftest", DEFAULT_TESTS / "conftest.py")
_default = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_default)
globals().update({name: value for name, value in vars(_default).items() if not name.startswith("__")})
