"""The health server (OPS-04): /healthz, /readyz and a status dashboard behind HTTP basic auth.

/healthz says the server itself is alive. /readyz checks what the gateway needs to serve (the
proxy's liveliness, the database, Redis, free disk) and what keeps it safe (a recent backup, a
passing compliance check), and answers 503 naming every failing part. The dashboard's password
is checked against an htpasswd file (a hash; SEC-05): the plain password is never stored here.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import config, db, http


def _ok(detail: str) -> dict[str, Any]:
    return {"ok": True, "detail": detail}


def _bad(detail: str) -> dict[str, Any]:
    return {"ok": False, "detail": detail}


def check_proxy(settings: dict[str, Any]) -> dict[str, Any]:
    try:
        reply = http.call(settings, "GET", "/health/liveliness", timeout=3, authorized=False)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        return _bad(f"{settings['proxy']['url']} does not answer: {getattr(err, 'reason', err)}")
    return _ok("alive") if reply.status == 200 else _bad(f"liveliness answered HTTP {reply.status}")


def check_database(settings: dict[str, Any]) -> dict[str, Any]:
    try:
        conn = db.connect(settings)
    except config.OpsError as err:
        return _bad(str(err))
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        conn.close()
    return _ok("reachable")


def check_redis(settings: dict[str, Any]) -> dict[str, Any]:
    import redis

    where = f"{settings['redis']['host']}:{settings['redis']['port']}"
    client = redis.Redis(
        host=settings["redis"]["host"],
        port=int(settings["redis"]["port"]),
        password=config.secret("redis-password"),
        socket_timeout=2,
        socket_connect_timeout=2,
    )
    try:
        client.ping()
    except redis.RedisError as err:
        return _bad(f"Redis at {where} does not answer PING: {err}")
    finally:
        client.close()
    return _ok("PONG")


def check_disk(settings: dict[str, Any]) -> dict[str, Any]:
    minimum = float(settings["health"]["min_free_percent"])
    low = []
    for path in settings["health"]["disk_paths"]:
        usage = shutil.disk_usage(path)
        free = 100.0 * usage.free / usage.total
        if free < minimum:
            low.append(f"{path} has {free:.1f}% free")
    return _bad("; ".join(low) + f" (at least {minimum:g}%)") if low else _ok(f"at least {minimum:g}% free")


def _age(result: dict[str, Any] | None, key: str = "finished_at") -> float | None:
    return None if not result or key not in result else time.time() - float(result[key])


def check_backup(settings: dict[str, Any]) -> dict[str, Any]:
    result = config.read_result(settings, "backup") or {}
    success = result.get("last_success")
    limit = float(settings["health"]["backup_max_age_hours"]) * 3600
    if not success:
        return _bad("no backup has succeeded yet")
    age = _age(success)
    if age > limit:
        return _bad(f"the last backup is {age / 3600:.1f} h old (at most {limit / 3600:g} h)")
    if result.get("status") != "ok":
        return _bad(f"the last backup run failed: {result.get('error', 'unknown')}")
    return _ok(f"{success['backup']} ({age / 3600:.1f} h old)")


def check_compliance(settings: dict[str, Any]) -> dict[str, Any]:
    result = config.read_result(settings, "compliance")
    if not result:
        return _bad("the compliance check has not run yet")
    if result.get("status") != "pass":
        return _bad("failing: " + ", ".join(result.get("failed") or [result.get("error", "error")]))
    age = _age(result)
    limit = float(settings["health"]["compliance_max_age_hours"]) * 3600
    if age > limit:
        return _bad(f"the last compliance result is {age / 3600:.1f} h old (at most {limit / 3600:g} h)")
    return _ok("all checks pass")


READY_CHECKS = {
    "proxy": check_proxy,
    "database": check_database,
    "redis": check_redis,
    "disk": check_disk,
    "backup": check_backup,
    "compliance": check_compliance,
}


def readiness(settings: dict[str, Any], checks: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    parts = {}
    for name, check in (checks or READY_CHECKS).items():
        try:
            parts[name] = check(settings)
        except Exception as err:  # a part that breaks is a failing part, named in the answer
            parts[name] = _bad(f"{type(err).__name__}: {err}")
    failing = [name for name, part in parts.items() if not part["ok"]]
    body = {"status": "not ready" if failing else "ready", "failing": failing, "checks": parts}
    return (503 if failing else 200), body


def authorized(settings: dict[str, Any], header: str | None) -> bool:
    from passlib.apache import HtpasswdFile

    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    try:
        users = HtpasswdFile(settings["health"]["htpasswd"])
    except OSError:
        return False
    return bool(users.check_password(user, password))


def dashboard(settings: dict[str, Any]) -> str:
    status, body = readiness(settings)
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td class={'ok' if p['ok'] else 'bad'}>{'ok' if p['ok'] else 'FAIL'}</td>"
        f"<td>{html.escape(p['detail'])}</td></tr>"
        for n, p in body["checks"].items()
    )
    compliance = config.read_result(settings, "compliance") or {"checks": []}
    checks = "".join(
        f"<tr><td>{html.escape(c['id'])}</td><td class={'bad' if c['status'] == 'fail' else 'ok'}>{c['status']}</td>"
        f"<td>{html.escape(c['detail'])}</td></tr>"
        for c in compliance["checks"]
    )
    probe = config.read_result(settings, "probe") or {"models": {}}
    probes = "".join(
        f"<tr><td>{html.escape(m)}</td><td>{html.escape(cap)}</td><td class={'ok' if r['ok'] else 'bad'}>"
        f"{'ok' if r['ok'] else 'FAIL'}</td><td>{r.get('latency_seconds')}</td></tr>"
        for m, v in probe["models"].items()
        for cap, r in v["capabilities"].items()
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>LiteLLM gateway status</title>"
        "<style>body{font-family:sans-serif}td{padding:2px 8px}.ok{color:#070}.bad{color:#b00;font-weight:bold}"
        "</style></head><body>"
        f"<h1>LiteLLM gateway: {html.escape(body['status'])} ({status})</h1>"
        f"<h2>Readiness</h2><table>{rows}</table>"
        f"<h2>Compliance</h2><table>{checks}</table>"
        f"<h2>Capability probe</h2><table>{probes}</table></body></html>"
    )


def handler(settings: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "litellm-ops-health"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # the base class names it
            return  # no access log: the journal keeps only what the operator needs

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload, indent=2).encode(), "application/json")

        def do_GET(self) -> None:  # the base class names it
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path == "/healthz":
                self._json(200, {"status": "alive"})
            elif path == "/readyz":
                self._json(*readiness(settings))
            elif path in ("/", "/dashboard"):
                if not authorized(settings, self.headers.get("Authorization")):
                    self._send(
                        401,
                        b"authentication required\n",
                        "text/plain",
                        {"WWW-Authenticate": 'Basic realm="litellm gateway", charset="UTF-8"'},
                    )
                else:
                    self._send(200, dashboard(settings).encode(), "text/html; charset=utf-8")
            else:
                self._json(404, {"error": "not found", "paths": ["/healthz", "/readyz", "/dashboard"]})

    return Handler


def serve(settings: dict[str, Any]) -> None:
    address = (settings["health"]["host"], int(settings["health"]["port"]))
    server = ThreadingHTTPServer(address, handler(settings))
    server.daemon_threads = True
    print(f"litellm-ops health: serving on http://{address[0]}:{address[1]}", flush=True)
    server.serve_forever()
