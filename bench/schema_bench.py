#!/usr/bin/env python3
"""Fresh migration of LiteLLM 1.80.16's 64 migrations: litellm_schema_sync's logic vs. psql -f.

Both run in this process's turn, against fresh databases on the same PostgreSQL 15, in
alternating rounds. The floor is one psql session given every migration.sql in order
(`psql -f a -f b ...`, autocommit, no bookkeeping). The module's figure is its migration step
as the module runs it: connect, take Prisma's lock, create _prisma_migrations, apply each
migration in its own transaction with its history row. The drift check that follows is timed
apart. `make bench-schema` sets the environment (see the Makefile).
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
from ansible.module_utils.litellm_prisma_db import (  # noqa: E402
    Connection,
    Options,
    SchemaSync,
    load_migrations,
)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    wheels = Path(os.environ["LITELLM_TEST_WHEELS"])
    params = admin()
    with tempfile.TemporaryDirectory() as tmp:
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
    med_floor, med_ours = statistics.median(floor), statistics.median(ours)
    print(f"Fresh migration of {len(files)} migrations (LiteLLM 1.80.16), median of {args.rounds} rounds")
    print(f"{'':32}{'median s':>10}{'min s':>10}{'max s':>10}")
    print(f"{'psql -f, all files (floor)':32}{med_floor:10.3f}{min(floor):10.3f}{max(floor):10.3f}")
    print(f"{'litellm_schema_sync migrate':32}{med_ours:10.3f}{min(ours):10.3f}{max(ours):10.3f}")
    print(f"{'  then drift check (apart)':32}{statistics.median(drift):10.3f}{min(drift):10.3f}{max(drift):10.3f}")
    ratio = med_ours / med_floor
    print(f"ratio module/psql: {ratio:.2f}x (goal: at most 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
