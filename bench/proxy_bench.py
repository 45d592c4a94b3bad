#!/usr/bin/env python3
"""Benchmark: chat completions through the deployed proxy against LiteLLM started the documented way.

Both proxies run on the Molecule test host (make bench converges it first) and call
the same fast upstream: the cloud stand-in of the scenario (tests/doubles/fake_openai.py)
through the catalogue's cloud model. "Ours" is the deployed unit with the inventory's
settings; the baseline is `litellm --config config.yaml` with LiteLLM's defaults
(one uvicorn worker) and only that model, started from the same virtual environment.
Rounds alternate between the two so that drift of the machine hits both.

Usage: proxy_bench.py [--seconds 20] [--concurrency 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

MODEL = "chat-gpt-4o-mini-openai"
OURS_PORT, BASE_PORT = 4000, 4001
VENV = "/opt/litellm/venv"
BASE_UNIT = "litellm-bench-baseline"


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


def load(port: int, key: str, seconds: float, concurrency: int) -> dict:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8})
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
    workdir = "/run/litellm-bench"
    nsenter(pid, "mkdir", "-m", "0700", "-p", workdir)
    nsenter(pid, "tee", f"{workdir}/config.yaml", input=config, text=True, stdout=subprocess.DEVNULL)
    env_text = "\n".join([f'LITELLM_MASTER_KEY="{base_key}"', *upstream_env]) + "\n"
    nsenter(pid, "tee", f"{workdir}/env", input=env_text, text=True, stdout=subprocess.DEVNULL)
    nsenter(pid, "systemctl", "reset-failed", BASE_UNIT, stderr=subprocess.DEVNULL)
    nsenter(
        pid, "systemd-run", "--quiet", f"--unit={BASE_UNIT}", f"--property=EnvironmentFile={workdir}/env",
        f"{VENV}/bin/litellm", "--config", f"{workdir}/config.yaml", "--host", "127.0.0.1", "--port", str(BASE_PORT),
    )  # fmt: skip
    try:
        if not (wait_live(BASE_PORT, 120) and wait_live(OURS_PORT, 120)):
            print("A proxy did not answer /health/liveliness.", file=sys.stderr)
            return 1
        targets = {"ours": (OURS_PORT, master_key), "baseline": (BASE_PORT, base_key)}
        for port, key in targets.values():  # warm both up
            load(port, key, 3, 4)
        results: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (port, key) in targets.items():
                results[name].append(load(port, key, args.seconds, args.concurrency))
    finally:
        nsenter(pid, "systemctl", "stop", BASE_UNIT)
        nsenter(pid, "rm", "-rf", workdir)

    summary = {name: mean_of(runs) for name, runs in results.items()}
    ours, base = summary["ours"], summary["baseline"]
    print(f"\nChat completions, {args.concurrency} concurrent clients, {args.rounds} x {args.seconds:.0f} s each, "
          f"model {MODEL} on the same stand-in upstream")  # fmt: skip
    print(f"{'':28}{'ours (unit)':>14}{'baseline':>14}{'ratio':>10}")
    print(f"{'requests/s':28}{ours['rps']:>14.1f}{base['rps']:>14.1f}{ours['rps'] / base['rps']:>10.2f}")
    print(f"{'p50 latency (ms)':28}{ours['p50']:>14.1f}{base['p50']:>14.1f}{ours['p50'] / base['p50']:>10.2f}")
    print(f"{'p99 latency (ms)':28}{ours['p99']:>14.1f}{base['p99']:>14.1f}{ours['p99'] / base['p99']:>10.2f}")
    print(f"{'requests ok / failed':28}{ours['ok']:>8} / {ours['errors']:<4}{base['ok']:>8} / {base['errors']:<4}")
    return 0 if ours["errors"] == 0 and base["errors"] == 0 else 1


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
