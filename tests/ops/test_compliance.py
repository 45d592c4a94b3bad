"""Each compliance check fails on its incident and passes without it (inputs built in a temp dir)."""

from __future__ import annotations

import json
import os
import sys

import pytest
import yaml
from litellm_ops import compliance

# /proc/net/tcp lines: 127.0.0.1:4000 and 0.0.0.0:6379 listening, one established connection.
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 1 1 0 100 0 0 10 0
   1: 00000000:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 2 1 0 100 0 0 10 0
   2: 0100007F:0FA0 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   998        0 3 1 0 20 4 30 10 -1
"""
# /proc/net/tcp6: [::1]:5434, [::]:8181 and ::ffff:10.0.0.5:9090 listening.
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000001000000:153A 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000000000000:1FF5 00000000000000000000000000000000:0000 0A 00000000:00000000
   2: 0000000000000000FFFF00000500000A:2382 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


@pytest.fixture
def proc_net(tmp_path):
    (tmp_path / "tcp").write_text(TCP)
    (tmp_path / "tcp6").write_text(TCP6)
    return str(tmp_path)


def test_listeners_are_decoded(proc_net):
    assert compliance.listeners(proc_net) == [
        ("0.0.0.0", 6379),
        ("10.0.0.5", 9090),
        ("127.0.0.1", 4000),
        ("::", 8181),
        ("::1", 5434),
    ]


def test_exposure_fails_for_a_service_on_a_public_address(proc_net):
    settings = {
        "compliance": {
            "listeners": [
                {"name": "litellm-proxy", "port": 4000, "allowed": ["127.0.0.1"]},
                {"name": "redis", "port": 6379, "allowed": ["127.0.0.1"]},
                {"name": "postgresql", "port": 5434, "allowed": ["127.0.0.1"]},
                {"name": "litellm-ops-health", "port": 8181, "allowed": ["127.0.0.1"]},
                {"name": "chat-x-llamacpp", "port": 9090, "listen": "10.0.0.5"},
            ]
        }
    }
    result = compliance.check_exposure(settings, proc_net)
    assert result["id"] == "SEC-06"
    assert result["status"] == "fail"
    assert "redis listens on 0.0.0.0:6379" in result["detail"]
    assert "litellm-ops-health listens on :::8181" in result["detail"]
    assert "4000" not in result["detail"]
    assert "5434" not in result["detail"]
    assert "9090" not in result["detail"]


def test_exposure_passes_on_loopback_and_allowed_addresses(proc_net):
    settings = {
        "compliance": {
            "listeners": [
                {"name": "litellm-proxy", "port": 4000, "allowed": ["127.0.0.1"]},
                {"name": "redis", "port": 6379, "allowed": ["0.0.0.0"]},
            ]
        }
    }
    assert compliance.check_exposure(settings, proc_net)["status"] == "pass"


def _config(tmp_path, general):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"general_settings": general, "model_list": []}))
    return {"compliance": {"proxy_config": str(path)}}


@pytest.mark.parametrize(
    ("check", "flag", "check_id"),
    [
        (compliance.check_prompts, "store_prompts_in_spend_logs", "SEC-02"),
        (compliance.check_error_logs, "disable_error_logs", "SEC-07"),
    ],
)
def test_config_flags(tmp_path, check, flag, check_id):
    assert check(_config(tmp_path, {flag: True})) == {
        **check(_config(tmp_path, {flag: True})),
        "id": check_id,
        "status": "fail",
    }
    assert check(_config(tmp_path, {flag: False}))["status"] == "pass"
    assert check(_config(tmp_path, {}))["status"] == "pass"
    missing = {"compliance": {"proxy_config": str(tmp_path / "nope.yaml")}}
    assert check(missing)["status"] == "fail"


def test_modes(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    secret = tmp_path / "litellm.env"
    secret.write_text("X=1\n")
    settings = {
        "compliance": {
            "modes": [
                {"path": str(state), "max_mode": "0750"},
                {"path": str(secret), "max_mode": "0640"},
                {"path": str(tmp_path / "optional"), "max_mode": "0700", "required": False},
            ]
        }
    }
    os.chmod(state, 0o750)
    os.chmod(secret, 0o600)
    assert compliance.check_modes(settings)["status"] == "pass"
    os.chmod(state, 0o777)
    os.chmod(secret, 0o644)
    result = compliance.check_modes(settings)
    assert result["status"] == "fail"
    assert f"{state} is 0777 (at most 0750)" in result["detail"]
    assert f"{secret} is 0644 (at most 0640)" in result["detail"]


def test_floors(tmp_path):
    script = tmp_path / "floors"
    script.write_text("import json, sys\nprint(json.dumps(json.load(open(sys.argv[1]))))\n")
    report = tmp_path / "report.json"
    settings = {"compliance": {"floors_command": [sys.executable, str(script), str(report)]}}
    report.write_text(json.dumps({"ok": [{"package": "urllib3"}], "below": [], "reported": [], "absent": []}))
    assert compliance.check_floors(settings)["status"] == "pass"
    report.write_text(
        json.dumps(
            {
                "ok": [],
                "below": [{"package": "urllib3", "installed": "2.5.0", "minimum": "2.6.3"}],
                "reported": [],
                "absent": [],
            }
        )
    )
    result = compliance.check_floors(settings)
    assert result == {
        "id": "SEC-01",
        "status": "fail",
        "detail": "below the security floor in the proxy's environment: urllib3 2.5.0 < 2.6.3",
    }


def _props(exec_start="/opt/litellm/venv/bin/litellm --config /etc/litellm/config.yaml", **extra):
    base = {
        "LoadState": "loaded",
        "ActiveState": "active",
        "Result": "success",
        "ExecStart": f"{{ path={exec_start.split()[0]} ; argv[]={exec_start} ; ignore_errors=no }}",
        "StandardOutput": "journal",
        "StandardError": "inherit",
    }
    return {**base, **extra}


def test_units():
    settings = {
        "timers": [],
        "compliance": {
            "units": [{"unit": "litellm-proxy.service", "prefix": "/opt/litellm/venv/"}],
            "model_units": [],
            "models_dir": "/opt/litellm-models",
        },
    }
    own = {
        f"litellm-ops-{n}.service": _props(f"{sys.prefix}/bin/python -m litellm_ops health")
        for n in ("health", "exporter")
    }
    good = {"litellm-proxy.service": _props(), **own}
    assert compliance.check_units(settings, show=good.__getitem__)["status"] == "pass"
    drifted = {
        **good,
        "litellm-proxy.service": _props("/usr/bin/python3 -m litellm", StandardOutput="append:/var/log/x"),
    }
    result = compliance.check_units(settings, show=drifted.__getitem__)
    assert result["status"] == "fail"
    assert "litellm-proxy.service runs /usr/bin/python3, not from /opt/litellm/venv/" in result["detail"]
    assert "sends StandardOutput to append:/var/log/x" in result["detail"]
    failed = {**good, "litellm-proxy.service": _props(ActiveState="failed", Result="exit-code")}
    assert "has failed (exit-code)" in compliance.check_units(settings, show=failed.__getitem__)["detail"]


def test_a_check_that_breaks_fails_under_its_id(monkeypatch):
    def broken(settings):
        raise KeyError("compliance")

    monkeypatch.setattr(
        compliance, "CHECKS", {"SEC-04": broken, "OPS-06": lambda s: compliance._result("OPS-06", "pass", "none")}
    )
    outcome = compliance.run({})
    assert outcome["status"] == "fail"
    assert outcome["failed"] == ["SEC-04"]
    assert outcome["checks"][0]["detail"].startswith("the check could not run: KeyError")


def test_the_audit_prints_the_result_and_saves_nothing_with_no_save(tmp_path, monkeypatch, capsys):
    """The remediation report's audit runs `compliance --no-save`: the timer's result stays as it was."""
    from litellm_ops import __main__ as cli

    state = tmp_path / "state"
    config_file = tmp_path / "ops.json"
    config_file.write_text(json.dumps({"state_dir": str(state)}), encoding="utf-8")
    outcome = {"status": "fail", "failed": ["SEC-04"], "checks": [{"id": "SEC-04", "status": "fail", "detail": "x"}]}
    monkeypatch.setattr(compliance, "run", lambda settings: outcome)

    assert cli.main(["--config", str(config_file), "compliance", "--no-save"]) == 1
    assert json.loads(capsys.readouterr().out) == outcome
    assert not (state / "compliance.json").exists()

    assert cli.main(["--config", str(config_file), "compliance"]) == 1
    assert json.loads((state / "compliance.json").read_text(encoding="utf-8"))["failed"] == ["SEC-04"]
