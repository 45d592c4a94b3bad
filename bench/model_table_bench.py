#!/usr/bin/env python3
"""Audit and normalize 10,000 model rows (half encrypted twice): litellm_model_table's logic vs. the
floor of a plain loop of LiteLLM's own helpers over the same values, in this one process.

Runs with the Python of a LiteLLM 1.80.16 environment (as the module runs with the proxy's venv):
`make bench-model-table` uses the test oracle's. The rows are written with LiteLLM's own
encrypt_value_helper. The module's figures include reading the rows from PostgreSQL and, for
normalize, the backup file and the one transaction that writes them; the floor is crypto only:

- audit floor: decrypt_value_helper once per value, as the proxy does when it loads the table;
- normalize floor: decrypt_value_helper until the value no longer decrypts, then
  encrypt_value_helper once: the same cryptographic work, with no database at all.
"""

from __future__ import annotations

import argparse
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


def build_rows(count: int) -> list[dict]:
    """Every string encrypted by LiteLLM; every other row encrypted twice (MT-02)."""
    rows = []
    for index in range(count):
        params = {}
        for name, value in PARAMS.items():
            if isinstance(value, str):
                value = encrypt_value_helper(value, SALT)
                if index % 2:
                    value = encrypt_value_helper(value, SALT)
            params[name] = value
        rows.append(params)
    return rows


def floor_audit(rows: list[dict]) -> float:
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

        figures: dict[str, list[float]] = {k: [] for k in ("audit", "audit_floor", "normalize", "normalize_floor")}
        try:
            for _ in range(args.rounds):
                seconds, result = module_run(params, template, Options(), check=True)
                assert result["summary"]["encrypted_more_than_once"] == (args.rows // 2) * 4, result["summary"]
                figures["audit"].append(seconds)
                figures["audit_floor"].append(floor_audit(rows))
                copy = fresh_database(params, "bench_mt", template)
                try:
                    options = Options(normalize=True, backup_dir=str(Path(tmp) / "backups"))
                    seconds, result = module_run(params, copy, options, check=False)
                    assert len(result["changes"]) == args.rows // 2
                    figures["normalize"].append(seconds)
                finally:
                    drop_database(params, copy)
                figures["normalize_floor"].append(floor_normalize(rows))
        finally:
            drop_database(params, template)

    values = args.rows * sum(isinstance(v, str) for v in PARAMS.values())
    print(f"{args.rows} model rows, {values} encrypted values, half of the rows encrypted twice")
    print(f"median of {args.rounds} rounds, alternating")
    print(f"{'':28}{'module':>10}{'LiteLLM loop':>14}{'ratio':>8}")
    for step in ("audit", "normalize"):
        mine, floor = statistics.median(figures[step]), statistics.median(figures[f"{step}_floor"])
        print(f"{step + ' (s)':28}{mine:>10.2f}{floor:>14.2f}{mine / floor:>7.2f}x")
    print("module: read from PostgreSQL, every layer tried with every key, plan; normalize also writes the")
    print("backup and the rows in one transaction. LiteLLM loop: its helpers over the values in memory.")


if __name__ == "__main__":
    main()
