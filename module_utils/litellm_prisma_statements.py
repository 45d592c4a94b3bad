"""The objects one migration statement drops, creates, alters or reads: plain parsing, no database.

A pending migration can meet a database whose objects drifted away from its history: an index
dropped by hand, a column lost, a table pushed ahead of its migration. `parse_statement` reads
the statement forms Prisma writes (and the hand-written ones LiteLLM ships) into the objects
they name, so that the migrator can ask the live catalogue which part of a failed statement
meets an object that is already gone or already there, and run only the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from ansible.module_utils.litellm_prisma_schema import Schema

# An identifier as SQL writes it: quoted (kept as is) or bare (folded to lower case).
IDENT = r'("(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_IF_EXISTS = r"(?:IF\s+EXISTS\s+)?"
_IF_NOT_EXISTS = r"(?:IF\s+NOT\s+EXISTS\s+)?"
_QUOTED = re.compile(r'"((?:[^"]|"")+)"')


def ident(token: str) -> str:
    """The name an identifier token stands for."""
    if token.startswith('"'):
        return token[1:-1].replace('""', '"')
    return token.lower()


def _idents(text: str) -> tuple[str, ...]:
    """The quoted identifiers in TEXT, in order (the column lists Prisma writes are quoted)."""
    return tuple(m.group(1).replace('""', '"') for m in _QUOTED.finditer(text))


def split_top(text: str) -> list[str]:
    """Split on commas outside parentheses, quotes and identifiers."""
    parts: list[str] = []
    depth, start, quote = 0, 0, ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


@dataclass(frozen=True)
class Action:
    """One action of an ALTER TABLE."""

    text: str
    kind: str  # drop_column, drop_constraint, add_column, alter_column, add_foreign_key, add_primary_key,
    # add_unique, add_constraint, rename_column, rename_constraint, rename_table, other
    name: str = ""  # the column or constraint it names
    new_name: str = ""  # RENAME ... TO
    columns: tuple[str, ...] = ()  # key columns of a constraint
    ref_table: str = ""
    ref_columns: tuple[str, ...] = ()
    guarded: bool = False  # IF EXISTS / IF NOT EXISTS: PostgreSQL skips it by itself


_ACTIONS: list[tuple[str, re.Pattern[str]]] = [
    ("drop_column", re.compile(rf"^DROP\s+(?:COLUMN\s+)?(IF\s+EXISTS\s+)?{IDENT}", re.I)),
    ("drop_constraint", re.compile(rf"^DROP\s+CONSTRAINT\s+(IF\s+EXISTS\s+)?{IDENT}", re.I)),
    ("add_column", re.compile(rf"^ADD\s+COLUMN\s+(IF\s+NOT\s+EXISTS\s+)?{IDENT}", re.I)),
    ("alter_column", re.compile(rf"^ALTER\s+(?:COLUMN\s+)?(){IDENT}", re.I)),
    ("rename_column", re.compile(rf"^RENAME\s+(?:COLUMN\s+)?(){IDENT}\s+TO\s+{IDENT}", re.I)),
    ("rename_constraint", re.compile(rf"^RENAME\s+CONSTRAINT\s+(){IDENT}\s+TO\s+{IDENT}", re.I)),
    ("add_constraint", re.compile(rf"^ADD\s+CONSTRAINT\s+(){IDENT}\s+(.*)$", re.I | re.S)),
]
_RENAME_TABLE = re.compile(rf"^RENAME\s+TO\s+{IDENT}", re.I)
_FOREIGN_KEY = re.compile(rf"^FOREIGN\s+KEY\s*\(([^)]*)\)\s*REFERENCES\s+{IDENT}\s*\(([^)]*)\)", re.I | re.S)
_KEY = re.compile(r"^(PRIMARY\s+KEY|UNIQUE)\s*\(([^)]*)\)", re.I | re.S)


def parse_action(text: str) -> Action:
    renamed = _RENAME_TABLE.match(text)
    if renamed:
        return Action(text, "rename_table", new_name=ident(renamed.group(1)))
    for kind, pattern in _ACTIONS:
        m = pattern.match(text)
        if not m:
            continue
        # "DROP CONSTRAINT x" also matches drop_column's "DROP x"; "ALTER COLUMN" is no column named COLUMN.
        if kind == "drop_column" and m.group(2).upper() == "CONSTRAINT":
            continue
        guarded, name = bool(m.group(1)), ident(m.group(2))
        if kind in ("rename_column", "rename_constraint"):
            return Action(text, kind, name, new_name=ident(m.group(3)))
        if kind == "add_constraint":
            rest = m.group(3).strip()
            fk = _FOREIGN_KEY.match(rest)
            if fk:
                return Action(
                    text,
                    "add_foreign_key",
                    name,
                    columns=_idents(fk.group(1)),
                    ref_table=ident(fk.group(2)),
                    ref_columns=_idents(fk.group(3)),
                )
            key = _KEY.match(rest)
            if key:
                kind = "add_primary_key" if key.group(1).upper().startswith("PRIMARY") else "add_unique"
                return Action(text, kind, name, columns=_idents(key.group(2)))
        return Action(text, kind, name, guarded=guarded)
    return Action(text, "other")


@dataclass(frozen=True)
class Statement:
    """One statement of a migration and the objects it names."""

    text: str
    kind: str  # drop_index, drop_table, drop_type, create_index, create_table, create_type, alter_table,
    # alter_index, alter_type, data, other
    name: str = ""  # the index, table or type it drops, creates or alters
    table: str = ""  # the table it works on (create_index, alter_table, data)
    unique: bool = False
    columns: tuple[str, ...] = ()  # create_index: the identifiers in its column list; data: every identifier
    new_name: str = ""  # alter_index RENAME TO
    value: str = ""  # alter_type ADD VALUE
    actions: tuple[Action, ...] = field(default=())
    guarded: bool = False

    def with_actions(self, actions: list[Action]) -> str:
        """The ALTER TABLE with only ACTIONS: the same head, the actions as written."""
        head = _ALTER_TABLE.match(self.text)
        assert head is not None, self.text
        return self.text[: head.start(2)] + ",\n".join(a.text for a in actions)


_DROP = re.compile(rf"^DROP\s+(INDEX|TABLE|TYPE)\s+(?:CONCURRENTLY\s+)?(IF\s+EXISTS\s+)?{IDENT}", re.I)
_CREATE_INDEX = re.compile(
    rf"^CREATE\s+(UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(IF\s+NOT\s+EXISTS\s+)?{IDENT}\s+ON\s+(?:ONLY\s+)?{IDENT}"
    r"\s*(?:USING\s+\w+\s*)?\((.*)\)",
    re.I | re.S,
)
_CREATE = re.compile(rf"^CREATE\s+(TABLE|TYPE)\s+(IF\s+NOT\s+EXISTS\s+)?{IDENT}", re.I)
_ALTER_TABLE = re.compile(rf"^ALTER\s+TABLE\s+{_IF_EXISTS}(?:ONLY\s+)?{IDENT}\s+(.*)$", re.I | re.S)
_ALTER_INDEX = re.compile(rf"^ALTER\s+INDEX\s+{_IF_EXISTS}{IDENT}\s+RENAME\s+TO\s+{IDENT}", re.I)
_ALTER_TYPE = re.compile(rf"^ALTER\s+TYPE\s+{IDENT}\s+ADD\s+VALUE\s+{_IF_NOT_EXISTS}'((?:[^']|'')*)'", re.I)
_DATA = re.compile(rf"^(?:UPDATE\s+(?:ONLY\s+)?|INSERT\s+INTO\s+|DELETE\s+FROM\s+(?:ONLY\s+)?){IDENT}", re.I)


def parse_statement(text: str) -> Statement:
    text = text.strip()
    m = _DROP.match(text)
    if m:
        return Statement(text, f"drop_{m.group(1).lower()}", ident(m.group(3)), guarded=bool(m.group(2)))
    m = _CREATE_INDEX.match(text)
    if m:
        return Statement(
            text,
            "create_index",
            ident(m.group(3)),
            table=ident(m.group(4)),
            unique=bool(m.group(1)),
            columns=_idents(m.group(5)),
            guarded=bool(m.group(2)),
        )
    m = _CREATE.match(text)
    if m:
        return Statement(text, f"create_{m.group(1).lower()}", ident(m.group(3)), guarded=bool(m.group(2)))
    m = _ALTER_TABLE.match(text)
    if m:
        actions = tuple(parse_action(a) for a in split_top(m.group(2)))
        return Statement(text, "alter_table", ident(m.group(1)), table=ident(m.group(1)), actions=actions)
    m = _ALTER_INDEX.match(text)
    if m:
        return Statement(text, "alter_index", ident(m.group(1)), new_name=ident(m.group(2)))
    m = _ALTER_TYPE.match(text)
    if m:
        return Statement(text, "alter_type", ident(m.group(1)), value=m.group(2).replace("''", "'"))
    m = _DATA.match(text)
    if m:
        return Statement(text, "data", ident(m.group(1)), table=ident(m.group(1)), columns=_idents(text))
    return Statement(text, "other")


def shorten(sql: str, limit: int = 160) -> str:
    """A statement on one line, cut to LIMIT characters, for messages."""
    line = " ".join(sql.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- what a failed statement met


class Catalog(Protocol):
    """What exists in the live database (LiveCatalog asks PostgreSQL)."""

    def relation(self, name: str) -> bool: ...
    def column(self, table: str, column: str) -> bool: ...
    def constraint(self, table: str, name: str) -> bool: ...
    def type(self, name: str) -> bool: ...
    def enum_value(self, enum: str, value: str) -> bool: ...
    def primary_key(self, table: str) -> bool: ...


class LiveCatalog:
    """Catalog over a psycopg2 cursor whose search_path is the schema being migrated."""

    def __init__(self, cur, schema: str) -> None:
        self.cur = cur
        self.schema = schema

    def _exists(self, sql: str, params: tuple) -> bool:
        self.cur.execute(f"SELECT EXISTS ({sql})", params)
        return bool(self.cur.fetchone()[0])

    def relation(self, name: str) -> bool:
        return self._exists(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relname = %s",
            (self.schema, name),
        )

    def column(self, table: str, column: str) -> bool:
        return self._exists(
            "SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s "
            "AND a.attnum > 0 AND NOT a.attisdropped",
            (self.schema, table, column),
        )

    def constraint(self, table: str, name: str) -> bool:
        return self._exists(
            "SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND k.conname = %s",
            (self.schema, table, name),
        )

    def type(self, name: str) -> bool:
        return self._exists(
            "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %s "
            "AND t.typname = %s",
            (self.schema, name),
        )

    def enum_value(self, enum: str, value: str) -> bool:
        return self._exists(
            "SELECT 1 FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n "
            "ON n.oid = t.typnamespace WHERE n.nspname = %s AND t.typname = %s AND e.enumlabel = %s",
            (self.schema, enum, value),
        )

    def primary_key(self, table: str) -> bool:
        return self._exists(
            "SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND k.contype = 'p'",
            (self.schema, table),
        )


@dataclass(frozen=True)
class Verdict:
    """Why a statement, or one action of it, need not run.

    gone: it drops what is already gone. there: it creates what is already there (the drift
    check then compares the object with schema.prisma). drift: it needs an object that drift
    removed and that schema.prisma has: the repair adds it back. absent: it needs an object
    that is gone and that schema.prisma does not have either: the end state holds without it.
    """

    state: str
    object: str
    reason: str


@dataclass
class Reduction:
    """A failed statement, split into what it need not run and what is left to run."""

    skipped: list[tuple[str, Verdict]]
    remainder: str | None  # None: nothing of the statement is left to run


def reduce_statement(stmt: Statement, live: Catalog, expected: Schema | None) -> Reduction | None:
    """The parts of STMT that meet an object already gone or already there; None if no part does.

    Called once PostgreSQL refused STMT with "does not exist" or "already exists": when no part
    of it meets such an object the failure has another cause, and the caller stops.
    """
    whole = _statement_verdict(stmt, live, expected)
    if whole is not None:
        return Reduction([(stmt.text, whole)], None)
    if stmt.kind != "alter_table":
        return None
    skipped, kept = [], []
    for action in stmt.actions:
        verdict = _action_verdict(stmt.table, action, live, expected)
        if verdict is None:
            kept.append(action)
        else:
            skipped.append((action.text, verdict))
    if not skipped:
        return None
    return Reduction(skipped, stmt.with_actions(kept) if kept else None)


def _missing(expected: Schema | None, table: str, column: str = "") -> Verdict:
    """TABLE (or TABLE.COLUMN) does not exist: drift when schema.prisma has it, else absent."""
    what = f'column "{table}"."{column}"' if column else f'table "{table}"'
    wanted = expected is not None and table in expected.tables
    if wanted and column and expected is not None:
        wanted = column in expected.tables[table].columns
    if wanted:
        return Verdict("drift", what, f"{what} is missing (drift): the repair adds it back as schema.prisma has it")
    return Verdict("absent", what, f"{what} does not exist, and schema.prisma does not have it either")


def _there(what: str) -> Verdict:
    return Verdict("there", what, f"{what} already exists; the drift check compares it with schema.prisma")


def _gone(what: str) -> Verdict:
    return Verdict("gone", what, f"{what} does not exist: already dropped")


def _missing_columns(
    table: str, columns: tuple[str, ...], live: Catalog, expected: Schema | None, known_only: bool = False
) -> Verdict | None:
    """The first of COLUMNS that TABLE lacks (with KNOWN_ONLY, only columns schema.prisma gives TABLE)."""
    for column in columns:
        if known_only and not (expected and table in expected.tables and column in expected.tables[table].columns):
            continue
        if not live.column(table, column):
            return _missing(expected, table, column)
    return None


def _statement_verdict(stmt: Statement, live: Catalog, expected: Schema | None) -> Verdict | None:
    kind = stmt.kind
    if kind in ("drop_index", "drop_table", "drop_type"):
        what = f'{kind[5:]} "{stmt.name}"'
        gone = not (live.type(stmt.name) if kind == "drop_type" else live.relation(stmt.name))
        return _gone(what) if gone else None
    if kind == "create_index":
        if live.relation(stmt.name):
            return _there(f'index "{stmt.name}"')
        if not live.relation(stmt.table):
            return _missing(expected, stmt.table)
        return _missing_columns(stmt.table, stmt.columns, live, expected)
    if kind in ("create_table", "create_type"):
        there = live.type(stmt.name) if kind == "create_type" else live.relation(stmt.name)
        return _there(f'{kind[7:]} "{stmt.name}"') if there else None
    if kind == "alter_table":
        renamed = [a for a in stmt.actions if a.kind == "rename_table"]
        if renamed and not live.relation(stmt.table) and live.relation(renamed[0].new_name):
            return _there(f'table "{renamed[0].new_name}"')
        return None if live.relation(stmt.table) else _missing(expected, stmt.table)
    if kind == "alter_index":
        if live.relation(stmt.name):
            return None
        if live.relation(stmt.new_name):
            return _there(f'index "{stmt.new_name}"')
        indexes = {ix.name for table in (expected.tables.values() if expected else []) for ix in table.indexes}
        what = f'index "{stmt.name}"'
        if stmt.new_name in indexes:
            return Verdict("drift", what, f"{what} is missing (drift): the repair builds {stmt.new_name}")
        return Verdict("absent", what, f"{what} does not exist, and schema.prisma has no index {stmt.new_name}")
    if kind == "alter_type":
        if not live.type(stmt.name):
            what = f'enum "{stmt.name}"'
            if expected is not None and stmt.name in expected.enums:
                return Verdict("drift", what, f"{what} is missing (drift): the repair adds it back")
            return Verdict("absent", what, f"{what} does not exist, and schema.prisma does not have it either")
        if live.enum_value(stmt.name, stmt.value):
            return _there(f'value {stmt.value!r} of enum "{stmt.name}"')
        return None
    if kind == "data":
        if not live.relation(stmt.table):
            return _missing(expected, stmt.table)
        return _missing_columns(stmt.table, stmt.columns, live, expected, known_only=True)
    return _named_missing(stmt, live, expected)


def _named_missing(stmt: Statement, live: Catalog, expected: Schema | None) -> Verdict | None:
    """A statement of another form (a DO block, say): the first table or column of schema.prisma that it
    names and that the database lacks. Only names schema.prisma knows count: the repair adds them back."""
    if expected is None:
        return None
    names = _idents(stmt.text)
    tables = [n for n in dict.fromkeys(names) if n in expected.tables]
    for table in tables:
        if not live.relation(table):
            return _missing(expected, table)
    for table in tables:
        missing = _missing_columns(table, names, live, expected, known_only=True)
        if missing is not None:
            return missing
    return None


def _action_verdict(table: str, action: Action, live: Catalog, expected: Schema | None) -> Verdict | None:
    kind, name = action.kind, action.name
    column = f'column "{table}"."{name}"'
    constraint = f'constraint "{name}" of "{table}"'
    if action.guarded:
        return None
    if kind == "drop_column":
        return None if live.column(table, name) else _gone(column)
    if kind == "drop_constraint":
        return None if live.constraint(table, name) else _gone(constraint)
    if kind == "add_column":
        return _there(column) if live.column(table, name) else None
    if kind == "alter_column":
        return None if live.column(table, name) else _missing(expected, table, name)
    if kind == "rename_column":
        if live.column(table, name):
            return None
        if live.column(table, action.new_name):
            return _there(f'column "{table}"."{action.new_name}"')
        return _missing(expected, table, action.new_name)
    if kind == "rename_constraint":
        if live.constraint(table, name):
            return None
        if live.constraint(table, action.new_name):
            return _there(f'constraint "{action.new_name}" of "{table}"')
        return _missing_constraint(expected, table, action.new_name)
    if kind in ("add_foreign_key", "add_primary_key", "add_unique", "add_constraint"):
        if live.constraint(table, name) or (kind != "add_foreign_key" and live.relation(name)):
            return _there(constraint)
        if kind == "add_primary_key" and live.primary_key(table):
            return _there(f'the primary key of "{table}"')
        missing = _missing_columns(table, action.columns, live, expected)
        if missing is not None or kind != "add_foreign_key":
            return missing
        if not live.relation(action.ref_table):
            return _missing(expected, action.ref_table)
        return _missing_columns(action.ref_table, action.ref_columns, live, expected)
    return None


def _missing_constraint(expected: Schema | None, table: str, name: str) -> Verdict:
    what = f'constraint "{name}" of "{table}"'
    have = expected.tables.get(table) if expected else None
    if have is not None and (name == have.primary_key_name or any(fk.name == name for fk in have.foreign_keys)):
        return Verdict("drift", what, f"{what} is missing (drift): the repair adds it back as schema.prisma has it")
    return Verdict("absent", what, f"{what} does not exist, and schema.prisma does not have it either")
