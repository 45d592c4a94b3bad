"""SEC-05: secrets in plain text. Every file under the given paths is searched for every secret's
value; a value found in a file that is not one of that secret's allowed holders is a finding.

The request names the secrets with their values (it comes on stdin, never on a command line);
the report names the file, the line and the secret, never a value.
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from collections.abc import Iterator
from typing import Any

MIN_LENGTH = 8  # shorter values would match by chance (and say little about a leak)


def _needles(secrets: dict[str, str]) -> list[tuple[str, bytes]]:
    """(name, bytes to look for): each value as it is and percent-encoded (inside a URL)."""
    needles = []
    for name, value in secrets.items():
        if not isinstance(value, str) or len(value) < MIN_LENGTH:
            continue
        for form in dict.fromkeys((value, urllib.parse.quote(value, safe=""))):
            needles.append((name, form.encode("utf-8")))
    return needles


def _files(paths: list[str]) -> Iterator[str]:
    """Every file under the paths; symlinked directories are not entered."""
    for top in paths:
        if os.path.isfile(top):
            yield top
            continue
        for directory, _dirs, names in os.walk(top, followlinks=False):
            for name in sorted(names):
                yield os.path.join(directory, name)


def _allowed(allowed: dict[str, list[str]], path: str) -> set[str]:
    """The secrets a file may hold: its own entry (by its path or its target's) and its directories'."""
    names: set[str] = set()
    for candidate in dict.fromkeys((os.path.normpath(path), os.path.realpath(path))):
        for holder, secrets in allowed.items():
            holder = os.path.normpath(holder)
            if candidate == holder or candidate.startswith(holder.rstrip("/") + "/"):
                names.update(secrets)
    return names


def _lines(data: bytes, needle: bytes) -> list[int]:
    found: list[int] = []
    start = data.find(needle)
    while start != -1:
        line = data.count(b"\n", 0, start) + 1
        if not found or found[-1] != line:
            found.append(line)
        start = data.find(needle, start + 1)
    return found


def scan(request: dict[str, Any]) -> dict[str, Any]:
    needles = _needles(request.get("secrets") or {})
    allowed = request.get("allowed") or {}
    max_bytes = int(request.get("max_bytes", 1048576))
    findings: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    scanned = skipped = 0
    for path in _files(request.get("paths") or []):
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            if info.st_size > max_bytes:
                skipped += 1
                continue
            with open(path, "rb") as handle:
                data = handle.read(max_bytes + 1)
        except OSError:
            skipped += 1
            continue
        scanned += 1
        hits = [(name, needle) for name, needle in needles if needle in data]
        if not hits:
            continue
        may_hold = _allowed(allowed, path)
        lines: dict[tuple[int, str], None] = {}
        for name, needle in hits:
            if name not in may_hold:
                lines.update(dict.fromkeys((line, name) for line in _lines(data, needle)))
        findings += [{"path": path, "line": line, "secret": name} for line, name in sorted(lines)]
    where = f"{scanned} files scanned" + (
        f", {skipped} skipped (unreadable or over {max_bytes} bytes)" if skipped else ""
    )
    if findings:
        shown = "; ".join(f"{f['path']}:{f['line']} ({f['secret']})" for f in findings[:10])
        more = f" and {len(findings) - 10} more" if len(findings) > 10 else ""
        detail = f"{len(findings)} secret value(s) in plain text where not allowed: {shown}{more} ({where})"
        return {"id": "SEC-05", "status": "fail", "detail": detail, "findings": findings, "scanned": scanned}
    detail = f"no secret outside the files allowed to hold it ({where})"
    return {"id": "SEC-05", "status": "pass", "detail": detail, "findings": [], "scanned": scanned}
