"""Stray state (OPS-06): generated files that are no longer current are moved to the archive.

A file in a watched directory is stray when it is not one the roles write and it looks like a
leftover of one: a copy named after a current file (``config.yaml.bak``, ``config.runtime.yaml``)
or a file with a backup or temporary suffix. Anything else an operator put there is left alone.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

SUFFIXES = (".bak", ".orig", ".old", ".rej", ".tmp", ".swp", "~", ".dpkg-old", ".dpkg-dist", ".ucf-old", ".save")
MARKERS = (".snapshot", ".backup", ".runtime", ".copy", ".prev", "-old", "_old", "-bak", "_bak", "-backup")


def _stem(name: str) -> str:
    return name.split(".", 1)[0]


def is_stray(name: str, current: set[str]) -> bool:
    if name in current:
        return False
    lowered = name.lower()
    if lowered.endswith(SUFFIXES) or any(marker in lowered for marker in MARKERS):
        return True
    # A copy named after a current file: config.yaml -> config.yaml.1, config.runtime.yaml, config-old.yaml.
    return any(name.startswith(c) or (_stem(name) == _stem(c) and name != c) for c in current)


def find(watch: list[dict[str, Any]]) -> list[Path]:
    stray = []
    for entry in watch:
        directory = Path(entry["path"])
        if not directory.is_dir():
            continue
        current = set(entry.get("current", []))
        for item in sorted(directory.iterdir()):
            if item.is_file() and not item.is_symlink() and is_stray(item.name, current):
                stray.append(item)
    return stray


def archive(watch: list[dict[str, Any]], archive_dir: str, check: bool, now: dt.datetime | None = None) -> dict:
    """Move stray files to ARCHIVE/<UTC time>/<original path>; in check mode only list them."""
    found = find(watch)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for item in found:
        target = Path(archive_dir) / stamp / str(item).lstrip("/")
        moved.append({"from": str(item), "to": str(target)})
        if check:
            continue
        target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        directory = target.parent
        while directory != Path(archive_dir):  # SEC-04: nothing in the archive is world-readable
            os.chmod(directory, 0o750)
            directory = directory.parent
        shutil.move(str(item), target)
    return {"changed": bool(moved), "moved": moved}
