"""LiteLLM's Prisma migrations as files: loading, checksums, statements, and what they build.

A migrations directory holds one `<name>/migration.sql` per migration, applied in name order;
the checksum is Prisma's (SHA-256 of the file). The patterns here recognise the statements the
schema sync treats specially (unique keys, index, table and column DDL).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ansible.module_utils.litellm_postgres import DatabaseError
from ansible.module_utils.litellm_prisma_statements import parse_statement

# A statement that cannot run in a transaction; the statements that build a unique key, an index,
# a column or a table, or drop one (read by the baseline and the duplicate check).
NO_TRANSACTION = re.compile(r"\b(CONCURRENTLY|VACUUM|ALTER\s+SYSTEM)\b", re.I)
CREATE_UNIQUE = re.compile(
    r'^\s*CREATE\s+UNIQUE\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"([^"]+)"\s+ON\s+(?:ONLY\s+)?"([^"]+)"'
    r'\s*(?:USING\s+\w+\s*)?\(((?:\s*"[^"]+"\s*(?:ASC|DESC)?\s*,?)+)\)\s*$',
    re.I | re.S,
)
INDEX_NAME = re.compile(
    r'^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"([^"]+)"', re.I
)
DROP_INDEX = re.compile(r'^\s*DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?"([^"]+)"', re.I)
ADD_COLUMN = re.compile(r'ADD\s+COLUMN\s+(?:IF\s+NOT\s+EXISTS\s+)?"([^"]+)"', re.I)
DROP_COLUMN = re.compile(r'DROP\s+COLUMN\s+(?:IF\s+EXISTS\s+)?"([^"]+)"', re.I)
ALTER_TABLE = re.compile(r'^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?"([^"]+)"', re.I)
CREATE_TABLE = re.compile(r'^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"([^"]+)"', re.I)
DROP_TABLE = re.compile(r'^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?"([^"]+)"', re.I)


class SyncError(DatabaseError):
    """Stops the schema sync; the message says what was being done and what to do next.

    RESULT, when the run had started: what it did before it stopped (the module returns it).
    """

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


def split_sql(text: str) -> list[str]:
    """Split a migration script into statements: quotes, dollar quotes and comments respected."""
    statements: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if text[end] == ch:
                    if end + 1 < n and text[end + 1] == ch:
                        end += 2
                        continue
                    break
                end += 1
            buf.append(text[i : end + 1])
            i = end + 1
            continue
        if ch == "$":
            m = re.match(r"\$([A-Za-z_]\w*)?\$", text[i:])
            if m:
                tag = m.group(0)
                end = text.find(tag, i + len(tag))
                end = n if end < 0 else end + len(tag)
                buf.append(text[i:end])
                i = end
                continue
        if ch == ";":
            stmt = "".join(buf).strip()
            if stmt:
                statements.append(stmt)
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        statements.append(stmt)
    return statements


@dataclass
class Migration:
    name: str
    path: Path
    script: str
    checksum: str

    @cached_property
    def statements(self) -> list[str]:
        """Split once: the drift check reads every migration's statements on each comparison."""
        return split_sql(self.script)


def load_migrations(directory: str | Path) -> list[Migration]:
    root = Path(directory)
    if not root.is_dir():
        raise SyncError(f"the migrations directory {root} does not exist")
    migrations = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        script = entry / "migration.sql"
        if entry.is_dir() and script.is_file():
            data = script.read_bytes()
            migrations.append(Migration(entry.name, script, data.decode("utf-8"), hashlib.sha256(data).hexdigest()))
    if not migrations:
        raise SyncError(f"the migrations directory {root} holds no <name>/migration.sql")
    return migrations


def migration_index_names(migrations: list[Migration]) -> set[str]:
    """Indexes that the migrations leave behind, in order (created and not dropped again)."""
    names: set[str] = set()
    for migration in migrations:
        for stmt in migration.statements:
            created = INDEX_NAME.match(stmt)
            dropped = DROP_INDEX.match(stmt)
            if created:
                names.add(created.group(1))
            elif dropped:
                names.discard(dropped.group(1))
    return names


def unique_keys(stmt: str) -> list[tuple[str, str, list[str]]]:
    """(index, table, columns) of each unique key STMT builds: CREATE UNIQUE INDEX, or a primary key or
    unique constraint added by ALTER TABLE."""
    m = CREATE_UNIQUE.match(stmt)
    if m:
        return [(m.group(1), m.group(2), re.findall(r'"([^"]+)"', m.group(3)))]
    if not ALTER_TABLE.match(stmt):
        return []
    parsed = parse_statement(stmt)
    return [
        (a.name, parsed.table, list(a.columns)) for a in parsed.actions if a.kind in ("add_primary_key", "add_unique")
    ]
