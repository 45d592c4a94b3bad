"""The litellm_ops package's tests: it lives in the operations role, which installs it on the hosts."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "roles" / "operations" / "files"
sys.path.insert(0, str(PACKAGE_ROOT))
sys.dont_write_bytecode = True
