"""A broken host made right: every incident the test machine can hold is injected into the
converged host, remediate.yml --check names each one and changes nothing, remediate.yml fixes
them all and the smoke validation passes, and a second run changes nothing and reports clean.

The tests run in file order and build on each other, like the operator's session they stand
for. LiteLLM's own helpers (in the proxy's venv) write the broken model rows; the old salt key
is made on the host and reaches Ansible only through a 0600 vars file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from conftest import PROJECT, SECRET_NAMES, leaks, run_playbook, secret
from test_model_table import LOCAL, litellm, sql

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
REPORTS = Path(os.environ["LITELLM_REPORT_DIR"])
OLD_KEY_FILE = "/root/.molecule-old-salt-key"
OLD_KEY_VARS = EPHEMERAL / "remediation-vars.json"
ROTATED = "/etc/litellm-ops/rotated-keys"
REMEDIATE = str(PROJECT / "playbooks" / "remediate.yml")
STATE = "/var/lib/litellm-ops"
PSQL_ADMIN = "runuser -u postgres -- psql -p 5434 -d postgres -v ON_ERROR_STOP=1 -qAt"
ROLLED_BACK = "20260107111013_add_router_settings_to_keys_teams"
TEAM_DAY_KEY = "LiteLLM_DailyTeamSpend_team_id_date_api_key_model_custom_ll_key"
MODEL_UNIT = "litellm-model-chat-qwen2.5-0.5b-llamacpp"
# A model unit whose name breaks [type]-[name]-[engine] (GPU-04), in the role's namespace.
BAD_UNIT = "/etc/systemd/system/litellm-model-qwen-big.service"

# Host-level incidents, each with the shell command that causes it (as the incident did).
INJECT = {
    # The vulnerable release itself, as pip leaves it (pip 25 on Debian 13 reads the version from the
    # dist-info directory's name, so an edited METADATA alone would not be what pip sees).
    "SEC-01": "/opt/litellm/venv/bin/pip install --quiet --disable-pip-version-check --no-deps urllib3==2.5.0",
    "SEC-02": "sed -i 's/store_prompts_in_spend_logs: false/store_prompts_in_spend_logs: true/'"
    " /etc/litellm/config.yaml",
    "SEC-07": "sed -i 's/disable_error_logs: false/disable_error_logs: true/' /etc/litellm/config.yaml",
    "SEC-04": "chmod 0777 /var/lib/litellm/artifacts /var/lib/litellm/archive",
    "OPS-06": "cp /etc/litellm/config.yaml /etc/litellm/config.yaml.bak"
    " && cp /etc/litellm/config.yaml /etc/litellm/config.runtime.yaml",
    "SEC-06": "python3 -c \"import json; p = '/etc/litellm-ops/ops.json'; d = json.load(open(p));"
    " d['health']['host'] = '0.0.0.0'; json.dump(d, open(p, 'w'))\""
    " && systemctl restart litellm-ops-health.service",
    "DB-06": "sed -i 's/^max_connections = .*/max_connections = 50/'"
    " /etc/postgresql/*/main/conf.d/50-litellm-gateway.conf"
    ' && systemctl restart "postgresql@$(ls /etc/postgresql)-main.service"',
    # A hand-edited unit: another venv, and output to a file instead of the journal.
    "OPS-01": "ln -sfn /opt/litellm/venv /opt/litellm-stray-venv"
    " && sed -i -e 's#/opt/litellm/venv/#/opt/litellm-stray-venv/#g'"
    " -e 's#^StandardOutput=journal#StandardOutput=append:/var/log/litellm.log#'"
    " /etc/systemd/system/litellm-proxy.service && systemctl daemon-reload",
    # The eleven that were once only prevented, each as an operator's hand would do it.
    "GPU-01": f"systemctl add-wants multi-user.target {MODEL_UNIT}.service",
    "GPU-02": "sed -i '/^ *rpm: 30$/d' /etc/litellm/config.yaml",
    "GPU-03": "/opt/litellm/venv/bin/python -c \"import yaml; p = '/etc/litellm/config.yaml';"
    " d = yaml.safe_load(open(p)); d['router_settings'].pop('fallbacks');"
    " yaml.safe_dump(d, open(p, 'w'), sort_keys=False)\"",
    "GPU-04": f"printf '[Unit]\\nDescription=qwen, added by hand\\n\\n[Service]\\nExecStart=/bin/sleep infinity\\n'"
    f" > {BAD_UNIT} && systemctl daemon-reload",
    "OPS-05": "sed -i 's/request_timeout: 120/request_timeout: 600/' /etc/litellm/config.yaml"
    " && sed -i 's/--num_workers 4/--num_workers 1/' /etc/systemd/system/litellm-proxy.service"
    " && systemctl daemon-reload",
    "OPS-02": "systemctl disable --now litellm-ops-backup.timer"
    " && python3 -c \"import json; p = '/var/lib/litellm-ops/backup.json'; d = json.load(open(p));"
    " d['last_success']['finished_at'] -= 2 * 86400; json.dump(d, open(p, 'w'))\"",
    # systemctl mask refuses a unit whose file is in /etc: the mask is that file replaced by /dev/null.
    "OPS-03": "ln -sfn /dev/null /etc/systemd/system/litellm-ops-probe.timer && systemctl daemon-reload",
    "OPS-04": "systemctl disable --now litellm-ops-exporter.service",
    "DB-03": "echo 'PRISMA_QUERY_ENGINE_BINARY=/opt/prisma/query-engine' >> /etc/litellm/litellm.env",
    "DB-07": "sed -i '/^\\[Service\\]/a Environment=DATABASE_URL=postgresql://litellm@127.0.0.1:5434/litellm?connection_limit=5'"
    " /etc/systemd/system/litellm-ops-backup.service && systemctl daemon-reload",
}
# SEC-05: the master key in a unit's Environment=, and the old salt key (no longer needed there) in the
# proxy's environment file. The commands read each value on the host: a value in a command line would
# be in the journal (Ansible's modules log their arguments there).
MASTER_KEY_FILE = "/etc/litellm-ops/credentials/master-key"
PLAIN_SECRETS = {
    "/etc/systemd/system/litellm-ops-health.service": f"LITELLM_MASTER_KEY=$(cat {MASTER_KEY_FILE})",
    "/etc/litellm/litellm.env": f"LITELLM_OLD_SALT_KEY=$(cat {OLD_KEY_FILE})",
}
# Database incidents, in SQL as they happened. The schema as the incident host had it (DB-01, DB-02,
# DB-04 together): LiteLLM 1.80.16's migrations applied up to 20251211100212, the last six not (their
# effects undone, their records gone: the first of them creates LiteLLM_SkillsTable, the one after
# adds `endpoint` to the six daily tables' unique keys and begins by dropping the old keys), then
# drift on top: organization_id dropped, and the team-day unique key dropped with duplicates behind
# it. (The reversal equals a database migrated up to that point, by a schema-only dump.) Then no
# admin user (DB-05) and an expired key (SEC-03).
OLD_DAILY_KEYS = {
    "LiteLLM_DailyAgentSpend": ("LiteLLM_DailyAgentSpend_agent_id_date_api_key_model_custom__key", "agent_id"),
    "LiteLLM_DailyEndUserSpend": ("LiteLLM_DailyEndUserSpend_end_user_id_date_api_key_model_cu_key", "end_user_id"),
    "LiteLLM_DailyOrganizationSpend": (
        "LiteLLM_DailyOrganizationSpend_organization_id_date_api_key_key",
        "organization_id",
    ),
    "LiteLLM_DailyTagSpend": ("LiteLLM_DailyTagSpend_tag_date_api_key_model_custom_llm_pro_key", "tag"),
    "LiteLLM_DailyUserSpend": ("LiteLLM_DailyUserSpend_user_id_date_api_key_model_custom_ll_key", "user_id"),
}
SIX_PENDING = 6
DAMAGE = f"""
DROP TABLE "LiteLLM_SkillsTable";
ALTER TABLE "LiteLLM_MCPServerTable" DROP COLUMN authorization_url, DROP COLUMN registration_url,
  DROP COLUMN token_url, DROP COLUMN allow_all_keys;
ALTER TABLE "LiteLLM_DailyTeamSpend" DROP COLUMN endpoint;
{"".join(f'ALTER TABLE "{table}" DROP COLUMN endpoint;' for table in OLD_DAILY_KEYS)}
{
    "".join(
        f'CREATE UNIQUE INDEX "{index}" ON "{table}" ({owner}, date, api_key, model, custom_llm_provider, '
        f"mcp_namespaced_tool_name);"
        for table, (index, owner) in OLD_DAILY_KEYS.items()
    )
}
ALTER TABLE "LiteLLM_TeamTable" DROP COLUMN router_settings;
ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN router_settings;
DROP INDEX "LiteLLM_UserTable_user_email_lower_idx";
DELETE FROM _prisma_migrations WHERE migration_name >= '20251220144550';
ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN organization_id;
INSERT INTO "LiteLLM_DailyTeamSpend" (id, team_id, date, api_key, model, custom_llm_provider,
  mcp_namespaced_tool_name, updated_at)
SELECT 'molecule-dup-' || n, 'team-molecule', '2026-11-01', 'hashed-key', 'gpt-a', 'openai', '',
  now() - n * interval '1 hour' FROM generate_series(1, 3) AS n;
DELETE FROM "LiteLLM_UserTable" WHERE user_id = 'default_user_id';
INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, expires)
VALUES ('molecule-expired', 'molecule-expired-key', now() - interval '40 days');
"""
# Every incident the report must name after the injection.
# (The twice-encrypted and old-key rows are also MT-01: one decryption leaves ciphertext in routing fields.)
INJECTED = {
    *INJECT,
    "DB-01",
    "DB-02",
    "DB-04",
    "DB-05",
    "MT-01",
    "MT-02",
    "MT-03",
    "MT-04",
    "MT-05",
    "SEC-03",
    "SEC-05",
}
SNAPSHOT = r"""
find /etc/litellm /etc/litellm-ops /etc/systemd/system /etc/postgresql /etc/redis /var/lib/litellm \
  /opt/litellm-ops/venv/lib/python3*/site-packages/litellm_ops \
  /opt -maxdepth 6 -path /var/lib/litellm/ui -prune -o -printf '%p %y %m %u:%g %l\n' \
  2>/dev/null | sort | sha256sum
find /etc/litellm /etc/litellm-ops /etc/systemd/system /etc/postgresql /etc/redis /var/lib/litellm \
  -path /var/lib/litellm/ui -prune -o -type f -print0 | sort -z | xargs -0 sha256sum
sha256sum /opt/litellm/venv/lib/python3*/site-packages/urllib3-*.dist-info/METADATA
systemctl show -p Id,ActiveState,SubState,UnitFileState,MainPID,ExecMainStartTimestamp,ExecStart \
  litellm-proxy.service "postgresql@$(ls /etc/postgresql)-main.service" redis-server.service \
  litellm-ops-health.service litellm-ops-exporter.service
runuser -u postgres -- pg_dump -p 5434 litellm | grep -v -e '^\\restrict' -e '^\\unrestrict' | sha256sum
runuser -u postgres -- psql -p 5434 -d postgres -Atc 'SHOW max_connections'
"""


def snapshot(host) -> str:
    """Files (path, type, mode, owner, content), units (state, PID, start time) and the database."""
    return host.check_output(SNAPSHOT)


def remediate(*args: str) -> tuple[int, str, int | None]:
    return run_playbook(REMEDIATE, "-e", f"@{OLD_KEY_VARS}", *args)


def report() -> tuple[dict, str]:
    data = json.loads((REPORTS / "remediation-report.json").read_text(encoding="utf-8"))
    return data, (REPORTS / "remediation-report.md").read_text(encoding="utf-8")


def status(data: dict) -> dict[str, str]:
    return {e["id"]: e["status"] for e in data["incidents"]}


@pytest.fixture(scope="module")
def runs() -> dict[str, str]:
    """The Ansible output of each run, for the secrets check at the end."""
    return {}


@pytest.fixture(scope="module")
def scenario_secrets(host) -> dict[str, str]:
    found = {name: secret(name) for name in SECRET_NAMES}
    if host.file(OLD_KEY_FILE).exists:
        found["old salt key"] = host.check_output(f"cat {OLD_KEY_FILE}")
    for path in host.check_output(f"find {ROTATED} -name '*.key'").split():
        found[f"the rotated key {path}"] = host.check_output(f"cat {path}")
    return found


def test_break_the_converged_host(host):
    # No timer job may write while the before/after snapshots are compared.
    host.check_output("systemctl stop 'litellm-ops-*.timer'")
    host.check_output(f"umask 077; head -c 36 /dev/urandom | base64 > {OLD_KEY_FILE}")
    # The old salt key the model table needs, and the optional key rotation (SEC-03) switched on.
    extra = {
        "vault_litellm_old_salt_keys": [host.check_output(f"cat {OLD_KEY_FILE}")],
        "operations_rotate_expired_keys": True,
    }
    OLD_KEY_VARS.write_text(json.dumps(extra), encoding="utf-8")
    OLD_KEY_VARS.chmod(0o600)
    sql(host, DAMAGE)
    # Model rows written by LiteLLM's own helpers: twice encrypted (MT-02), the same model again
    # (MT-03), one under the old salt key (MT-02, old key) and one the catalogue no longer has (MT-04).
    litellm(host, {"op": "insert_twice_encrypted", "id": "molecule-mt02", "name": "chat-default", "params": LOCAL})
    litellm(host, {"op": "insert", "id": "molecule-mt03", "name": "chat-default", "params": LOCAL})
    old = {**LOCAL, "api_base": "http://127.0.0.1:8081/v1"}
    litellm(
        host, {"op": "insert", "id": "molecule-old", "name": "chat-default", "params": old, "key_file": OLD_KEY_FILE}
    )
    litellm(host, {"op": "insert", "id": "molecule-mt04", "name": "embed-arctic-m-f16", "params": LOCAL})
    # GPU-04: a row under a name that breaks the naming rule (also a zombie: MT-04).
    litellm(host, {"op": "insert", "id": "molecule-gpu04", "name": "qwen-big", "params": LOCAL})
    for command in INJECT.values():
        host.check_output(command)
    unit, env_file = PLAIN_SECRETS
    host.check_output(f'sed -i "/^\\[Service\\]/a Environment={PLAIN_SECRETS[unit]}" {unit} && systemctl daemon-reload')
    host.check_output(f'echo "{PLAIN_SECRETS[env_file]}" >> {env_file}')
    # MT-05: config.yaml hand-edited away from what the inventory renders.
    host.check_output("sed -i 's/num_retries: .*/num_retries: 7/' /etc/litellm/config.yaml")
    assert start_compliance(host) != 0


def start_compliance(host) -> int:
    return host.run("systemctl start litellm-ops-compliance.service").rc


def test_check_run_names_every_incident_and_changes_nothing(host, runs):
    before = snapshot(host)
    code, output, _changed = remediate("--check", "--diff")
    runs["check"] = output
    assert code == 0, output[-4000:]
    assert snapshot(host) == before, "remediate.yml --check changed the host"
    data, text = report()
    assert data["mode"] == "check"
    assert data["summary"]["found"] == [i for i in status(data) if i in INJECTED], json.dumps(data, indent=1)
    assert data["summary"]["fixed"] == []
    assert "audit (check mode, nothing changed)" in text
    # The schema audit planned past the drift: the six pending migrations, the drift and the duplicates.
    found = {e["id"]: next(iter(e["hosts"].values())).get("found", []) for e in data["incidents"] if e["hosts"]}
    assert len([f for f in found["DB-01"] if f.endswith(" not applied")]) == SIX_PENDING, found["DB-01"]
    assert any("organization_id" in f for f in found["DB-01"])
    assert any(TEAM_DAY_KEY in f and "skipped" in f for f in found["DB-01"])
    assert found["DB-02"] == ['table "LiteLLM_SkillsTable" is missing']
    assert found["DB-04"] == [
        f"2 duplicate row(s) in 1 group(s) of LiteLLM_DailyTeamSpend block the unique index {TEAM_DAY_KEY}"
    ]


def test_remediation_fixes_every_incident_and_the_smoke_passes(host, runs):
    code, output, changed = remediate()
    runs["remediate"] = output
    assert code == 0, output[-4000:]
    assert changed > 0
    data, _text = report()
    assert data["mode"] == "run"
    assert data["summary"]["fixed"] == [i for i in status(data) if i in INJECTED], json.dumps(data, indent=1)
    assert data["summary"]["found"] == data["summary"]["left"] == data["errors"] == []
    assert status(data)["OPS-07"] == "ok"

    # What the operator would look at.
    assert start_compliance(host) == 0, host.check_output(f"cat {STATE}/compliance.json")
    # The schema: one run applied the six pending migrations past the drift (every one of the 64 recorded once),
    # and the repair brought back what drift took.
    recorded = sql(
        host,
        "SELECT count(DISTINCT migration_name), count(*) FILTER (WHERE finished_at IS NULL) FROM _prisma_migrations",
    )
    assert recorded == "64|0"
    assert ROLLED_BACK in sql(host, "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL")
    assert sql(host, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'endpoint'") == "6"
    columns = sql(
        host,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'LiteLLM_VerificationToken' "
        "AND column_name IN ('organization_id', 'router_settings')",
    )
    assert columns == "2"
    assert sql(host, "SELECT to_regclass('\"LiteLLM_SkillsTable\"') IS NOT NULL") == "t"
    assert sql(host, "SELECT count(*) FROM \"LiteLLM_DailyTeamSpend\" WHERE team_id = 'team-molecule'") == "1"
    assert sql(host, f"SELECT to_regclass('\"{TEAM_DAY_KEY}\"') IS NOT NULL") == "t"
    assert sql(host, "SELECT user_role FROM \"LiteLLM_UserTable\" WHERE user_id = 'default_user_id'") == "proxy_admin"
    assert sql(host, "SELECT count(*) FROM \"LiteLLM_VerificationToken\" WHERE token = 'molecule-expired'") == "0"
    # Rotated before it was deleted: a replacement with a 90-day expiry, its key only in a 0600 file.
    new_alias = f"molecule-expired-key-rotated-{dt.datetime.now(dt.UTC):%Y%m%d}"
    replacement = sql(
        host,
        "SELECT key_alias, round(extract(epoch FROM expires - now()) / 86400), metadata ->> 'rotated_from' "
        "FROM \"LiteLLM_VerificationToken\" WHERE metadata ? 'rotated_from'",
    )
    assert replacement == f"{new_alias}|90|molecule-expired"
    assert host.check_output(f"stat -c '%a %U' {ROTATED}/{new_alias}.key") == "600 root"
    rows = litellm(host, {"op": "read"})
    assert sorted(rows) == ["molecule-mt03", "molecule-old"]  # the duplicate and the zombie are gone
    assert all(r["decryptable_again"] == [] for r in rows.values()), rows
    assert rows["molecule-old"]["once"]["api_base"] == "http://127.0.0.1:8081/v1"
    assert host.check_output("stat -c %a /var/lib/litellm/artifacts /var/lib/litellm/archive").split() == ["750"] * 2
    assert host.run("ls /etc/litellm/config.yaml.bak /etc/litellm/config.runtime.yaml").rc != 0
    unit = host.check_output("systemctl show -p ExecStart,StandardOutput litellm-proxy.service")
    assert "/opt/litellm/venv/bin/" in unit
    assert "stray" not in unit
    assert "StandardOutput=journal" in unit
    assert host.check_output("runuser -u postgres -- psql -p 5434 -Atc 'SHOW max_connections'") != "50"
    # The eleven that were once only prevented.
    assert "multi-user.target" not in host.check_output(f"systemctl show -p WantedBy {MODEL_UNIT}.service")  # GPU-01
    done = next(iter(next(e for e in data["incidents"] if e["id"] == "GPU-01")["hosts"].values())).get("done", [])
    assert any("removed the boot link" in d and MODEL_UNIT in d for d in done), done
    config = host.file("/etc/litellm/config.yaml").content_string
    assert "rpm: 30" in config  # GPU-02
    assert "fallbacks:" in config  # GPU-03
    assert "request_timeout: 120" in config  # OPS-05
    assert "--num_workers 4" in host.check_output("systemctl show -p ExecStart litellm-proxy.service")  # OPS-05
    assert not host.file(BAD_UNIT).exists  # GPU-04
    assert host.check_output("systemctl is-enabled litellm-ops-backup.timer litellm-ops-probe.timer").split() == [
        "enabled",
        "enabled",
    ]  # OPS-02, OPS-03
    assert host.check_output("systemctl is-active litellm-ops-exporter.service") == "active"  # OPS-04
    backup_age = host.check_output(
        "python3 -c \"import json, time; print(int(time.time() - json.load(open('/var/lib/litellm-ops/backup.json'))"
        "['last_success']['finished_at']))\""
    )
    assert int(backup_age) < 3600  # OPS-02: a backup was taken now
    assert "PRISMA_QUERY_ENGINE_BINARY" not in host.check_output("cat /etc/litellm/litellm.env")  # DB-03
    assert "connection_limit" not in host.check_output("systemctl show -p Environment litellm-ops-backup.service")
    unit, env_file = PLAIN_SECRETS  # SEC-05
    found = leaks({"the master key": secret("litellm_master_key")}, **{unit: host.check_output(f"cat {unit}")})
    found += leaks(
        {"the old salt key": host.check_output(f"cat {OLD_KEY_FILE}")},
        **{env_file: host.check_output(f"cat {env_file}")},
    )
    assert not found, found


def test_second_run_changes_nothing_and_reports_clean(host, runs):
    code, output, changed = remediate()
    runs["second"] = output
    assert code == 0, output[-4000:]
    assert changed == 0, output[-4000:]
    data, text = report()
    assert data["clean"] is True, json.dumps(data, indent=1)
    # Every incident of the catalogue is audited on this host, and none is left: 30 of 30.
    assert len(data["incidents"]) == 30
    assert set(status(data).values()) == {"ok"}, json.dumps(data, indent=1)
    assert "- Clean: yes" in text


def test_no_secret_in_the_output_the_report_or_the_journal(host, runs, scenario_secrets):
    assert set(runs) == {"check", "remediate", "second"}
    journal = host.check_output("journalctl --no-pager -o cat")
    texts = {
        **{f"the {name} run's output": output for name, output in runs.items()},
        **{f"the report {path.name}": path.read_text(encoding="utf-8") for path in REPORTS.iterdir()},
        "the journal": journal,
    }
    assert "old salt key" in scenario_secrets
    assert any(name.startswith("the rotated key") for name in scenario_secrets)
    found = leaks(scenario_secrets, **texts)
    assert not found, found
