"""The model inventory (MT-04): what the proxy serves, and the model rows, against the catalogue."""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import config, db, http

ROWS_SQL = """
SELECT model_name FROM "LiteLLM_ProxyModelTable"
WHERE model_info IS NULL OR (model_info::jsonb ->> 'team_id') IS NULL
"""


def expected(settings: dict[str, Any]) -> set[str]:
    return {m["name"] for m in settings["catalogue"]["models"]} | set(settings["catalogue"]["aliases"])


def compare(expected_names: set[str], served: list[str], rows: list[str] | None) -> dict[str, Any]:
    served_count = Counter(served)
    findings: dict[str, Any] = {
        "missing": sorted(expected_names - set(served)),
        "zombies": sorted(set(served) - expected_names),
        "duplicates": sorted(n for n, c in served_count.items() if c > 1),
    }
    if rows is not None:
        row_count = Counter(rows)
        findings["db_zombies"] = sorted(set(rows) - expected_names)
        findings["db_duplicates"] = sorted(n for n, c in row_count.items() if c > 1)
    return findings


def run(settings: dict[str, Any]) -> dict[str, Any]:
    reply = http.call(settings, "GET", "/v1/models")
    if reply.status != 200:
        raise config.OpsError(f"the proxy's /v1/models answered {http.reason(reply)}")
    served = [m["id"] for m in reply.json().get("data", [])]
    rows = None
    if settings["catalogue"].get("models_in_db"):
        conn = db.connect(settings)
        try:
            with conn.cursor() as cursor:
                cursor.execute(ROWS_SQL)
                rows = [r[0] for r in cursor.fetchall()]
        finally:
            conn.close()
    findings = compare(expected(settings), served, rows)
    total = sum(len(v) for v in findings.values())
    return {
        "status": "fail" if total else "pass",
        "served": sorted(set(served)),
        "findings": findings,
        "finding_count": total,
    }
