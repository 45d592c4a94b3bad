"""Is the Prisma client in LiteLLM's venv generated from the venv's schema.prisma? (DB-03)"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansible.module_utils.litellm_prisma_migrations import SyncError
from ansible.module_utils.litellm_prisma_schema import Schema


def site_packages(venv: str | Path) -> Path:
    """The site-packages folder of the venv VENV."""
    found = sorted(Path(venv).glob("lib/python3*/site-packages"))
    if not found:
        raise SyncError(f"{venv} is not a Python virtual environment (no lib/python3*/site-packages)")
    return found[-1]


def venv_paths(venv: str | Path) -> tuple[Path, Path]:
    """LiteLLM's schema.prisma and the migrations of litellm-proxy-extras in a venv."""
    site = site_packages(venv)
    return site / "litellm" / "proxy" / "schema.prisma", site / "litellm_proxy_extras" / "migrations"


def client_status(
    venv: str | Path, schema: Schema, engine_binary: str | None, parse: Callable[[str], Schema]
) -> dict[str, Any]:
    """Is the generated Prisma client in the venv made from the venv's schema? (DB-03)"""
    pkg = site_packages(venv) / "prisma"
    status: dict[str, Any] = {"state": "current", "problems": [], "engine_binary": engine_binary or None}
    if not pkg.is_dir():
        return {**status, "state": "not_installed", "problems": ["the prisma package is not installed in the venv"]}
    generated = pkg / "schema.prisma"
    if not (pkg / "client.py").is_file() or not generated.is_file():
        return {
            **status,
            "state": "not_generated",
            "problems": ["the Prisma client was never generated (prisma generate)"],
        }
    client_schema = parse(generated.read_text(encoding="utf-8"))
    missing = sorted(set(schema.tables) - set(client_schema.tables))
    changed = sorted(
        name
        for name, table in schema.tables.items()
        if name in client_schema.tables and set(table.columns) != set(client_schema.tables[name].columns)
    )
    if missing or changed:
        status["state"] = "stale"
        if missing:
            status["problems"].append("the client lacks the models " + ", ".join(missing))
        if changed:
            status["problems"].append("the client has other fields for " + ", ".join(changed))
    if engine_binary:
        expected = _expected_engine(pkg)
        binary = Path(engine_binary)
        if not binary.is_file() or not os.access(binary, os.X_OK):
            status["state"] = "engine_mismatch"
            status["problems"].append(f"PRISMA_QUERY_ENGINE_BINARY points to {binary}, which is not an executable file")
        else:
            import subprocess

            out = subprocess.run(
                [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
            ).stdout
            version = out.replace("query-engine", "").strip()
            status["engine_version"] = version
            if expected and version != expected:
                status["state"] = "engine_mismatch"
                status["problems"].append(
                    f"PRISMA_QUERY_ENGINE_BINARY {binary} is engine {version or 'unknown'}, "
                    f"the client expects {expected}; "
                    f"unset it so that prisma uses the engine it downloaded"
                )
    return status


def _expected_engine(pkg: Path) -> str | None:
    config = pkg / "_config.py"
    if not config.is_file():
        return None
    m = re.search(
        r"expected_engine_version[^=]*=\s*Field\([^)]*default='([0-9a-f]+)'", config.read_text(encoding="utf-8"), re.S
    )
    return m.group(1) if m else None
