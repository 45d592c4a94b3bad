"""Databases both behind and drifted, as real hosts have them: a generated matrix (DB-01, DB-02, DB-04).

For cut points across LiteLLM 1.80.16's 64 migrations and litellm-proxy-extras 0.4.110's 220, a
database is migrated up to the cut, then drifted (a dropped column, table, foreign key, a unique
index dropped with duplicates behind it, an index replaced by one with other columns, and every
pair of these). The drifted objects are picked from the database at the cut, among the objects
that the pending migrations touch where there are any, so that the pending statements meet the
drift. Then the module runs as `playbooks/remediate.yml` runs it (repair and duplicate removal
on): check mode first (nothing written, by a dump with the rows before and after; every pending
migration and every drifted object named), then for real (no drift left; every migration recorded
once with its checksum; no failed row), then again (nothing to do).

The module runs in this process through its own main() (conftest.call_module); two worker
processes share the cases. The test prints the matrix size and how many cases passed.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ansible.module_utils.litellm_postgres import quote_ident
from ansible.module_utils.litellm_prisma_drift import introspect
from ansible.module_utils.litellm_prisma_schema import Schema, parse_schema
from ansible.module_utils.litellm_prisma_statements import parse_statement
from conftest import Database, call_module, create_database, drop_database, sha256

# Migrations applied before the drift, per release: spread over each history, with 58 of 1.80.16's
# 64 (six pending, the first of them creating LiteLLM_SkillsTable) as the incident host had it.
CUTS = {"1.80.16": (9, 27, 44, 58, 62), "0.4.110": (72, 151, 207)}
KINDS = ("column", "table", "foreign_key", "unique_index", "index_definition")
DRIFT_SETS = [(kind,) for kind in KINDS] + list(itertools.combinations(KINDS, 2))
WORKERS = 2


@dataclass
class Injection:
    kind: str
    table: str
    name: str
    sql: list[str]
    named_as: set[tuple[str, str, str]]  # any of these (kind, table, name) in the check run names it
    duplicates: bool = False  # the check run must report duplicates behind this index
    also: str = ""  # another table it involves (a foreign key's referenced table)

    @property
    def tables(self) -> set[str]:
        return {self.table, self.also} - {""}


@dataclass
class Case:
    version: str
    cut: int
    template: str
    drift: tuple[str, ...]
    injections: list[Injection]
    release: dict[str, str]  # schema, migrations
    names: list[str]
    checksums: dict[str, str]
    backup_dir: str
    admin: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.version} at {self.cut}/{len(self.names)} with {'+'.join(self.drift)}"


# ------------------------------------------------------------------ picking what drifts


def _touched(statements: list[str]) -> dict[str, set]:
    """What the pending statements name: tables, (table, column)s, indexes and constraints."""
    seen: dict[str, set] = {"tables": set(), "columns": set(), "indexes": set(), "constraints": set()}
    for text in statements:
        stmt = parse_statement(text)
        if stmt.table:
            seen["tables"].add(stmt.table)
        if stmt.kind in ("drop_index", "create_index", "alter_index"):
            seen["indexes"].add(stmt.name)
        seen["columns"].update((stmt.table, c) for c in stmt.columns)
        for action in stmt.actions:
            if action.kind in ("alter_column", "drop_column", "rename_column"):
                seen["columns"].add((stmt.table, action.name))
            if action.kind in ("drop_constraint", "add_foreign_key", "rename_constraint"):
                seen["constraints"].add(action.name)
            seen["columns"].update((stmt.table, c) for c in action.columns)
    return seen


def _prefer(candidates: list, touched, key, turn: int) -> list:
    """Candidates the pending migrations touch first, then the rest; rotated by TURN within each."""
    first = [c for c in candidates if key(c) in touched]
    rest = [c for c in candidates if key(c) not in touched]

    def rotate(items: list) -> list:
        return items[turn % len(items) :] + items[: turn % len(items)] if items else []

    return rotate(first) + rotate(rest)


def _value(pg_type: str, enums: dict[str, list[str]], seed: str, n: int) -> str | None:
    """A literal for one column of a generated row; None where no literal fits the type."""
    base = pg_type.removesuffix("[]")
    if pg_type.endswith("[]"):
        return "'{}'"
    if base in enums:
        return f"'{enums[base][0]}'"
    if base in ("text", "character varying") or base.startswith(("character varying(", "character(")):
        return f"'{seed}-{n}'"
    if base in ("integer", "bigint", "smallint", "double precision", "real") or base.startswith("numeric"):
        return str(n)
    if base == "boolean":
        return "false"
    if base.startswith("timestamp"):
        return f"TIMESTAMP '2026-11-01 00:00' + interval '{n} hours'"
    if base == "date":
        return "DATE '2026-11-01'"
    if base in ("jsonb", "json"):
        return "'{}'"
    if base == "bytea":
        return "'\\x00'"
    if base == "uuid":
        return "gen_random_uuid()"
    return None


def _duplicate_rows(table, index: str, key: tuple[str, ...], live: Schema) -> list[str] | None:
    """Three rows that share KEY's values, newest last; None when the table cannot take generated rows."""
    fk_columns = {c for fk in table.foreign_keys for c in fk.columns}
    others = [ix for ix in table.indexes if ix.unique and ix.name != index and {c for c, _ in ix.columns} <= set(key)]
    if set(table.primary_key) <= set(key):
        return None
    if others:
        return None  # another unique index would refuse the same values
    rows = []
    for n in range(1, 4):
        cols, values = [], []
        for col in table.columns.values():
            if col.name in key:
                value = _value(col.type, live.enums, "matrix-dup", 7)
            elif col.name in table.primary_key or (not col.nullable and col.default is None):
                if col.name in fk_columns:
                    return None
                value = _value(col.type, live.enums, f"matrix-{uuid.uuid4().hex[:6]}", n)
            elif col.name == "updated_at":
                value = _value(col.type, live.enums, "", n)
            else:
                continue
            if value is None:
                return None
            cols.append(quote_ident(col.name))
            values.append(value)
        rows.append(f"INSERT INTO {quote_ident(table.name)} ({', '.join(cols)}) VALUES ({', '.join(values)})")
    return rows


def _candidates(live: Schema, expected: Schema) -> dict[str, list[Injection]]:
    """Every drift of each kind the database at the cut can be given, in a stable order."""
    out: dict[str, list[Injection]] = {kind: [] for kind in KINDS}
    for name in sorted(live.tables):
        table, final = live.tables[name], expected.tables.get(name)
        if final is None:
            continue
        quoted = quote_ident(name)
        out["table"].append(
            Injection("table", name, name, [f"DROP TABLE {quoted} CASCADE"], {("missing_table", name, name)})
        )
        for col in table.columns.values():
            if col.name in final.columns and col.nullable and col.name not in table.primary_key:
                out["column"].append(
                    Injection(
                        "column",
                        name,
                        col.name,
                        [f"ALTER TABLE {quoted} DROP COLUMN {quote_ident(col.name)} CASCADE"],
                        {("missing_column", name, col.name), ("skipped", name, f'column "{name}"."{col.name}"')},
                    )
                )
        final_fks = {fk.name for fk in final.foreign_keys}
        for fk in table.foreign_keys:
            if fk.name in final_fks:
                out["foreign_key"].append(
                    Injection(
                        "foreign_key",
                        name,
                        fk.name,
                        [f"ALTER TABLE {quoted} DROP CONSTRAINT {quote_ident(fk.name)}"],
                        {
                            ("missing_foreign_key", name, fk.name),
                            ("skipped", name, f'constraint "{fk.name}" of "{name}"'),
                        },
                        also=fk.ref_table,
                    )
                )
        final_indexes = {ix.name: ix for ix in final.indexes}
        for ix in table.indexes:
            key = tuple(c for c, _ in ix.columns)
            if ix.name not in final_indexes or ix.predicate or any('"' in c or "(" in c for c in key):
                continue
            if ix.unique and final_indexes[ix.name].unique:
                rows = _duplicate_rows(table, ix.name, key, live)
                if rows is not None:
                    out["unique_index"].append(
                        Injection(
                            "unique_index",
                            name,
                            ix.name,
                            [f"DROP INDEX {quote_ident(ix.name)}", *rows],
                            {("missing_index", name, ix.name), ("skipped", name, f'index "{ix.name}"')},
                            duplicates=True,
                        )
                    )
            elif not ix.unique and not final_indexes[ix.name].unique:
                other = next((c for c in table.columns if c not in key and c in final.columns), None)
                if other is not None:
                    out["index_definition"].append(
                        Injection(
                            "index_definition",
                            name,
                            ix.name,
                            [
                                f"DROP INDEX {quote_ident(ix.name)}",
                                f"CREATE INDEX {quote_ident(ix.name)} ON {quoted} ({quote_ident(other)})",
                            ],
                            {("mismatched_index", name, ix.name)},
                        )
                    )
    return out


def _pick(candidates: dict[str, list[Injection]], touched: dict[str, set], drift: tuple[str, ...], turn: int):
    """One injection per kind of DRIFT, on tables that no other injection of the set uses."""
    keys = {
        "table": ("tables", lambda i: i.table),
        "column": ("columns", lambda i: (i.table, i.name)),
        "foreign_key": ("constraints", lambda i: i.name),
        "unique_index": ("indexes", lambda i: i.name),
        "index_definition": ("indexes", lambda i: i.name),
    }
    chosen: list[Injection] = []
    for kind in drift:
        group, key = keys[kind]
        for candidate in _prefer(candidates[kind], touched[group], key, turn):
            if all(not candidate.tables & other.tables for other in chosen):
                chosen.append(candidate)
                break
        else:
            return None
    return chosen


# ------------------------------------------------------------------ one case


def _remediate(case: Case, db: Database, check: bool) -> tuple[bool, dict]:
    """The module as playbooks/remediate.yml calls it: repair and duplicate removal on."""
    return call_module(
        "litellm_schema_sync",
        {
            "database_url": db.url,
            "schema_file": case.release["schema"],
            "migrations_dir": case.release["migrations"],
            "repair": True,
            "remove_duplicates": True,
            "backup_dir": case.backup_dir,
        },
        check=check,
    )


def _named(result: dict, injection: Injection) -> bool:
    seen = {(d["kind"], d["table"], d["name"]) for d in result.get("drift_before", [])}
    seen |= {("skipped", injection.table, s["object"]) for s in result.get("skipped_statements", [])}
    if injection.duplicates and not any(d["index"] == injection.name for d in result.get("duplicates", [])):
        return False
    return bool(seen & injection.named_as)


def _history_problems(case: Case, db: Database) -> list[str]:
    rows = db.sql(
        "SELECT migration_name, checksum, finished_at IS NOT NULL, rolled_back_at IS NULL FROM _prisma_migrations"
    )
    problems = []
    recorded = [r[0] for r in rows if r[2] and r[3]]
    if sorted(recorded) != case.names:
        problems.append(f"recorded {len(recorded)} of {len(case.names)} migrations, or some twice")
    problems += [f"{r[0]} is recorded unfinished" for r in rows if not r[2] and r[3]]
    problems += [f"{r[0]} has another checksum" for r in rows if r[2] and r[3] and r[1] != case.checksums[r[0]]]
    return problems


@dataclass
class Outcome:
    label: str
    problems: list[str]  # none: the case passed
    seconds: float = 0.0
    skipped: int = 0  # statements of pending migrations skipped in the real run
    removed: int = 0  # duplicate rows removed
    replaced: int = 0  # indexes replaced by the repair


def run_case(case: Case) -> Outcome:
    started = time.monotonic()
    db = create_database(case.admin, "matrix", template=case.template)
    problems: list[str] = []
    outcome = Outcome(case.label, problems)
    try:
        for injection in case.injections:
            for statement in injection.sql:
                db.sql(statement)
        before = db.dump(data=True)
        failed, planned = _remediate(case, db, check=True)
        if failed:
            problems.append(f"check mode failed: {planned.get('msg')}")
        if db.dump(data=True) != before:
            problems.append("check mode wrote to the database")
        if planned.get("pending") != case.names[case.cut :]:
            problems.append(f"check mode named {len(planned.get('pending', []))} pending migrations")
        problems += [
            f"check mode did not name the {i.kind} drift {i.table}.{i.name}"
            for i in case.injections
            if not _named(planned, i)
        ]
        failed, result = _remediate(case, db, check=False)
        if failed:
            problems.append(f"the run failed: {result.get('msg')}")
        elif result["drift"]:
            problems.append(f"drift left: {[d['message'] for d in result['drift']]}")
        outcome.skipped = len(result.get("skipped_statements", []))
        outcome.removed = sum(d.get("removed", 0) for d in result.get("duplicates", []))
        outcome.replaced = sum(r["kind"] == "mismatched_index" for r in result.get("repaired", []))
        problems += _history_problems(case, db)
        failed, again = _remediate(case, db, check=False)
        if failed or again["changed"] or again["drift"]:
            problems.append(f"a second run was not clean: {again.get('msg') or again['executed'][:3]}")
    except Exception as exc:  # a case that crashes (a deprecation, say) is a failed case, with its reason
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        drop_database(case.admin, db.name)
    outcome.seconds = time.monotonic() - started
    return outcome


# ------------------------------------------------------------------ the matrix


def test_behind_and_drifted_databases_converge_in_one_remediation_run(pg_admin, releases, tmp_path):
    cases: list[Case] = []
    templates: list[str] = []
    started = time.monotonic()
    try:
        for version, cuts in CUTS.items():
            release = releases[version]
            expected = parse_schema(release.schema.read_text(encoding="utf-8"))
            names = release.names
            checksums = {n: sha256(release.migrations / n / "migration.sql") for n in names}
            for turn, cut in enumerate(cuts):
                template = create_database(pg_admin, "matrix_cut")
                templates.append(template.name)
                failed, built = call_module(
                    "litellm_schema_sync",
                    {"database_url": template.url, "migrations_dir": str(release.subset(tmp_path, upto=names[cut]))},
                )
                assert not failed, built.get("msg")
                pending = [s for n in names[cut:] for s in _statements(release.migrations / n)]
                conn = template.connect()
                try:
                    live = introspect(conn.cursor(), "public")
                finally:
                    conn.close()
                candidates, touched = _candidates(live, expected), _touched(pending)
                for drift in DRIFT_SETS:
                    injections = _pick(candidates, touched, drift, turn)
                    assert injections is not None, f"{version} at {cut}: no database object for {drift}"
                    cases.append(
                        Case(
                            version,
                            cut,
                            template.name,
                            drift,
                            injections,
                            {"schema": str(release.schema), "migrations": str(release.migrations)},
                            names,
                            checksums,
                            str(tmp_path / "duplicates"),
                            pg_admin,
                        )
                    )
        prepared = time.monotonic() - started
        with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork")) as pool:
            outcomes = list(pool.map(run_case, cases))
    finally:
        for name in templates:
            drop_database(pg_admin, name)
    failures = [o for o in outcomes if o.problems]
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(
        f"\nschema matrix: {len(cases)} cases ({sum(len(c) for c in CUTS.values())} cut points x "
        f"{len(DRIFT_SETS)} drift sets), {len(cases) - len(failures)} passed, {len(failures)} failed; "
        f"statements skipped in {sum(o.skipped > 0 for o in outcomes)} cases ({sum(o.skipped for o in outcomes)} "
        f"in all), duplicates removed in {sum(o.removed > 0 for o in outcomes)}, indexes replaced in "
        f"{sum(o.replaced > 0 for o in outcomes)}; templates {prepared:.0f} s, cases "
        f"{sum(o.seconds for o in outcomes):.0f} s of work on {WORKERS} workers, slowest {slowest.seconds:.1f} s "
        f"({slowest.label})"
    )
    assert not failures, "\n".join(f"{o.label}: {'; '.join(o.problems)}" for o in failures[:20])


def _statements(directory: Path) -> list[str]:
    from ansible.module_utils.litellm_prisma_migrations import split_sql

    return split_sql((directory / "migration.sql").read_text(encoding="utf-8"))
