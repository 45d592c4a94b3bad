"""The systemd sandbox every unit of the project runs in, defined once, and the check of each unit file.

``litellm_systemd_sandbox`` renders the baseline's [Service] directives, with a unit's exceptions
applied: ``{{ {'MemoryDenyWriteExecute': false} | litellm_systemd_sandbox }}``. An exception names
a directive of the baseline (an unknown name is an error) and gives its value: a string, a
boolean (true, false), an integer, a list (one line per item; empty: no line) or none (the
directive is left out). Every template passes its exceptions with a comment saying why the
service needs them; no template spells out a sandbox directive itself
(tests/unit/test_systemd_sandbox.py checks both).

``litellm_systemd_verify`` gives the ``validate:`` command of a unit file or a drop-in:
``systemd-analyze verify`` wants a file whose name is the unit's, so the file is checked under
that name in a temporary directory (a drop-in: in the unit's ``.d`` directory, over the unit as
installed, or over a stand-in while the unit is not there yet). The check fails on an error, and
on any warning about the file itself (systemd only warns about unknown or misspelt directives).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ansible.errors import AnsibleFilterError

Value = str | bool | int | list[str] | None

# The strongest sandbox that every service of the project runs in. Each unit's exceptions, with
# the reason for each, sit in its template. None: not set unless a unit's exceptions set it.
BASELINE: dict[str, Value] = {
    "UMask": "0027",
    "NoNewPrivileges": True,
    "ProtectSystem": "strict",
    "ProtectHome": True,
    "PrivateTmp": True,
    # Mounts made in the service's namespace never reach the host (it has one anyway, for the above).
    "PrivateMounts": True,
    "PrivateDevices": True,
    "DevicePolicy": "closed",
    # Device nodes a unit needs (with PrivateDevices=false); none in the baseline.
    "DeviceAllow": [],
    "PrivateUsers": True,
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectKernelTunables": True,
    "ProtectKernelModules": True,
    "ProtectKernelLogs": True,
    "ProtectControlGroups": True,
    "ProtectClock": True,
    "ProtectHostname": True,
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": True,
    "RestrictRealtime": True,
    "RestrictSUIDSGID": True,
    "LockPersonality": True,
    "MemoryDenyWriteExecute": True,
    "RemoveIPC": True,
    "SystemCallArchitectures": "native",
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    # A call outside the filter kills the process unless a unit's exceptions set an errno.
    "SystemCallErrorNumber": None,
}

# Where a unit a drop-in extends may be installed (the system unit search path, /etc first).
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)

# Runs on the managed host as: sh -c SCRIPT litellm-systemd-verify UNIT BASE DROPIN FILE.
# No percent sign: Ansible puts the file's path in with validate % path.
_VERIFY_SCRIPT = """\
unit=$1 base=$2 dropin=$3 file=$4
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
if [ -n "$dropin" ]; then
  mkdir "$dir/$base.d" && cp "$file" "$dir/$base.d/$dropin" || exit 1
  found=
  for d in $UNIT_DIRS; do [ -e "$d/$base" ] && found=yes; done
  [ -n "$found" ] || printf '[Service]\\nExecStart=/bin/true\\n' > "$dir/$base" || exit 1
  target=$unit
else
  cp "$file" "$dir/$unit" || exit 1
  target=$dir/$unit
fi
SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify --man=no "$target" > "$dir/out" 2>&1
rc=$?
cat "$dir/out"
[ "$rc" -eq 0 ] || exit "$rc"
if grep -qF "$dir/" "$dir/out"; then echo "systemd-analyze verify warned about $unit ($dropin)"; exit 1; fi
"""

_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.-]+(@[A-Za-z0-9:_.-]*)?\.(service|socket|timer)$")


def _line(name: str, value: str | bool | int) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | str):
        text = str(value)
    else:
        raise AnsibleFilterError(
            f"litellm_systemd_sandbox: {name} must be a string, a boolean, an integer, a list or none, "
            f"not {type(value).__name__}"
        )
    if "\n" in text or "\r" in text:
        raise AnsibleFilterError(f"litellm_systemd_sandbox: {name}'s value spans lines")
    return f"{name}={text}"


def litellm_systemd_sandbox(exceptions: dict[str, Any] | None = None) -> str:
    """The [Service] sandbox lines of the baseline, with ``exceptions`` (directive: value) applied."""
    if exceptions is None:
        exceptions = {}
    if not isinstance(exceptions, dict):
        raise AnsibleFilterError("litellm_systemd_sandbox: the exceptions must be a dict of directive: value")
    unknown = sorted(set(exceptions) - set(BASELINE))
    if unknown:
        raise AnsibleFilterError(
            f"litellm_systemd_sandbox: {', '.join(map(str, unknown))} is not a directive of the sandbox baseline "
            f"(filter_plugins/litellm_systemd.py); known: {', '.join(BASELINE)}"
        )
    settings = {**BASELINE, **exceptions}
    named = [name for name in BASELINE if name in exceptions]
    lines = [
        "# The project's sandbox baseline (filter_plugins/litellm_systemd.py); "
        + (f"this unit's exceptions: {', '.join(named)}." if named else "no exceptions.")
    ]
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            lines.extend(_line(name, item) for item in value)
        else:
            lines.append(_line(name, value))
    return "\n".join(lines)


def litellm_systemd_verify(unit: str, dropin: str | None = None) -> str:
    """The ``validate:`` command for the file of ``unit`` or, given ``dropin``, for that drop-in of it."""
    if not isinstance(unit, str) or not _UNIT_NAME.match(unit):
        raise AnsibleFilterError(f"litellm_systemd_verify: {unit!r} is not a unit name (name.service, .socket, .timer)")
    if dropin is not None and not re.match(r"^[A-Za-z0-9_.\-]+\.conf$", str(dropin)):
        raise AnsibleFilterError(f"litellm_systemd_verify: the drop-in {dropin!r} must be a file name ending in .conf")
    # A drop-in of an instance (postgresql@15-main.service) lives in its template's directory.
    base = re.sub(r"@[^.]*\.", "@.", unit) if "@" in unit else unit
    script = _VERIFY_SCRIPT.replace("$UNIT_DIRS", " ".join(UNIT_DIRS))
    args = [unit, base, dropin or ""]
    return " ".join(
        ["/bin/sh", "-c", shlex.quote(script), "litellm-systemd-verify", *(shlex.quote(arg) for arg in args), "%s"]
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "litellm_systemd_sandbox": litellm_systemd_sandbox,
            "litellm_systemd_verify": litellm_systemd_verify,
        }
