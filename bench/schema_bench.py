#!/usr/bin/env python3
"""Fresh migration of LiteLLM 1.80.16's 64 migrations: litellm_schema_sync's logic vs. psql -f;
then the remediation of a database behind and drifted vs. the same database without the drift.

Both run in this process's turn, against fresh databases on the same PostgreSQL 15, in
alternating rounds. The floor is one psql session given every migration.sql in order
(`psql -f a -f b ...`, autocommit, no bookkeeping). The module's figure is its migration step
as the module runs it: connect, take Prisma's lock, create _prisma_migrations, apply each
migration in its own transaction with its history row. The drift check that follows is timed
apart.

The second part starts from a database with 58 of the 64 migrations applied (the incident
host's cut) and times the whole run as remediate.yml asks it (migrate, drift check, repair,
duplicate removal): once on that database as it is, once on the same database drifted as the
incident host was (organization_id dropped, the team-day unique key dropped with duplicates
behind it, which the first pending migration meets). `make bench-schema` sets the environment
(see the Makefile) and then runs the generated matrix of the module tests, timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

import ansible.module_utils  # noqa: E402

ansible.module_utils.__path__.append(str(PROJECT / "module_utils"))  # type: ignore[attr-defined]

import psycopg2  # noqa: E402
from ansible.module_utils.litellm_postgres import Connection  # noqa: E402
from ansible.module_utils.litellm_prisma_db import Options, SchemaSync  # noqa: E402
from ansible.module_utils.litellm_prisma_migrations import load_migrations  # noqa: E402
from ansible.module_utils.litellm_prisma_schema import parse_schema  # noqa: E402
from pg import admin, drop_database, fresh_database  # noqa: E402


def run_psql(params: dict, name: str, files: list[Path]) -> float:
    cmd = ["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-h", params["host"], "-p", str(params["port"])]
    cmd += ["-U", params["user"], "-d", name]
    for path in files:
        cmd += ["-f", str(path)]
    env = {**os.environ, "PGPASSWORD": params["password"], "PGOPTIONS": "--client-min-messages=warning"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def run_module(params: dict, name: str, migrations_dir: Path, schema) -> tuple[float, float]:
    target = Connection(params["host"], params["port"], params["user"], params["password"], name)
    start = time.perf_counter()
    conn = psycopg2.connect(**target.connect_kwargs())
    result = SchemaSync(conn, "public", None, load_migrations(migrations_dir), Options(), False).run()
    migrated = time.perf_counter() - start
    assert len(result["applied"]) == 64, result["applied"]
    start = time.perf_counter()
    migrations = load_migrations(migrations_dir)
    drift = SchemaSync(conn, "public", schema, migrations, Options(migrate=False), True).run()["drift"]
    checked = time.perf_counter() - start
    conn.close()
    assert drift == [], drift
    return migrated, checked


INCIDENT_CUT = "20251220144550_schema_update"
TEAM_DAY_KEY = "LiteLLM_DailyTeamSpend_team_id_date_api_key_model_custom_ll_key"
DRIFT = [
    'ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN "organization_id"',
    f'DROP INDEX "{TEAM_DAY_KEY}"',
    'INSERT INTO "LiteLLM_DailyTeamSpend" (id, team_id, date, api_key, model, custom_llm_provider, '
    "mcp_namespaced_tool_name, updated_at) SELECT 'dup-' || n, 'team-a', '2026-11-01', 'k', 'm', 'p', '', now() "
    "FROM generate_series(1, 3) n",
]


def remediate(params: dict, name: str, migrations, schema, backups: str) -> tuple[float, dict]:
    """The whole run, as remediate.yml asks for it."""
    target = Connection(params["host"], params["port"], params["user"], params["password"], name)
    options = Options(repair=True, remove_duplicates=True, backup_dir=backups)
    start = time.perf_counter()
    conn = psycopg2.connect(**target.connect_kwargs())
    result = SchemaSync(conn, "public", schema, migrations, options, False).run()
    elapsed = time.perf_counter() - start
    conn.close()
    assert result["drift"] == [], result["drift"]
    return elapsed, result


def bench_drifted(params: dict, root: Path, migrations_dir: Path, schema, rounds: int) -> None:
    cut_dir = root / "cut"
    cut_dir.mkdir()
    for path in sorted(migrations_dir.iterdir()):
        if path.is_dir() and path.name < INCIDENT_CUT:
            (cut_dir / path.name).mkdir()
            (cut_dir / path.name / "migration.sql").write_bytes((path / "migration.sql").read_bytes())
    template = fresh_database(params, "bench_cut")
    try:
        conn = psycopg2.connect(dbname=template, **params)
        SchemaSync(conn, "public", None, load_migrations(cut_dir), Options(), False).run()
        conn.close()
        migrations = load_migrations(migrations_dir)
        clean, drifted = [], []
        for _ in range(rounds):
            name = fresh_database(params, template=template)
            elapsed, result = remediate(params, name, migrations, schema, str(root / "backups"))
            assert len(result["applied"]) == 6, result
            assert not result["skipped_statements"], result
            clean.append(elapsed)
            drop_database(params, name)
            name = fresh_database(params, template=template)
            conn = psycopg2.connect(dbname=name, **params)
            conn.autocommit = True
            with conn.cursor() as cur:
                for statement in DRIFT:
                    cur.execute(statement)
            conn.close()
            elapsed, result = remediate(params, name, migrations, schema, str(root / "backups"))
            assert len(result["applied"]) == 6, result
            assert result["skipped_statements"], result
            assert result["repaired"], result
            drifted.append(elapsed)
            drop_database(params, name)
    finally:
        drop_database(params, template)
    med_clean, med_drifted = statistics.median(clean), statistics.median(drifted)
    print(f"\nRemediation from 58 of 64 applied (6 pending), median of {rounds} rounds")
    print(f"{'':32}{'median s':>10}{'min s':>10}{'max s':>10}")
    print(f"{'the same database, no drift':32}{med_clean:10.3f}{min(clean):10.3f}{max(clean):10.3f}")
    print(f"{'drifted as the incident host':32}{med_drifted:10.3f}{min(drifted):10.3f}{max(drifted):10.3f}")
    print(f"ratio drifted/clean: {med_drifted / med_clean:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    wheels = Path(os.environ["LITELLM_TEST_WHEELS"])
    params = admin()
    with tempfile.TemporaryDirectory() as tmp:
        drifted_root = Path(tmp) / "drifted"
        drifted_root.mkdir()
        root = Path(tmp)
        with zipfile.ZipFile(wheels / "litellm_proxy_extras-0.4.21-py3-none-any.whl") as archive:
            archive.extractall(root, [m for m in archive.namelist() if "/migrations/" in m])
        with zipfile.ZipFile(wheels / "litellm-1.80.16-py3-none-any.whl") as archive:
            archive.extract("litellm/proxy/schema.prisma", root)
        migrations_dir = root / "litellm_proxy_extras" / "migrations"
        files = [m.path for m in load_migrations(migrations_dir)]
        schema = parse_schema((root / "litellm" / "proxy" / "schema.prisma").read_text(encoding="utf-8"))
        floor, ours, drift = [], [], []
        for _ in range(args.rounds):
            name = fresh_database(params)
            floor.append(run_psql(params, name, files))
            drop_database(params, name)
            name = fresh_database(params)
            migrated, checked = run_module(params, name, migrations_dir, schema)
            ours.append(migrated)
            drift.append(checked)
            drop_database(params, name)
        print_fresh(len(files), args.rounds, floor, ours, drift)
        bench_drifted(params, drifted_root, migrations_dir, schema, args.rounds)
    return 0


def print_fresh(count: int, rounds: int, floor: list[float], ours: list[float], drift: list[float]) -> None:
    med_floor, med_ours = statistics.median(floor), statistics.median(ours)
    print(f"Fresh migration of {count} migrations (LiteLLM 1.80.16), median of {rounds} rounds")
    print(f"{'':32}{'median s':>10}{'min s':>10}{'max s':>10}")
    print(f"{'psql -f, all files (floor)':32}{med_floor:10.3f}{min(floor):10.3f}{max(floor):10.3f}")
    print(f"{'litellm_schema_sync migrate':32}{med_ours:10.3f}{min(ours):10.3f}{max(ours):10.3f}")
    print(f"{'  then drift check (apart)':32}{statistics.median(drift):10.3f}{min(drift):10.3f}{max(drift):10.3f}")
    print(f"ratio module/psql: {med_ours / med_floor:.2f}x (goal: at most 1.5x)")


if __name__ == "__main__":
    sys.exit(main())
