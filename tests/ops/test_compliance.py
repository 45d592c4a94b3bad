"""Each compliance check fails on its incident and passes without it (inputs built in a temp dir)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml
from litellm_ops import compliance, config

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


# --- The checks that read systemd: `show` fakes `systemctl show` for several units -------------
def _systemd(table):
    """show(units) over a table of unit -> properties; a unit not in it is not found."""
    return lambda units: {u: table.get(u, {"LoadState": "not-found", "ActiveState": "inactive"}) for u in units}


def _unit(active="inactive", file_state="enabled", **extra):
    return {"LoadState": "loaded", "ActiveState": active, "UnitFileState": file_state, **extra}


def test_systemctl_show_blocks_are_read_per_unit(monkeypatch):
    out = (
        "LoadState=loaded\nActiveState=active\nEnvironmentFiles=/etc/a.env (ignore_errors=no)\n"
        "EnvironmentFiles=/etc/b.env (ignore_errors=yes)\n\nLoadState=not-found\nActiveState=inactive\n"
    )
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return type("Done", (), {"stdout": out})()

    monkeypatch.setattr(compliance.subprocess, "run", run)
    props = compliance.show_units(["a.service", "b.service", "a.service"])
    assert calls[0][:4] == ["systemctl", "show", "a.service", "b.service"]
    assert props["a.service"]["ActiveState"] == "active"
    assert compliance._env_files(props["a.service"]) == [("/etc/a.env", False), ("/etc/b.env", True)]
    assert props["b.service"]["LoadState"] == "not-found"


MODEL = "litellm-model-chat-x-llamacpp"


def test_gpu01_a_model_server_started_at_boot_fails():
    settings = {"compliance": {"model_units": [{"unit": MODEL, "engine": "llamacpp"}]}}
    on_demand = {
        f"{MODEL}.service": _unit(file_state="static", RequiredBy=f"{MODEL}-proxy.service"),
        f"{MODEL}-proxy.service": _unit(file_state="static"),
    }
    assert compliance.check_model_boot(settings, show=_systemd(on_demand))["status"] == "pass"
    serving = {
        f"{MODEL}.service": {**on_demand[f"{MODEL}.service"], "ActiveState": "active"},
        f"{MODEL}-proxy.service": {**on_demand[f"{MODEL}-proxy.service"], "ActiveState": "active"},
    }
    assert compliance.check_model_boot(settings, show=_systemd(serving))["status"] == "pass"

    at_boot = {
        **on_demand,
        f"{MODEL}.service": _unit(active="active", WantedBy="multi-user.target", RequiredBy=f"{MODEL}-proxy.service"),
    }
    result = compliance.check_model_boot(settings, show=_systemd(at_boot))
    assert result["id"] == "GPU-01"
    assert result["status"] == "fail"
    assert f"{MODEL}.service is wanted by multi-user.target" in result["detail"]
    assert f"{MODEL}.service is enabled" in result["detail"]
    assert f"{MODEL}.service is active while {MODEL}-proxy.service is inactive" in result["detail"]
    assert result["wanted"] == {f"{MODEL}.service": ["multi-user.target"]}
    assert result["enabled"] == [f"{MODEL}.service"]
    assert result["unrequested"] == [f"{MODEL}.service"]


def _proxy_config(tmp_path, document, **compliance_settings):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return {"compliance": {"proxy_config": str(path), **compliance_settings}}


LOCAL = [{"name": "chat-x-llamacpp", "timeout": 120, "rpm": 30, "max_tokens": None}]


def test_gpu02_a_local_model_without_its_limits_fails(tmp_path):
    def entry(**params):
        return {"model_list": [{"model_name": "chat-x-llamacpp", "litellm_params": {"model": "openai/x", **params}}]}

    good = _proxy_config(tmp_path, entry(timeout=120, rpm=30), local_models=LOCAL)
    assert compliance.check_local_models(good)["status"] == "pass"

    bad = _proxy_config(tmp_path, entry(rpm=100), local_models=LOCAL)
    result = compliance.check_local_models(bad)
    assert result["id"] == "GPU-02"
    assert result["status"] == "fail"
    assert result["detail"] == "chat-x-llamacpp: timeout missing (120 expected); rpm is 100 (30 expected)"
    assert result["unhardened"] == {"chat-x-llamacpp": ["timeout", "rpm"]}

    gone = compliance.check_local_models(_proxy_config(tmp_path, {"model_list": []}, local_models=LOCAL))
    assert (gone["status"], gone["missing"]) == ("fail", ["chat-x-llamacpp"])


def test_a_root_only_config_warns_for_the_timer_user(tmp_path, monkeypatch):
    settings = _proxy_config(tmp_path, {}, local_models=LOCAL)

    def denied(settings):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(compliance, "_proxy_settings", denied)
    result = compliance.check_local_models(settings)
    assert result["status"] == "warn"
    assert result["detail"] == f"cannot read {tmp_path / 'config.yaml'} as this user; the audit (root) checks it"
    missing = {"compliance": {"proxy_config": str(tmp_path / "nope.yaml"), "local_models": LOCAL}}
    monkeypatch.undo()
    assert compliance.check_local_models(missing)["status"] == "fail"


def test_gpu03_a_missing_cloud_fallback_fails(tmp_path):
    expected = [{"chat-x-llamacpp": ["chat-gpt-4o-mini-openai"]}, {"chat-default": ["chat-gpt-4o-mini-openai"]}]
    complete = {"router_settings": {"fallbacks": expected}}
    assert compliance.check_fallbacks(_proxy_config(tmp_path, complete, fallbacks=expected))["status"] == "pass"

    partial = {"router_settings": {"fallbacks": [{"chat-x-llamacpp": ["chat-other-openai"]}]}}
    result = compliance.check_fallbacks(_proxy_config(tmp_path, partial, fallbacks=expected))
    assert result["id"] == "GPU-03"
    assert result["status"] == "fail"
    assert "chat-x-llamacpp does not fall back to chat-gpt-4o-mini-openai" in result["detail"]
    assert "chat-default has no fallback (chat-gpt-4o-mini-openai expected)" in result["detail"]
    assert result["missing"] == {
        "chat-x-llamacpp": ["chat-gpt-4o-mini-openai"],
        "chat-default": ["chat-gpt-4o-mini-openai"],
    }


class _Cursor:
    """A cursor over LiteLLM_ProxyModelTable's names (None: no such table)."""

    def __init__(self, rows):
        self.rows, self.result = rows, None

    def execute(self, sql, params=None):
        self.result = [("LiteLLM_ProxyModelTable" if self.rows is not None else None,)]
        if sql.startswith("SELECT model_name"):
            self.result = [(name,) for name in self.rows]

    def fetchone(self):
        return self.result[0]

    def fetchall(self):
        return self.result


def _db(rows=None, error=None):
    return lambda settings, read: (None, error) if error else (read(settings, _Cursor(rows)), None)


def test_gpu04_names_outside_the_rule_fail(tmp_path):
    units = tmp_path / "system"
    units.mkdir()
    for name in (f"{MODEL}.service", f"{MODEL}-proxy.service", f"{MODEL}.socket", "litellm-proxy.service"):
        (units / name).write_text("[Unit]\n")
    known = ["chat-x-llamacpp", "chat-default"]
    document = {"model_list": [{"model_name": n} for n in known]}
    settings = _proxy_config(
        tmp_path,
        document,
        unit_dir=str(units),
        model_unit_prefix="litellm-model-",
        model_names=known,
        naming_rule=r"^(chat|embed)-[a-z0-9][a-z0-9._]*(-[a-z0-9][a-z0-9._]*)*-(ollama|llamacpp|openai|mock)$",
    )
    assert compliance.check_model_names(settings, read_db=_db(["chat-x-llamacpp"]))["status"] == "pass"
    assert compliance.check_model_names(settings, read_db=_db(None))["status"] == "pass"  # no model table

    (units / "litellm-model-Qwen-7B.service").write_text("[Unit]\n")
    (units / "litellm-model-qwen2-proxy.service").write_text("[Unit]\n")
    document["model_list"].append({"model_name": "gpt4"})
    settings = {**settings, "compliance": {**settings["compliance"]}}
    Path(settings["compliance"]["proxy_config"]).write_text(yaml.safe_dump(document))
    result = compliance.check_model_names(settings, read_db=_db(["chat-x-llamacpp", "my-llama"]))
    assert result["id"] == "GPU-04"
    assert result["status"] == "fail"
    assert "config.yaml serves gpt4" in result["detail"]
    assert "litellm-model-Qwen-7B.service, litellm-model-qwen2-proxy.service" in result["detail"]
    assert "the database's model rows: my-llama" in result["detail"]
    assert result["config"] == ["gpt4"]
    assert result["unit_files"] == ["litellm-model-Qwen-7B.service", "litellm-model-qwen2-proxy.service"]
    assert result["rows"] == ["my-llama"]

    down = compliance.check_model_names(settings, read_db=_db(error="database litellm is not reachable"))
    assert down["status"] == "fail"
    assert "database litellm is not reachable" in down["detail"]


def test_ops02_no_recent_backup_fails(tmp_path):
    settings = {"state_dir": str(tmp_path), "timers": ["backup"], "health": {"backup_max_age_hours": 26}}
    timer = {"litellm-ops-backup.timer": _unit(active="active")}
    result = compliance.check_backups(settings, show=_systemd(timer))
    assert (result["status"], result["stale"], result["backup_age_hours"]) == ("fail", True, None)
    assert "no backup has succeeded yet" in result["detail"]

    def backed_up(hours_ago):
        success = {"backup": "/var/backups/litellm/2024-01-01", "finished_at": time.time() - hours_ago * 3600}
        config.write_result(settings, "backup", {"status": "ok", "last_success": success})

    backed_up(2)
    result = compliance.check_backups(settings, show=_systemd(timer))
    assert (result["status"], result["stale"]) == ("pass", False)
    assert 1.9 < result["backup_age_hours"] < 2.1

    backed_up(30)
    stopped = {"litellm-ops-backup.timer": _unit(file_state="disabled")}
    result = compliance.check_backups(settings, show=_systemd(stopped))
    assert result["id"] == "OPS-02"
    assert result["status"] == "fail"
    assert "litellm-ops-backup.timer is disabled; litellm-ops-backup.timer is inactive" in result["detail"]
    assert "the last backup (/var/backups/litellm/2024-01-01) is 30.0 h old (at most 26 h)" in result["detail"]
    assert result["stale"] is True


def test_ops03_a_masked_or_stopped_timer_fails():
    settings = {"timers": ["backup", "compliance", "probe"]}
    good = {f"litellm-ops-{n}.timer": _unit(active="active") for n in settings["timers"]}
    assert compliance.check_timers(settings, show=_systemd(good))["status"] == "pass"
    bad = {
        **good,
        "litellm-ops-backup.timer": {"LoadState": "masked", "UnitFileState": "masked", "ActiveState": "inactive"},
        "litellm-ops-probe.timer": _unit(file_state="disabled", active="active"),
    }
    result = compliance.check_timers(settings, show=_systemd(bad))
    assert result["id"] == "OPS-03"
    assert result["status"] == "fail"
    assert result["timers"] == {"litellm-ops-backup.timer": "masked, inactive", "litellm-ops-probe.timer": "disabled"}
    assert "litellm-ops-backup.timer is masked, inactive" in result["detail"]


def test_ops04_a_stopped_or_moved_server_fails(proc_net):
    # proc_net: [::]:8181 and 10.0.0.5:9090 listen.
    settings = {"health": {"host": "::", "port": 8181}, "exporter": {"host": "10.0.0.5", "port": 9090}}
    units = {"litellm-ops-health.service": _unit("active"), "litellm-ops-exporter.service": _unit("active")}
    assert compliance.check_servers(settings, show=_systemd(units), proc_net=proc_net)["status"] == "pass"

    settings["health"]["host"] = "127.0.0.1"  # the wildcard listener is not the configured address
    stopped = {**units, "litellm-ops-exporter.service": _unit("failed", file_state="disabled")}
    result = compliance.check_servers(settings, show=_systemd(stopped), proc_net=proc_net)
    assert result["id"] == "OPS-04"
    assert result["status"] == "fail"
    assert result["servers"] == {
        "litellm-ops-health.service": "moved",
        "litellm-ops-exporter.service": "disabled, failed",
    }
    assert "litellm-ops-health.service has moved: nothing listens on 127.0.0.1:8181" in result["detail"]


PROXY = {"unit": "litellm-proxy.service", "env_file": "", "request_timeout": 120, "workers": 4}


def test_ops05_timeout_and_workers_that_drift_fail(tmp_path):
    def proxy(workers_args):
        exec_start = f"{{ path=/opt/litellm/venv/bin/litellm ; argv[]=/opt/litellm/venv/bin/litellm {workers_args}"
        return _systemd({"litellm-proxy.service": _unit("active", ExecStart=exec_start + " ; ignore_errors=no }")})

    good = _proxy_config(tmp_path, {"litellm_settings": {"request_timeout": 120}}, proxy=PROXY)
    assert compliance.check_proxy_limits(good, show=proxy("--port 4000 --num_workers 4"))["status"] == "pass"
    assert compliance.check_proxy_limits(good, show=proxy("--num_workers=4"))["status"] == "pass"
    assert compliance.check_proxy_limits({"compliance": {"proxy": None}})["detail"] == "no proxy on this host"

    bad = _proxy_config(tmp_path, {"litellm_settings": {"request_timeout": 600}}, proxy=PROXY)
    result = compliance.check_proxy_limits(bad, show=proxy("--port 4000"))
    assert result["id"] == "OPS-05"
    assert result["status"] == "fail"
    assert result["detail"] == (
        "request_timeout is 600 (120 expected); litellm-proxy.service runs 1 workers (4 expected)"
    )
    assert (result["request_timeout"], result["workers"]) == (600, 1)


def test_env_files_are_read_as_systemd_does():
    text = "# comment\n; comment\nA=1\nB = \"two words\"\nC='x'\nexport D=4\nE=a\\\nb\nnot a line\n"
    assert compliance.parse_env_file(text) == {"A": "1", "B": "two words", "C": "x", "E": "ab"}
    assert compliance._unit_env({"Environment": 'X=1 "Y=a b"'}) == {"X": "1", "Y": "a b"}


def test_db03_a_forced_prisma_engine_fails_naming_where_not_what(tmp_path):
    env_file = tmp_path / "litellm.env"
    env_file.write_text("LITELLM_MASTER_KEY=sk-abcdefgh\n")
    extra = tmp_path / "extra.env"
    settings = {"compliance": {"proxy": {**PROXY, "env_file": str(env_file)}}}
    unit = {"litellm-proxy.service": _unit("active", EnvironmentFiles=f"{extra} (ignore_errors=yes)")}
    assert compliance.check_prisma_engine(settings, show=_systemd(unit))["status"] == "pass"
    assert compliance.check_prisma_engine({"compliance": {"proxy": None}})["status"] == "pass"

    extra.write_text("PRISMA_QUERY_ENGINE_BINARY=/opt/engines/query-engine-old\n")
    unit["litellm-proxy.service"]["Environment"] = "PRISMA_QUERY_ENGINE_BINARY=/opt/engines/query-engine-old"
    result = compliance.check_prisma_engine(settings, show=_systemd(unit))
    assert result["id"] == "DB-03"
    assert result["status"] == "fail"
    assert result["set_in"] == ["the unit's Environment=", str(extra)]
    assert f"in the unit's Environment=, {extra}" in result["detail"]
    assert "query-engine-old" not in json.dumps(result)

    env_file.unlink()
    assert f"{env_file} is missing" in compliance.check_prisma_engine(settings, show=_systemd(unit))["detail"]


def test_db07_prisma_parameters_in_a_libpq_url_fail(tmp_path):
    url = "postgresql://litellm:s3cret-password@db.internal:5432/litellm?connection_limit=10&pool_timeout=20"
    env_file = tmp_path / "litellm.env"
    env_file.write_text(f'DATABASE_URL="{url}"\n')
    settings = {
        "timers": ["backup"],
        "compliance": {
            "proxy": {**PROXY, "env_file": str(env_file)},
            "prisma_parameters": ["connection_limit", "pool_timeout", "pgbouncer", "schema"],
        },
    }
    units = {
        "litellm-proxy.service": _unit("active"),
        "litellm-ops-backup.service": _unit(
            "inactive", Environment="DATABASE_URL=postgresql://h/litellm?sslmode=require"
        ),
        "litellm-ops-health.service": _unit("active"),
        "litellm-ops-exporter.service": _unit("active"),
    }
    result = compliance.check_url_parameters(settings, show=_systemd(units))
    assert result["status"] == "pass", "the proxy's Prisma reads its own parameters"

    ops_env = tmp_path / "ops.env"
    ops_env.write_text(f"DATABASE_URL={url}\n")
    units["litellm-ops-backup.service"] = _unit("inactive", EnvironmentFiles=f"{ops_env} (ignore_errors=no)")
    result = compliance.check_url_parameters(settings, show=_systemd(units))
    assert result["id"] == "DB-07"
    assert result["status"] == "fail"
    assert result["detail"] == (
        "litellm-ops-backup.service: DATABASE_URL has connection_limit, pool_timeout, which libpq rejects"
    )
    assert result["rejected"] == {"litellm-ops-backup.service": {"DATABASE_URL": ["connection_limit", "pool_timeout"]}}
    assert "s3cret" not in json.dumps(result)


def test_every_new_check_is_in_the_audit():
    assert {"GPU-01", "GPU-02", "GPU-03", "GPU-04", "OPS-02", "OPS-03", "OPS-04", "OPS-05", "DB-03", "DB-07"} <= set(
        compliance.CHECKS
    )
