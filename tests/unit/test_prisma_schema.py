"""The logic of litellm_schema_sync that needs no database: the schema parser, SQL splitting, URLs, defaults."""

from __future__ import annotations

import os

import ansible.module_utils
import pytest
from conftest import PROJECT

ansible.module_utils.__path__.append(str(PROJECT / "module_utils"))  # type: ignore[attr-defined]

from ansible.module_utils.litellm_postgres import DatabaseError, parse_database_url  # noqa: E402
from ansible.module_utils.litellm_prisma_client import client_status  # noqa: E402
from ansible.module_utils.litellm_prisma_drift import compare, create_table_sql  # noqa: E402
from ansible.module_utils.litellm_prisma_migrations import split_sql  # noqa: E402
from ansible.module_utils.litellm_prisma_schema import (  # noqa: E402
    SchemaError,
    parse_default_expression,
    parse_schema,
    prisma_name,
)

SCHEMA = """
datasource client {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}

// A comment with "quotes" and { braces }
enum JobStatus {
  ACTIVE
  INACTIVE @map("inactive")
  @@map("job_status")
}

model Budget {
  budget_id  String   @id @default(uuid())
  max_budget Float?
  created_at DateTime @default(now()) @map("created")
  keys       Key[]
  @@map("budgets")
}

model Key {
  token      String    @id
  models     String[]  @default([])
  scopes     String[]  @default(["a", "b"])
  spend      Float     @default (0.0)
  rpm        BigInt    @default(-1)
  metadata   Json      @default("{}")
  status     JobStatus @default(INACTIVE)
  counter    Int       @default(autoincrement())
  epoch      DateTime  @default(dbgenerated("'1970-01-01 00:00:00'::timestamp without time zone"))
  note       String?   @db.VarChar(200)
  budget_id  String
  budget     Budget    @relation(fields: [budget_id], references: [budget_id], onDelete: Cascade)
  alias      String    @unique
  @@unique([budget_id, alias])
  @@index([budget_id, spend(sort: Desc)], map: "key_budget_spend")
  @@index([metadata], type: Gin)
}

model Member {
  user_id String
  team_id String
  @@id([user_id, team_id])
}
"""


def test_models_become_tables_with_prisma_types_names_and_keys():
    schema = parse_schema(SCHEMA)
    assert set(schema.tables) == {"budgets", "Key", "Member"}
    assert schema.enums == {"job_status": ["ACTIVE", "inactive"]}
    budgets = schema.tables["budgets"]
    assert list(budgets.columns) == ["budget_id", "max_budget", "created"]
    assert budgets.columns["created"].type == "timestamp(3) without time zone"
    assert budgets.columns["max_budget"].nullable
    assert not budgets.columns["budget_id"].nullable
    assert (budgets.primary_key, budgets.primary_key_name) == (("budget_id",), "budgets_pkey")
    key = schema.tables["Key"]
    cols = key.columns
    assert (cols["models"].type, cols["models"].nullable) == ("text[]", True)  # Prisma lists are nullable
    assert cols["note"].type == "character varying(200)"
    assert cols["status"].type == "job_status"
    assert cols["rpm"].type == "bigint"
    assert "budget" not in cols, "a relation field is not a column"
    assert schema.tables["Member"].primary_key == ("user_id", "team_id")


def test_defaults_indexes_and_foreign_keys():
    key = parse_schema(SCHEMA).tables["Key"]
    cols = key.columns
    assert cols["models"].default == ("array", ())
    assert cols["scopes"].default == ("array", ("a", "b"))
    assert cols["spend"].default == ("num", 0.0)
    assert cols["rpm"].default == ("num", -1.0)
    assert cols["metadata"].default == ("value", "{}")
    assert cols["status"].default == ("value", "INACTIVE")
    assert cols["counter"].default == ("seq",)
    assert cols["epoch"].default == ("value", "1970-01-01 00:00:00")
    assert cols["token"].default is None
    indexes = {ix.name: ix for ix in key.indexes}
    assert indexes["Key_alias_key"].unique
    assert indexes["Key_budget_id_alias_key"].columns == (("budget_id", "ASC"), ("alias", "ASC"))
    assert indexes["key_budget_spend"].columns == (("budget_id", "ASC"), ("spend", "DESC"))
    assert indexes["Key_metadata_idx"].method == "gin"
    (fk,) = key.foreign_keys
    assert (fk.name, fk.columns, fk.ref_table, fk.ref_columns, fk.on_delete, fk.on_update) == (
        "Key_budget_id_fkey",
        ("budget_id",),
        "budgets",
        ("budget_id",),
        "CASCADE",
        "CASCADE",
    )


def test_long_names_are_cut_like_prisma_cuts_them():
    name = prisma_name(
        "LiteLLM_DailyUserSpend", ["user_id", "date", "api_key", "model", "custom_llm_provider", "endpoint"], "key"
    )
    assert name == "LiteLLM_DailyUserSpend_user_id_date_api_key_model_custom_ll_key"
    assert len(name) == 63


def test_parse_errors_name_the_line():
    with pytest.raises(SchemaError, match="line 3: model M, field a: unknown type 'Strng'"):
        parse_schema("model M {\n  id String @id\n  a Strng\n}\n")
    with pytest.raises(SchemaError, match="line 1: the model M is never closed"):
        parse_schema("model M {\n  id String @id\n")
    with pytest.raises(SchemaError, match="line 2: unbalanced parentheses"):
        parse_schema("model M {\n  id String @id @default(\n}\n")


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ("CURRENT_TIMESTAMP", ("now",)),
        ("nextval('\"Key_counter_seq\"'::regclass)", ("seq",)),
        ("'{}'::jsonb", ("value", "{}")),
        ("'-1'::integer", ("num", -1.0)),
        ("0.0", ("num", 0.0)),
        ("false", ("bool", False)),
        ("ARRAY[]::text[]", ("array", ())),
        ("ARRAY['user_impersonation'::text]", ("array", ("user_impersonation",))),
        ("'INACTIVE'::\"JobStatus\"", ("value", "INACTIVE")),
        ("'it''s'::text", ("value", "it's")),
        (None, None),
    ],
)
def test_live_defaults_read_as_postgres_prints_them(printed, expected):
    assert parse_default_expression(printed) == expected


def test_split_sql_respects_strings_dollar_quotes_and_comments():
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE \"a;b\" (x text DEFAULT 'x;y');\n"
        "DO $$ BEGIN IF 1 = 1 THEN RAISE NOTICE 'semi;colon'; END IF; END $$;\n"
        "/* block; comment */ SELECT 1;\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql\n"
    )
    statements = split_sql(script)
    assert len(statements) == 4
    assert statements[0] == "CREATE TABLE \"a;b\" (x text DEFAULT 'x;y')"
    assert statements[1].startswith("DO $$")
    assert statements[1].endswith("END $$")
    assert statements[3].endswith("LANGUAGE sql")
    assert split_sql("-- only a comment\n") == []


def test_database_url_keeps_prisma_parameters_away_from_libpq():
    conn = parse_database_url(
        "postgresql://litellm:p%40ss%2Fw0rd@db.internal:5434/litellm"
        "?connection_limit=25&pool_timeout=60&schema=proxy&sslmode=require&pgbouncer=true"
    )
    assert (conn.host, conn.port, conn.user, conn.password, conn.database) == (
        "db.internal",
        5434,
        "litellm",
        "p@ss/w0rd",
        "litellm",
    )
    assert conn.schema == "proxy"
    assert sorted(conn.ignored) == ["connection_limit", "pgbouncer", "pool_timeout"]
    assert conn.connect_kwargs() == {
        "host": "db.internal",
        "port": 5434,
        "user": "litellm",
        "dbname": "litellm",
        "password": "p@ss/w0rd",
        "sslmode": "require",
    }
    with pytest.raises(DatabaseError, match="'frobnicate'"):
        parse_database_url("postgresql://u:secret@h/db?frobnicate=1")
    with pytest.raises(DatabaseError, match="names no database"):
        parse_database_url("postgresql://u:secret@h:5432")
    with pytest.raises(DatabaseError) as err:
        parse_database_url("mysql://u:secret@h/db")
    assert "secret" not in str(err.value)


def test_compare_reports_missing_extra_and_mismatched_objects_by_name():
    expected = parse_schema(SCHEMA)
    live = parse_schema(SCHEMA.replace("  note       String?   @db.VarChar(200)\n", "  extra String?\n"))
    del live.tables["Member"]
    live.enums["job_status"].remove("inactive")
    live.tables["Key"].columns["spend"].type = "real"
    drift = {(d.kind, d.table, d.name): d for d in compare(expected, live)}
    assert set(drift) == {
        ("missing_enum_value", "", "job_status.inactive"),
        ("missing_table", "Member", "Member"),
        ("missing_column", "Key", "note"),
        ("extra_column", "Key", "extra"),
        ("type_mismatch", "Key", "spend"),
    }
    assert drift[("type_mismatch", "Key", "spend")].repairable is False
    assert drift[("missing_column", "Key", "note")].repairable is True
    assert 'column "Key"."note" is missing' in drift[("missing_column", "Key", "note")].message


def test_created_tables_carry_types_defaults_and_primary_key():
    schema = parse_schema(SCHEMA)
    sql = create_table_sql(schema.tables["Key"], schema.enums)
    assert '"counter" SERIAL NOT NULL' in sql
    assert "\"scopes\" text[] DEFAULT ARRAY['a', 'b']::text[]" in sql
    assert '"status" "job_status" NOT NULL DEFAULT \'INACTIVE\'' in sql
    assert 'CONSTRAINT "Key_pkey" PRIMARY KEY ("token")' in sql


def _venv(tmp_path, client_schema: str | None, engine: str = "abc123"):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "litellm" / "proxy").mkdir(parents=True)
    (site / "litellm" / "proxy" / "schema.prisma").write_text(SCHEMA, encoding="utf-8")
    pkg = site / "prisma"
    pkg.mkdir()
    (pkg / "_config.py").write_text(
        "class DefaultConfig:\n    expected_engine_version: str = Field(\n"
        f"        env='X',\n        default='{engine}',\n    )\n",
        encoding="utf-8",
    )
    if client_schema is not None:
        (pkg / "client.py").write_text("# generated\n", encoding="utf-8")
        (pkg / "schema.prisma").write_text(client_schema, encoding="utf-8")
    return tmp_path / "venv"


def test_db03_client_state_against_the_venv_schema(tmp_path):
    # A stand-in for a generated client: prisma generate cannot fetch its engines on the test machine.
    schema = parse_schema(SCHEMA)
    assert client_status(_venv(tmp_path / "a", None), schema, None, parse_schema)["state"] == "not_generated"
    assert client_status(_venv(tmp_path / "b", SCHEMA), schema, None, parse_schema)["state"] == "current"
    older = SCHEMA.replace("  note       String?   @db.VarChar(200)\n", "")
    stale = client_status(_venv(tmp_path / "c", older), schema, None, parse_schema)
    assert stale["state"] == "stale"
    assert stale["problems"] == ["the client has other fields for Key"]

    engine = tmp_path / "query-engine"
    engine.write_text("#!/bin/sh\necho query-engine 999old\n", encoding="utf-8")
    os.chmod(engine, 0o755)
    forced = client_status(_venv(tmp_path / "d", SCHEMA), schema, str(engine), parse_schema)
    assert forced["state"] == "engine_mismatch"
    assert "999old" in forced["problems"][0]
    assert "abc123" in forced["problems"][0]
