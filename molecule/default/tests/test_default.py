"""What an operator checks on a converged host: the database and cache layers."""

from __future__ import annotations

import psycopg2
import pytest
from conftest import ANSIBLE_LOG, PG_VERSION, PROJECT, SECRETS_DIR, Resp, exposure, leaks, run_playbook

PG_PORT = 5434
REDIS_PORT = 6379


def listeners(host, port: int) -> list[tuple[str, str]]:
    """(local address, process) of every TCP listener on port, as seen in the container."""
    out = host.check_output("ss -H -ltnp")
    found = []
    for line in out.splitlines():
        fields = line.split()
        address = fields[3]
        if address.rsplit(":", 1)[1] == str(port):
            found.append((address, fields[5] if len(fields) > 5 else ""))
    return found


@pytest.mark.parametrize(
    "unit", ["postgresql.service", f"postgresql@{PG_VERSION}-main.service", "redis-server.service"]
)
def test_unit_active_and_enabled(host, unit):
    state = host.run(f"systemctl is-active {unit}; systemctl is-enabled {unit}").stdout.split()
    assert state == ["active", "enabled"], f"{unit}: {state}"


@pytest.mark.parametrize(("port", "process"), [(PG_PORT, "postgres"), (REDIS_PORT, "redis-server")])
def test_listens_on_loopback_only(host, port, process):
    found = listeners(host, port)
    assert [address for address, _ in found] == [f"127.0.0.1:{port}"], found
    # The listener belongs to the container's own server, not to one on this machine.
    assert f'(("{process}"' in found[0][1], found


def connect(password: str):
    return psycopg2.connect(
        host="127.0.0.1", port=PG_PORT, dbname="litellm", user="litellm", password=password, connect_timeout=5
    )


def test_litellm_role_logs_in_with_vaulted_password(secrets):
    with connect(secrets["litellm_db_password"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, current_database(), current_setting('password_encryption')")
        assert cur.fetchone() == ("litellm", "litellm", "scram-sha-256")
    conn.close()


def test_wrong_password_is_refused(secrets):
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(secrets["litellm_db_password"] + "x")


def test_connection_limits_follow_the_proxy_pool(secrets):
    """DB-06: 25 per worker x 4 workers x 1 proxy host + 20 headroom; idle sessions end."""
    conn = connect(secrets["litellm_db_password"])
    with conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('max_connections'), current_setting('idle_session_timeout'),"
            " current_setting('idle_in_transaction_session_timeout')"
        )
        assert cur.fetchone() == ("120", "5min", "1min")
    conn.close()


def test_other_roles_cannot_connect_to_the_litellm_database(host):
    acl = host.check_output(
        f"runuser -u postgres -- psql -p {PG_PORT} -tAc \"SELECT datacl FROM pg_database WHERE datname = 'litellm'\""
    )
    items = acl.strip().strip("{}").split(",")
    public = [item for item in items if item.startswith("=")]
    assert items != [""], "the database still has the default ACL (PUBLIC may connect)"
    assert all("c" not in item.split("/")[0] for item in public), acl


def test_redis_requires_auth(secrets):
    client = Resp(REDIS_PORT)
    try:
        assert client.command("PING").startswith("-NOAUTH")
        # The replies are asserted, not the calls: pytest would print a failing call's arguments.
        wrong = client.command("AUTH", secrets["litellm_redis_password"] + "x")
        assert wrong.startswith("-WRONGPASS")
        right = client.command("AUTH", secrets["litellm_redis_password"])
        assert right == "+OK"
        assert client.command("PING") == "+PONG"
        memory = client.command("INFO", "memory")
        assert "maxmemory:268435456" in memory
        assert "maxmemory_policy:allkeys-lru" in memory
        # Administrative commands are outside the default user's ACL.
        assert client.command("CONFIG", "GET", "requirepass").startswith("-NOPERM")
    finally:
        client.close()


def test_redis_runs_as_redis(host):
    assert host.check_output("ps -o user= -C redis-server").split() == ["redis"]


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        (f"/etc/postgresql/{PG_VERSION}/main/pg_hba.conf", "postgres", "postgres", "640"),
        (f"/etc/postgresql/{PG_VERSION}/main/conf.d/50-litellm-gateway.conf", "postgres", "postgres", "644"),
        ("/etc/systemd/system/postgresql@.service.d/50-hardening.conf", "root", "root", "644"),
        ("/etc/redis/redis.conf", "redis", "redis", "640"),
        ("/etc/redis/users.acl", "redis", "redis", "640"),
        ("/etc/systemd/system/redis-server.service.d/50-hardening.conf", "root", "root", "644"),
    ],
)
def test_config_file_owner_and_mode(host, path, owner, group, mode):
    assert host.check_output(f"stat -c '%U %G %a' {path}").split() == [owner, group, mode]


def test_redis_files_hold_no_plaintext_password(host, secrets):
    password = {"gateway_redis_password": secrets["litellm_redis_password"]}
    contents = {path: host.file(path).content_string for path in ("/etc/redis/redis.conf", "/etc/redis/users.acl")}
    found = leaks(password, **contents)
    assert not found, found
    assert "#" in contents["/etc/redis/users.acl"]  # the SHA-256 form


@pytest.mark.parametrize("unit", [f"postgresql@{PG_VERSION}-main.service", "redis-server.service"])
def test_unit_exposure_at_most_3(host, unit):
    assert exposure(host, unit) <= 3.0


def test_postgresql_logs_to_the_journal(host):
    """OPS-01: the server's own log lines are in the journal, under its unit."""
    lines = host.check_output(f"journalctl --no-pager -o cat -u postgresql@{PG_VERSION}-main.service")
    assert "database system is ready to accept connections" in lines


def test_no_secret_in_the_journal(host, secrets):
    journal = host.check_output("journalctl --no-pager -o cat")
    assert len(journal) > 1000  # the journal was really read
    found = leaks(secrets, journal=journal)
    assert not found, found


def test_no_secret_in_the_ansible_output(secrets):
    log = ANSIBLE_LOG.read_text(encoding="utf-8")
    assert "PLAY RECAP" in log
    found = leaks(secrets, ansible_log=log)
    assert not found, found


def test_no_deprecation_in_the_ansible_output():
    """Every run of the scenario (check, converge, idempotence) prints no deprecation warning."""
    log = ANSIBLE_LOG.read_text(encoding="utf-8")
    assert "PLAY RECAP" in log
    assert [line for line in log.splitlines() if "DEPRECATION" in line] == []


def test_generated_secrets_are_private():
    assert SECRETS_DIR.stat().st_mode & 0o777 == 0o700
    for path in SECRETS_DIR.iterdir():
        if not path.name.endswith("ansible_lockfile"):
            assert path.stat().st_mode & 0o777 == 0o600, path


def test_check_diff_run_changes_nothing(secrets):
    """The audit: site.yml --check --diff against the converged host reports no change and no secret."""
    returncode, output, changed = run_playbook(str(PROJECT / "site.yml"), "--check", "--diff")
    assert returncode == 0, output[-3000:]
    assert changed == 0, output[-3000:]
    found = leaks(secrets, check_diff_output=output)
    assert not found, found
