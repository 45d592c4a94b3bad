"""Each module's documentation parses (with the shared doc fragment) and documents exactly its options."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import ansible.module_utils
import pytest
from conftest import PROJECT

ansible.module_utils.__path__.append(str(PROJECT / "module_utils"))  # type: ignore[attr-defined]

from ansible.module_utils.litellm_postgres import CONNECTION_ARGUMENT_SPEC  # noqa: E402

MODULES = sorted(p.stem for p in (PROJECT / "library").glob("*.py"))


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_the_argument_spec(name):
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", "-t", "module", name],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[name]["doc"]
    documented = set(doc["options"])
    source = (PROJECT / "library" / f"{name}.py").read_text(encoding="utf-8")
    if "module = database_module(" in source:
        # database_module() adds the connection options to the module's own.
        start = source.index("module = database_module(")
        shared = set(CONNECTION_ARGUMENT_SPEC)
    else:
        start = source.index("argument_spec={")
        shared = set()
    spec = source[start : source.index("\n    )\n", start)]
    declared = set(re.findall(r'^            "(\w+)": \{', spec, re.M)) | shared
    assert declared - shared, "no option of its own was found"
    assert declared == documented
