"""LiteLLM's database after converge: the full schema of the installed release, no drift, and a
re-run of the remediation playbook puts back what an incident removed (DB-01, DB-02)."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize(
    ("damage", "check"),
    [
        (
            'ALTER TABLE \\"LiteLLM_VerificationToken\\" DROP COLUMN organization_id',
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'LiteLLM_VerificationToken' "
            "AND column_name = 'organization_id'",
        ),
        (
            'DROP TABLE \\"LiteLLM_SkillsTable\\"',
            "SELECT count(*) FROM pg_tables WHERE tablename = 'LiteLLM_SkillsTable'",
        ),
    ],
    ids=["DB-01 missing column", "DB-02 missing table"],
)
def test_remediation_puts_back_what_an_incident_removed(host, damage, check):
    sql(host, damage)
    assert sql(host, check) == "0"
    code, output, changed = run_playbook(str(PROJECT / "playbooks" / "remediate.yml"))
    assert code == 0, output
    assert changed == 1, output
    assert sql(host, check) == "1"
    code, output, changed = run_playbook(str(PROJECT / "playbooks" / "remediate.yml"))
    assert code == 0, output
    assert changed == 0, output
