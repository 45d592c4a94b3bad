#!/usr/bin/python
"""Ansible module: LiteLLM's database schema, migrated, checked and repaired without the Prisma CLI."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: litellm_schema_sync
short_description: Migrate LiteLLM's PostgreSQL schema, report drift from schema.prisma, repair it
description:
  - Applies the Prisma migrations shipped with LiteLLM (litellm-proxy-extras) as C(prisma migrate deploy)
    does, each in its own transaction, and keeps Prisma's bookkeeping in C(_prisma_migrations), so that
    LiteLLM's own check afterwards finds nothing to do.
  - Takes Prisma's migration advisory lock, so only one migrator runs at a time.
  - A pending migration meets a database as it is, drift included. A statement that PostgreSQL refuses because
    its object is already gone (a C(DROP) of an index, constraint, column or table that drift removed) or already
    there (a C(CREATE) or C(ADD COLUMN) of what exists) is skipped, and so is one that needs a table or column that
    drift removed and that I(repair) adds back; the migration is recorded as Prisma records it, each skip is
    named in C(skipped_statements) and in a warning. Any other refusal stops the run.
  - A database without history but with tables (built by C(prisma db push)) is baselined.
  - Before a migration creates a unique index, finds the rows that would break it.
  - Compares the live database with C(schema.prisma) and, with I(repair=true), adds what is missing and replaces
    an index whose definition differs from the one its name stands for. It never drops anything else, never
    narrows a type and never touches tables that are not in the schema.
  - Reports whether the generated Prisma client in the virtual environment matches its schema.
options:
  venv:
    description:
      - A LiteLLM virtual environment. Supplies I(schema_file) and I(migrations_dir) when they are not given,
        and the Prisma client to check.
    type: path
  schema_file:
    description: The C(schema.prisma) to compare with. Default C(litellm/proxy/schema.prisma) in I(venv).
    type: path
  migrations_dir:
    description: The migrations. Default C(litellm_proxy_extras/migrations/) in I(venv).
    type: path
  migrate:
    description: Apply pending migrations.
    type: bool
    default: true
  baseline:
    description:
      - C(auto) baselines a database that has tables but no migration history; C(always) treats every pending
        migration that way (objects that already exist are kept and recorded, and no table or column the database
        had is dropped); C(never) applies as written. Every statement a baseline skips is listed in
        C(skipped_statements). A database with history and drift needs no baseline (see the description).
    type: str
    choices: [auto, always, never]
    default: auto
  resolve:
    description:
      - Resolve a failed or changed migration, as C(prisma migrate resolve) does. C(rolled_back) marks a failed
        migration so that it is applied again; C(applied) records it as applied without running it (or accepts
        the changed checksum of an applied one). Resolving what is already resolved changes nothing.
    type: list
    elements: dict
    default: []
    suboptions:
      migration:
        description: The migration's directory name.
        type: str
        required: true
      state:
        description: What to record.
        type: str
        required: true
        choices: [rolled_back, applied]
  accept_changed_migrations:
    description:
      - Record the new checksum of every applied migration whose file has changed, instead of stopping.
        LiteLLM rewrote its older migrations in later releases (56 of the 64 files of litellm-proxy-extras 0.4.21
        differ in 0.4.110), so an upgrade across such a release needs this once.
    type: bool
    default: false
  remove_duplicates:
    description:
      - When a pending migration creates a unique index that existing rows break, remove the duplicates, keeping
        the newest row of each group (latest C(updated_at), then C(created_at), then the last written).
        The removed rows are first saved as JSON lines under I(backup_dir).
    type: bool
    default: false
  backup_dir:
    description: Where removed duplicate rows are saved (created 0700, files 0600).
    type: path
    default: /var/backups/litellm/duplicates
  repair:
    description:
      - Add what the schema has and the database lacks - enums and their values, tables, columns, primary keys,
        indexes, foreign keys, missing defaults - drop a NOT NULL that the schema does not have, and replace an
        index whose columns, order, uniqueness, predicate or method differ from the schema's index of that name.
      - Before a unique index is built, the rows that would break it are reported (and removed with
        I(remove_duplicates)).
    type: bool
    default: false
  fail_on_drift:
    description: Fail when drift remains after the run.
    type: bool
    default: false
  check_client:
    description: Report the Prisma client generated in I(venv) against the schema (DB-03).
    type: bool
    default: false
  regenerate_client:
    description: Run the venv's C(prisma generate) when the client is missing or stale.
    type: bool
    default: false
  query_engine_binary:
    description: The C(PRISMA_QUERY_ENGINE_BINARY) the proxy is started with, to check against the client.
    type: path
  lock_timeout:
    description: Seconds to wait for another migrator to finish.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    details:
      - Runs every step in one transaction that is rolled back; writes no backup file and generates no client.
      - Plans the whole run, past a statement that would fail (each under a savepoint), and fails with the whole
        plan, C(unplanned) naming what would fail and why.
  diff_mode:
    support: full
    details: Shows the SQL that runs (or would run).
notes:
  - Passwords are never logged or returned; connection errors name the host and port only.
  - A failed run returns what it did before it stopped (C(applied), C(resolved), C(accepted)), with C(changed)
    true when any of it was committed.
extends_documentation_fragment:
  - litellm_database
"""

EXAMPLES = r"""
- name: Bring LiteLLM's database to the schema of the installed LiteLLM
  litellm_schema_sync:
    database_url: "{{ litellm_proxy_database_url }}"
    venv: /opt/litellm/venv
    repair: true
  vars:
    ansible_python_interpreter: /opt/litellm/venv/bin/python

- name: Retry a migration that failed, after fixing its cause
  litellm_schema_sync:
    database_url: "{{ litellm_proxy_database_url }}"
    venv: /opt/litellm/venv
    resolve:
      - migration: 20250707230009_add_mcp_namespaced_tool_name
        state: rolled_back
"""

RETURN = r"""
applied:
  description: Migrations applied by this run (in check mode, that would be applied).
  type: list
  elements: str
  returned: always
baselined:
  description: Migrations whose objects were already there, recorded as applied.
  type: list
  elements: str
  returned: always
pending:
  description: Migrations that were pending when the run started.
  type: list
  elements: str
  returned: always
skipped_statements:
  description:
    - Statements (or actions of an C(ALTER TABLE)) of pending migrations that were not run because their end state
      already holds, each with its migration, the statement, the object and the reason.
    - C(state) is C(gone) (it drops what is gone), C(there) (it creates what exists), C(drift) (it needs what drift
      removed and the repair adds back), C(absent) (it needs what is gone and schema.prisma lacks too) or C(kept)
      (a baseline kept a table or column the database had).
  type: list
  elements: dict
  returned: always
unplanned:
  description: Check mode only - the steps a real run would fail at (migration, statement, reason, advice).
  type: list
  elements: dict
  returned: always
drift_before:
  description: What differed from schema.prisma when the run started, before any migration or repair.
  type: list
  elements: dict
  returned: always
accepted:
  description: Applied migrations whose changed checksum was recorded (accept_changed_migrations).
  type: list
  elements: str
  returned: always
resolved:
  description: The resolutions recorded.
  type: list
  elements: dict
  returned: always
duplicates:
  description:
    - Rows that break a unique index that a pending migration or the repair builds, per index; also the rows behind a
      unique index that drift dropped before a pending migration drops it.
  type: list
  elements: dict
  returned: always
backup_files:
  description: Files that hold removed duplicate rows.
  type: list
  elements: str
  returned: always
drift:
  description: What still differs from schema.prisma after the run (kind, table, name, message, expected, actual).
  type: list
  elements: dict
  returned: always
repaired:
  description: The repairs made (kind, table, name, sql).
  type: list
  elements: dict
  returned: always
executed:
  description: The SQL statements run (in check mode, run and rolled back).
  type: list
  elements: str
  returned: always
client:
  description: The Prisma client's state (current, stale, not_generated, not_installed, engine_mismatch) and why.
  type: dict
  returned: when check_client
"""

import subprocess
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.litellm_postgres import DatabaseError, connect, connection_from_params, database_module
from ansible.module_utils.litellm_prisma_client import client_status, venv_paths
from ansible.module_utils.litellm_prisma_db import Options, SchemaSync
from ansible.module_utils.litellm_prisma_migrations import SyncError, load_migrations
from ansible.module_utils.litellm_prisma_schema import SchemaError, parse_schema


def main() -> None:
    module = database_module(
        {
            "venv": {"type": "path"},
            "schema_file": {"type": "path"},
            "migrations_dir": {"type": "path"},
            "migrate": {"type": "bool", "default": True},
            "baseline": {"type": "str", "default": "auto", "choices": ["auto", "always", "never"]},
            "resolve": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "migration": {"type": "str", "required": True},
                    "state": {"type": "str", "required": True, "choices": ["rolled_back", "applied"]},
                },
            },
            "accept_changed_migrations": {"type": "bool", "default": False},
            "remove_duplicates": {"type": "bool", "default": False},
            "backup_dir": {"type": "path", "default": "/var/backups/litellm/duplicates"},
            "repair": {"type": "bool", "default": False},
            "fail_on_drift": {"type": "bool", "default": False},
            "check_client": {"type": "bool", "default": False},
            "regenerate_client": {"type": "bool", "default": False},
            "query_engine_binary": {"type": "path"},
            "lock_timeout": {"type": "int", "default": 60},
        }
    )
    p = module.params
    if (p["check_client"] or p["regenerate_client"]) and not p["venv"]:
        module.fail_json(msg="check_client and regenerate_client need venv: the client to check lives there")
    try:
        result = run(module, p)
    except SyncError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except (DatabaseError, SchemaError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


def run(module: AnsibleModule, p: dict) -> dict:
    conn_params = connection_from_params(p)

    schema_file, migrations_dir = p["schema_file"], p["migrations_dir"]
    if p["venv"]:
        default_schema, default_migrations = venv_paths(p["venv"])
        schema_file = schema_file or str(default_schema)
        migrations_dir = migrations_dir or str(default_migrations)
    if not schema_file and not migrations_dir:
        raise SyncError("give venv, or schema_file and/or migrations_dir: there is nothing to compare or apply")
    expected = None
    if schema_file:
        path = Path(schema_file)
        if not path.is_file():
            raise SyncError(f"the schema file {path} does not exist")
        expected = parse_schema(path.read_text(encoding="utf-8"))
    # Loaded even without migrate: the indexes they create are not drift.
    migrations = load_migrations(migrations_dir) if migrations_dir else []

    options = Options(
        migrate=p["migrate"],
        baseline=p["baseline"],
        resolve=p["resolve"],
        remove_duplicates=p["remove_duplicates"],
        backup_dir=p["backup_dir"],
        repair=p["repair"],
        accept_changed=p["accept_changed_migrations"],
        lock_timeout=p["lock_timeout"],
    )
    conn = connect(conn_params)
    sync = SchemaSync(conn, conn_params.schema, expected, migrations, options, module.check_mode)
    try:
        result = sync.run()
    except SyncError as exc:
        exc.result.update(ignored_url_parameters=conn_params.ignored, schema=conn_params.schema)
        raise
    finally:
        conn.close()
        for warning in sync.warnings:
            module.warn(warning)
    result["ignored_url_parameters"] = conn_params.ignored
    result["schema"] = conn_params.schema

    if p["check_client"] and expected is not None:
        client = client_status(p["venv"], expected, p["query_engine_binary"], parse_schema)
        if p["regenerate_client"] and client["state"] in ("not_generated", "stale"):
            client["regenerated"] = True
            result["changed"] = True
            if not module.check_mode:
                prisma = Path(p["venv"]) / "bin" / "prisma"
                proc = subprocess.run(
                    [str(prisma), "generate", f"--schema={schema_file}"], capture_output=True, text=True, check=False
                )
                if proc.returncode != 0:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                    raise SyncError(f"{prisma} generate failed: {' '.join(tail)}")
                client = client_status(p["venv"], expected, p["query_engine_binary"], parse_schema)
                client["regenerated"] = True
        result["client"] = client

    if module._diff and result["executed"]:
        result["diff"] = {"prepared": ";\n\n".join(result["executed"]) + ";\n"}
    if p["fail_on_drift"] and result["drift"]:
        lines = "; ".join(d["message"] for d in result["drift"][:10])
        module.fail_json(msg=f"{len(result['drift'])} differences from schema.prisma remain: {lines}", **result)
    return result


if __name__ == "__main__":
    main()
