"""The module tests' own guard: a module that uses what ansible-core deprecates fails its test.

ansible-core 2.23 removes `warnings` (and `deprecations`) passed to exit_json/fail_json; the
modules say warnings with module.warn(). A module doing it the old way is written here, outside
library/, and both ways of running a module in the tests must refuse its result. Needs no database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import call_module, message, run_module

OLD_WAY = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"say": {"type": "str", "required": True}}, supports_check_mode=True)
    module.exit_json(changed=False, warnings=[module.params["say"]])


if __name__ == "__main__":
    main()
"""

NEW_WAY = OLD_WAY.replace(
    'module.exit_json(changed=False, warnings=[module.params["say"]])',
    'module.warn(module.params["say"])\n    module.exit_json(changed=False)',
)
ARGS = {"say": "a warning"}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    (tmp_path / "litellm_test_old_warnings.py").write_text(OLD_WAY, encoding="utf-8")
    (tmp_path / "litellm_test_new_warnings.py").write_text(NEW_WAY, encoding="utf-8")
    return tmp_path


def test_run_module_fails_on_warnings_passed_to_exit_json(library):
    with pytest.raises(AssertionError, match=r"printed a deprecation: .*`warnings`"):
        run_module("litellm_test_old_warnings", ARGS, env={"ANSIBLE_LIBRARY": str(library)})


def test_call_module_fails_on_warnings_passed_to_exit_json(library):
    with pytest.raises(AssertionError, match=r"printed a deprecation: .*`warnings`"):
        call_module("litellm_test_old_warnings", ARGS, library=library)


def test_warn_passes_and_its_warning_is_in_the_result(library):
    rc, result, _ = run_module("litellm_test_new_warnings", ARGS, env={"ANSIBLE_LIBRARY": str(library)})
    assert rc == 0
    assert result["warnings"] == ["a warning"]
    failed, result = call_module("litellm_test_new_warnings", ARGS, library=library)
    assert not failed
    assert [message(w) for w in result["warnings"]] == ["a warning"]
