"""Writes the remediation report that playbooks/report.yml assembles, when the run ends.

The report is the run's output, as Ansible's log is: no task writes it, so a run's `changed`
counts only what changed on the hosts, and a `--check` run, which changes nothing, still leaves
its audit. report.yml hands the rendered report over in a fact (``__remediation_report_files``:
dir, json, markdown); this plugin writes both files, each through a private temporary file
renamed into place, in a directory only the user can open (0700, files 0600).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: remediation_report
type: aggregate
short_description: Write the remediation report at the end of the run
description:
  - Writes remediation-report.json and remediation-report.md into the directory playbooks/report.yml names.
requirements:
  - enabled in ansible.cfg (callbacks_enabled)
"""

FACT = "__remediation_report_files"


def write_private(directory: Path, name: str, content: str) -> None:
    """Replace DIRECTORY/NAME with CONTENT at once: readers see the old file or the new one."""
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(content)
        os.chmod(temporary, 0o600)
        os.replace(temporary, directory / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "remediation_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._report: dict[str, Any] | None = None

    def v2_runner_on_ok(self, result: Any) -> None:
        files = result._result.get("ansible_facts", {}).get(FACT)
        if isinstance(files, dict):
            self._report = files

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self._report is None:
            return
        report, self._report = self._report, None
        directory = Path(str(report["dir"])).expanduser()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        write_private(directory, "remediation-report.json", str(report["json"]))
        write_private(directory, "remediation-report.md", str(report["markdown"]))
