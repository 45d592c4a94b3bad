"""SEC-03 remediation: virtual keys that expired longer ago than the grace period are deleted."""

from __future__ import annotations

from typing import Any

from . import db

SQL = """
FROM "LiteLLM_VerificationToken"
WHERE expires IS NOT NULL AND expires < now() - make_interval(days => %s)
"""


def prune(settings: dict[str, Any], check: bool = False) -> dict[str, Any]:
    grace = int(settings["compliance"]["keys"]["grace_days"])
    with db.transaction(settings) as cursor:
        verb = "SELECT" if check else "DELETE"
        tail = "" if check else " RETURNING coalesce(key_alias, key_name, left(token, 8))"
        head = "coalesce(key_alias, key_name, left(token, 8)) " if check else ""
        cursor.execute(f"{verb} {head}{SQL}{tail}", (grace,))
        labels = sorted(r[0] for r in cursor.fetchall())
    return {"changed": bool(labels), "check_mode": check, "grace_days": grace, "keys": labels}
