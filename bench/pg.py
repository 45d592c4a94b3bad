"""The test PostgreSQL that `make test-postgres` starts, for the benchmarks: credentials and throwaway databases."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg2


def admin() -> dict:
    """The superuser test role's connection parameters (its password from the file make writes)."""
    return {
        "host": "127.0.0.1",
        "port": int(os.environ.get("LITELLM_TEST_PG_PORT", "5432")),
        "user": os.environ.get("LITELLM_TEST_PG_USER", "litellm_schema_test"),
        "password": Path(os.environ["LITELLM_TEST_PG_PASSWORD_FILE"]).read_text(encoding="utf-8").strip(),
    }


def _admin_sql(params: dict, statement: str) -> None:
    conn = psycopg2.connect(dbname="postgres", **params)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def fresh_database(params: dict, prefix: str = "bench", template: str | None = None) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin_sql(params, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def drop_database(params: dict, name: str) -> None:
    _admin_sql(params, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
