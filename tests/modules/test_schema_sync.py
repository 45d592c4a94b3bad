"""litellm_schema_sync against a real PostgreSQL 15 and LiteLLM's real migrations and schema files.

Every write path runs in check mode first: the run must report the change, and the schema-only
dump before and after must be identical.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import sha256

# Differences that LiteLLM 0.4.110's own files leave between its migrations and its schema.prisma.
# Each one is explained; anything else the drift check finds is a failure.
KNOWN_QUIRKS = {
    "0.4.110": {
        ("missing_index", "LiteLLM_SpendLogs", "LiteLLM_SpendLogs_litellm_call_id_idx"): (
            "built after `migrate deploy` by litellm_proxy_extras/request_log_indexes.py (concurrently, per "
            "partition), not by a migration: migration 20260831120001 is SELECT 1"
        ),
        ("missing_index", "LiteLLM_SpendLogs", "LiteLLM_SpendLogs_api_key_startTime_idx"): (
            "same: migration 20260823000000_add_spend_logs_api_key_starttime_index is SELECT 1"
        ),
        ("nullability_mismatch", "LiteLLM_ShadowEvalJob", "router_names"): (
            "a hand-written migration adds the list column NOT NULL; Prisma creates list columns nullable"
        ),
        (
            "nullability_mismatch",
            "LiteLLM_ShadowEvalJob",
            "models",
        ): "same hand-written migration (multi-key shadow evals)",
    }
}


def drift_keys(result: dict) -> set[tuple[str, str, str]]:
    return {(d["kind"], d["table"], d["name"]) for d in result["drift"]}


def sync(module, db, release, check: bool = False, **extra):
    args = {
        "database_url": db.url,
        "schema_file": str(release.schema),
        "migrations_dir": str(release.migrations),
        **extra,
    }
    return module(args, check=check)


def remediation(db, release, backup_dir: Path) -> dict:
    """The module's arguments as playbooks/remediate.yml gives them: repair and duplicate removal on."""
    return {
        "database_url": db.url,
        "schema_file": str(release.schema),
        "migrations_dir": str(release.migrations),
        "repair": True,
        "remove_duplicates": True,
        "backup_dir": str(backup_dir),
    }


def migrated(module, db, release, **extra) -> dict:
    rc, result, raw = sync(module, db, release, **extra)
    assert rc == 0, raw
    return result


# ------------------------------------------------------------------ fresh databases


def test_fresh_database_gets_every_migration_of_1_80_16_and_no_drift(module, database, releases):
    release = releases["1.80.16"]
    assert len(release.names) == 64
    before = database.dump()

    rc, planned, raw = sync(module, database, release, check=True)
    assert rc == 0, raw
    assert planned["changed"] is True
    assert planned["pending"] == release.names
    assert planned["applied"] == release.names
    assert planned["drift"] == []
    assert database.dump() == before, "check mode wrote to the database"

    result = migrated(module, database, release)
    assert result["changed"] is True
    assert result["applied"] == release.names
    assert result["drift"] == []

    rows = database.sql(
        "SELECT migration_name, checksum, finished_at IS NOT NULL, rolled_back_at IS NULL, applied_steps_count, "
        "started_at <= finished_at, length(id) FROM _prisma_migrations ORDER BY migration_name"
    )
    assert [r[0] for r in rows] == release.names
    for name, checksum, finished, not_rolled_back, steps, ordered, id_length in rows:
        assert checksum == sha256(release.migrations / name / "migration.sql"), name
        assert (finished, not_rolled_back, steps, ordered, id_length) == (True, True, 1, True, 36), name

    again = migrated(module, database, release)
    assert again["changed"] is False
    assert again["applied"] == []
    assert again["executed"] == []


def test_newer_release_0_4_110_differs_only_by_its_known_quirks(module, database, releases):
    release = releases["0.4.110"]
    assert len(release.names) == 220
    result = migrated(module, database, release)
    assert result["applied"] == release.names
    assert drift_keys(result) == set(KNOWN_QUIRKS["0.4.110"]), json.dumps(result["drift"], indent=1)
    assert migrated(module, database, release)["changed"] is False


def test_upgrade_from_1_80_16_to_0_4_110_applies_only_the_new_migrations(module, database, releases):
    old, new = releases["1.80.16"], releases["0.4.110"]
    migrated(module, database, old)
    # LiteLLM rewrote its old migrations to be idempotent: the checksums differ, so the run stops...
    rc, result, _ = sync(module, database, new)
    assert rc != 0
    assert "applied migration(s) were changed after they were applied" in result["msg"]
    assert "accept_changed_migrations: true" in result["msg"]
    # ...until the operator accepts the new files.
    result = migrated(module, database, new, accept_changed_migrations=True)
    assert result["applied"] == [n for n in new.names if n not in old.names]
    rewritten = [
        n
        for n in old.names
        if n in new.names
        and sha256(old.migrations / n / "migration.sql") != sha256(new.migrations / n / "migration.sql")
    ]
    assert len(rewritten) == 56
    assert result["accepted"] == rewritten
    assert [w for w in result["warnings"] if "not in the migrations directory" in w] == [
        f"migration {n} is recorded in _prisma_migrations but not in the migrations directory: the database was "
        f"migrated by a newer LiteLLM"
        for n in ("20251115120021_baseline_diff", "20251115120539_baseline_diff")
    ]
    assert drift_keys(result) == set(KNOWN_QUIRKS["0.4.110"])


# ------------------------------------------------------------------ DB-01, DB-02: drift and repair


def test_db01_missing_column_is_reported_by_name_then_repaired(module, database, releases):
    release = releases["1.80.16"]
    migrated(module, database, release)
    database.sql('ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN "organization_id"')

    report = migrated(module, database, release)
    assert report["changed"] is False
    missing = [d for d in report["drift"] if d["kind"] == "missing_column"]
    assert [(d["table"], d["name"]) for d in missing] == [("LiteLLM_VerificationToken", "organization_id")]
    assert '"LiteLLM_VerificationToken"."organization_id" is missing' in missing[0]["message"]

    before = database.dump()
    rc, planned, raw = sync(module, database, release, check=True, repair=True)
    assert rc == 0, raw
    assert planned["changed"] is True
    assert planned["drift"] == [], "the plan, run in the rolled-back transaction, must leave no drift"
    assert any("organization_id" in r["sql"] for r in planned["repaired"])
    assert database.dump() == before
    assert "organization_id" not in database.columns("LiteLLM_VerificationToken")

    repaired = migrated(module, database, release, repair=True)
    assert repaired["changed"] is True
    assert repaired["drift"] == []
    assert "organization_id" in database.columns("LiteLLM_VerificationToken")
    # The foreign key that went with the column is back too.
    assert ("missing_foreign_key", "LiteLLM_VerificationToken") in {
        (r["kind"], r["table"]) for r in repaired["repaired"]
    }
    assert migrated(module, database, release, repair=True)["changed"] is False


def test_db02_missing_table_is_reported_then_repaired_with_its_indexes(module, database, releases):
    release = releases["1.80.16"]
    migrated(module, database, release)
    database.sql('DROP TABLE "LiteLLM_SkillsTable"')

    report = migrated(module, database, release)
    assert ("missing_table", "LiteLLM_SkillsTable", "LiteLLM_SkillsTable") in drift_keys(report)

    before = database.dump()
    rc, planned, raw = sync(module, database, release, check=True, repair=True)
    assert rc == 0, raw
    assert planned["changed"] is True
    assert planned["drift"] == []
    assert database.dump() == before
    assert not database.table_exists("LiteLLM_SkillsTable")

    repaired = migrated(module, database, release, repair=True)
    assert repaired["drift"] == []
    assert database.table_exists("LiteLLM_SkillsTable")


def test_repair_never_drops_narrows_or_touches_foreign_tables(module, database, releases):
    release = releases["1.80.16"]
    migrated(module, database, release)
    database.sql('ALTER TABLE "LiteLLM_SpendLogs" ADD COLUMN "site_note" TEXT')
    database.sql('ALTER TABLE "LiteLLM_UserTable" ALTER COLUMN "user_email" SET NOT NULL')
    database.sql('ALTER TABLE "LiteLLM_BudgetTable" ALTER COLUMN "max_budget" TYPE real')
    database.sql("CREATE TABLE site_reports (id int PRIMARY KEY)")

    result = migrated(module, database, release, repair=True)
    kinds = {(d["kind"], d["table"], d["name"]) for d in result["drift"]}
    assert ("extra_column", "LiteLLM_SpendLogs", "site_note") in kinds
    assert ("type_mismatch", "LiteLLM_BudgetTable", "max_budget") in kinds
    assert "site_note" in database.columns("LiteLLM_SpendLogs")
    assert database.table_exists("site_reports")
    assert database.sql(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'LiteLLM_BudgetTable' AND column_name = 'max_budget'"
    ) == [("real",)]
    # Dropping a NOT NULL that the schema lacks only widens: that one is repaired.
    assert ("nullability_mismatch", "LiteLLM_UserTable", "user_email") in {
        (r["kind"], r["table"], r["name"]) for r in result["repaired"]
    }
    assert all(not r["sql"].upper().startswith("DROP") for r in result["repaired"])


# ------------------------------------------------------------------ history: older, failed, changed


def test_database_at_an_older_migration_gets_the_rest(module, database, releases, tmp_path):
    release = releases["1.80.16"]
    cut = release.names[40]
    older = release.subset(tmp_path, upto=cut)
    rc, _, raw = module({"database_url": database.url, "migrations_dir": str(older)})
    assert rc == 0, raw
    result = migrated(module, database, release)
    assert result["pending"] == release.names[40:]
    assert result["applied"] == release.names[40:]
    assert result["drift"] == []


def test_failed_migration_stops_clearly_and_resolve_rolled_back_retries_it(module, database, releases, tmp_path):
    release = releases["1.80.16"]
    bad = "29990101000000_add_site_column"
    broken = release.subset(
        tmp_path, extra={bad: 'ALTER TABLE "LiteLLM_SpendLogs" ADD COLUMN "site" TEXT;\nSELECT 1/0;\n'}
    )
    rc, result, raw = module({"database_url": database.url, "migrations_dir": str(broken)})
    assert rc != 0
    assert f"migration {bad} failed at statement 2 of 2 (SELECT 1/0): division by zero" in result["msg"]
    # What the run committed before it stopped is said, and returned.
    assert "Committed by this run before it stopped: 64 migration(s) applied" in result["msg"]
    assert result["changed"] is True
    assert result["applied"] == release.names
    row = database.sql(
        "SELECT finished_at, rolled_back_at, applied_steps_count, logs FROM _prisma_migrations "
        "WHERE migration_name = %s",
        (bad,),
    )
    assert len(row) == 1
    assert row[0][:3] == (None, None, 0)
    assert "division by zero" in row[0][3]
    assert "site" not in database.columns("LiteLLM_SpendLogs"), "the failed migration must leave nothing behind"

    rc, result, _ = module({"database_url": database.url, "migrations_dir": str(broken)})
    assert rc != 0
    assert f"migration {bad} failed at" in result["msg"]
    assert "state: rolled_back" in result["msg"]

    (broken / bad / "migration.sql").write_text(
        'ALTER TABLE "LiteLLM_SpendLogs" ADD COLUMN "site" TEXT;\n', encoding="utf-8"
    )
    args = {
        "database_url": database.url,
        "migrations_dir": str(broken),
        "resolve": [{"migration": bad, "state": "rolled_back"}],
    }
    before = database.dump()
    rc, planned, raw = module(args, check=True)
    assert rc == 0, raw
    assert planned["changed"] is True
    assert planned["applied"] == [bad]
    assert database.dump() == before
    assert database.sql("SELECT count(*) FROM _prisma_migrations WHERE rolled_back_at IS NOT NULL") == [(0,)]

    rc, result, raw = module(args)
    assert rc == 0, raw
    assert result["resolved"] == [{"migration": bad, "state": "rolled_back"}]
    assert result["applied"] == [bad]
    assert "site" in database.columns("LiteLLM_SpendLogs")
    rc, again, _ = module(args)
    assert rc == 0
    assert again["changed"] is False


def test_resolve_applied_records_without_running(module, database, releases, tmp_path):
    release = releases["1.80.16"]
    extra = "29990101000000_done_by_hand"
    tree = release.subset(tmp_path, extra={extra: 'CREATE TABLE "LiteLLM_HandMade" (id int);\n'})
    args = {
        "database_url": database.url,
        "migrations_dir": str(tree),
        "resolve": [{"migration": extra, "state": "applied"}],
    }
    rc, result, raw = module(args)
    assert rc == 0, raw
    assert extra not in result["applied"]
    assert not database.table_exists("LiteLLM_HandMade")
    assert database.sql(
        "SELECT finished_at IS NOT NULL FROM _prisma_migrations WHERE migration_name = %s", (extra,)
    ) == [(True,)]


def test_changed_checksum_stops_until_accepted(module, database, releases, tmp_path):
    release = releases["1.80.16"]
    tree = release.subset(tmp_path)
    rc, _, raw = module({"database_url": database.url, "migrations_dir": str(tree)})
    assert rc == 0, raw
    target = tree / release.names[3] / "migration.sql"
    target.write_text(target.read_text(encoding="utf-8") + "\n-- edited after the fact\n", encoding="utf-8")

    rc, result, _ = module({"database_url": database.url, "migrations_dir": str(tree)})
    assert rc != 0
    assert f"1 applied migration(s) were changed after they were applied: {release.names[3]}" in result["msg"]

    args = {
        "database_url": database.url,
        "migrations_dir": str(tree),
        "resolve": [{"migration": release.names[3], "state": "applied"}],
    }
    rc, result, raw = module(args)
    assert rc == 0, raw
    assert database.sql("SELECT checksum FROM _prisma_migrations WHERE migration_name = %s", (release.names[3],)) == [
        (sha256(target),)
    ]


# ------------------------------------------------------------------ DB-04: duplicates


NARROW_UNIQUE = (
    'DROP INDEX "LiteLLM_DailyTeamSpend_team_id_date_api_key_model_custom_ll_key";\n'
    'CREATE UNIQUE INDEX "LiteLLM_DailyTeamSpend_team_id_date_key" ON "LiteLLM_DailyTeamSpend"("team_id", "date");\n'
)


def _team_spend(db, team: str, model: str, updated: str) -> None:
    db.sql(
        'INSERT INTO "LiteLLM_DailyTeamSpend" (id, team_id, date, api_key, model, custom_llm_provider, updated_at) '
        "VALUES (gen_random_uuid()::text, %s, '2026-11-01', 'hashed-key', %s, 'openai', %s)",
        (team, model, updated),
    )


def test_db04_duplicates_are_reported_and_removed_only_when_asked(module, database, releases, tmp_path):
    release = releases["1.80.16"]
    migrated(module, database, release)
    _team_spend(database, "team-a", "gpt-a", "2026-11-01 10:00")
    _team_spend(database, "team-a", "gpt-b", "2026-11-01 12:00")  # the newest: kept
    _team_spend(database, "team-a", "gpt-c", "2026-11-01 11:00")
    _team_spend(database, "team-b", "gpt-a", "2026-11-01 09:00")
    tree = release.subset(tmp_path, extra={"29990101000000_one_row_per_team_day": NARROW_UNIQUE})
    backups = tmp_path / "backups"
    args = {"database_url": database.url, "migrations_dir": str(tree), "backup_dir": str(backups)}
    before = database.dump()

    rc, result, _ = module(args)
    assert rc != 0
    assert "LiteLLM_DailyTeamSpend_team_id_date_key" in result["msg"]
    assert "remove_duplicates: true" in result["msg"]
    assert "1 groups of rows share the same values (2 rows too many)" in result["msg"]
    assert "hashed-key" not in json.dumps(result)
    assert database.dump() == before
    assert database.sql('SELECT count(*) FROM "LiteLLM_DailyTeamSpend"') == [(4,)]
    assert database.sql("SELECT count(*) FROM _prisma_migrations WHERE migration_name LIKE '2999%%'") == [(0,)]

    args["remove_duplicates"] = True
    rc, planned, raw = module(args, check=True)
    assert rc == 0, raw
    assert planned["changed"] is True
    assert planned["duplicates"][0]["removed"] == 2
    assert planned["backup_files"] == []
    assert not backups.exists()
    assert database.dump() == before
    assert database.sql('SELECT count(*) FROM "LiteLLM_DailyTeamSpend"') == [(4,)]

    rc, result, raw = module(args)
    assert rc == 0, raw
    assert database.sql('SELECT team_id, model FROM "LiteLLM_DailyTeamSpend" ORDER BY team_id') == [
        ("team-a", "gpt-b"),
        ("team-b", "gpt-a"),
    ]
    (backup,) = result["backup_files"]
    lines = [json.loads(line) for line in Path(backup).read_text(encoding="utf-8").splitlines()]
    assert lines[0]["table"] == "LiteLLM_DailyTeamSpend"
    assert sorted(row["model"] for row in lines[1:]) == ["gpt-a", "gpt-c"]
    assert (backups.stat().st_mode & 0o777, (tmp_path / backup).stat().st_mode & 0o777) == (0o700, 0o600)
    assert database.sql("SELECT to_regclass('\"LiteLLM_DailyTeamSpend_team_id_date_key\"') IS NOT NULL") == [(True,)]


TEAM_DAY_KEY = "LiteLLM_DailyTeamSpend_team_id_date_api_key_model_custom_ll_key"


def test_db04_duplicates_blocking_a_dropped_unique_index_are_removed_on_repair(module, database, releases, tmp_path):
    """The index was dropped by hand and duplicates crept in: the repair reports them and, when
    asked, keeps the newest row of each group before it builds the index again."""
    release = releases["1.80.16"]
    migrated(module, database, release)
    database.sql(f'DROP INDEX "{TEAM_DAY_KEY}"')
    for model, updated in (("gpt-a", "2026-11-01 10:00"), ("gpt-a", "2026-11-01 12:00"), ("gpt-b", "2026-11-01 09:00")):
        database.sql(
            'INSERT INTO "LiteLLM_DailyTeamSpend" (id, team_id, date, api_key, model, custom_llm_provider, '
            "mcp_namespaced_tool_name, endpoint, updated_at) VALUES (gen_random_uuid()::text, 'team-a', "
            "'2026-11-01', 'hashed-key', %s, 'openai', '', '/chat/completions', %s)",
            (model, updated),
        )
    backups = tmp_path / "backups"
    args = {
        "database_url": database.url,
        "schema_file": str(release.schema),
        "migrations_dir": str(release.migrations),
        "repair": True,
        "backup_dir": str(backups),
    }
    before = database.dump()

    # Without remove_duplicates: reported, the index is left missing with the reason, nothing written.
    rc, result, raw = module(args)
    assert rc == 0, raw
    reported = [(d["index"], d["rows_to_remove"], d["migration"]) for d in result["duplicates"]]
    assert reported == [(TEAM_DAY_KEY, 1, "repair")]
    assert ("missing_index", "LiteLLM_DailyTeamSpend", TEAM_DAY_KEY) in drift_keys(result)
    assert any("could not repair missing_index" in w for w in result["warnings"])
    assert "hashed-key" not in json.dumps(result)
    assert database.sql('SELECT count(*) FROM "LiteLLM_DailyTeamSpend"') == [(3,)]

    args["remove_duplicates"] = True
    rc, planned, raw = module(args, check=True)
    assert rc == 0, raw
    assert planned["duplicates"][0]["removed"] == 1
    assert planned["drift"] == []
    assert not backups.exists()
    assert database.dump() == before, "check mode wrote to the database"

    rc, result, raw = module(args)
    assert rc == 0, raw
    assert result["drift"] == []
    assert database.sql('SELECT model, updated_at::text FROM "LiteLLM_DailyTeamSpend" ORDER BY model') == [
        ("gpt-a", "2026-11-01 12:00:00"),
        ("gpt-b", "2026-11-01 09:00:00"),
    ]
    (backup,) = result["backup_files"]
    assert Path(backup).stat().st_mode & 0o777 == 0o600
    assert database.sql(f"SELECT to_regclass('\"{TEAM_DAY_KEY}\"') IS NOT NULL") == [(True,)]


# ------------------------------------------------------------------ baseline of a db-push database


def test_database_built_by_db_push_is_baselined_and_keeps_its_data(module, database, releases):
    release = releases["1.80.16"]
    # `prisma db push` builds the schema from schema.prisma with no history: the repair does the same.
    rc, pushed, raw = module({"database_url": database.url, "schema_file": str(release.schema), "repair": True})
    assert rc == 0, raw
    assert pushed["drift"] == []
    assert not database.table_exists("_prisma_migrations")
    database.sql(
        'INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by, max_budget) '
        "VALUES ('b1', 'me', 'me', 5)"
    )

    before = database.dump()
    rc, planned, raw = sync(module, database, release, check=True)
    assert rc == 0, raw
    assert planned["changed"] is True
    assert database.dump() == before

    result = migrated(module, database, release)
    assert sorted(result["applied"] + result["baselined"]) == release.names
    # Most migrations only create what is there; the rest re-ran statements that succeed anyway
    # (IF NOT EXISTS, DO blocks, an index dropped and built again).
    assert "20250326162113_baseline" in result["baselined"]
    assert len(result["baselined"]) >= 40, result["applied"]
    assert result["drift"] == []
    assert database.sql('SELECT max_budget FROM "LiteLLM_BudgetTable"') == [(5.0,)]
    assert database.sql("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL") == [(64,)]
    assert migrated(module, database, release)["changed"] is False


# ------------------------------------------------------------------ connection, DB-07, secrets


def test_prisma_url_parameters_are_understood_and_schema_selects_the_schema(module, database, releases):
    release = releases["1.80.16"]
    url = database.url + "?connection_limit=25&pool_timeout=60&pgbouncer=false&schema=litellm&connect_timeout=5"
    rc, result, raw = module(
        {"database_url": url, "schema_file": str(release.schema), "migrations_dir": str(release.migrations)}
    )
    assert rc == 0, raw
    assert result["schema"] == "litellm"
    assert sorted(result["ignored_url_parameters"]) == ["connection_limit", "pgbouncer", "pool_timeout"]
    assert database.table_exists("LiteLLM_VerificationToken", schema="litellm")
    assert not database.table_exists("LiteLLM_VerificationToken", schema="public")
    assert result["drift"] == []


def test_wrong_password_and_unreachable_host_name_host_and_port_never_the_password(
    module, database, pg_admin, releases
):
    wrong = "Wr0ng-pa55word-for-test"
    url = database.url.replace(pg_admin["password"].replace("/", "%2F"), wrong)
    rc, result, raw = module({"database_url": url, "schema_file": str(releases["1.80.16"].schema)})
    assert rc != 0
    assert f"{pg_admin['host']}:{pg_admin['port']}" in result["msg"]
    assert "password authentication failed" in result["msg"]
    assert wrong not in raw
    assert pg_admin["password"] not in raw

    rc, result, raw = module(
        {
            "login_host": "127.0.0.1",
            "login_port": 1,
            "login_user": "nobody",
            "login_password": wrong,
            "db": "x",
            "schema_file": str(releases["1.80.16"].schema),
        }
    )
    assert rc != 0
    assert "127.0.0.1:1" in result["msg"]
    assert wrong not in raw


def test_check_and_diff_show_the_sql_and_write_nothing(module, database, releases):
    release = releases["1.80.16"]
    before = database.dump()
    rc, result, raw = module(
        {"database_url": database.url, "schema_file": str(release.schema), "migrations_dir": str(release.migrations)},
        check=True,
        diff=True,
    )
    assert rc == 0, raw
    assert 'CREATE TABLE "LiteLLM_VerificationToken"' in result["diff"]["prepared"]
    assert database.dump() == before
    assert not database.table_exists("_prisma_migrations")


# ------------------------------------------------------------------ behind and drifted (the incident host)

INCIDENT_CUT = "20251220144550_schema_update"  # the first of the six migrations the incident host lacked


def _team_day_duplicates(db, rows: int = 3) -> None:
    """Rows the dropped unique index would have refused, newest last (the host's schema had no endpoint yet)."""
    for n in range(1, rows + 1):
        db.sql(
            'INSERT INTO "LiteLLM_DailyTeamSpend" (id, team_id, date, api_key, model, custom_llm_provider, '
            "mcp_namespaced_tool_name, updated_at) VALUES (%s, 'team-a', '2026-11-01', 'hashed-key', 'gpt-a', "
            "'openai', '', TIMESTAMP '2026-11-01' + %s * interval '1 hour')",
            (f"dup-{n}", n),
        )


def test_the_incident_database_behind_and_drifted_is_made_right_in_one_remediation_run(
    module, database, releases, tmp_path
):
    """LiteLLM 1.80.16's migrations applied up to a point (six pending), organization_id dropped (DB-01)
    and the team-day unique index dropped with duplicates behind it (DB-04); the module called as
    remediate.yml calls it. The first pending migration begins by dropping that very index."""
    release = releases["1.80.16"]
    rc, _, raw = module({"database_url": database.url, "migrations_dir": str(release.subset(tmp_path, INCIDENT_CUT))})
    assert rc == 0, raw
    database.sql('ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN "organization_id"')
    database.sql(f'DROP INDEX "{TEAM_DAY_KEY}"')
    _team_day_duplicates(database)
    six = release.names[58:]
    assert six[0] == INCIDENT_CUT
    assert len(six) == 6
    backups = tmp_path / "backups"
    args = remediation(database, release, backups)
    before = database.dump(data=True)

    # The audit: every pending migration, the skip, the duplicates and the drift named; nothing written.
    rc, planned, raw = module(args, check=True)
    assert rc == 0, raw
    assert planned["pending"] == six
    assert planned["applied"] == six
    assert planned["unplanned"] == []
    drift_before = drift_keys({"drift": planned["drift_before"]})
    assert ("missing_column", "LiteLLM_VerificationToken", "organization_id") in drift_before
    assert ("missing_table", "LiteLLM_SkillsTable", "LiteLLM_SkillsTable") in drift_before
    (skip,) = planned["skipped_statements"]
    assert skip["migration"] == "20260106155622_add_endpoint_to_daily_activity_tables"
    assert (skip["statement"], skip["state"]) == (f'DROP INDEX "{TEAM_DAY_KEY}"', "gone")
    assert [(d["index"], d["rows_to_remove"], d["migration"]) for d in planned["duplicates"]] == [
        (TEAM_DAY_KEY, 2, "20260106155622_add_endpoint_to_daily_activity_tables")
    ]
    assert planned["drift"] == []
    assert any("organization_id" in r["name"] for r in planned["repaired"])
    assert database.dump(data=True) == before, "check mode wrote to the database"
    assert not backups.exists()

    # One run converges: every migration recorded once with its checksum, no drift, the duplicates gone.
    rc, result, raw = module(args)
    assert rc == 0, raw
    assert result["changed"] is True
    assert result["applied"] == six
    assert result["drift"] == []
    assert "resolve" not in " ".join(result["warnings"]), "no advice to resolve: nothing failed"
    assert any(TEAM_DAY_KEY in w and "skipped" in w for w in result["warnings"])
    rows = database.sql(
        "SELECT migration_name, checksum, finished_at IS NOT NULL AND rolled_back_at IS NULL FROM _prisma_migrations "
        "ORDER BY migration_name"
    )
    assert [r[0] for r in rows] == release.names
    assert all(r[2] and r[1] == sha256(release.migrations / r[0] / "migration.sql") for r in rows)
    assert database.sql('SELECT id FROM "LiteLLM_DailyTeamSpend"') == [("dup-3",)]
    (backup,) = result["backup_files"]
    assert Path(backup).stat().st_mode & 0o777 == 0o600
    assert "organization_id" in database.columns("LiteLLM_VerificationToken")
    assert database.table_exists("LiteLLM_SkillsTable")

    rc, again, raw = module(args)
    assert rc == 0, raw
    assert again["changed"] is False
    assert again["drift_before"] == again["drift"] == []


def test_a_pending_statement_on_a_column_drift_removed_needs_the_repair_and_says_so(
    module, database, releases, tmp_path
):
    release = releases["1.80.16"]
    migrated(module, database, release)
    database.sql('ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN "organization_id"')
    late = "29990101000000_default_for_organization"
    tree = release.subset(
        tmp_path,
        extra={late: 'ALTER TABLE "LiteLLM_VerificationToken" ALTER COLUMN "organization_id" SET DEFAULT \'org\';\n'},
    )
    args = {"database_url": database.url, "schema_file": str(release.schema), "migrations_dir": str(tree)}

    # Without the repair the statement would fail: the advice names the cause and the option that gets through.
    rc, result, _ = module(args)
    assert rc != 0
    assert f"migration {late} failed at statement 1 of 1" in result["msg"]
    assert 'column "LiteLLM_VerificationToken"."organization_id" is missing (DB-01)' in result["msg"]
    assert "Set repair: true" in result["msg"]
    assert result["changed"] is True, "the failed row is recorded, as Prisma records it"

    args["repair"] = True
    args["resolve"] = [{"migration": late, "state": "rolled_back"}]
    rc, result, raw = module(args)
    assert rc == 0, raw
    assert result["applied"] == [late]
    assert [s["state"] for s in result["skipped_statements"]] == ["drift"]
    assert result["drift"] == []
    assert "organization_id" in database.columns("LiteLLM_VerificationToken")


def test_an_index_under_its_name_with_another_definition_is_drift_and_is_replaced(module, database, releases, tmp_path):
    release = releases["1.80.16"]
    migrated(module, database, release)
    # The same name, other columns; and the team-day key rebuilt without UNIQUE, duplicates behind it.
    database.sql('DROP INDEX "LiteLLM_SpendLogs_startTime_idx"')
    database.sql('CREATE INDEX "LiteLLM_SpendLogs_startTime_idx" ON "LiteLLM_SpendLogs" ("end_user")')
    database.sql(f'DROP INDEX "{TEAM_DAY_KEY}"')
    database.sql(
        f'CREATE INDEX "{TEAM_DAY_KEY}" ON "LiteLLM_DailyTeamSpend" (team_id, date, api_key, model, '
        "custom_llm_provider, mcp_namespaced_tool_name, endpoint)"
    )
    for model, updated in (("gpt-a", "2026-11-01 10:00"), ("gpt-a", "2026-11-01 12:00")):
        database.sql(
            'INSERT INTO "LiteLLM_DailyTeamSpend" (id, team_id, date, api_key, model, custom_llm_provider, '
            "mcp_namespaced_tool_name, endpoint, updated_at) VALUES (gen_random_uuid()::text, 'team-a', "
            "'2026-11-01', 'hashed-key', %s, 'openai', '', '/chat/completions', %s)",
            (model, updated),
        )
    args = remediation(database, release, tmp_path / "backups")
    report = migrated(module, database, release)
    mismatched = {(d["table"], d["name"]): d for d in report["drift"] if d["kind"] == "mismatched_index"}
    assert set(mismatched) == {
        ("LiteLLM_SpendLogs", "LiteLLM_SpendLogs_startTime_idx"),
        ("LiteLLM_DailyTeamSpend", TEAM_DAY_KEY),
    }
    assert mismatched[("LiteLLM_SpendLogs", "LiteLLM_SpendLogs_startTime_idx")]["actual"] == "index on (end_user)"
    assert not any(d["kind"] in ("missing_index", "extra_index") for d in report["drift"]), "named once, as mismatched"

    before = database.dump(data=True)
    rc, planned, raw = module(args, check=True)
    assert rc == 0, raw
    assert planned["drift"] == []
    assert [d["rows_to_remove"] for d in planned["duplicates"]] == [1]
    assert database.dump(data=True) == before

    rc, result, raw = module(args)
    assert rc == 0, raw
    assert result["drift"] == []
    assert sorted(r["name"] for r in result["repaired"]) == sorted(n for _, n in mismatched)
    assert database.sql('SELECT count(*) FROM "LiteLLM_DailyTeamSpend"') == [(1,)]
    assert database.sql(
        "SELECT indexdef LIKE '%%(\"startTime\")' FROM pg_indexes WHERE indexname = 'LiteLLM_SpendLogs_startTime_idx'"
    ) == [(True,)]
    assert migrated(module, database, release, repair=True)["changed"] is False


def test_check_mode_plans_past_a_statement_that_would_fail_and_names_it(module, database, releases, tmp_path):
    release = releases["1.80.16"]
    rc, _, raw = module({"database_url": database.url, "migrations_dir": str(release.subset(tmp_path, INCIDENT_CUT))})
    assert rc == 0, raw
    bad = "29990101000000_broken"
    tree = release.subset(tmp_path, extra={bad: "SELECT 1/0;\n"})
    before = database.dump(data=True)
    rc, planned, _ = module(
        {"database_url": database.url, "schema_file": str(release.schema), "migrations_dir": str(tree), "repair": True},
        check=True,
    )
    assert rc != 0, "a plan with a step that would fail fails, with the whole plan"
    assert planned["pending"] == [*release.names[58:], bad]
    assert planned["applied"] == release.names[58:]
    assert planned["unplanned"] == [
        {
            "migration": bad,
            "statement": "SELECT 1/0",
            "reason": "division by zero",
            "advice": "",
        }
    ]
    assert "1 step(s) of the run would fail" in planned["msg"]
    assert ("missing_table", "LiteLLM_SkillsTable", "LiteLLM_SkillsTable") in drift_keys(
        {"drift": planned["drift_before"]}
    )
    assert database.dump(data=True) == before


def test_db04_duplicates_behind_a_dropped_primary_key_are_removed_before_it_is_added_again(
    module, database, releases, tmp_path
):
    release = releases["1.80.16"]
    migrated(module, database, release)
    database.sql('ALTER TABLE "LiteLLM_BudgetTable" DROP CONSTRAINT "LiteLLM_BudgetTable_pkey" CASCADE')
    for when in ("2026-11-01 10:00", "2026-11-01 12:00"):
        database.sql(
            'INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by, max_budget, updated_at) '
            "VALUES ('b1', 'me', 'me', 5, %s)",
            (when,),
        )
    rc, result, raw = module(remediation(database, release, tmp_path / "backups"))
    assert rc == 0, raw
    assert [(d["index"], d["rows_to_remove"], d["removed"]) for d in result["duplicates"]] == [
        ("LiteLLM_BudgetTable_pkey", 1, 1)
    ]
    assert result["drift"] == [], "the key and the foreign keys that went with it are back"
    assert database.sql('SELECT updated_at::text FROM "LiteLLM_BudgetTable"') == [("2026-11-01 12:00:00",)]
