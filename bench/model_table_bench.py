#!/usr/bin/env python3
"""Audit and normalize 10,000 model rows (half encrypted twice): litellm_model_table's logic vs. the
floor of a plain loop of LiteLLM's own helpers over the same values, in this one process.

Runs with the Python of a LiteLLM 1.80.16 environment (as the module runs with the proxy's venv):
`make bench-model-table` uses the test oracle's. The rows are written with LiteLLM's own
encrypt_value_helper. The module's figures include reading the rows from PostgreSQL and, for
normalize, the backup file and the one transaction that writes them; the floor is crypto only:

- audit floor: decrypt_value_helper once per layer the value has. An audit must tell a value
  encrypted twice (MT-02) from one encrypted once, so it opens every layer; the loop is told how
  many there are, so it never pays for the failed call that would tell LiteLLM's helper it is done.
- normalize floor: decrypt_value_helper until the value no longer decrypts, then
  encrypt_value_helper once, with no database at all.

Two more loops are printed for reference, one on either side of these floors:

- load path: decrypt_value_helper once per value, as the proxy does when it loads the table (the
  audit floor this bench first used; it cannot see a second layer, so it does a third less crypto);
- exact normalize: once per layer, then encrypt_value_helper only for the values the module
  rewrites (the rows encrypted twice); the normalize floor decrypts once more and encrypts all.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import types
import uuid
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

# Our module_utils without Ansible installed: the package path Ansible would give them.
for name, path in (("ansible", []), ("ansible.module_utils", [str(PROJECT / "module_utils")])):
    package = types.ModuleType(name)
    package.__path__ = path
    sys.modules.setdefault(name, package)

import psycopg2  # noqa: E402
from ansible.module_utils.litellm_model_table import ModelTable, Options, build_keys  # noqa: E402
from ansible.module_utils.litellm_prisma_db import Options as SchemaOptions  # noqa: E402
from ansible.module_utils.litellm_prisma_db import SchemaSync  # noqa: E402
from ansible.module_utils.litellm_prisma_migrations import load_migrations  # noqa: E402
from pg import admin, drop_database, fresh_database  # noqa: E402
from psycopg2.extras import execute_values  # noqa: E402

SALT = "bench-salt-key-" + uuid.uuid4().hex
os.environ["LITELLM_SALT_KEY"] = SALT
os.environ.setdefault("LITELLM_LOG", "ERROR")

from litellm.proxy.common_utils.encrypt_decrypt_utils import (  # noqa: E402
    decrypt_value_helper,
    encrypt_value_helper,
)

PARAMS = {
    "model": "openai/qwen2.5-0.5b-instruct",
    "custom_llm_provider": "openai",
    "api_base": "http://127.0.0.1:8080/v1",
    "api_key": "sk-bench-" + "x" * 40,
    "rpm": 30,
}


def migrations_dir(tmp: Path) -> Path:
    wheel = Path(os.environ["LITELLM_TEST_WHEELS"]) / "litellm_proxy_extras-0.4.21-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp, [m for m in archive.namelist() if m.startswith("litellm_proxy_extras/migrations/")])
    return tmp / "litellm_proxy_extras" / "migrations"


def layers(index: int) -> int:
    """How many times build_rows encrypted the strings of row ``index``."""
    return 2 if index % 2 else 1


def build_rows(count: int) -> list[dict]:
    """Every string encrypted by LiteLLM; every other row encrypted twice (MT-02)."""
    rows = []
    for index in range(count):
        params = {}
        for name, value in PARAMS.items():
            if isinstance(value, str):
                for _ in range(layers(index)):
                    value = encrypt_value_helper(value, SALT)
            params[name] = value
        rows.append(params)
    return rows


def floor_audit(rows: list[dict]) -> float:
    start = time.perf_counter()
    for index, params in enumerate(rows):
        for name, value in params.items():
            if isinstance(value, str):
                for _ in range(layers(index)):
                    value = decrypt_value_helper(value, name, "debug", return_original_value=True)
    return time.perf_counter() - start


def floor_load_path(rows: list[dict]) -> float:
    start = time.perf_counter()
    for params in rows:
        for name, value in params.items():
            if isinstance(value, str):
                decrypt_value_helper(value, name, "debug", return_original_value=True)
    return time.perf_counter() - start


def floor_normalize(rows: list[dict]) -> float:
    start = time.perf_counter()
    for params in rows:
        for name, value in params.items():
            if isinstance(value, str):
                while True:
                    opened = decrypt_value_helper(value, name, "debug")
                    if opened is None:
                        break
                    value = opened
                encrypt_value_helper(value, SALT)
    return time.perf_counter() - start


def floor_normalize_exact(rows: list[dict]) -> float:
    start = time.perf_counter()
    for index, params in enumerate(rows):
        for name, value in params.items():
            if isinstance(value, str):
                for _ in range(layers(index)):
                    value = decrypt_value_helper(value, name, "debug")
                if layers(index) != 1:
                    encrypt_value_helper(value, SALT)
    return time.perf_counter() - start


def module_run(params: dict, name: str, options: Options, check: bool) -> tuple[float, dict]:
    start = time.perf_counter()
    conn = psycopg2.connect(dbname=name, **params)
    try:
        result = ModelTable(conn, "public", build_keys(SALT, []), options, check).run()
    finally:
        conn.close()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-freeze",
        dest="freeze",
        action="store_false",
        help="let the collector walk LiteLLM's objects during the timed runs (as the first figures did)",
    )
    args = parser.parse_args()
    params = admin()

    with tempfile.TemporaryDirectory() as tmp:
        template = fresh_database(params, "bench_mt")
        conn = psycopg2.connect(dbname=template, **params)
        SchemaSync(conn, "public", None, load_migrations(migrations_dir(Path(tmp))), SchemaOptions(), False).run()
        rows = build_rows(args.rows)
        # The helper imports LiteLLM's proxy server on its first call: not part of the loop.
        decrypt_value_helper(rows[0]["model"], "model", "debug")
        with conn.cursor() as cur:
            execute_values(
                cur,
                'INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, created_by, updated_by) '
                "VALUES %s",
                [
                    (str(uuid.uuid4()), f"chat-{i}-llamacpp", json.dumps(p), "bench", "bench")
                    for i, p in enumerate(rows)
                ],
                page_size=1000,
            )
        conn.commit()
        conn.close()
        if args.freeze:
            # The module runs in a process of its own, without LiteLLM's proxy, which this one imports
            # for the floor (hundreds of thousands of objects): set them aside, so a full collection
            # during either side's timed run does not walk them. Objects made while timing are
            # collected as usual.
            gc.collect()
            gc.freeze()

        figures: dict[str, list[float]] = {
            k: [] for k in ("audit", "audit_floor", "load_path", "normalize", "normalize_floor", "normalize_exact")
        }
        try:
            for _ in range(args.rounds):
                seconds, result = module_run(params, template, Options(), check=True)
                assert result["summary"]["encrypted_more_than_once"] == (args.rows // 2) * 4, result["summary"]
                figures["audit"].append(seconds)
                figures["audit_floor"].append(floor_audit(rows))
                figures["load_path"].append(floor_load_path(rows))
                copy = fresh_database(params, "bench_mt", template)
                try:
                    options = Options(normalize=True, backup_dir=str(Path(tmp) / "backups"))
                    seconds, result = module_run(params, copy, options, check=False)
                    assert len(result["changes"]) == args.rows // 2
                    figures["normalize"].append(seconds)
                finally:
                    drop_database(params, copy)
                figures["normalize_floor"].append(floor_normalize(rows))
                figures["normalize_exact"].append(floor_normalize_exact(rows))
        finally:
            drop_database(params, template)

    values = args.rows * sum(isinstance(v, str) for v in PARAMS.values())
    print(f"{args.rows} model rows, {values} encrypted values, half of the rows encrypted twice")
    print(f"median of {args.rounds} rounds, alternating" + ("" if args.freeze else ", collector not frozen"))
    print(f"{'':28}{'module':>10}{'LiteLLM loop':>14}{'ratio':>8}")
    for label, step, loop in (
        ("audit (s)", "audit", "audit_floor"),
        ("normalize (s)", "normalize", "normalize_floor"),
        ("  audit vs. load path", "audit", "load_path"),
        ("  normalize vs. exact", "normalize", "normalize_exact"),
    ):
        mine, floor = statistics.median(figures[step]), statistics.median(figures[loop])
        print(f"{label:28}{mine:>10.2f}{floor:>14.2f}{mine / floor:>7.2f}x")
    print("module: read from PostgreSQL, every layer tried with every key, plan; normalize also writes the")
    print("backup and the rows in one transaction. LiteLLM loop: its helpers over the values in memory.")


if __name__ == "__main__":
    main()
