"""The migration statement parser, and which part of a refused statement has an end state that holds."""

from __future__ import annotations

import ansible.module_utils
import pytest
from conftest import PROJECT

ansible.module_utils.__path__.append(str(PROJECT / "module_utils"))  # type: ignore[attr-defined]

from ansible.module_utils.litellm_prisma_schema import parse_schema  # noqa: E402
from ansible.module_utils.litellm_prisma_statements import (  # noqa: E402
    parse_statement,
    reduce_statement,
    shorten,
    split_top,
)

SCHEMA = parse_schema(
    """
model LiteLLM_VerificationToken {
  token           String  @id
  organization_id String?
  team_id         String?
  team            LiteLLM_TeamTable? @relation(fields: [team_id], references: [team_id])
  @@index([team_id])
}

model LiteLLM_TeamTable {
  team_id String  @id
  alias   String?
  tokens  LiteLLM_VerificationToken[]
}

model LiteLLM_SkillsTable {
  skill_id String @id
}

enum JobStatus {
  ACTIVE
  INACTIVE
}
"""
)


class FakeCatalog:
    """A live database of tables with their columns, constraints, relations and enums."""

    def __init__(self, tables: dict[str, set[str]], constraints=(), relations=(), enums=None, keyed=()):
        self.tables = tables
        self.constraints = set(constraints)
        self.relations = set(relations) | set(tables)
        self.enums = enums or {}
        self.keyed = set(keyed)

    def relation(self, name):
        return name in self.relations

    def column(self, table, column):
        return column in self.tables.get(table, set())

    def constraint(self, table, name):
        return (table, name) in self.constraints

    def type(self, name):
        return name in self.enums

    def enum_value(self, enum, value):
        return value in self.enums.get(enum, [])

    def primary_key(self, table):
        return table in self.keyed


LIVE = FakeCatalog(
    {"LiteLLM_VerificationToken": {"token", "team_id"}, "LiteLLM_TeamTable": {"team_id", "alias"}},
    constraints={("LiteLLM_VerificationToken", "LiteLLM_VerificationToken_pkey")},
    relations={"LiteLLM_VerificationToken_team_id_idx"},
    enums={"JobStatus": ["ACTIVE"]},
    keyed={"LiteLLM_VerificationToken"},
)


def reduce(sql: str):
    return reduce_statement(parse_statement(sql), LIVE, SCHEMA)


def test_prisma_forms_are_read_into_the_objects_they_name():
    stmt = parse_statement(
        'ALTER TABLE "LiteLLM_MCPServerTable" ADD COLUMN     "authorization_url" TEXT,\n'
        'ADD COLUMN     "token_url" TEXT DEFAULT \'a,b\',\nDROP COLUMN IF EXISTS "old"'
    )
    assert (stmt.kind, stmt.table) == ("alter_table", "LiteLLM_MCPServerTable")
    assert [(a.kind, a.name, a.guarded) for a in stmt.actions] == [
        ("add_column", "authorization_url", False),
        ("add_column", "token_url", False),
        ("drop_column", "old", True),
    ]
    fk = parse_statement(
        'ALTER TABLE "A" ADD CONSTRAINT "A_b_fkey" FOREIGN KEY ("b_id") REFERENCES "B"("id") ON DELETE SET NULL'
    ).actions[0]
    assert (fk.kind, fk.name, fk.columns, fk.ref_table, fk.ref_columns) == (
        "add_foreign_key",
        "A_b_fkey",
        ("b_id",),
        "B",
        ("id",),
    )
    index = parse_statement('CREATE UNIQUE INDEX "ix" ON "T"("a", "b" DESC)')
    assert (index.kind, index.name, index.table, index.unique, index.columns) == (
        "create_index",
        "ix",
        "T",
        True,
        ("a", "b"),
    )
    assert parse_statement('CREATE INDEX "lower_ix" ON "U"(LOWER("user_email"))').columns == ("user_email",)
    assert parse_statement('DROP INDEX "ix"').kind == "drop_index"
    assert parse_statement("drop table if exists plain").name == "plain"
    assert parse_statement('ALTER INDEX "a" RENAME TO "b"').new_name == "b"
    assert parse_statement("ALTER TYPE \"E\" ADD VALUE 'X'").value == "X"
    assert parse_statement('UPDATE "T" SET "a" = 1').kind == "data"
    assert parse_statement("DO $$ BEGIN NULL; END $$").kind == "other"
    renames = parse_statement('ALTER TABLE "T" RENAME COLUMN "a" TO "b", DROP CONSTRAINT "k"').actions
    assert [(a.kind, a.name, a.new_name) for a in renames] == [
        ("rename_column", "a", "b"),
        ("drop_constraint", "k", ""),
    ]


def test_split_top_keeps_commas_inside_parentheses_quotes_and_identifiers():
    assert split_top("ADD COLUMN \"a,b\" TEXT DEFAULT 'x,y', ADD CONSTRAINT k UNIQUE (a, b)") == [
        "ADD COLUMN \"a,b\" TEXT DEFAULT 'x,y'",
        "ADD CONSTRAINT k UNIQUE (a, b)",
    ]


def test_a_drop_of_what_is_gone_is_skipped_whole():
    reduction = reduce('DROP INDEX "LiteLLM_DailyTeamSpend_team_id_date_key"')
    assert reduction.remainder is None
    ((_, verdict),) = reduction.skipped
    assert (verdict.state, verdict.object) == ("gone", 'index "LiteLLM_DailyTeamSpend_team_id_date_key"')
    assert reduce('DROP INDEX "LiteLLM_VerificationToken_team_id_idx"') is None, "it exists: another cause"


def test_an_alter_runs_what_is_left_once_the_parts_that_hold_are_taken_out():
    reduction = reduce(
        'ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN "gone", ADD COLUMN "team_id" TEXT,\n'
        'ADD COLUMN "fresh" TEXT'
    )
    assert [v.state for _, v in reduction.skipped] == ["gone", "there"]
    assert reduction.remainder == 'ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "fresh" TEXT'


def test_what_drift_removed_and_schema_prisma_has_is_left_to_the_repair():
    # organization_id is in the schema, not in the database: the repair adds it back.
    reduction = reduce('ALTER TABLE "LiteLLM_VerificationToken" ALTER COLUMN "organization_id" SET DEFAULT \'x\'')
    ((_, verdict),) = reduction.skipped
    assert verdict.state == "drift"
    assert verdict.object == 'column "LiteLLM_VerificationToken"."organization_id"'
    # A column that schema.prisma does not have either: the end state holds without it.
    ((_, verdict),) = reduce(
        'ALTER TABLE "LiteLLM_VerificationToken" ALTER COLUMN "dropped_later" DROP NOT NULL'
    ).skipped
    assert verdict.state == "absent"
    ((_, verdict),) = reduce('CREATE INDEX "x" ON "LiteLLM_SkillsTable"("skill_id")').skipped
    assert (verdict.state, verdict.object) == ("drift", 'table "LiteLLM_SkillsTable"')
    ((_, verdict),) = reduce(
        'DO $$ BEGIN IF NOT EXISTS (SELECT 1) THEN ALTER TABLE "LiteLLM_SkillsTable" ADD COLUMN "a" TEXT; END IF; '
        "END $$"
    ).skipped
    assert verdict.state == "drift", "a DO block that names a table drift removed"


def test_foreign_keys_primary_keys_and_enum_values_that_hold_are_skipped():
    ((_, verdict),) = reduce(
        'ALTER TABLE "LiteLLM_VerificationToken" ADD CONSTRAINT "LiteLLM_VerificationToken_pkey" PRIMARY KEY ("token")'
    ).skipped
    assert verdict.state == "there"
    ((_, verdict),) = reduce(
        'ALTER TABLE "LiteLLM_VerificationToken" ADD CONSTRAINT "fk" FOREIGN KEY ("organization_id") '
        'REFERENCES "LiteLLM_OrganizationTable"("organization_id")'
    ).skipped
    assert verdict.object == 'column "LiteLLM_VerificationToken"."organization_id"'
    ((_, verdict),) = reduce("ALTER TYPE \"JobStatus\" ADD VALUE 'ACTIVE'").skipped
    assert verdict.state == "there"
    assert reduce("ALTER TYPE \"JobStatus\" ADD VALUE 'INACTIVE'") is None


@pytest.mark.parametrize(
    "sql",
    [
        'ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "fresh" TEXT',
        "SELECT 1/0",
        'UPDATE "LiteLLM_VerificationToken" SET "token" = 1',
        'ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN IF NOT EXISTS "team_id" TEXT',
    ],
)
def test_a_refusal_with_another_cause_is_not_reduced(sql):
    assert reduce(sql) is None


def test_shorten_keeps_messages_on_one_line():
    assert shorten("CREATE TABLE x (\n    a int\n)") == "CREATE TABLE x ( a int )"
    assert len(shorten("x" * 500)) == 160
