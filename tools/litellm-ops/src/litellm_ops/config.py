"""Settings, secrets and result files shared by every command."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/litellm-ops/ops.json"
# Root-only copies of the secrets, which systemd hands to the units (LoadCredential=); an
# operator running a command by hand as root reads them from here.
CREDENTIALS_DIR = "/etc/litellm-ops/credentials"


class OpsError(Exception):
    """A failure the operator can act on; the message names what is wrong."""


def load(path: str | os.PathLike[str] = DEFAULT_CONFIG) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as err:
        raise OpsError(f"settings file {path} is missing: run the operations role") from err
    except json.JSONDecodeError as err:
        raise OpsError(f"settings file {path} is not JSON: {err}") from err


def secret(name: str) -> str:
    """Return a secret passed by systemd (LoadCredential=), or for a run by hand as root, from its file."""
    for directory in (os.environ.get("CREDENTIALS_DIRECTORY"), CREDENTIALS_DIR):
        candidate = Path(directory) / name if directory else None
        if candidate and os.access(candidate, os.R_OK):
            return candidate.read_text(encoding="utf-8").strip()
    value = os.environ.get("LITELLM_OPS_" + name.upper().replace("-", "_"))
    if value:
        return value
    raise OpsError(f"secret {name!r} is not available: run the command through its systemd unit or as root")


def result_path(settings: dict[str, Any], name: str) -> Path:
    return Path(settings["state_dir"]) / f"{name}.json"


def write_result(settings: dict[str, Any], name: str, payload: dict[str, Any]) -> Path:
    """Write a result atomically (readers never see half a file); 0640, never a secret in it."""
    payload = {"name": name, "finished_at": time.time(), **payload}
    target = result_path(settings, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_result(settings: dict[str, Any], name: str) -> dict[str, Any] | None:
    try:
        with open(result_path(settings, name), encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
