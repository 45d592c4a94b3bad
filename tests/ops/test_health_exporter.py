"""The health server over real HTTP (basic auth checked against a passlib htpasswd file), and the
exporter's collector reading the timers' results."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest
from litellm_ops import config, exporter, health
from passlib.apache import HtpasswdFile

PASSWORD = "dashboard-password-for-tests-0123"


@pytest.fixture
def settings(tmp_path):
    htpasswd = tmp_path / "dashboard.htpasswd"
    users = HtpasswdFile(str(htpasswd), new=True, default_scheme="sha512_crypt")
    users.set_password("admin", PASSWORD)
    users.save()
    return {
        "state_dir": str(tmp_path / "state"),
        "health": {
            "host": "127.0.0.1",
            "port": 0,
            "htpasswd": str(htpasswd),
            "min_free_percent": 0,
            "disk_paths": [str(tmp_path)],
            "backup_max_age_hours": 26,
            "compliance_max_age_hours": 3,
        },
        "compliance": {"keys": {"warn_days": 7, "grace_days": 7}},
    }


def fake(ok: bool, detail: str):
    return lambda settings: {"ok": ok, "detail": detail}


@pytest.fixture
def serve(settings, monkeypatch):
    servers = []

    def start(checks: dict):
        monkeypatch.setattr(health, "READY_CHECKS", checks)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), health.handler(settings))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def get(url: str, auth: str | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def test_healthz_and_readyz(serve):
    base = serve({"proxy": fake(True, "alive"), "redis": fake(True, "PONG")})
    assert get(base + "/healthz")[:2] == (200, b'{\n  "status": "alive"\n}')
    status, body, _ = get(base + "/readyz")
    assert status == 200
    assert json.loads(body)["status"] == "ready"


def test_readyz_names_every_failing_part(serve):
    def broken(settings):
        raise ConnectionError("boom")

    base = serve(
        {
            "proxy": fake(True, "alive"),
            "redis": fake(False, "Redis at 127.0.0.1:6379 does not answer PING"),
            "backup": broken,
        }
    )
    status, body, _ = get(base + "/readyz")
    answer = json.loads(body)
    assert status == 503
    assert answer["failing"] == ["redis", "backup"]
    assert answer["checks"]["redis"]["detail"].startswith("Redis at 127.0.0.1:6379")
    assert answer["checks"]["backup"]["detail"] == "ConnectionError: boom"


def test_dashboard_needs_the_password(serve):
    base = serve({"proxy": fake(True, "alive")})
    status, _, headers = get(base + "/dashboard")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic realm=")
    assert get(base + "/dashboard", "admin:wrong")[0] == 401
    assert get(base + "/dashboard", "root:" + PASSWORD)[0] == 401
    status, body, _ = get(base + "/dashboard", "admin:" + PASSWORD)
    assert status == 200
    assert b"LiteLLM gateway: ready" in body
    assert PASSWORD.encode() not in body


def test_backup_and_compliance_checks_read_the_results(settings):
    assert health.check_backup(settings) == {"ok": False, "detail": "no backup has succeeded yet"}
    success = {"backup": "/b/litellm-1", "size_bytes": 10, "finished_at": time.time() - 3600}
    config.write_result(settings, "backup", {"status": "ok", "last_success": success})
    assert health.check_backup(settings)["ok"] is True
    config.write_result(settings, "backup", {"status": "ok", "last_success": {**success, "finished_at": 0}})
    assert "at most 26 h" in health.check_backup(settings)["detail"]
    assert health.check_compliance(settings)["detail"] == "the compliance check has not run yet"
    config.write_result(settings, "compliance", {"status": "fail", "failed": ["SEC-04", "SEC-06"], "checks": []})
    assert health.check_compliance(settings) == {"ok": False, "detail": "failing: SEC-04, SEC-06"}


def test_exporter_exposes_the_results(settings, monkeypatch):
    from prometheus_client import CollectorRegistry, generate_latest

    monkeypatch.setattr(health, "check_proxy", fake(True, "alive"))
    monkeypatch.setattr(health, "check_redis", fake(False, "down"))
    monkeypatch.setattr(exporter.Collector, "_database", lambda self, up: up.add_metric(["database"], 0) or [])
    config.write_result(
        settings,
        "backup",
        {"status": "ok", "last_success": {"backup": "/b/x", "size_bytes": 12345, "finished_at": time.time() - 60}},
    )
    config.write_result(
        settings,
        "compliance",
        {
            "status": "fail",
            "failed": ["SEC-06"],
            "checks": [
                {"id": "SEC-06", "status": "fail", "detail": "x"},
                {"id": "SEC-04", "status": "pass", "detail": "y"},
            ],
        },
    )
    config.write_result(
        settings,
        "probe",
        {
            "status": "pass",
            "models": {
                "chat-a": {
                    "kind": "chat",
                    "capabilities": {
                        "chat": {"ok": True, "latency_seconds": 0.25},
                        "tools": {"ok": False, "latency_seconds": 0.5},
                    },
                }
            },
        },
    )
    registry = CollectorRegistry()
    registry.register(exporter.Collector(settings))
    text = generate_latest(registry).decode()
    assert 'litellm_ops_up{component="proxy"} 1.0' in text
    assert 'litellm_ops_up{component="redis"} 0.0' in text
    assert 'litellm_ops_up{component="database"} 0.0' in text
    assert "litellm_ops_backup_size_bytes 12345.0" in text
    assert 'litellm_ops_compliance_check_failed{id="SEC-06"} 1.0' in text
    assert 'litellm_ops_compliance_check_failed{id="SEC-04"} 0.0' in text
    assert 'litellm_ops_probe_success{capability="tools",model="chat-a"} 0.0' in text
    assert 'litellm_ops_probe_latency_seconds{capability="chat",model="chat-a"} 0.25' in text
    age = float(
        next(line.split()[1] for line in text.splitlines() if line.startswith("litellm_ops_backup_age_seconds"))
    )
    assert 55 < age < 600
