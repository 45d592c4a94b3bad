"""The operations layer on the converged host: timers, backups and restore, the health server and
the exporter. The compliance check against injected incidents is in the remediation scenario.

The tests run the units as systemd runs them (systemctl start), read what they wrote, and reach the
servers from this machine on 127.0.0.1 (the container shares its network).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request

import pytest
from conftest import PROJECT, exposure, leaks, run_playbook, secret, wait_for
from test_model_table import LOCAL, litellm, sql

JOBS = ["backup", "restore-check", "compliance", "inventory", "probe", "knowledge"]
STATE = "/var/lib/litellm-ops"
HEALTH = "http://127.0.0.1:8181"
METRICS = "http://127.0.0.1:9090/metrics"
PSQL_ADMIN = "runuser -u postgres -- psql -p 5434 -d postgres -v ON_ERROR_STOP=1 -qAt"


def result(host, name: str) -> dict:
    return json.loads(host.check_output(f"cat {STATE}/{name}.json"))


def start(host, job: str):
    return host.run(f"systemctl start litellm-ops-{job}.service")


def get(url: str, auth: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def counts(host) -> dict[str, int]:
    """Every table's row count, in one query."""
    tables = sql(host, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM public.\"{t}\"" for t in tables)
    rows = (line.split("|") for line in sql(host, query).splitlines())
    return {table: int(count) for table, count in rows}


@pytest.mark.parametrize("job", JOBS)
def test_timer_is_enabled_with_a_next_elapse(host, job):
    timer = f"litellm-ops-{job}.timer"
    assert host.run(f"systemctl is-enabled {timer}").stdout.strip() == "enabled"
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {timer} -p ActiveState -p NextElapseUSecRealtime -p Persistent -p RandomizedDelayUSec"
        ).splitlines()
    )
    assert props["ActiveState"] == "active"
    assert props["NextElapseUSecRealtime"] not in ("", "n/a", "0"), props
    assert props["Persistent"] == "yes"
    assert props["RandomizedDelayUSec"] not in ("0", ""), props


@pytest.mark.parametrize("unit", [f"litellm-ops-{name}.service" for name in [*JOBS, "health", "exporter"]])
def test_unit_exposure_at_most_3(host, unit):
    """Hardening: every operations unit we ship is sandboxed to an exposure of 3.0 or below."""
    assert exposure(host, unit) <= 3.0


@pytest.mark.parametrize("job", JOBS)
def test_each_service_runs_once_and_writes_its_result(host, job):
    before = time.time()
    run = start(host, job)
    journal = host.run(f"journalctl -u litellm-ops-{job}.service -n 20 --no-pager").stdout
    assert run.rc == 0, journal
    outcome = result(host, job)
    assert outcome["finished_at"] >= before - 5
    # The probe measures: a capability a model lacks is recorded (degraded), not a failed run.
    assert outcome["status"] in (("ok", "pass", "degraded") if job == "probe" else ("ok", "pass")), outcome
    mode = host.check_output(f"stat -c '%U %a' {STATE}/{job}.json")
    assert mode == "litellm-ops 640"


def test_probe_measured_each_capability(host):
    models = result(host, "probe")["models"]
    mock = models["chat-selftest-mock"]["capabilities"]
    assert mock["chat"]["ok"], mock
    assert mock["stream"]["ok"], mock
    cloud = models["chat-gpt-4o-mini-openai"]["capabilities"]
    # The cloud stand-in answers a forced tool call; LiteLLM's mock model does not.
    assert cloud["tools"]["ok"] is True, cloud
    assert mock["tools"]["ok"] is False
    assert all(c["latency_seconds"] > 0 for c in cloud.values())
    assert set(models) >= {"chat-default", "chat-qwen2.5-0.5b-llamacpp"}


def test_inventory_matches_the_catalogue(host):
    outcome = result(host, "inventory")
    assert outcome["findings"] == {"missing": [], "zombies": [], "duplicates": []}
    assert "chat-default" in outcome["served"]


def test_skills_are_synced_from_the_inventory(host):
    rows = sql(host, "SELECT skill_id, metadata->>'managed_by' FROM \"LiteLLM_SkillsTable\" ORDER BY 1").split()
    assert rows == ["litellm_skill_gateway-usage|litellm-gateway", "litellm_skill_incident-triage|litellm-gateway"]
    assert result(host, "knowledge")["unchanged"] == ["litellm_skill_gateway-usage", "litellm_skill_incident-triage"]


def test_backup_is_private_and_verified(host):
    outcome = result(host, "backup")
    path = outcome["backup"]
    assert host.check_output(f"stat -c '%U %a' {path}") == "litellm-ops 700"
    assert host.check_output(f"stat -c '%a' {path}/* | sort -u") == "600"
    manifest = json.loads(host.check_output(f"cat {path}/manifest.json"))
    assert manifest["toc_entries"] > 10
    assert "/etc/litellm/config.yaml" in manifest["config_files"]
    assert "/etc/litellm/litellm.env" not in manifest["config_files"]
    assert len(manifest["salt_key_fingerprint"]) == 64
    salt_key = {"gateway_salt_key": secret("litellm_salt_key")}
    found = leaks(salt_key, manifest=host.check_output(f"cat {path}/manifest.json"))
    assert not found, found
    check = result(host, "restore-check")
    assert (check["backup"], check["rows"]) == (path, sum(manifest["row_counts"].values()))


@pytest.fixture
def model_row(host):
    litellm(host, {"op": "insert", "id": "molecule-backup", "name": "chat-default", "params": LOCAL})
    yield
    sql(host, "DELETE FROM \"LiteLLM_ProxyModelTable\" WHERE model_id = 'molecule-backup'")


def test_restore_check_changes_nothing_and_ends_no_session(host):
    """restore.yml --check verifies the backup and plans the swap: the live database and a session on it stay."""
    session = "molecule-open-session"
    host.check_output(
        f"systemd-run --unit={session} runuser -u postgres -- "
        f"psql 'port=5434 dbname=litellm application_name={session}' -c 'SELECT pg_sleep(600)'"
    )
    try:
        assert wait_for(
            lambda: session in host.check_output(f"{PSQL_ADMIN} -c 'SELECT application_name FROM pg_stat_activity'"), 30
        )
        databases = host.check_output(f"{PSQL_ADMIN} -c 'SELECT datname FROM pg_database ORDER BY 1'")
        rc, output, _ = run_playbook(str(PROJECT / "playbooks" / "restore.yml"), "--check", "-e", "backup=latest")
        assert rc == 0, output[-3000:]
        assert "would take the name litellm" in output
        assert session in host.check_output(f"{PSQL_ADMIN} -c 'SELECT application_name FROM pg_stat_activity'")
        assert host.check_output(f"{PSQL_ADMIN} -c 'SELECT datname FROM pg_database ORDER BY 1'") == databases
        assert host.service("litellm-proxy").is_running
    finally:
        host.run(f"systemctl stop {session}.service")


def test_restore_after_dropping_the_database(host, model_row):
    assert start(host, "backup").rc == 0
    before = counts(host)
    assert before["LiteLLM_ProxyModelTable"] >= 1
    host.check_output(f"{PSQL_ADMIN} -c 'DROP DATABASE litellm WITH (FORCE)'")
    assert "litellm" not in host.check_output(f"{PSQL_ADMIN} -c 'SELECT datname FROM pg_database'").split()

    # Another salt key: refused before anything changes.
    rc, output, _ = run_playbook(
        str(PROJECT / "playbooks" / "restore.yml"),
        "-e",
        "backup=latest",
        "-e",
        "vault_litellm_salt_key=another-salt-key-that-did-not-encrypt-it",
    )
    assert rc != 0
    assert "would not decrypt" in output
    assert "vault_litellm_salt_key" in output
    assert "litellm_restore_check" in host.check_output(f"{PSQL_ADMIN} -c 'SELECT datname FROM pg_database'")

    rc, output, _ = run_playbook(str(PROJECT / "playbooks" / "restore.yml"), "-e", "backup=latest")
    assert rc == 0, output[-3000:]
    assert counts(host) == before
    # A model row the backup holds decrypts with LiteLLM's own helper under the deployed salt key.
    assert litellm(host, {"op": "read"})["molecule-backup"] == {"once": LOCAL, "decryptable_again": []}
    databases = host.check_output(f"{PSQL_ADMIN} -c 'SELECT datname FROM pg_database'").split()
    assert "litellm_restore_check" in databases
    assert not [d for d in databases if d.startswith("litellm_replaced_")]
    assert get("http://127.0.0.1:4000/health/liveliness")[0] == 200


@pytest.fixture
def compliant(host):
    """A compliance result of the host as it is now: the hourly timer may have run while an earlier
    test had the host half-way (the database dropped for the restore), and /readyz reports that."""
    assert start(host, "compliance").rc == 0
    assert result(host, "compliance")["status"] == "pass"


def test_readyz_and_the_dashboard(host, compliant):
    status, body = get(HEALTH + "/readyz")
    assert status == 200, body
    assert get(HEALTH + "/healthz") == (200, '{\n  "status": "alive"\n}')
    assert get(HEALTH + "/dashboard")[0] == 401
    assert get(HEALTH + "/dashboard", "admin:wrong-password")[0] == 401
    status, page = get(HEALTH + "/dashboard", "admin:" + secret("litellm_dashboard_password"))
    assert status == 200
    assert "LiteLLM gateway: ready" in page
    htpasswd = host.check_output("cat /etc/litellm-ops/dashboard.htpasswd")
    assert htpasswd.startswith("admin:$6$")
    found = leaks({"gateway_dashboard_password": secret("litellm_dashboard_password")}, htpasswd=htpasswd)
    assert not found, found


def test_readyz_names_redis_when_it_stops(host, compliant):
    host.check_output("systemctl stop redis-server.service")
    try:
        status, body = get(HEALTH + "/readyz")
        answer = json.loads(body)
        assert status == 503
        assert answer["failing"] == ["redis"], answer
        assert "does not answer PING" in answer["checks"]["redis"]["detail"]
    finally:
        host.check_output("systemctl start redis-server.service")
    # Ready again once Redis answers; the check runs on each request.
    assert wait_for(lambda: get(HEALTH + "/readyz")[0] == 200, 15)


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or (line.startswith(name + "{") and line.split(" ")[0] == name):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_have_real_values(host):
    status, text = get(METRICS)
    assert status == 200
    for component in ("proxy", "database", "redis"):
        assert metric(text, f'litellm_ops_up{{component="{component}"}}') == 1.0, component
    assert metric(text, "litellm_ops_db_pool_connections") == 25 * 4 * 1
    assert metric(text, "litellm_ops_db_max_connections") == 25 * 4 * 1 + 20
    assert metric(text, "litellm_ops_db_connections") >= 1
    manifest_size = int(
        host.check_output(f"python3 -c \"import json; print(json.load(open('{STATE}/backup.json'))['size_bytes'])\"")
    )
    assert metric(text, "litellm_ops_backup_size_bytes") == manifest_size
    assert 0 <= metric(text, "litellm_ops_backup_age_seconds") < 3600
    assert metric(text, "litellm_ops_keys_expired") == 0
    assert metric(text, 'litellm_ops_keys_expiring{within_days="7"}') == 0
    assert metric(text, 'litellm_ops_compliance_check_failed{id="SEC-06"}') == 0
    assert metric(text, 'litellm_ops_probe_success{capability="chat",model="chat-selftest-mock"}') == 1
    assert metric(text, 'litellm_ops_probe_latency_seconds{capability="chat",model="chat-selftest-mock"}') > 0
    # No GPU here: no VRAM series rather than made-up ones.
    assert "litellm_ops_gpu_memory_used_bytes{" not in text
