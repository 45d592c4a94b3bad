"""SEC-05: scan-secrets finds a secret's value outside its allowed files, names path, line and
secret, and never prints a value."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from litellm_ops import secrets_scan

MASTER = "sk-master-0123456789abcdef"
DB_PASSWORD = "p@ss word/with:specials"


def _tree(tmp_path):
    etc = tmp_path / "etc"
    (etc / "litellm").mkdir(parents=True)
    (etc / "systemd").mkdir()
    (etc / "litellm" / "litellm.env").write_text(f"LITELLM_MASTER_KEY={MASTER}\n")
    (etc / "systemd" / "litellm-proxy.service").write_text("[Service]\nExecStart=/bin/true\n")
    return etc


def _request(etc, **extra):
    return {
        "secrets": {"master-key": MASTER, "db-password": DB_PASSWORD, "short": "abc", "empty": ""},
        "paths": [str(etc / "systemd"), str(etc / "litellm")],
        "allowed": {str(etc / "litellm" / "litellm.env"): ["master-key"]},
        "max_bytes": 1048576,
        **extra,
    }


def test_an_allowed_holder_passes(tmp_path):
    etc = _tree(tmp_path)
    (etc / "litellm" / "notes.txt").write_text("abc abc\n")  # shorter than 8 characters: ignored
    result = secrets_scan.scan(_request(etc))
    assert result == {
        "id": "SEC-05",
        "status": "pass",
        "detail": "no secret outside the files allowed to hold it (3 files scanned)",
        "findings": [],
        "scanned": 3,
    }


def test_a_secret_in_a_disallowed_file_is_found_by_path_line_and_name(tmp_path):
    etc = _tree(tmp_path)
    unit = etc / "systemd" / "litellm-proxy.service"
    unit.write_text(f"[Service]\nEnvironment=LITELLM_MASTER_KEY={MASTER}\nExecStart=/bin/true\n")
    encoded = "p%40ss%20word%2Fwith%3Aspecials"  # the password inside a URL
    report = etc / "litellm" / "report.txt"
    report.write_text(f"ok\nok\nDATABASE_URL=postgresql://u:{encoded}@h/db {MASTER}\n{DB_PASSWORD}\n")
    result = secrets_scan.scan(_request(etc))
    assert result["status"] == "fail"
    assert result["findings"] == [
        {"path": str(unit), "line": 2, "secret": "master-key"},
        {"path": str(report), "line": 3, "secret": "db-password"},
        {"path": str(report), "line": 3, "secret": "master-key"},
        {"path": str(report), "line": 4, "secret": "db-password"},
    ]
    assert f"{unit}:2 (master-key)" in result["detail"]
    out = json.dumps(result)
    for value in (MASTER, DB_PASSWORD, encoded):
        assert value not in out


def test_big_unreadable_and_symlinked_directories_are_skipped(tmp_path):
    etc = _tree(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak").write_text(MASTER)
    (etc / "systemd" / "linked").symlink_to(outside, target_is_directory=True)
    (etc / "systemd" / "big").write_text(MASTER + "x" * 100)
    result = secrets_scan.scan(_request(etc, max_bytes=64))
    assert result["status"] == "pass"
    assert result["scanned"] == 2
    assert "1 skipped" in result["detail"]


def test_three_hundred_files_take_well_under_a_second(tmp_path):
    etc = _tree(tmp_path)
    for i in range(300):
        (etc / "systemd" / f"unit-{i}.service").write_text("[Service]\nExecStart=/bin/true\n" * 20)
    secrets = {f"secret-{i}": f"value-{i:04d}-abcdefgh" for i in range(30)}
    start = time.perf_counter()
    result = secrets_scan.scan({"secrets": secrets, "paths": [str(etc)], "allowed": {}})
    assert time.perf_counter() - start < 0.5
    assert (result["status"], result["scanned"]) == ("pass", 302)


def test_the_subcommand_reads_stdin_and_prints_one_line(tmp_path):
    etc = _tree(tmp_path)
    (etc / "systemd" / "leak.conf").write_text(f"x={MASTER}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "litellm_ops", "--config", str(tmp_path / "absent.json"), "scan-secrets"],
        input=json.dumps(_request(etc)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["status"] == "fail"
    assert result["findings"] == [{"path": str(etc / "systemd" / "leak.conf"), "line": 1, "secret": "master-key"}]
    assert MASTER not in proc.stdout + proc.stderr

    bad = subprocess.run(
        [sys.executable, "-m", "litellm_ops", "scan-secrets"], input="[", capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert "scan-secrets: stdin is not a JSON request" in bad.stderr


def test_compliance_carries_the_scan_in_the_same_run(tmp_path, monkeypatch, capsys):
    """`compliance --no-save --scan-secrets`: the remediation report's audit in one command; the scan's
    report under secrets_scan, nothing saved, no value printed."""
    import io

    from litellm_ops import __main__ as cli
    from litellm_ops import compliance, config

    etc = _tree(tmp_path)
    (etc / "systemd" / "leak.conf").write_text(f"x={MASTER}\n")
    saved = []
    monkeypatch.setattr(config, "load", lambda path: {})
    monkeypatch.setattr(config, "write_result", lambda *args: saved.append(args))
    monkeypatch.setattr(compliance, "run", lambda settings: {"status": "pass", "failed": [], "checks": []})
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(_request(etc))))
    assert cli.main(["compliance", "--no-save", "--scan-secrets"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["status"] == "pass"
    assert result["checks"] == []
    assert result["secrets_scan"]["findings"] == [
        {"path": str(etc / "systemd" / "leak.conf"), "line": 1, "secret": "master-key"}
    ]
    assert saved == []
    assert MASTER not in out

    monkeypatch.setattr(sys, "stdin", io.StringIO("["))
    assert cli.main(["compliance", "--no-save", "--scan-secrets"]) == 1
    assert "compliance: stdin is not a JSON request" in capsys.readouterr().err
