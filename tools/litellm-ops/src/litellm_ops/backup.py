"""Verified backups of LiteLLM's database and configuration, their retention and their restore (OPS-02).

A backup is a directory ``litellm-YYYYmmddTHHMMSSZ`` holding ``litellm.dump`` (pg_dump's custom
format), ``config.tar.gz`` (the configuration files, without the plain-text secrets) and
``manifest.json``: the SHA-256 and size of each file, the row count of every table taken in the
dump's own snapshot, and the fingerprint of the salt key the model table is encrypted with
(never the key). It is written under a temporary name and renamed once complete, so a failed run
leaves no half-written backup behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from . import config, db

PREFIX = "litellm-"
STAMP = "%Y%m%dT%H%M%SZ"
DUMP = "litellm.dump"
CONFIG_ARCHIVE = "config.tar.gz"
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pg(settings: dict[str, Any], tool: str) -> str:
    return str(Path(settings["backup"]["pg_bin_dir"]) / tool)


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    run = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        detail = (run.stderr or run.stdout).strip().splitlines()
        raise config.OpsError(f"{Path(argv[0]).name} failed ({run.returncode}): {' | '.join(detail[-3:])}")
    return run


def parse_name(name: str) -> dt.datetime | None:
    if not name.startswith(PREFIX):
        return None
    try:
        return dt.datetime.strptime(name[len(PREFIX) :], STAMP).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def backups(root: Path) -> list[Path]:
    """Complete backups (with a manifest), newest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and parse_name(p.name) and (p / MANIFEST).is_file()]
    return sorted(found, key=lambda p: parse_name(p.name), reverse=True)


def retain(stamps: list[dt.datetime], daily: int, weekly: int, monthly: int) -> set[dt.datetime]:
    """The backups a 7 daily / 4 weekly / 3 monthly rotation keeps (counts are parameters).

    The newest backup of each of the ``daily`` most recent days that have one is kept, likewise
    for ISO weeks and calendar months; the newest backup overall is always kept.
    """
    keep: set[dt.datetime] = set()
    newest = sorted(stamps, reverse=True)
    if newest:
        keep.add(newest[0])
    for count, bucket in (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    ):
        seen: list[Any] = []
        for stamp in newest:
            key = bucket(stamp)
            if key in seen:
                continue
            if len(seen) == count:
                break
            seen.append(key)
            keep.add(stamp)
    return keep


def prune(settings: dict[str, Any], root: Path) -> list[str]:
    policy = settings["backup"]["retention"]
    found = {parse_name(p.name): p for p in backups(root)}
    keep = retain(list(found), int(policy["daily"]), int(policy["weekly"]), int(policy["monthly"]))
    removed = []
    for stamp, path in found.items():
        if stamp not in keep:
            shutil.rmtree(path)
            removed.append(path.name)
    # Leftovers of interrupted runs.
    for partial in root.glob(".partial-*"):
        shutil.rmtree(partial, ignore_errors=True)
    return sorted(removed)


def _config_archive(settings: dict[str, Any], target: Path) -> list[str]:
    exclude = {os.path.realpath(p) for p in settings["backup"].get("exclude", [])}
    stored = []

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if os.path.realpath("/" + info.name) in exclude:
            return None
        if info.isfile():
            stored.append("/" + info.name)
        return info

    with tarfile.open(target, "w:gz") as archive:
        for path in settings["backup"].get("config_paths", []):
            if os.path.exists(path):
                archive.add(path, arcname=path.lstrip("/"), filter=keep)
    return sorted(stored)


def toc_entries(settings: dict[str, Any], dump: Path) -> int:
    """Read the archive's table of contents with pg_restore --list: a readable archive has one."""
    out = _run([_pg(settings, "pg_restore"), "--list", str(dump)], {}).stdout
    entries = [line for line in out.splitlines() if line and not line.startswith(";")]
    if not entries:
        raise config.OpsError(f"{dump}: pg_restore --list shows no entries")
    return len(entries)


def create(settings: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    started = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    root = Path(settings["backup"]["dir"])
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    name = PREFIX + now.strftime(STAMP)
    final = root / name
    if final.exists():
        raise config.OpsError(f"{final} exists already")
    partial = root / f".partial-{name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    old_umask = os.umask(0o077)
    try:
        conn = db.connect(settings)
        try:
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with conn.cursor() as cursor:
                # The counts and the dump see the same snapshot: the restore must give exactly these.
                cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
                snapshot, server_version = cursor.fetchone()
                counts = db.table_counts(cursor)
                _run(
                    [
                        _pg(settings, "pg_dump"),
                        "--format=custom",
                        "--compress=6",
                        f"--snapshot={snapshot}",
                        "--no-password",
                        f"--file={partial / DUMP}",
                    ],
                    db.libpq_env(settings),
                )
        finally:
            conn.close()
        stored = _config_archive(settings, partial / CONFIG_ARCHIVE)
        entries = toc_entries(settings, partial / DUMP)
        files = {}
        for item in (DUMP, CONFIG_ARCHIVE):
            os.chmod(partial / item, 0o600)
            files[item] = {"sha256": _sha256(partial / item), "size": (partial / item).stat().st_size}
        manifest = {
            "format": 1,
            "created_at": now.isoformat(),
            "database": settings["database"]["name"],
            "server_version": server_version,
            "litellm_version": settings.get("litellm_version"),
            "salt_key_fingerprint": settings["salt_key_fingerprint"],
            "row_counts": counts,
            "toc_entries": entries,
            "files": files,
            "config_files": stored,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.chmod(partial / MANIFEST, 0o600)
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        os.umask(old_umask)
    removed = prune(settings, root)
    size = sum(f["size"] for f in files.values())
    return {
        "status": "ok",
        "backup": str(final),
        "created_at": now.isoformat(),
        "size_bytes": size,
        "rows": sum(counts.values()),
        "tables": len(counts),
        "toc_entries": entries,
        "duration_seconds": round(time.monotonic() - started, 3),
        "kept": [p.name for p in backups(root)],
        "removed": removed,
    }


def resolve(settings: dict[str, Any], backup: str) -> Path:
    """A backup by path or by name; 'latest' is the newest."""
    root = Path(settings["backup"]["dir"])
    if backup == "latest":
        found = backups(root)
        if not found:
            raise config.OpsError(f"no backup in {root}")
        return found[0]
    path = Path(backup) if "/" in backup else root / backup
    if not (path / MANIFEST).is_file():
        raise config.OpsError(f"{path} is not a backup: it has no {MANIFEST}")
    return path


def verify(settings: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check a backup before it is restored: checksums, a readable archive and the salt key it needs."""
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    for item, meta in manifest["files"].items():
        actual = _sha256(path / item)
        if actual != meta["sha256"]:
            raise config.OpsError(f"{path / item} does not match its manifest (SHA-256 {actual}): it is damaged")
    wanted, current = manifest["salt_key_fingerprint"], settings["salt_key_fingerprint"]
    # Keys being rotated away from are accepted too: the next run's model-table step re-encrypts.
    if wanted not in (current, *settings.get("old_salt_key_fingerprints", [])):
        raise config.OpsError(
            f"{path.name} was taken under the salt key with fingerprint {wanted}, but litellm_salt_key has "
            f"fingerprint {current}: its model rows would not decrypt. Set vault_litellm_salt_key to the key "
            "of that time, or list it in vault_litellm_old_salt_keys (rotation), and retry."
        )
    toc_entries(settings, path / DUMP)
    return manifest


def _empty(cursor) -> None:
    cursor.execute("DROP SCHEMA IF EXISTS public CASCADE")
    cursor.execute("CREATE SCHEMA public")


def restore(settings: dict[str, Any], path: Path, dbname: str) -> dict[str, Any]:
    """Restore a verified backup into ``dbname`` (emptied first) and compare its row counts with the manifest."""
    started = time.monotonic()
    manifest = verify(settings, path)
    conn = db.connect(settings, dbname)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            _empty(cursor)
        _run(
            [
                _pg(settings, "pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                "--no-password",
                f"--dbname={dbname}",
                str(path / DUMP),
            ],
            db.libpq_env(settings, dbname),
        )
        with conn.cursor() as cursor:
            counts = db.table_counts(cursor)
    finally:
        conn.close()
    expected = manifest["row_counts"]
    differ = {
        t: {"backup": expected.get(t), "restored": counts.get(t)}
        for t in set(expected) | set(counts)
        if expected.get(t) != counts.get(t)
    }
    if differ:
        raise config.OpsError(f"restored {path.name} into {dbname}, but row counts differ: {json.dumps(differ)}")
    return {
        "status": "ok",
        "backup": str(path),
        "database": dbname,
        "tables": len(counts),
        "rows": sum(counts.values()),
        "duration_seconds": round(time.monotonic() - started, 3),
    }


def restore_check(settings: dict[str, Any]) -> dict[str, Any]:
    """The weekly test restore: the newest backup into the scratch database, counts compared, then emptied."""
    path = resolve(settings, "latest")
    scratch = settings["backup"]["scratch_database"]
    try:
        outcome = restore(settings, path, scratch)
    finally:
        conn = db.connect(settings, scratch)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                _empty(cursor)
        finally:
            conn.close()
    return outcome
