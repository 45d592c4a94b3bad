"""LiteLLM's database schema without the Prisma CLI: migrate, check for drift, repair.

`SchemaSync` applies LiteLLM's Prisma migrations the way `prisma migrate deploy` does, keeping
Prisma's bookkeeping in `_prisma_migrations`, then compares the live database with
`schema.prisma` (parsed by litellm_prisma_schema) and, when asked, adds what is missing.
The pieces it runs live beside it: the connection in litellm_postgres, the migration files in
litellm_prisma_migrations, introspection, drift and the repair DDL in litellm_prisma_drift.
Every write runs in a transaction; in check mode the whole run is one transaction that is
rolled back, so the plan is the real thing and nothing is kept.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ansible.module_utils.litellm_postgres import pg_reason, quote_ident
from ansible.module_utils.litellm_prisma_drift import (
    Drift,
    column_sql,
    compare,
    create_table_sql,
    default_sql,
    foreign_key_sql,
    index_sql,
    introspect,
    sql_literal,
)
from ansible.module_utils.litellm_prisma_migrations import (
    ADD_COLUMN,
    ALTER_TABLE,
    CREATE_TABLE,
    CREATE_UNIQUE,
    DROP_COLUMN,
    DROP_INDEX,
    DROP_TABLE,
    NO_TRANSACTION,
    Migration,
    SyncError,
    migration_index_names,
    unique_keys,
)
from ansible.module_utils.litellm_prisma_schema import Schema
from ansible.module_utils.litellm_prisma_statements import (
    LiveCatalog,
    Verdict,
    parse_statement,
    reduce_statement,
    shorten,
)

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

HISTORY_TABLE = "_prisma_migrations"
# The advisory lock key Prisma Migrate takes: holding the same one keeps this module and any
# Prisma CLI (LiteLLM's own start-up migration) from migrating at the same time.
PRISMA_LOCK_KEY = 72707369

# SQLSTATEs that mean "this object is already there" / "already gone": a statement refused with one
# of them may have an end state that already holds (baselining, and drift in a pending migration).
ALREADY_EXISTS = {"42P07", "42701", "42710", "42P06", "42723", "42P16"}
ALREADY_GONE = {"42704", "42P01", "42703"}
TOLERATED = ALREADY_EXISTS | ALREADY_GONE

# Columns whose values are not printed in a duplicate report (hashed keys, tokens).
SENSITIVE_COLUMN = re.compile(r"key|token|secret|password|hash", re.I)


@dataclass
class Options:
    migrate: bool = True
    baseline: str = "auto"  # auto | always | never
    resolve: list[dict] = field(default_factory=list)
    remove_duplicates: bool = False
    backup_dir: str = "/var/backups/litellm/duplicates"
    repair: bool = False
    accept_changed: bool = False
    lock_timeout: float = 60.0


class StatementFailed(Exception):
    """A statement of a pending migration cannot run. The run records it and stops; check mode plans past it."""

    def __init__(self, reason: str, advice: str = "", ran: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.advice = advice
        self.ran = ran  # False: stopped before anything of the statement ran, so nothing is recorded as failed
        self.statement = ""
        self.position = ""


# What a migration statement that PostgreSQL refused with these SQLSTATEs is told to do.
FAILURE_ADVICE = {
    "23505": "Rows break a unique key the statement needs: set remove_duplicates: true to keep the newest row of "
    "each group (the others are saved to backup_dir first).",
    "23502": "Existing rows have no value for a column the statement makes NOT NULL: give them one first.",
    "23503": "Rows refer to rows that do not exist: remove or fix them first.",
}


class SchemaSync:
    """One run against one database. `run()` returns the result; SyncError stops it, with what was done."""

    def __init__(
        self,
        conn: PgConnection,
        schema: str,
        expected: Schema | None,
        migrations: list[Migration],
        options: Options,
        check_mode: bool,
    ) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self.schema = schema
        self.expected = expected
        self.migrations = migrations
        self.options = options
        self.check_mode = check_mode
        self.catalog = LiveCatalog(self.cur, schema)
        self.changed = False
        self._dirty = False  # written since the last commit
        self._committed = False  # anything committed (what a failed run reports as changed)
        self.executed: list[str] = []
        self.warnings: list[str] = []
        self.result: dict = {
            "applied": [],
            "baselined": [],
            "pending": [],
            "resolved": [],
            "accepted": [],
            "skipped_statements": [],
            "unplanned": [],
            "drift_before": [],
            "drift": [],
            "repaired": [],
            "duplicates": [],
            "backup_files": [],
        }

    # -- plumbing ---------------------------------------------------------------------
    def write(self, sql: str, params: tuple | None = None, record: bool = True) -> None:
        """Run a statement that changes the database (rolled back at the end in check mode)."""
        self.cur.execute(sql, params)
        self.changed = self._dirty = True
        if record:
            self.executed.append(sql)

    def commit(self) -> None:
        if not self.check_mode:
            self.conn.commit()
            self._committed = self._committed or self._dirty
            self._dirty = False

    def rollback(self) -> None:
        self.conn.rollback()
        self._dirty = False

    def scalar(self, sql: str, params: tuple | None = None):
        self.cur.execute(sql, params)
        row = self.cur.fetchone()
        return row[0] if row else None

    def lock(self) -> None:
        deadline = time.monotonic() + self.options.lock_timeout
        while not self.scalar("SELECT pg_try_advisory_lock(%s)", (PRISMA_LOCK_KEY,)):
            if time.monotonic() > deadline:
                raise SyncError(
                    f"another migrator (Prisma or this module) holds the migration lock after "
                    f"{self.options.lock_timeout:g} s; run again once it has finished"
                )
            time.sleep(1)
        self.conn.commit()

    def unlock(self) -> None:
        self.conn.rollback()
        self.cur.execute("SELECT pg_advisory_unlock(%s)", (PRISMA_LOCK_KEY,))
        self.conn.commit()

    # -- main -------------------------------------------------------------------------
    def run(self) -> dict:
        self.lock()
        try:
            self._run()
        except SyncError as exc:
            self.rollback()
            raise SyncError(f"{exc}{self._committed_before()}", self._outcome(failed=True)) from None
        except BaseException:
            self.rollback()
            raise
        finally:
            if self.check_mode:
                self.conn.rollback()
            self.unlock()
        if self.result["unplanned"]:
            raise SyncError(self._unplanned_message(), self._outcome())
        return self._outcome()

    def _outcome(self, failed: bool = False) -> dict:
        result = dict(self.result)
        # A failed run reports what it committed; check mode what it would change.
        result["changed"] = self._committed if failed and not self.check_mode else self.changed
        result["executed"] = self.executed
        return result

    def _committed_before(self) -> str:
        if self.check_mode:
            return ""
        done = [
            f"{len(items)} {label} ({', '.join(items[:5])}{' ...' if len(items) > 5 else ''})"
            for label, items in (
                ("migration(s) applied", self.result["applied"] + self.result["baselined"]),
                ("resolution(s) recorded", [r["migration"] for r in self.result["resolved"]]),
                ("changed checksum(s) accepted", self.result["accepted"]),
            )
            if items
        ]
        return f" Committed by this run before it stopped: {'; '.join(done)}." if done else ""

    def _unplanned_message(self) -> str:
        first = self.result["unplanned"][0]
        count = len(self.result["unplanned"])
        where = f" ({first['statement']})" if first["statement"] else ""
        return (
            f"check mode: {count} step(s) of the run would fail; the plan went on past them and reports the rest. "
            f"First: migration {first['migration']}{where}: {first['reason']}"
            + (f" {first['advice']}" if first["advice"] else "")
        )

    def _run(self) -> None:
        self.cur.execute("SELECT set_config('search_path', %s, false)", (quote_ident(self.schema),))
        pending: list[Migration] = []
        baseline = False
        migrate = bool(self.options.migrate and self.migrations)
        if migrate:
            self._ensure_history()
            history = self._history()
            self._resolve(history)
            history = self._history()
            pending = self._check_history(history)
            self.result["pending"] = [m.name for m in pending]
            baseline = self.options.baseline == "always" or (
                self.options.baseline == "auto" and not history and self._has_tables()
            )
        before = self._drift() if self.expected is not None else []
        self.result["drift_before"] = [d.as_dict() for d in before]
        for migration in pending:
            self._apply(migration, baseline)
        if self.expected is not None:
            # With nothing pending, nothing of the schema was written since: the same comparison.
            drift = self._drift() if pending else before
            if self.options.repair and any(d.repairable for d in drift):
                self._repair(drift)
                drift = self._drift()
            self.result["drift"] = [d.as_dict() for d in drift]

    # -- history ----------------------------------------------------------------------
    def _ensure_history(self) -> None:
        if not self.scalar("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)):
            self.write(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
        if self.scalar("SELECT to_regclass(%s)", (f"{quote_ident(self.schema)}.{HISTORY_TABLE}",)) is None:
            # The table exactly as Prisma Migrate creates it.
            self.write(
                f"CREATE TABLE {HISTORY_TABLE} (\n"
                '    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,\n'
                '    "checksum"              VARCHAR(64) NOT NULL,\n'
                '    "finished_at"           TIMESTAMPTZ,\n'
                '    "migration_name"        VARCHAR(255) NOT NULL,\n'
                '    "logs"                  TEXT,\n'
                '    "rolled_back_at"        TIMESTAMPTZ,\n'
                '    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),\n'
                '    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0\n'
                ")"
            )
            self.commit()

    def _history(self) -> list[dict]:
        self.cur.execute(
            f"SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at "
            f"FROM {HISTORY_TABLE} ORDER BY started_at, migration_name"
        )
        cols = [d[0] for d in self.cur.description or ()]
        return [dict(zip(cols, row, strict=True)) for row in self.cur.fetchall()]

    def _has_tables(self) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname <> %s",
                (self.schema, HISTORY_TABLE),
            )
        )

    def _stop_or_plan_past(self, migration: str, message: str) -> None:
        """A history that stops the run: raised; in check mode recorded, and the plan goes on."""
        if not self.check_mode:
            raise SyncError(message)
        self.result["unplanned"].append({"migration": migration, "statement": "", "reason": message, "advice": ""})

    def _check_history(self, history: list[dict]) -> list[Migration]:
        by_name = {m.name: m for m in self.migrations}
        applied: dict[str, dict] = {}
        changed: list[tuple[dict, Migration]] = []
        for row in history:
            name = row["migration_name"]
            if row["rolled_back_at"] is not None:
                continue
            if row["finished_at"] is None:
                first = (row["logs"] or "no log recorded").strip().splitlines()
                self._stop_or_plan_past(
                    name,
                    f"migration {name} failed at {row['started_at']} and is not resolved "
                    f"({first[0] if first else 'no log recorded'}). Fix the cause, then set resolve to "
                    f"[{{migration: {name}, state: rolled_back}}] to apply it again, or state: applied if "
                    f"its changes are already in the database. (Check mode plans past it as if rolled back.)",
                )
                continue
            applied[name] = row
            if name not in by_name:
                self.warnings.append(
                    f"migration {name} is recorded in {HISTORY_TABLE} but not in the migrations directory: "
                    f"the database was migrated by a newer LiteLLM"
                )
            elif row["checksum"] != by_name[name].checksum:
                changed.append((row, by_name[name]))
        if changed and not self.options.accept_changed:
            names = [m.name for _, m in changed]
            first_row, first = changed[0]
            self._stop_or_plan_past(
                first.name,
                f"{len(changed)} applied migration(s) were changed after they were applied: {', '.join(names[:5])}"
                f"{' ...' if len(names) > 5 else ''} (for {first.name}: checksum {first_row['checksum'][:12]}... in "
                f"the database, {first.checksum[:12]}... in {first.path}). LiteLLM rewrote its older migrations in "
                f"later releases. If these files come from the LiteLLM you are installing and the drift check agrees, "
                f"set accept_changed_migrations: true to record their new checksums, or resolve one with "
                f"[{{migration: {first.name}, state: applied}}]; otherwise restore the files of the LiteLLM that "
                f"applied them.",
            )
            changed = []
        for row, migration in changed:
            self._accept_checksum(row, migration)
            self.result["accepted"].append(migration.name)
        if changed:
            self.commit()
        return [m for m in self.migrations if m.name not in applied]

    def _accept_checksum(self, row: dict, migration: Migration) -> None:
        self.write(
            f"UPDATE {HISTORY_TABLE} SET checksum = %s, logs = concat_ws(E'\\n', logs, %s) WHERE id = %s",
            (
                migration.checksum,
                f"checksum {row['checksum']} replaced on {time.strftime('%Y-%m-%d')}: file changed",
                row["id"],
            ),
            record=False,
        )

    def _resolve(self, history: list[dict]) -> None:
        by_name = {m.name: m for m in self.migrations}
        for item in self.options.resolve:
            name, state = item["migration"], item["state"]
            if name not in by_name:
                raise SyncError(f"resolve: the migration {name!r} is not in the migrations directory")
            rows = [r for r in history if r["migration_name"] == name and r["rolled_back_at"] is None]
            failed = [r for r in rows if r["finished_at"] is None]
            done = [r for r in rows if r["finished_at"] is not None]
            migration = by_name[name]
            if state == "rolled_back":
                if done and not failed:
                    if done[-1]["checksum"] != migration.checksum:
                        raise SyncError(
                            f"resolve: {name} is applied (with another checksum), not failed; "
                            f"rolled_back only applies to a failed migration. Use state: applied to accept the file."
                        )
                    continue
                for row in failed:
                    self.write(
                        f"UPDATE {HISTORY_TABLE} SET rolled_back_at = now() WHERE id = %s", (row["id"],), record=False
                    )
                    self.result["resolved"].append({"migration": name, "state": state})
            else:
                if done and not failed:
                    if done[-1]["checksum"] == migration.checksum:
                        continue
                    self._accept_checksum(done[-1], migration)
                else:
                    for row in failed:
                        self.write(
                            f"UPDATE {HISTORY_TABLE} SET rolled_back_at = now() WHERE id = %s",
                            (row["id"],),
                            record=False,
                        )
                    self.write(
                        f"INSERT INTO {HISTORY_TABLE} (id, checksum, started_at, finished_at, migration_name, "
                        f"applied_steps_count) VALUES (%s, %s, now(), now(), %s, 0)",
                        (str(uuid.uuid4()), migration.checksum, name),
                        record=False,
                    )
                self.result["resolved"].append({"migration": name, "state": state})
        self.commit()

    # -- applying ---------------------------------------------------------------------
    def _apply(self, migration: Migration, baseline: bool) -> None:
        """One pending migration in its own transaction, recorded as Prisma records it.

        The script runs in one round trip; when PostgreSQL refuses it, or a statement needs the
        duplicate check first, it runs statement by statement, each under a savepoint, and a
        statement whose end state already holds is skipped (`_statement`).
        """
        import psycopg2

        statements = migration.statements
        needs_autocommit = any(NO_TRANSACTION.search(s) for s in statements)
        if needs_autocommit and len(statements) > 1:
            raise SyncError(
                f"migration {migration.name} mixes a statement that cannot run in a transaction "
                f"(CONCURRENTLY) with others; Prisma cannot apply it either"
            )
        autocommit = needs_autocommit and not self.check_mode
        stepwise = any(unique_keys(s) for s in statements)  # the duplicate check comes first
        row_id = str(uuid.uuid4())
        self.cur.execute("SAVEPOINT litellm_migration")
        self.write(
            f"INSERT INTO {HISTORY_TABLE} (id, checksum, started_at, migration_name, applied_steps_count) "
            f"VALUES (%s, %s, now(), %s, 0)",
            (row_id, migration.checksum, migration.name),
            record=False,
        )
        created: set[tuple[str, str]] = set()
        skipped = unplanned = 0
        try:
            if autocommit:
                self.commit()  # the history row first, as Prisma does; then the statement alone
                self.conn.autocommit = True
                try:
                    self._statement(migration, statements[0], autocommit=True)
                finally:
                    self.conn.autocommit = False
            # A migration of comments only runs nothing and is still recorded, as Prisma does.
            elif statements and (baseline or stepwise or not self._script(migration)):
                for number, stmt in enumerate(statements, 1):
                    if needs_autocommit:
                        # Check mode: the same index, built inside the transaction that is rolled back.
                        stmt = re.sub(r"\bCONCURRENTLY\s+", "", stmt, flags=re.I)
                    try:
                        self._preflight_unique(migration.name, stmt)
                        if baseline:
                            skipped += not self._baseline_statement(migration, stmt, created)
                        else:
                            self._statement(migration, stmt)
                    except StatementFailed as failure:
                        failure.statement, failure.position = stmt, f"statement {number} of {len(statements)}"
                        if not self.check_mode:
                            raise
                        unplanned += 1
                        self.result["unplanned"].append(
                            {
                                "migration": migration.name,
                                "statement": shorten(stmt),
                                "reason": failure.reason,
                                "advice": failure.advice,
                            }
                        )
        except StatementFailed as failure:
            failure.statement = failure.statement or statements[0]
            self._record_failure(migration, row_id, failure, autocommit)
        except psycopg2.Error as exc:
            self._record_failure(migration, row_id, StatementFailed(pg_reason(exc)), autocommit)
        if unplanned:
            return  # check mode: planned past its failures, neither applied nor recorded
        self.write(
            f"UPDATE {HISTORY_TABLE} SET finished_at = now(), applied_steps_count = applied_steps_count + 1 "
            f"WHERE id = %s",
            (row_id,),
            record=False,
        )
        if not autocommit:
            self.cur.execute("RELEASE SAVEPOINT litellm_migration")
        self.commit()
        self._warn_skips(migration)
        if baseline and skipped == len(statements):
            self.result["baselined"].append(migration.name)
        else:
            self.result["applied"].append(migration.name)

    def _script(self, migration: Migration) -> bool:
        """The whole script in one round trip, as Prisma sends it; False (and nothing kept) when refused."""
        import psycopg2

        self.cur.execute("SAVEPOINT litellm_script")
        try:
            self.write(migration.script)
        except psycopg2.Error:
            self.cur.execute("ROLLBACK TO SAVEPOINT litellm_script")
            return False
        self.cur.execute("RELEASE SAVEPOINT litellm_script")
        return True

    def _guarded(self, sql: str, autocommit: bool) -> None:
        """Run SQL under a savepoint, so that a refusal leaves the migration's transaction usable."""
        if autocommit:
            self.write(sql)
            return
        self.cur.execute("SAVEPOINT litellm_statement")
        try:
            self.write(sql)
        except BaseException:
            self.cur.execute("ROLLBACK TO SAVEPOINT litellm_statement")
            raise
        self.cur.execute("RELEASE SAVEPOINT litellm_statement")

    def _statement(self, migration: Migration, stmt: str, autocommit: bool = False) -> None:
        """One statement; when PostgreSQL says its object is already gone or already there, the parts of
        it whose end state already holds are skipped, and the rest runs. Any other refusal stops."""
        import psycopg2

        try:
            self._guarded(stmt, autocommit)
            return
        except psycopg2.Error as exc:
            error = exc
        parsed = parse_statement(stmt)
        reduction = reduce_statement(parsed, self.catalog, self.expected) if error.pgcode in TOLERATED else None
        if reduction is None:
            raise StatementFailed(pg_reason(error), FAILURE_ADVICE.get(error.pgcode or "", ""))
        for _, verdict in reduction.skipped:
            if verdict.state == "drift" and not self.options.repair:
                raise StatementFailed(
                    pg_reason(error),
                    f"The cause is drift: {verdict.object} is missing (DB-01). Set repair: true (the role's "
                    f"litellm_proxy_schema_repair, on by default) so that the run adds it back as schema.prisma "
                    f"has it and skips this statement.",
                )
        for part, verdict in reduction.skipped:
            self._skip(migration, part, verdict)
        if parsed.kind == "drop_index":
            self._dropped_unique(migration, parsed.name)
        if reduction.remainder is not None:
            try:
                self._guarded(reduction.remainder, autocommit)
            except psycopg2.Error as exc:
                raise StatementFailed(pg_reason(exc), FAILURE_ADVICE.get(exc.pgcode or "", "")) from None

    def _skip(self, migration: Migration, text: str, verdict: Verdict) -> None:
        self.result["skipped_statements"].append(
            {
                "migration": migration.name,
                "statement": shorten(text),
                "object": verdict.object,
                "state": verdict.state,
                "reason": verdict.reason,
            }
        )

    def _warn_skips(self, migration: Migration) -> None:
        """One warning per migration that had statements skipped, naming them."""
        skips = [s for s in self.result["skipped_statements"] if s["migration"] == migration.name]
        if not skips:
            return
        shown = "; ".join(f"{s['statement']}: {s['reason']}" for s in skips[:3])
        more = f"; and {len(skips) - 3} more (skipped_statements)" if len(skips) > 3 else ""
        self.warnings.append(
            f"migration {migration.name}: {len(skips)} statement(s) skipped, their end state already holds: "
            f"{shown}{more}"
        )

    def _record_failure(self, migration: Migration, row_id: str, failure: StatementFailed, autocommit: bool) -> None:
        name = migration.name
        where = f" at {failure.position or 'its statement'} ({shorten(failure.statement)})"
        if self.check_mode:
            self.cur.execute("ROLLBACK TO SAVEPOINT litellm_migration")
            raise SyncError(f"migration {name} would fail{where}: {failure.reason}. {failure.advice}".strip())
        if not failure.ran:
            if not autocommit:
                self.cur.execute("ROLLBACK TO SAVEPOINT litellm_migration")
            raise SyncError(f"migration {name}: {failure.reason} {failure.advice}".strip())
        self.rollback()  # this migration's transaction; the migrations before it are committed
        # Prisma leaves a failed row behind: the same here, so `prisma migrate status` agrees.
        self.write(
            f"INSERT INTO {HISTORY_TABLE} (id, checksum, started_at, migration_name, logs, applied_steps_count) "
            f"VALUES (%s, %s, now(), %s, %s, 0) ON CONFLICT (id) DO UPDATE SET logs = EXCLUDED.logs",
            (row_id, migration.checksum, name, f"{failure.reason}\n{failure.statement}"),
            record=False,
        )
        self.commit()
        retried = any(r["migration"] == name and r["state"] == "rolled_back" for r in self.options.resolve)
        if failure.advice:
            advice = f"{failure.advice} Then set resolve to [{{migration: {name}, state: rolled_back}}] to apply it."
        elif retried:
            advice = (
                "It failed again after resolve state: rolled_back, so the cause is still there: fix what the "
                "statement and PostgreSQL's reason name, then resolve it as rolled_back once more."
            )
        else:
            advice = (
                f"Fix what the statement and PostgreSQL's reason name, then set resolve to "
                f"[{{migration: {name}, state: rolled_back}}] to apply it again."
            )
        raise SyncError(
            f"migration {name} failed{where}: {failure.reason}. Its changes were rolled back and the failure is "
            f"recorded in {HISTORY_TABLE} as Prisma records it. {advice}"
        )

    def _baseline_statement(self, migration: Migration, stmt: str, created: set[tuple[str, str]]) -> bool:
        """Run one statement of a database built without history; False when it was already in effect."""
        import psycopg2

        table = ALTER_TABLE.match(stmt) or DROP_TABLE.match(stmt)
        if table:
            name = table.group(1)
            drops = DROP_COLUMN.findall(stmt) if ALTER_TABLE.match(stmt) else []
            kept = None
            if DROP_TABLE.match(stmt) and (name, "") not in created:
                kept = f'table "{name}"'  # never drop a table that the database already had
            elif any((name, col) not in created for col in drops):
                kept = f'a column of "{name}"'  # never drop a column that holds the database's own data
            if kept:
                self._skip(migration, stmt, Verdict("kept", kept, f"baseline: {kept} was there before; kept"))
                return False
        self.cur.execute("SAVEPOINT litellm_statement")
        try:
            self.cur.execute(stmt)
        except psycopg2.Error as exc:
            self.cur.execute("ROLLBACK TO SAVEPOINT litellm_statement")
            if exc.pgcode not in TOLERATED:
                raise StatementFailed(pg_reason(exc), FAILURE_ADVICE.get(exc.pgcode or "", "")) from None
            state = "there" if exc.pgcode in ALREADY_EXISTS else "gone"
            self._skip(migration, stmt, Verdict(state, "", f"baseline: {pg_reason(exc)}"))
            return False
        self.cur.execute("RELEASE SAVEPOINT litellm_statement")
        self.executed.append(stmt)
        self.changed = self._dirty = True
        new_table = CREATE_TABLE.match(stmt)
        if new_table:
            created.add((new_table.group(1), ""))
        if table:
            created.update((table.group(1), col) for col in ADD_COLUMN.findall(stmt))
        return True

    # -- duplicates (DB-04) -----------------------------------------------------------
    def _dropped_unique(self, migration: Migration, index: str) -> None:
        """A skipped DROP of a unique index that drift had removed: the rows it guarded are checked.

        The migration expects the index, as the migrations before it built it; running it as written
        would mean building that index again first, which duplicates behind it would break.
        """
        built = None
        for earlier in self.migrations:
            if earlier.name >= migration.name:
                break
            for stmt in earlier.statements:
                created, dropped = CREATE_UNIQUE.match(stmt), DROP_INDEX.match(stmt)
                if created and created.group(1) == index:
                    built = stmt
                elif dropped and dropped.group(1) == index:
                    built = None
        if built is not None:
            self._preflight_unique(migration.name, built, strict=False)

    def _preflight_unique(self, source: str, stmt: str, strict: bool = True, replacing: bool = False) -> None:
        """Rows that would break the unique index STMT creates: reported, and removed when asked.

        SOURCE names what creates it (a migration, or the repair of schema.prisma's index). Not
        strict: without remove_duplicates the duplicates are only reported (the repair then warns).
        REPLACING: an index of that name is there with another definition and is about to be replaced.
        """
        for index, table, columns in unique_keys(stmt):
            self._preflight_key(source, index, table, columns, strict, replacing)

    def _preflight_key(
        self, source: str, index: str, table: str, columns: list[str], strict: bool, replacing: bool
    ) -> None:
        if not replacing and self.scalar("SELECT to_regclass(%s)", (quote_ident(index),)) is not None:
            return
        have = self.scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "AND column_name = ANY(%s)",
            (self.schema, table, columns),
        )
        if have != len(columns):
            return  # the table or a column is new: nothing can be duplicated yet
        cols = ", ".join(quote_ident(c) for c in columns)
        not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in columns)
        self.cur.execute(
            f"SELECT {cols}, count(*) FROM {quote_ident(table)} WHERE {not_null} GROUP BY {cols} HAVING count(*) > 1 "
            f"ORDER BY count(*) DESC"
        )
        groups = self.cur.fetchall()
        if not groups:
            return
        extra = sum(g[-1] - 1 for g in groups)
        samples = [
            {c: ("<hidden>" if SENSITIVE_COLUMN.search(c) else str(v)) for c, v in zip(columns, g[:-1], strict=True)}
            | {"rows": g[-1]}
            for g in groups[:5]
        ]
        report = {
            "migration": source,
            "index": index,
            "table": table,
            "columns": columns,
            "groups": len(groups),
            "rows_to_remove": extra,
            "samples": samples,
        }
        self.result["duplicates"].append(report)
        if not self.options.remove_duplicates and not strict:
            return
        if not self.options.remove_duplicates:
            raise StatementFailed(
                f"it creates the unique index {index} on {table} ({', '.join(columns)}), "
                f"but {len(groups)} groups of rows share the same values ({extra} rows too many); it would fail. "
                f"Nothing of this migration was run.",
                f"Set remove_duplicates: true to keep the newest row of each group "
                f"(the removed rows are saved to {self.options.backup_dir} first), or clean them up by hand.",
                ran=False,
            )
        self._remove_duplicates(table, columns, report)

    def _remove_duplicates(self, table: str, columns: list[str], report: dict) -> None:
        """Keep the newest row of each group: latest updated_at, then created_at, then the last written."""
        present = {
            r[0]
            for r in self._rows(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (self.schema, table),
            )
        }
        order = [f"{quote_ident(c)} DESC NULLS LAST" for c in ("updated_at", "created_at") if c in present]
        order.append("ctid DESC")
        cols = ", ".join(quote_ident(c) for c in columns)
        not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in columns)
        ranked = (
            f"SELECT ctid AS row_ctid, row_number() OVER (PARTITION BY {cols} ORDER BY {', '.join(order)}) AS rank "
            f"FROM {quote_ident(table)} WHERE {not_null}"
        )
        doomed = f"SELECT row_ctid FROM ({ranked}) ranked WHERE rank > 1"
        rows = self._rows(f"SELECT row_to_json(t)::text FROM {quote_ident(table)} t WHERE ctid IN ({doomed})")
        report["removed"] = len(rows)
        report["backup_file"] = None
        if not self.check_mode:
            report["backup_file"] = self._backup(table, columns, rows)
            self.result["backup_files"].append(report["backup_file"])
        # In check mode too: the index that follows is then built on the cleaned table, and rolled back.
        self.write(f"DELETE FROM {quote_ident(table)} WHERE ctid IN ({doomed})")

    def _backup(self, table: str, columns: list[str], rows: list[tuple]) -> str:
        backup = Path(self.options.backup_dir)
        backup.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = backup / f"{time.strftime('%Y%m%dT%H%M%S')}-{table}-duplicates.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"table": table, "unique_columns": columns, "rule": "kept the newest row"}) + "\n")
            for (row,) in rows:
                handle.write(row + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return str(path)

    def _rows(self, sql: str, params: tuple | None = None) -> list[tuple]:
        self.cur.execute(sql, params)
        return self.cur.fetchall()

    # -- drift and repair -------------------------------------------------------------
    def _drift(self) -> list[Drift]:
        assert self.expected is not None
        return compare(self.expected, introspect(self.cur, self.schema), migration_index_names(self.migrations))

    def _repair(self, drift: list[Drift]) -> None:
        assert self.expected is not None
        expected = self.expected
        statements: list[tuple[Drift, str]] = []
        new_tables = {d.table for d in drift if d.kind == "missing_table"}
        for d in drift:
            if not d.repairable:
                continue
            if d.kind == "missing_enum":
                values = ", ".join(sql_literal(v) for v in expected.enums[d.name])
                statements.append((d, f"CREATE TYPE {quote_ident(d.name)} AS ENUM ({values})"))
            elif d.kind == "missing_enum_value":
                enum, value = d.name.split(".", 1)
                statements.append((d, f"ALTER TYPE {quote_ident(enum)} ADD VALUE IF NOT EXISTS {sql_literal(value)}"))
        order = {
            "missing_table": 1,
            "missing_column": 2,
            "nullability_mismatch": 3,
            "default_mismatch": 3,
            "primary_key_mismatch": 4,
        }
        for d in sorted((d for d in drift if d.repairable and d.kind in order), key=lambda d: order[d.kind]):
            table = expected.tables[d.table]
            if d.kind == "missing_table":
                statements.append((d, create_table_sql(table, expected.enums)))
                statements.extend((d, index_sql(table.name, ix)) for ix in table.indexes)
            elif d.kind == "missing_column":
                col = table.columns[d.name]
                not_null = not col.nullable
                if (
                    not_null
                    and col.default is None
                    and self.scalar(f"SELECT EXISTS (SELECT 1 FROM {quote_ident(table.name)})")
                ):
                    not_null = False
                    self.warnings.append(
                        f'column "{table.name}"."{col.name}" is added without NOT NULL: the table has rows and '
                        f"the schema gives no default for them"
                    )
                statements.append(
                    (d, f"ALTER TABLE {quote_ident(table.name)} ADD COLUMN {column_sql(col, expected.enums, not_null)}")
                )
            elif d.kind == "nullability_mismatch":
                statements.append(
                    (d, f"ALTER TABLE {quote_ident(table.name)} ALTER COLUMN {quote_ident(d.name)} DROP NOT NULL")
                )
            elif d.kind == "default_mismatch":
                col = table.columns[d.name]
                statements.append(
                    (
                        d,
                        f"ALTER TABLE {quote_ident(table.name)} ALTER COLUMN {quote_ident(col.name)} "
                        f"SET DEFAULT {default_sql(col.default, col.type)}",
                    )
                )
            elif d.kind == "primary_key_mismatch":
                cols = ", ".join(quote_ident(c) for c in table.primary_key)
                add_key = (
                    f"ALTER TABLE {quote_ident(table.name)} ADD CONSTRAINT "
                    f"{quote_ident(table.primary_key_name)} PRIMARY KEY ({cols})"
                )
                self._preflight_unique("repair", add_key, strict=False)  # DB-04: a primary key is unique too
                statements.append((d, add_key))
        for d in drift:
            if d.repairable and d.kind in ("missing_index", "mismatched_index") and d.table not in new_tables:
                ix = next(ix for ix in expected.tables[d.table].indexes if ix.name == d.name)
                create = index_sql(d.table, ix)
                replacing = d.kind == "mismatched_index"
                if ix.unique:
                    # DB-04: duplicates would make the index fail; removed first when asked (backed up).
                    self._preflight_unique("repair", create, strict=False, replacing=replacing)
                # A mismatched index is replaced in one step: a failure keeps the old one.
                statements.append((d, f"DROP INDEX {quote_ident(ix.name)};\n{create}" if replacing else create))
        for table in expected.tables.values():
            for fk in table.foreign_keys:
                if table.name in new_tables or any(
                    d.kind == "missing_foreign_key" and d.table == table.name and d.name == fk.name for d in drift
                ):
                    statements.append(
                        (Drift("missing_foreign_key", table.name, fk.name, ""), foreign_key_sql(table.name, fk))
                    )
        self._run_repairs(statements)

    def _run_repairs(self, statements: list[tuple[Drift, str]]) -> None:
        import psycopg2

        for d, sql in statements:
            try:
                self._guarded(sql, autocommit=False)
            except psycopg2.Error as exc:
                # The statement raised before write() recorded it: nothing to take back from executed.
                self.warnings.append(f"could not repair {d.kind} {d.table} {d.name}: {pg_reason(exc)}")
                continue
            self.result["repaired"].append({"kind": d.kind, "table": d.table, "name": d.name, "sql": sql})
        self.commit()
