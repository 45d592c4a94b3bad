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
import re
import shlex
import stat
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import config, db, stray

PASS, WARN, FAIL = "pass", "warn", "fail"


def _result(check_id: str, status: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"id": check_id, "status": status, "detail": detail, **extra}


def _outcome(check_id: str, problems: list[str], warnings: list[str], ok: str, **extra: Any) -> dict[str, Any]:
    """Fail on any problem, else warn on what this user could not read, else pass."""
    if problems:
        return _result(check_id, FAIL, "; ".join(problems + warnings), **extra)
    if warnings:
        return _result(check_id, WARN, "; ".join(warnings), **extra)
    return _result(check_id, PASS, ok, **extra)


def _unreadable(path: str | os.PathLike[str]) -> str:
    # The timer's unprivileged user cannot read the root-only files; the root audit does.
    return f"cannot read {path} as this user; the audit (root) checks it"


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


# --- systemd ------------------------------------------------------------------
PROPERTIES = (
    "LoadState",
    "ActiveState",
    "Result",
    "UnitFileState",
    "WantedBy",
    "RequiredBy",
    "ExecStart",
    "StandardOutput",
    "StandardError",
    "Environment",
    "EnvironmentFiles",
)


def _properties(block: str) -> dict[str, str]:
    """One unit's `systemctl show` lines; a property printed on several lines (EnvironmentFiles=) keeps them all."""
    props: dict[str, str] = {}
    for line in block.splitlines():
        if "=" in line:
            name, value = line.split("=", 1)
            props[name] = f"{props[name]}\n{value}" if name in props else value
    return props


def show_units(units: list[str]) -> dict[str, dict[str, str]]:
    """The PROPERTIES of several units in one `systemctl show` (it prints one block a unit, in order)."""
    names = list(dict.fromkeys(units))
    out = subprocess.run(
        ["systemctl", "show", *names, "--property=" + ",".join(PROPERTIES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout
    blocks = [b for b in out.split("\n\n") if b.strip()]
    return {unit: _properties(block) for unit, block in zip(names, blocks, strict=False)}


def unit_properties(unit: str) -> dict[str, str]:
    return show_units([unit]).get(unit, {})


def _load_state(props: dict[str, str]) -> str:
    return props.get("LoadState", "unknown")


# --- OPS-01 -------------------------------------------------------------------
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


# --- GPU-01 -------------------------------------------------------------------
Show = Callable[[list[str]], dict[str, dict[str, str]]]


def _wanted_by(props: dict[str, str]) -> set[str]:
    return {*props.get("WantedBy", "").split(), *props.get("RequiredBy", "").split()}


def check_model_boot(settings: dict[str, Any], show: Show = show_units) -> dict[str, Any]:
    """No model server starts but through its socket: nothing wants it or its front, neither is enabled."""
    models = [m["unit"] for m in settings["compliance"]["model_units"]]
    props = show([u for m in models for u in (f"{m}.service", f"{m}-proxy.service")])
    wanted: dict[str, list[str]] = {}
    enabled: list[str] = []
    unrequested: list[str] = []
    problems = []
    for model in models:
        server, front = f"{model}.service", f"{model}-proxy.service"
        for unit, allowed in ((server, {front}), (front, set())):
            unit_props = props.get(unit, {})
            by = sorted(_wanted_by(unit_props) - allowed)
            if by:
                wanted[unit] = by
                problems.append(f"{unit} is wanted by {', '.join(by)}")
            state = unit_props.get("UnitFileState", "")
            if state in ("enabled", "enabled-runtime"):
                enabled.append(unit)
                problems.append(f"{unit} is {state}")
        running = props.get(server, {}).get("ActiveState", "unknown")
        front_state = props.get(front, {}).get("ActiveState", "unknown")
        if running in ("active", "activating") and front_state != "active":
            unrequested.append(server)
            problems.append(f"{server} is {running} while {front} is {front_state}: started without a request")
    return _outcome(
        "GPU-01",
        problems,
        [],
        f"{len(models)} model servers start only on a request through their socket",
        wanted=wanted,
        enabled=enabled,
        unrequested=unrequested,
    )


# --- GPU-02, GPU-03 -------------------------------------------------------------
def _config(settings: dict[str, Any]) -> tuple[dict[str, Any] | None, str, str]:
    """The proxy's config.yaml, or None with WARN (root-only here) or FAIL and why."""
    path = settings["compliance"]["proxy_config"]
    try:
        return _proxy_settings(settings), PASS, ""
    except PermissionError:
        return None, WARN, _unreadable(path)
    except (OSError, yaml.YAMLError) as err:
        return None, FAIL, f"cannot read the proxy's config: {err}"


def _entries(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """config.yaml's model_list: each model_name's litellm_params (one per deployment)."""
    entries: dict[str, list[dict[str, Any]]] = {}
    for entry in document.get("model_list") or []:
        entries.setdefault(str(entry.get("model_name")), []).append(entry.get("litellm_params") or {})
    return entries


def check_local_models(settings: dict[str, Any]) -> dict[str, Any]:
    document, status, message = _config(settings)
    if document is None:
        return _result("GPU-02", status, message)
    entries = _entries(document)
    unhardened: dict[str, list[str]] = {}
    missing: list[str] = []
    problems = []
    for model in settings["compliance"]["local_models"]:
        name = model["name"]
        if name not in entries:
            missing.append(name)
            problems.append(f"{name}: not in the model_list")
            continue
        found: dict[str, None] = {}
        for params in entries[name]:
            for field in ("timeout", "rpm", "max_tokens"):
                expected = model.get(field)
                if expected is None:
                    continue
                if field not in params:
                    found[f"{field} missing ({expected} expected)"] = None
                elif params[field] != expected:
                    found[f"{field} is {params[field]!r} ({expected} expected)"] = None
                else:
                    continue
                unhardened.setdefault(name, [])
                if field not in unhardened[name]:
                    unhardened[name].append(field)
        if found:
            problems.append(f"{name}: " + "; ".join(found))
    return _outcome(
        "GPU-02",
        problems,
        [],
        f"{len(settings['compliance']['local_models'])} local models carry their timeout, rpm and max_tokens",
        unhardened=unhardened,
        missing=missing,
    )


def check_fallbacks(settings: dict[str, Any]) -> dict[str, Any]:
    document, status, message = _config(settings)
    if document is None:
        return _result("GPU-03", status, message)
    actual: dict[str, set[str]] = {}
    for mapping in (document.get("router_settings") or {}).get("fallbacks") or []:
        for model, targets in (mapping if isinstance(mapping, dict) else {}).items():
            actual.setdefault(model, set()).update([targets] if isinstance(targets, str) else targets or [])
    missing: dict[str, list[str]] = {}
    problems = []
    for mapping in settings["compliance"]["fallbacks"]:
        for model, targets in mapping.items():
            lacking = [t for t in targets if t not in actual.get(model, set())]
            if not lacking:
                continue
            missing[model] = lacking
            if model in actual:
                problems.append(f"{model} does not fall back to {', '.join(lacking)}")
            else:
                problems.append(f"{model} has no fallback ({', '.join(lacking)} expected)")
    return _outcome("GPU-03", problems, [], "every expected fallback is in router_settings", missing=missing)


# --- GPU-04 -------------------------------------------------------------------
def model_rows(settings: dict[str, Any], cursor) -> list[str] | None:
    """The model names stored in the database, or None where LiteLLM has no model table."""
    cursor.execute("""SELECT to_regclass('public."LiteLLM_ProxyModelTable"')""")
    if cursor.fetchone()[0] is None:
        return None
    cursor.execute('SELECT model_name FROM "LiteLLM_ProxyModelTable" ORDER BY model_name')
    return [name for (name,) in cursor.fetchall() if name is not None]


def unit_file_models(unit_dir: Path, prefix: str) -> dict[str, str]:
    """Model unit file name -> the model name it carries (a front's `-proxy` dropped)."""
    names = {}
    for path in sorted(unit_dir.iterdir()):
        for suffix in (".service", ".socket"):
            if path.name.startswith(prefix) and path.name.endswith(suffix):
                name = path.name[len(prefix) : -len(suffix)]
                names[path.name] = name.removesuffix("-proxy") if suffix == ".service" else name
    return names


def check_model_names(settings: dict[str, Any], read_db=_read_db) -> dict[str, Any]:
    policy = settings["compliance"]
    rule, known = re.compile(policy["naming_rule"]), set(policy["model_names"])

    def bad(name: str) -> bool:
        return name not in known and not rule.fullmatch(name)

    problems: list[str] = []
    warnings: list[str] = []
    broken: list[str] = []
    names: list[str] = []
    document, status, message = _config(settings)
    if document is None:
        (problems if status == FAIL else warnings).append(message)
    else:
        names = [name for name in _entries(document) if bad(name)]
        if names:
            broken.append("config.yaml serves " + ", ".join(names))
    unit_files: list[str] = []
    unit_dir = Path(policy["unit_dir"])
    if unit_dir.is_dir():
        unit_files = [f for f, name in unit_file_models(unit_dir, policy["model_unit_prefix"]).items() if bad(name)]
        if unit_files:
            broken.append(f"unit files in {unit_dir}: " + ", ".join(unit_files))
    else:
        problems.append(f"{unit_dir} is missing")
    rows: list[str] = []
    found, error = read_db(settings, model_rows)
    if error:
        problems.append(error)
    elif found:
        rows = sorted({name for name in found if bad(name)})
        if rows:
            broken.append("the database's model rows: " + ", ".join(rows))
    if broken:
        problems.insert(0, "model names outside the catalogue that break the naming rule: " + "; ".join(broken))
    return _outcome(
        "GPU-04",
        problems,
        warnings,
        "every model name is in the catalogue or follows the naming rule",
        config=names,
        unit_files=unit_files,
        rows=rows,
    )


# --- OPS-02, OPS-03, OPS-04 -----------------------------------------------------------
def _state_problems(props: dict[str, str]) -> list[str]:
    """What keeps a unit from being enabled and active: its file state (masked, disabled, ...) and its state."""
    problems = []
    state = props.get("UnitFileState") or _load_state(props)
    if state != "enabled":
        problems.append(state)
    active = props.get("ActiveState", "unknown")
    if active != "active":
        problems.append(active)
    return problems


def check_backups(settings: dict[str, Any], show: Show = show_units) -> dict[str, Any]:
    if "backup" not in settings["timers"]:
        return _result(
            "OPS-02", PASS, "no backup job on this host: nothing to check", backup_age_hours=None, stale=False
        )
    timer = "litellm-ops-backup.timer"
    problems = [f"{timer} is {state}" for state in _state_problems(show([timer]).get(timer, {}))]
    success = (config.read_result(settings, "backup") or {}).get("last_success") or {}
    limit = float(settings["health"]["backup_max_age_hours"])
    age = None
    if "finished_at" not in success:
        problems.append("no backup has succeeded yet")
    else:
        age = round((time.time() - float(success["finished_at"])) / 3600, 2)
        if age > limit:
            problems.append(f"the last backup ({success.get('backup')}) is {age:.1f} h old (at most {limit:g} h)")
    stale = age is None or age > limit
    return _outcome(
        "OPS-02",
        problems,
        [],
        f"{timer} is enabled and active; the last backup is {age} h old",
        backup_age_hours=age,
        stale=stale,
    )


def check_timers(settings: dict[str, Any], show: Show = show_units) -> dict[str, Any]:
    units = [f"litellm-ops-{name}.timer" for name in settings["timers"]]
    props = show(units)
    timers = {unit: ", ".join(p) for unit in units if (p := _state_problems(props.get(unit, {})))}
    problems = [f"{unit} is {problem}" for unit, problem in timers.items()]
    return _outcome("OPS-03", problems, [], f"{len(units)} timers enabled and active", timers=timers)


def _host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "127.0.0.1" if host == "localhost" else host


def check_servers(settings: dict[str, Any], show: Show = show_units, proc_net: str = "/proc/net") -> dict[str, Any]:
    """The health server and the exporter: enabled, active, and on their configured address and port."""
    where = {"litellm-ops-health.service": settings["health"], "litellm-ops-exporter.service": settings["exporter"]}
    props = show(list(where))
    sockets = set(listeners(proc_net))
    servers: dict[str, str] = {}
    problems = []
    for unit, place in where.items():
        found = _state_problems(props.get(unit, {}))
        if found:
            problems.append(f"{unit} is {', '.join(found)}")
        elif (_host(place["host"]), int(place["port"])) not in sockets:
            found = ["moved"]
            problems.append(f"{unit} has moved: nothing listens on {place['host']}:{place['port']}")
        if found:
            servers[unit] = ", ".join(found)
    return _outcome(
        "OPS-04",
        problems,
        [],
        "the health server and the exporter are enabled, active and listening where configured",
        servers=servers,
    )


# --- OPS-05 -------------------------------------------------------------------
def _num_workers(exec_start: str) -> str:
    """The proxy's --num_workers (LiteLLM's default: 1) from `{ path=... ; argv[]=... ; ... }`."""
    words = " ".join(re.findall(r"argv\[\]=([^;]*)", exec_start)).split()
    for i, word in enumerate(words):
        if word == "--num_workers" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--num_workers="):
            return word.split("=", 1)[1]
    return "1"


def check_proxy_limits(settings: dict[str, Any], show: Show = show_units) -> dict[str, Any]:
    proxy = settings["compliance"]["proxy"]
    if not proxy:
        return _result("OPS-05", PASS, "no proxy on this host")
    problems: list[str] = []
    warnings: list[str] = []
    timeout = None
    document, status, message = _config(settings)
    if document is None:
        (problems if status == FAIL else warnings).append(message)
    else:
        timeout = (document.get("litellm_settings") or {}).get("request_timeout")
        if timeout is None:
            problems.append(f"request_timeout missing ({proxy['request_timeout']} expected)")
        elif timeout != proxy["request_timeout"]:
            problems.append(f"request_timeout is {timeout!r} ({proxy['request_timeout']} expected)")
    unit = proxy["unit"]
    props = show([unit]).get(unit, {})
    workers: int | str | None = None
    if _load_state(props) != "loaded":
        problems.append(f"{unit} is {_load_state(props)}")
    else:
        raw = _num_workers(props.get("ExecStart", ""))
        workers = int(raw) if raw.isdigit() else raw
        if workers != int(proxy["workers"]):
            problems.append(f"{unit} runs {workers} workers ({proxy['workers']} expected)")
    return _outcome(
        "OPS-05",
        problems,
        warnings,
        f"request_timeout {timeout} and {workers} workers",
        request_timeout=timeout,
        workers=workers,
    )


# --- DB-03, DB-07 -------------------------------------------------------------
UNIT_ENVIRONMENT = "the unit's Environment="
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads an EnvironmentFile= (comments, quotes, continued lines)."""
    env = {}
    for line in re.sub(r"\\\n", "", text).splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if not _ENV_KEY.fullmatch(key):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
            if line.endswith('"'):
                value = re.sub(r'\\(["\\$`])', r"\1", value)
        env[key] = value
    return env


def _unit_env(props: dict[str, str]) -> dict[str, str]:
    text = props.get("Environment", "")
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return dict(word.split("=", 1) for word in words if "=" in word)


def _env_files(props: dict[str, str]) -> list[tuple[str, bool]]:
    """EnvironmentFiles=PATH (ignore_errors=yes|no), one line each."""
    files = []
    for line in props.get("EnvironmentFiles", "").splitlines():
        match = re.fullmatch(r"(.+) \(ignore_errors=(yes|no)\)", line.strip())
        if match:
            files.append((match[1], match[2] == "yes"))
    return files


def unit_environments(
    props: dict[str, str], required: list[str] | None = None
) -> tuple[list[tuple[str, dict[str, str]]], list[str], list[str]]:
    """A unit's environments as (where, variables), with what is missing (problems) and root-only (warnings)."""
    sources = [(UNIT_ENVIRONMENT, _unit_env(props))]
    files = dict(_env_files(props))
    files.update(dict.fromkeys(required or [], False))
    problems, warnings = [], []
    for path, optional in files.items():
        try:
            sources.append((path, parse_env_file(Path(path).read_text(encoding="utf-8", errors="replace"))))
        except PermissionError:
            warnings.append(_unreadable(path))
        except FileNotFoundError:
            if not optional:
                problems.append(f"{path} is missing")
        except OSError as err:
            problems.append(f"cannot read {path}: {err.strerror}")
    return sources, problems, warnings


def check_prisma_engine(settings: dict[str, Any], show: Show = show_units) -> dict[str, Any]:
    proxy = settings["compliance"]["proxy"]
    if not proxy:
        return _result("DB-03", PASS, "no proxy on this host", set_in=[])
    unit = proxy["unit"]
    props = show([unit]).get(unit, {})
    problems = [] if _load_state(props) == "loaded" else [f"{unit} is {_load_state(props)}"]
    sources, missing, warnings = unit_environments(props, [proxy["env_file"]])
    set_in = [where for where, env in sources if "PRISMA_QUERY_ENGINE_BINARY" in env]
    if set_in:
        problems.append(
            f"PRISMA_QUERY_ENGINE_BINARY is set for {unit} in {', '.join(set_in)}:"
            " the generated client must use its own engine"
        )
    return _outcome(
        "DB-03",
        problems + missing,
        warnings,
        f"{unit} forces no Prisma engine",
        set_in=set_in,
    )


def _url_parameters(value: str) -> list[str] | None:
    """The query parameter names of a postgres:// URL, or None for any other value."""
    if not value.lower().startswith(("postgres://", "postgresql://")):
        return None
    try:
        query = urllib.parse.urlsplit(value).query
    except ValueError:
        return []
    return [name for name, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)]


def check_url_parameters(settings: dict[str, Any], show: Show = show_units) -> dict[str, Any]:
    """libpq's consumers (the operations units) get no Prisma-only parameter; the proxy's Prisma may."""
    policy = settings["compliance"]
    prisma_only = set(policy["prisma_parameters"])
    proxy = policy["proxy"]
    ops = [f"litellm-ops-{name}.service" for name in [*settings["timers"], "health", "exporter"]]
    units = ([proxy["unit"]] if proxy else []) + ops
    props = show(units)
    rejected: dict[str, dict[str, list[str]]] = {}
    problems, warnings = [], []
    urls = 0
    for unit in units:
        unit_props = props.get(unit, {})
        if _load_state(unit_props) != "loaded":
            continue  # OPS-01 reports a unit that is missing
        required = [proxy["env_file"]] if proxy and unit == proxy["unit"] else []
        sources, missing, unreadable = unit_environments(unit_props, required)
        problems += missing
        warnings += unreadable
        for _, env in sources:
            for variable, value in env.items():
                params = _url_parameters(value)
                if params is None:
                    continue
                urls += 1
                bad = sorted(set(params) & prisma_only)
                if bad and unit in ops:
                    rejected.setdefault(unit, {})[variable] = bad
                    problems.append(f"{unit}: {variable} has {', '.join(bad)}, which libpq rejects")
    return _outcome(
        "DB-07",
        problems,
        warnings,
        f"{urls} database URLs; none gives libpq a Prisma-only parameter",
        rejected=rejected,
    )


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
    "GPU-01": check_model_boot,
    "GPU-02": check_local_models,
    "GPU-03": check_fallbacks,
    "GPU-04": check_model_names,
    "OPS-02": check_backups,
    "OPS-03": check_timers,
    "OPS-04": check_servers,
    "OPS-05": check_proxy_limits,
    "DB-03": check_prisma_engine,
    "DB-07": check_url_parameters,
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
