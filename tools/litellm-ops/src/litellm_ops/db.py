"""Connections to LiteLLM's PostgreSQL database, as its owner role."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import config


def params(settings: dict[str, Any], dbname: str | None = None) -> dict[str, Any]:
    db = settings["database"]
    return {
        "host": db["host"],
        "port": int(db["port"]),
        "user": db["user"],
        "dbname": dbname or db["name"],
        "connect_timeout": 5,
        "application_name": "litellm-ops",
        # Prisma stores UTC in columns without a time zone: compare them in UTC.
        "options": "-c TimeZone=UTC",
    }


def connect(settings: dict[str, Any], dbname: str | None = None):
    import psycopg2

    try:
        return psycopg2.connect(password=config.secret("db-password"), **params(settings, dbname))
    except psycopg2.OperationalError as err:
        db = settings["database"]
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise config.OpsError(
            f"database {dbname or db['name']} at {db['host']}:{db['port']} is not reachable: {message}"
        ) from err


def libpq_env(settings: dict[str, Any], dbname: str | None = None) -> dict[str, str]:
    """Environment for pg_dump/pg_restore: the password travels in PGPASSWORD, never on a command line."""
    p = params(settings, dbname)
    return {
        "PGHOST": str(p["host"]),
        "PGPORT": str(p["port"]),
        "PGUSER": p["user"],
        "PGDATABASE": p["dbname"],
        "PGPASSWORD": config.secret("db-password"),
        "PGCONNECT_TIMEOUT": "5",
        "PGAPPNAME": "litellm-ops",
    }


def table_counts(cursor) -> dict[str, int]:
    """Row counts of every table in the public schema."""
    cursor.execute("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    from psycopg2 import sql

    counts = {}
    for (table,) in cursor.fetchall():
        cursor.execute(sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(table)))
        counts[table] = cursor.fetchone()[0]
    return counts


@contextmanager
def transaction(settings: dict[str, Any]) -> Iterator[Any]:
    """A cursor in one transaction on LiteLLM's database; a missing LiteLLM table is named, not a traceback."""
    import psycopg2

    conn = connect(settings)
    try:
        with conn, conn.cursor() as cursor:
            yield cursor
    except psycopg2.errors.UndefinedTable as err:
        raise config.OpsError(
            f"{str(err).splitlines()[0]} in {settings['database']['name']}: LiteLLM's schema is not there"
            " (run playbooks/schema.yml, or a LiteLLM release that has this table)"
        ) from err
    finally:
        conn.close()
