"""The compliance check: the incident IDs that can be checked on a live host, each pass, warn or fail.

Checks read the host as it is (files, /proc, systemd, the database); none changes anything.
A check that cannot run (its input is missing) fails and says why: an audit that cannot look
has not passed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from . import config, db, stray

PASS, WARN, FAIL = "pass", "warn", "fail"


def _result(check_id: str, status: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"id": check_id, "status": status, "detail": detail, **extra}


# --- SEC-01 ------------------------------------------------------------------
def check_floors(settings: dict[str, Any]) -> dict[str, Any]:
    argv = settings["compliance"]["floors_command"]
    run = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        return _result("SEC-01", FAIL, f"{argv[1]} gave no report (exit {run.returncode}): {run.stderr.strip()[-300:]}")
    if report["below"]:
        below = ", ".join(f"{e['package']} {e['installed']} < {e['minimum']}" for e in report["below"])
        return _result("SEC-01", FAIL, f"below the security floor in the proxy's environment: {below}")
    reported = ", ".join(f"{e['package']} {e['installed']}" for e in report["reported"])
    if reported:
        return _result("SEC-01", WARN, f"installed without a safe release: {reported}")
    return _result("SEC-01", PASS, f"{len(report['ok'])} packages at or above their floor")


# --- SEC-02, SEC-07 -----------------------------------------------------------
def _proxy_settings(settings: dict[str, Any]) -> dict[str, Any]:
    path = settings["compliance"]["proxy_config"]
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _flag_off(settings: dict[str, Any], check_id: str, name: str, harm: str, ok: str) -> dict[str, Any]:
    """A check that a setting of the proxy's config.yaml is not true (general or litellm settings)."""
    try:
        document = _proxy_settings(settings)
    except (OSError, yaml.YAMLError) as err:
        return _result(check_id, FAIL, f"cannot read the proxy's config: {err}")
    sections = ("general_settings", "litellm_settings")
    if any((document.get(section) or {}).get(name) is True for section in sections):
        return _result(check_id, FAIL, f"{name} is true: {harm}")
    return _result(check_id, PASS, ok)


def check_prompts(settings: dict[str, Any]) -> dict[str, Any]:
    return _flag_off(
        settings,
        "SEC-02",
        "store_prompts_in_spend_logs",
        "user prompts are kept in the spend logs",
        "prompts are not stored in the spend logs",
    )


def check_error_logs(settings: dict[str, Any]) -> dict[str, Any]:
    return _flag_off(settings, "SEC-07", "disable_error_logs", "the proxy hides its failures", "error logs are on")


# --- SEC-03 -------------------------------------------------------------------
KEYS_SQL = """
SELECT coalesce(key_alias, key_name, left(token, 8)), expires
FROM "LiteLLM_VerificationToken"
WHERE expires IS NOT NULL AND expires < now() + make_interval(days => %s)
ORDER BY expires
"""


def key_expiry(settings: dict[str, Any], cursor) -> dict[str, Any]:
    """Expired and soon-expiring virtual keys, by alias (never the token)."""
    policy = settings["compliance"]["keys"]
    cursor.execute(KEYS_SQL, (int(policy["warn_days"]),))
    now = dt.datetime.now(dt.UTC)
    grace = dt.timedelta(days=int(policy["grace_days"]))
    expired, lingering, soon = [], [], []
    for label, expires in cursor.fetchall():
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
        if expires >= now:
            soon.append(label)
        else:
            expired.append(label)
            if now - expires > grace:
                lingering.append(label)
    return {"expired": expired, "lingering": lingering, "expiring": soon}


def _read_db(settings: dict[str, Any], read) -> tuple[Any, str | None]:
    """read(settings, cursor) on LiteLLM's database, or None and why it could not be reached."""
    try:
        conn = db.connect(settings)
    except config.OpsError as err:
        return None, str(err)
    try:
        with conn.cursor() as cursor:
            return read(settings, cursor), None
    finally:
        conn.close()


def check_keys(settings: dict[str, Any]) -> dict[str, Any]:
    policy = settings["compliance"]["keys"]
    found, error = _read_db(settings, key_expiry)
    if error:
        return _result("SEC-03", FAIL, error)
    if found["lingering"]:
        return _result(
            "SEC-03",
            FAIL,
            f"{len(found['lingering'])} key(s) expired more than {policy['grace_days']} days ago still exist: "
            + ", ".join(found["lingering"][:10]),
            **found,
        )
    if found["expired"] or found["expiring"]:
        return _result(
            "SEC-03",
            WARN,
            f"{len(found['expired'])} expired, {len(found['expiring'])} expiring within {policy['warn_days']} days",
            **found,
        )
    return _result("SEC-03", PASS, "no expired or soon-expiring keys", **found)


# --- SEC-04 -------------------------------------------------------------------
def check_modes(settings: dict[str, Any]) -> dict[str, Any]:
    problems = []
    for entry in settings["compliance"]["modes"]:
        path, maximum = entry["path"], int(entry["max_mode"], 8)
        try:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
        except FileNotFoundError:
            if entry.get("required", True):
                problems.append(f"{path} is missing")
            continue
        if mode & ~maximum:
            problems.append(f"{path} is {mode:04o} (at most {maximum:04o})")
    if problems:
        return _result("SEC-04", FAIL, "; ".join(problems))
    return _result("SEC-04", PASS, f"{len(settings['compliance']['modes'])} paths within their modes")


# --- SEC-06 -------------------------------------------------------------------
def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # /proc/net/tcp6 prints the address as four 32-bit words in host (little-endian) order.
    return ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))


def listeners(proc_net: str = "/proc/net") -> list[tuple[str, int]]:
    """Listening TCP sockets as (address, port)."""
    found = []
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(proc_net, name).read_text(encoding="ascii").splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            host, port = fields[1].split(":")
            address = _address(host)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            found.append((str(address), int(port, 16)))
    return sorted(set(found))


def check_exposure(settings: dict[str, Any], proc_net: str = "/proc/net") -> dict[str, Any]:
    exposed = []
    sockets = listeners(proc_net)
    for service in settings["compliance"]["listeners"]:
        allowed = set(service.get("allowed", [])) | ({service["listen"]} if service.get("listen") else set())
        for address, port in sockets:
            if port != int(service["port"]) or ipaddress.ip_address(address).is_loopback or address in allowed:
                continue
            exposed.append(f"{service['name']} listens on {address}:{port}")
    if exposed:
        return _result("SEC-06", FAIL, "; ".join(exposed) + " (allowed: loopback and the addresses set for it)")
    return _result("SEC-06", PASS, f"{len(settings['compliance']['listeners'])} services on their allowed addresses")


# --- DB-06 --------------------------------------------------------------------
def connection_usage(settings: dict[str, Any], cursor) -> dict[str, int]:
    cursor.execute(
        "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,"
        " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
        " (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())"
    )
    maximum, reserved, used, used_litellm = cursor.fetchone()
    pool = settings["compliance"]["pool"]
    configured = int(pool["limit_per_worker"]) * int(pool["workers"]) * int(pool["proxy_hosts"])
    return {
        "max_connections": maximum,
        "reserved": reserved,
        "connections": used,
        "connections_litellm": used_litellm,
        "pool_total": configured,
    }


def check_pool(settings: dict[str, Any]) -> dict[str, Any]:
    usage, error = _read_db(settings, connection_usage)
    if error:
        return _result("DB-06", FAIL, error)
    threshold = float(settings["compliance"]["pool"]["usage_threshold"])
    available = usage["max_connections"] - usage["reserved"]
    if usage["pool_total"] > available:
        return _result(
            "DB-06",
            FAIL,
            f"the proxies may open {usage['pool_total']} connections (pool limit x workers"
            f" x hosts) but PostgreSQL accepts {available}",
            **usage,
        )
    if usage["connections"] >= threshold * available:
        return _result(
            "DB-06", FAIL, f"{usage['connections']} of {available} connections in use (over {threshold:.0%})", **usage
        )
    return _result(
        "DB-06",
        PASS,
        f"{usage['connections']} of {available} connections in use; the proxies' pool is {usage['pool_total']}",
        **usage,
    )


# --- OPS-01 -------------------------------------------------------------------
def unit_properties(unit: str) -> dict[str, str]:
    out = subprocess.run(
        ["systemctl", "show", unit, "--property=LoadState,ActiveState,Result,ExecStart,StandardOutput,StandardError"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _exec_path(exec_start: str) -> str:
    # { path=/opt/x/bin/python ; argv[]=/opt/x/bin/python -m ... ; ... }
    for part in exec_start.strip("{} ").split(" ; "):
        if part.startswith("argv[]="):
            return part[len("argv[]=") :].split(" ", 1)[0]
    return ""


def expected_units(settings: dict[str, Any]) -> list[dict[str, str]]:
    """The units listed in the settings, each model unit under its engine's directory, and this tool's own."""
    models = settings["compliance"].get("model_units", [])
    own = [*settings["timers"], "health", "exporter"]
    return [
        *settings["compliance"]["units"],
        *(
            {"unit": m["unit"] + ".service", "prefix": f"{settings['compliance']['models_dir']}/{m['engine']}/"}
            for m in models
        ),
        # A job that failed reports itself in its own result: only its drift counts here.
        *({"unit": f"litellm-ops-{name}.service", "prefix": sys.prefix + "/", "state": False} for name in own),
    ]


def check_units(settings: dict[str, Any], show=unit_properties) -> dict[str, Any]:
    problems = []
    units = expected_units(settings)
    for expected in units:
        unit, prefix = expected["unit"], expected["prefix"]
        props = show(unit)
        if props.get("LoadState") != "loaded":
            problems.append(f"{unit} is {props.get('LoadState', 'unknown')}")
            continue
        program = _exec_path(props.get("ExecStart", ""))
        if not program.startswith(prefix):
            problems.append(f"{unit} runs {program or 'nothing'}, not from {prefix}")
        for stream in ("StandardOutput", "StandardError"):
            if props.get(stream, "journal") not in ("journal", "inherit", "journal+console", "socket"):
                problems.append(f"{unit} sends {stream} to {props[stream]}, not the journal")
        if props.get("ActiveState") == "failed" and expected.get("state", True):
            problems.append(f"{unit} has failed ({props.get('Result')})")
    if problems:
        return _result("OPS-01", FAIL, "; ".join(problems))
    return _result(
        "OPS-01",
        PASS,
        f"{len(units)} units run from their own environments and log to the journal",
    )


# --- OPS-06 -------------------------------------------------------------------
def check_stray(settings: dict[str, Any]) -> dict[str, Any]:
    found = stray.find(settings["stray"]["watch"])
    if found:
        return _result("OPS-06", FAIL, "stray generated files: " + ", ".join(map(str, found)))
    return _result("OPS-06", PASS, "no stray generated files")


CHECKS = {
    "SEC-01": check_floors,
    "SEC-02": check_prompts,
    "SEC-03": check_keys,
    "SEC-04": check_modes,
    "SEC-06": check_exposure,
    "SEC-07": check_error_logs,
    "DB-06": check_pool,
    "OPS-01": check_units,
    "OPS-06": check_stray,
}


def run(settings: dict[str, Any]) -> dict[str, Any]:
    results = []
    for check_id, check in CHECKS.items():
        try:
            results.append(check(settings))
        except Exception as err:  # a check that breaks is reported as failed, the others still run
            results.append(_result(check_id, FAIL, f"the check could not run: {type(err).__name__}: {err}"))
    failed = sorted({r["id"] for r in results if r["status"] == FAIL})
    return {"status": FAIL if failed else PASS, "failed": failed, "checks": results}
