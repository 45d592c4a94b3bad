#!/usr/bin/env python3
"""Benchmark: chat completions through the deployed proxy against LiteLLM started the documented way.

Every proxy runs on the Molecule test host (make bench converges it first) and calls
the same fast upstream: the cloud stand-in of the scenario (tests/doubles/fake_openai.py)
through the catalogue's cloud model. "Ours" is the deployed unit with the inventory's
settings. The anchors, in the same run:
- "documented": `litellm --config config.yaml` with LiteLLM's defaults (one uvicorn worker) and
  only that model, started from the same virtual environment;
- "same workers": the same, with `--num_workers N`, N the deployed unit's (what a user who starts
  LiteLLM by hand with the same workers gets);
- "upstream": the stand-in called directly, the floor: ours minus it is the latency the proxy adds.
Rounds alternate between them so that drift of the machine hits all.

Usage: proxy_bench.py [--seconds 20] [--concurrency 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

MODEL = "chat-gpt-4o-mini-openai"
OURS_PORT, BASE_PORT, SAME_PORT = 4000, 4001, 4002
UPSTREAM_PORT = 8098
VENV = "/opt/litellm/venv"
BASE_UNIT = "litellm-bench-baseline"
SAME_UNIT = "litellm-bench-same-workers"


def ephemeral_dir() -> Path:
    pattern = os.path.expanduser("~/.ansible/tmp/molecule.*.default/litellm-gw.pid")
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not found:
        sys.exit("No test host: run `make demo` (or `make bench`, which does it) first.")
    return Path(found[-1]).parent


def nsenter(pid: str, *command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", "-t", pid, "-a", *command], check=False, **kwargs)


def wait_live(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health/liveliness")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def load(port: int, key: str, seconds: float, concurrency: int, model: str = MODEL) -> dict:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, failed = [], 0
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            try:
                conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
                answer = conn.getresponse()
                answer.read()
                ok = answer.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if ok:
                mine.append(time.perf_counter() - start)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "ok": 0, "errors": errors[0]}
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "ok": len(latencies),
        "errors": errors[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    state = ephemeral_dir()
    pid = (state / "litellm-gw.pid").read_text().strip()
    master_key = "sk-" + (state / "secrets" / "litellm_master_key").read_text().strip()
    config = yaml_config(nsenter(pid, "cat", "/etc/litellm/config.yaml", capture_output=True, text=True).stdout)

    # The baseline runs as a transient unit with LiteLLM's defaults. It gets its own
    # throwaway master key and the upstream's key from the deployed environment file,
    # through a file: no secret is on a command line.
    base_key = "sk-bench-" + secrets.token_hex(16)
    deployed_env = nsenter(pid, "cat", "/etc/litellm/litellm.env", capture_output=True, text=True).stdout
    upstream_env = [line for line in deployed_env.splitlines() if line.startswith("OPENAI_API_KEY=")]
    upstream_key = upstream_env[0].split("=", 1)[1].strip().strip('"') if upstream_env else ""
    unit = nsenter(pid, "systemctl", "cat", "litellm-proxy.service", capture_output=True, text=True).stdout
    workers = int(match[1]) if (match := re.search(r"--num_workers (\d+)", unit)) else 1
    workdir = "/run/litellm-bench"
    nsenter(pid, "mkdir", "-m", "0700", "-p", workdir)
    nsenter(pid, "tee", f"{workdir}/config.yaml", input=config, text=True, stdout=subprocess.DEVNULL)
    env_text = "\n".join([f'LITELLM_MASTER_KEY="{base_key}"', *upstream_env]) + "\n"
    nsenter(pid, "tee", f"{workdir}/env", input=env_text, text=True, stdout=subprocess.DEVNULL)
    for unit_name, port, extra in ((BASE_UNIT, BASE_PORT, []), (SAME_UNIT, SAME_PORT, ["--num_workers", str(workers)])):
        nsenter(pid, "systemctl", "reset-failed", unit_name, stderr=subprocess.DEVNULL)
        nsenter(
            pid, "systemd-run", "--quiet", f"--unit={unit_name}", f"--property=EnvironmentFile={workdir}/env",
            f"{VENV}/bin/litellm", "--config", f"{workdir}/config.yaml", "--host", "127.0.0.1", "--port", str(port),
            *extra,
        )  # fmt: skip
    try:
        if not all(wait_live(port, 180) for port in (BASE_PORT, SAME_PORT, OURS_PORT)):
            print("A proxy did not answer /health/liveliness.", file=sys.stderr)
            return 1
        targets = {
            "ours": (OURS_PORT, master_key, MODEL),
            "documented": (BASE_PORT, base_key, MODEL),
            "same workers": (SAME_PORT, base_key, MODEL),
            "upstream": (UPSTREAM_PORT, upstream_key, "gpt-4o-mini"),
        }
        for port, key, model in targets.values():  # warm them up
            load(port, key, 3, 4, model)
        results: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (port, key, model) in targets.items():
                results[name].append(load(port, key, args.seconds, args.concurrency, model))
    finally:
        nsenter(pid, "systemctl", "stop", BASE_UNIT, SAME_UNIT)
        nsenter(pid, "rm", "-rf", workdir)

    summary = {name: mean_of(runs) for name, runs in results.items()}
    ours = summary["ours"]
    print(f"\nChat completions, {args.concurrency} concurrent clients, {args.rounds} x {args.seconds:.0f} s each, "
          f"model {MODEL} on the same stand-in upstream; ours and 'same workers' run {workers} workers")  # fmt: skip
    print(f"{'':22}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'ok':>8}{'failed':>8}{'ours / it (rps)':>17}")
    for name, it in summary.items():
        print(
            f"{name:22}{it['rps']:>12.1f}{it['p50']:>10.1f}{it['p99']:>10.1f}{it['ok']:>8}{it['errors']:>8}"
            f"{ours['rps'] / it['rps']:>17.2f}"
        )
    same, upstream = summary["same workers"], summary["upstream"]
    print(
        f"\nours against LiteLLM started by hand with the same workers: {ours['rps'] / same['rps']:.2f}x the"
        f" requests per second (goal: at least 1.0x), p99 {ours['p99']:.1f} ms against {same['p99']:.1f} ms"
        f" (goal: no worse)"
    )
    print(
        f"the latency the proxy adds over the upstream: p50 {ours['p50'] - upstream['p50']:.1f} ms,"
        f" p99 {ours['p99'] - upstream['p99']:.1f} ms"
    )
    return 0 if all(it["errors"] == 0 for it in summary.values()) else 1


def mean_of(runs: list[dict]) -> dict:
    return {
        "rps": statistics.mean(r["rps"] for r in runs),
        "p50": statistics.mean(r["p50"] for r in runs),
        "p99": statistics.mean(r["p99"] for r in runs),
        "ok": sum(r["ok"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


def yaml_config(deployed: str) -> str:
    """The baseline's config.yaml: the benchmarked model as deployed, and nothing else."""
    lines, keep = [], False
    for line in deployed.splitlines():
        if line.startswith("- model_name: "):
            keep = line == f"- model_name: {MODEL}"
        elif not line.startswith(" "):
            keep = False
        if keep:
            lines.append(line)
    if not lines:
        sys.exit(f"{MODEL} is not in the deployed config.yaml.")
    return "model_list:\n" + "\n".join(lines) + "\ngeneral_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n"


if __name__ == "__main__":
    sys.exit(main())
