"""LiteLLM's database after converge: the full schema of the installed release and no drift. The
repair of what an incident removed (DB-01, DB-02, DB-04) is in the remediation scenario."""

from __future__ import annotations

from conftest import PROJECT, run_playbook

PSQL = "runuser -u postgres -- psql -p 5434 -d litellm -Atc"


def sql(host, statement: str) -> str:
    return host.check_output(f'{PSQL} "{statement}"')


def test_every_migration_of_the_installed_release_is_recorded_as_prisma_does(host):
    shipped = host.check_output(
        "ls -d /opt/litellm/venv/lib/python3*/site-packages/litellm_proxy_extras/migrations/*/ | wc -l"
    )
    assert int(shipped) == 64
    assert sql(host, "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL") == "64"
    assert sql(host, "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NULL") == "0"
    tables = sql(host, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'LiteLLM_%'")
    assert int(tables) == 40


def test_the_schema_check_reports_no_drift_and_changes_nothing():
    code, output, changed = run_playbook(
        str(PROJECT / "playbooks" / "schema.yml"), "--check", "-e", "litellm_proxy_schema_fail_on_drift=true"
    )
    assert code == 0, output
    assert changed == 0, output
    assert "difference(s) from LiteLLM's schema remain" not in output
