"""The Prometheus exporter: what LiteLLM's own /metrics cannot see.

Component up/down, database connections against the configured pool, backup age and size, keys
expiring and expired, compliance failures by ID, probe results and latency per model, and VRAM per
GPU where NVML answers. Live values are read at scrape time; the timers' results are read from
their JSON files. LiteLLM's request metrics stay on the proxy's own /metrics.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily

from . import compliance, config, db, health

P = "litellm_ops_"


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, labels=labels)


def gpu_memory() -> list[tuple[str, int, int]]:
    """(index, total, used) bytes per GPU, or nothing without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no library, no driver, no GPU: no VRAM metrics
        return []
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
            found.append((str(index), int(info.total), int(info.used)))
        return found
    except Exception:
        return []
    finally:
        pynvml.nvmlShutdown()


class Collector:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def describe(self) -> list:
        return []  # collected at scrape time only

    def _database(self, up: GaugeMetricFamily) -> list[GaugeMetricFamily]:
        families = []
        try:
            conn = db.connect(self.settings)
        except config.OpsError:
            up.add_metric(["database"], 0)
            return families
        try:
            with conn.cursor() as cursor:
                usage = compliance.connection_usage(self.settings, cursor)
                keys = compliance.key_expiry(self.settings, cursor)
        finally:
            conn.close()
        up.add_metric(["database"], 1)
        for name, key, doc in (
            ("db_connections", "connections", "Client connections to PostgreSQL now."),
            ("db_max_connections", "max_connections", "PostgreSQL's max_connections."),
            ("db_pool_connections", "pool_total", "Connections the proxies may open (pool limit x workers x hosts)."),
        ):
            family = _gauge(name, doc)
            family.add_metric([], usage[key])
            families.append(family)
        expired = _gauge("keys_expired", "Virtual keys past their expiry that still exist.")
        expired.add_metric([], len(keys["expired"]))
        expiring = _gauge("keys_expiring", "Virtual keys that expire within the warning window.", ["within_days"])
        expiring.add_metric([str(self.settings["compliance"]["keys"]["warn_days"])], len(keys["expiring"]))
        return [*families, expired, expiring]

    def collect(self):
        up = _gauge("up", "Whether a component of the gateway answers (1) or not (0).", ["component"])
        for name, check in (("proxy", health.check_proxy), ("redis", health.check_redis)):
            try:
                up.add_metric([name], 1 if check(self.settings)["ok"] else 0)
            except Exception:
                up.add_metric([name], 0)
        families = self._database(up)
        yield up
        yield from families

        backup = config.read_result(self.settings, "backup") or {}
        success = backup.get("last_success")
        last_ok = _gauge("backup_last_run_success", "Whether the last backup run succeeded.")
        last_ok.add_metric([], 1 if backup.get("status") == "ok" else 0)
        yield last_ok
        if success:
            age = _gauge("backup_age_seconds", "Seconds since the last successful backup.")
            age.add_metric([], time.time() - float(success["finished_at"]))
            size = _gauge("backup_size_bytes", "Size of the last successful backup.")
            size.add_metric([], float(success["size_bytes"]))
            yield age
            yield size
        check = config.read_result(self.settings, "restore-check")
        if check and check.get("status") == "ok":
            age = _gauge("restore_check_age_seconds", "Seconds since the last verified test restore.")
            age.add_metric([], time.time() - float(check["finished_at"]))
            yield age

        result = config.read_result(self.settings, "compliance")
        if result:
            failed = _gauge("compliance_check_failed", "1 when a compliance check fails, by incident ID.", ["id"])
            for item in result.get("checks", []):
                failed.add_metric([item["id"]], 1 if item["status"] == "fail" else 0)
            yield failed

        probe = config.read_result(self.settings, "probe")
        if probe:
            success_family = _gauge(
                "probe_success", "Whether a capability works through the proxy.", ["model", "capability"]
            )
            latency = _gauge(
                "probe_latency_seconds", "Latency of the capability probe's request.", ["model", "capability"]
            )
            for model, entry in probe.get("models", {}).items():
                for capability, outcome in entry["capabilities"].items():
                    success_family.add_metric([model, capability], 1 if outcome["ok"] else 0)
                    if outcome.get("latency_seconds") is not None:
                        latency.add_metric([model, capability], outcome["latency_seconds"])
            yield success_family
            yield latency

        inventory = config.read_result(self.settings, "inventory")
        if inventory and "findings" in inventory:
            findings = _gauge("inventory_findings", "Model inventory findings against the catalogue.", ["kind"])
            for kind, names in inventory["findings"].items():
                findings.add_metric([kind], len(names))
            yield findings

        gpus = gpu_memory()
        if gpus:
            total = _gauge("gpu_memory_total_bytes", "VRAM per GPU.", ["gpu"])
            used = _gauge("gpu_memory_used_bytes", "VRAM in use per GPU.", ["gpu"])
            for index, size, in_use in gpus:
                total.add_metric([index], size)
                used.add_metric([index], in_use)
            yield total
            yield used


def serve(settings: dict[str, Any]) -> None:
    REGISTRY.register(Collector(settings))
    host, port = settings["exporter"]["host"], int(settings["exporter"]["port"])
    start_http_server(port, addr=host)
    print(f"litellm-ops exporter: serving on http://{host}:{port}/metrics", flush=True)
    while True:
        signal.pause()
