"""SEC-03 remediation: virtual keys that expired longer ago than the grace period are deleted, and
(optionally) each expired key gets a replacement that expires in 90 days."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from . import db

TABLE = "LiteLLM_VerificationToken"
SQL = f"""
FROM "{TABLE}"
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


# --- optional rotation ------------------------------------------------------------
MARKER = "rotated_from"


def _new_key() -> str:
    return "sk-" + secrets.token_urlsafe(32)


def rotate(
    settings: dict[str, Any], days: int, directory: str, check: bool = False, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Mint a replacement for every expired key with an alias that has none yet (SEC-03).

    The new key copies the old row (models, budgets, user, team, metadata) with a new token (the
    SHA-256 LiteLLM stores), ``<alias>-rotated-<date>`` as its alias and an expiry N days out. Its
    plaintext is written only to a root-only file in the rotation directory, for the operator to
    hand over (DIRECTORY); the result names the aliases and the file, never the key. The old row gets no
    change here: prune deletes it after the grace period. In check mode nothing is written.
    """
    directory = Path(directory)
    today = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d")
    rotated = []
    with db.transaction(settings) as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
            " AND table_schema = current_schema()",
            (TABLE,),
        )
        columns = [r[0] for r in cursor.fetchall()]
        cursor.execute(
            f'SELECT token, key_alias FROM "{TABLE}" AS old WHERE expires IS NOT NULL AND expires < now() '
            f'AND key_alias IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "{TABLE}" AS new '
            f"WHERE new.metadata ->> '{MARKER}' = old.token) ORDER BY key_alias"
        )
        for old_token, alias in cursor.fetchall():
            key = _new_key()
            new_alias = f"{alias}-rotated-{today}"
            target = directory / f"{new_alias}.key"
            replace = {
                "token": "%(token)s",
                "key_name": "%(key_name)s",
                "key_alias": "%(alias)s",
                "expires": "now() + make_interval(days => %(days)s)",
                "spend": "0",
                "created_at": "now()",
                "updated_at": "now()",
                "metadata": f"coalesce(metadata, '{{}}'::jsonb) || jsonb_build_object('{MARKER}', token::text)",
            }
            picks = ", ".join(replace.get(c, f'"{c}"') for c in columns)
            names = ", ".join(f'"{c}"' for c in columns)
            cursor.execute(
                f'INSERT INTO "{TABLE}" ({names}) SELECT {picks} FROM "{TABLE}" WHERE token = %(old)s',
                {
                    "token": hashlib.sha256(key.encode()).hexdigest(),
                    "key_name": f"sk-...{key[-4:]}",
                    "alias": new_alias,
                    "days": days,
                    "old": old_token,
                },
            )
            rotated.append({"from": alias, "to": new_alias, "file": str(target), "expires_in_days": days})
            if not check:
                # Before the commit: a failed commit leaves a key file nothing accepts, never a row
                # whose key nobody has.
                _write_private(directory, target, key)
        if check:
            cursor.connection.rollback()
    return {"changed": bool(rotated), "check_mode": check, "rotated": rotated}


def _write_private(directory: Path, target: Path, key: str) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
