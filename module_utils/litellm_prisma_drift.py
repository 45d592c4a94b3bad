"""The live schema against schema.prisma: introspection, drift, and the DDL that repairs it.

`introspect` reads one PostgreSQL schema from the catalogue into the same `Schema` that
litellm_prisma_schema parses from `schema.prisma`; `compare` lists what differs, object by
object, as `Drift`; the `*_sql` functions write what adds a missing object back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ansible.module_utils.litellm_postgres import quote_ident
from ansible.module_utils.litellm_prisma_schema import (
    Column,
    ForeignKey,
    Index,
    Schema,
    Table,
    parse_default_expression,
)

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as PgCursor

ACTION_CODES = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def introspect(cur: PgCursor, schema: str) -> Schema:
    """The live tables, columns, keys, indexes and enums of one PostgreSQL schema."""
    live = Schema()
    cur.execute(
        "SELECT t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
        "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %s ORDER BY t.typname, e.enumsortorder",
        (schema,),
    )
    for name, label in cur.fetchall():
        live.enums.setdefault(name, []).append(label)
    cur.execute(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname, a.attnum",
        (schema,),
    )
    for table, column, pg_type, notnull, default in cur.fetchall():
        tbl = live.tables.setdefault(table, Table(table, table))
        tbl.columns[column] = Column(column, pg_type.replace('"', ""), not notnull, parse_default_expression(default))
    cur.execute(
        "SELECT t.relname, i.relname, x.indisunique, x.indisprimary, am.amname, x.indexprs IS NOT NULL, "
        "ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord) "
        "      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), "
        "x.indoption::int2[], pg_get_indexdef(x.indexrelid), coalesce(pg_get_expr(x.indpred, x.indrelid), '') "
        "FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_am am ON am.oid = i.relam JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = %s AND t.relkind IN ('r', 'p')",
        (schema,),
    )
    for table, name, unique, primary, method, has_expr, columns, options, definition, predicate in cur.fetchall():
        owner = live.tables.get(table)
        if owner is None:
            continue
        if primary:
            owner.primary_key = tuple(columns)
            owner.primary_key_name = name
            continue
        if has_expr:
            cols: tuple = ((definition, "ASC"),)
        else:
            cols = tuple((c, "DESC" if (o or 0) & 1 else "ASC") for c, o in zip(columns, options, strict=False))
        owner.indexes.append(Index(name, cols, unique=unique, method=method, predicate=predicate))
    cur.execute(
        "SELECT t.relname, c.conname, r.relname, c.confdeltype, c.confupdtype, "
        "ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
        "      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), "
        "ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o) "
        "      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) "
        "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE c.contype = 'f' AND n.nspname = %s",
        (schema,),
    )
    for table, name, ref_table, on_delete, on_update, cols, ref_cols in cur.fetchall():
        if table in live.tables:
            live.tables[table].foreign_keys.append(
                ForeignKey(
                    name, tuple(cols), ref_table, tuple(ref_cols), ACTION_CODES[on_delete], ACTION_CODES[on_update]
                )
            )
    return live


@dataclass
class Drift:
    kind: str
    table: str
    name: str
    message: str
    expected: str = ""
    actual: str = ""
    repairable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "name": self.name,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "repairable": self.repairable,
        }


def compare(expected: Schema, live: Schema, migration_indexes: frozenset[str] | set[str] = frozenset()) -> list[Drift]:
    """What differs between the schema file and the database, object by object."""
    drift: list[Drift] = []
    for enum, values in expected.enums.items():
        if enum not in live.enums:
            drift.append(Drift("missing_enum", "", enum, f'enum "{enum}" is missing', ", ".join(values), "", True))
            continue
        for value in values:
            if value not in live.enums[enum]:
                drift.append(
                    Drift(
                        "missing_enum_value",
                        "",
                        f"{enum}.{value}",
                        f'enum "{enum}" lacks the value {value!r}',
                        value,
                        "",
                        True,
                    )
                )
        for value in live.enums[enum]:
            if value not in values:
                drift.append(
                    Drift(
                        "extra_enum_value",
                        "",
                        f"{enum}.{value}",
                        f'enum "{enum}" has the extra value {value!r}',
                        "",
                        value,
                    )
                )
    for name, table in expected.tables.items():
        have = live.tables.get(name)
        if have is None:
            drift.append(Drift("missing_table", name, name, f'table "{name}" is missing', "table", "", True))
            continue
        drift.extend(_compare_columns(table, have))
        if table.primary_key != have.primary_key:
            drift.append(
                Drift(
                    "primary_key_mismatch",
                    name,
                    table.primary_key_name,
                    f'table "{name}": primary key is ({", ".join(have.primary_key) or "none"}), '
                    f"expected ({', '.join(table.primary_key)})",
                    ", ".join(table.primary_key),
                    ", ".join(have.primary_key),
                    not have.primary_key,
                )
            )
        drift.extend(_compare_indexes(table, have, migration_indexes))
        drift.extend(_compare_foreign_keys(table, have, set(expected.tables)))
    return drift


def _compare_columns(table: Table, have: Table) -> list[Drift]:
    drift = []
    for col in table.columns.values():
        live = have.columns.get(col.name)
        where = f'column "{table.name}"."{col.name}"'
        if live is None:
            drift.append(Drift("missing_column", table.name, col.name, f"{where} is missing", col.describe(), "", True))
            continue
        if live.type != col.type:
            drift.append(
                Drift(
                    "type_mismatch",
                    table.name,
                    col.name,
                    f"{where} is {live.type}, expected {col.type}",
                    col.type,
                    live.type,
                )
            )
        if live.nullable != col.nullable:
            widen = col.nullable and not live.nullable
            drift.append(
                Drift(
                    "nullability_mismatch",
                    table.name,
                    col.name,
                    f"{where} is {'NOT NULL' if not live.nullable else 'nullable'}, "
                    f"expected {'nullable' if col.nullable else 'NOT NULL'}",
                    "nullable" if col.nullable else "NOT NULL",
                    "nullable" if live.nullable else "NOT NULL",
                    widen,
                )
            )
        if not _same_default(col.default, live.default):
            drift.append(
                Drift(
                    "default_mismatch",
                    table.name,
                    col.name,
                    f"{where} has the default {_show(live.default)}, expected {_show(col.default)}",
                    _show(col.default),
                    _show(live.default),
                    live.default is None and col.default is not None and col.default[0] != "seq",
                )
            )
    for name in have.columns:
        if name not in table.columns:
            drift.append(
                Drift(
                    "extra_column",
                    table.name,
                    name,
                    f'column "{table.name}"."{name}" is not in the schema',
                    "",
                    have.columns[name].type,
                )
            )
    return drift


def _compare_indexes(table: Table, have: Table, migration_indexes: frozenset[str] | set[str]) -> list[Drift]:
    """Indexes match by definition, whatever their names; one under the expected name must match too."""
    drift = []
    live_keys = {ix.key: ix for ix in have.indexes}
    live_names = {ix.name: ix for ix in have.indexes}
    expected_keys = {ix.key for ix in table.indexes}
    expected_names = {ix.name for ix in table.indexes}
    for ix in table.indexes:
        named = live_names.get(ix.name)
        if named is not None and named.key != ix.key:
            drift.append(
                Drift(
                    "mismatched_index",
                    table.name,
                    ix.name,
                    f'"{table.name}": index "{ix.name}" is a {named.describe()}, expected a {ix.describe()}',
                    ix.describe(),
                    named.describe(),
                    True,
                )
            )
        elif ix.key not in live_keys:
            drift.append(
                Drift(
                    "missing_index",
                    table.name,
                    ix.name,
                    f'"{table.name}": {ix.describe()} is missing',
                    ix.describe(),
                    "",
                    True,
                )
            )
    for ix in have.indexes:
        if ix.key not in expected_keys and ix.name not in migration_indexes and ix.name not in expected_names:
            drift.append(
                Drift(
                    "extra_index",
                    table.name,
                    ix.name,
                    f'"{table.name}": index "{ix.name}" is not in the schema',
                    "",
                    ix.describe(),
                )
            )
    return drift


def _compare_foreign_keys(table: Table, have: Table, owned: set[str]) -> list[Drift]:
    drift = []
    live_keys = {fk.key for fk in have.foreign_keys}
    expected_keys = {fk.key for fk in table.foreign_keys}
    for fk in table.foreign_keys:
        if fk.key not in live_keys:
            drift.append(
                Drift(
                    "missing_foreign_key",
                    table.name,
                    fk.name,
                    f'"{table.name}": {fk.describe()} is missing',
                    fk.describe(),
                    "",
                    True,
                )
            )
    for fk in have.foreign_keys:
        if fk.key not in expected_keys and fk.ref_table in owned:
            drift.append(
                Drift(
                    "extra_foreign_key",
                    table.name,
                    fk.name,
                    f'"{table.name}": {fk.describe()} is not in the schema',
                    "",
                    fk.describe(),
                )
            )
    return drift


def _same_default(expected: tuple | None, live: tuple | None) -> bool:
    if expected == live:
        return True
    if expected is None or live is None:
        return False
    if expected[0] == "array" and live[0] == "array":
        return tuple(expected[1]) == tuple(live[1])
    return False


def _show(default: tuple | None) -> str:
    if default is None:
        return "none"
    if default[0] in ("now", "seq"):
        return {"now": "now()", "seq": "autoincrement()"}[default[0]]
    if default[0] == "num":
        return f"{default[1]:g}"
    if default[0] == "array":
        return "[" + ", ".join(default[1]) + "]"
    return repr(default[1]) if default[0] == "value" else str(default[1])


# The DDL that adds a missing object back (the repair)


def default_sql(default: tuple[Any, ...] | None, pg_type: str) -> str | None:
    """The SQL of a column default as litellm_prisma_schema reads it (None: no DEFAULT clause)."""
    if default is None or default[0] == "seq":
        return None
    kind, *rest = default
    if kind == "now":
        return "CURRENT_TIMESTAMP"
    if kind == "bool":
        return "true" if rest[0] else "false"
    if kind == "num":
        value = rest[0]
        return str(int(value)) if float(value).is_integer() and "double" not in pg_type else repr(value)
    if kind == "array":
        return "ARRAY[" + ", ".join(sql_literal(v) for v in rest[0]) + f"]::{pg_type}"
    if kind == "value":
        return sql_literal(rest[0])
    return rest[0]


def sql_literal(value: str) -> str:
    """VALUE as a quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _type_sql(col: Column, enums: dict[str, list[str]]) -> str:
    base = col.type[:-2] if col.type.endswith("[]") else col.type
    if col.default and col.default[0] == "seq":
        return {"integer": "SERIAL", "bigint": "BIGSERIAL", "smallint": "SMALLSERIAL"}.get(col.type, col.type)
    if base in enums:
        return quote_ident(base) + ("[]" if col.type.endswith("[]") else "")
    return col.type


def column_sql(col: Column, enums: dict[str, list[str]], not_null: bool | None = None) -> str:
    parts = [quote_ident(col.name), _type_sql(col, enums)]
    if not (col.nullable if not_null is None else not not_null):
        parts.append("NOT NULL")
    default = default_sql(col.default, col.type)
    if default is not None:
        parts.append(f"DEFAULT {default}")
    return " ".join(parts)


def index_sql(table: str, ix: Index) -> str:
    cols = ", ".join(quote_ident(c) + (" DESC" if s == "DESC" else "") for c, s in ix.columns)
    using = "" if ix.method == "btree" else f" USING {ix.method.upper()}"
    return (
        f"CREATE {'UNIQUE ' if ix.unique else ''}INDEX {quote_ident(ix.name)} ON {quote_ident(table)}{using} ({cols})"
    )


def foreign_key_sql(table: str, fk: ForeignKey) -> str:
    return (
        f"ALTER TABLE {quote_ident(table)} ADD CONSTRAINT {quote_ident(fk.name)} FOREIGN KEY "
        f"({', '.join(quote_ident(c) for c in fk.columns)}) REFERENCES {quote_ident(fk.ref_table)}"
        f"({', '.join(quote_ident(c) for c in fk.ref_columns)}) ON DELETE {fk.on_delete} ON UPDATE {fk.on_update}"
    )


def create_table_sql(table: Table, enums: dict[str, list[str]]) -> str:
    lines = [column_sql(col, enums) for col in table.columns.values()]
    if table.primary_key:
        lines.append(
            f"CONSTRAINT {quote_ident(table.primary_key_name)} PRIMARY KEY "
            f"({', '.join(quote_ident(c) for c in table.primary_key)})"
        )
    return f"CREATE TABLE {quote_ident(table.name)} (\n    " + ",\n    ".join(lines) + "\n)"
