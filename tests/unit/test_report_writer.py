"""The remediation report is the run's output: the callback writes it, no task does.

report.yml runs on the controller alone here (no host audited), in check mode as the run_playbook
fixture forces: nothing counts as changed, and the two files are still written, private.
"""

from __future__ import annotations

import json
import re


def run_report(run_playbook, report_dir):
    result = run_playbook("playbooks/report.yml", env={"LITELLM_REPORT_DIR": str(report_dir)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", output), output[-2000:]
    return output


def test_check_mode_changes_nothing_and_leaves_its_report(run_playbook, tmp_path):
    report_dir = tmp_path / "reports"
    output = run_report(run_playbook, report_dir)
    assert f"Remediation report (check) in {report_dir}/remediation-report.md" in output
    assert report_dir.stat().st_mode & 0o777 == 0o700
    files = sorted(p.name for p in report_dir.iterdir())
    assert files == ["remediation-report.json", "remediation-report.md"]
    for name in files:
        assert (report_dir / name).stat().st_mode & 0o777 == 0o600, name
    data = json.loads((report_dir / "remediation-report.json").read_text(encoding="utf-8"))
    assert data["mode"] == "check"
    assert [e["id"] for e in data["incidents"]][:2] == ["DB-01", "DB-02"]
    assert "audit (check mode, nothing changed)" in (report_dir / "remediation-report.md").read_text(encoding="utf-8")


def test_a_second_run_replaces_the_report_and_tightens_the_directory(run_playbook, tmp_path):
    report_dir = tmp_path / "reports"
    report_dir.mkdir(mode=0o755)
    (report_dir / "remediation-report.json").write_text("{}", encoding="utf-8")
    run_report(run_playbook, report_dir)
    assert report_dir.stat().st_mode & 0o777 == 0o700
    assert json.loads((report_dir / "remediation-report.json").read_text(encoding="utf-8"))["incidents"]
    assert (report_dir / "remediation-report.json").stat().st_mode & 0o777 == 0o600
    # Written through a temporary file renamed into place: none is left behind.
    assert sorted(p.name for p in report_dir.iterdir()) == ["remediation-report.json", "remediation-report.md"]


def test_no_report_when_the_run_never_reaches_it(run_playbook, tmp_path):
    report_dir = tmp_path / "reports"
    result = run_playbook("playbooks/secrets.yml", env={"LITELLM_REPORT_DIR": str(report_dir)})
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert not report_dir.exists()
