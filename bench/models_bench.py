#!/usr/bin/env python3
"""Benchmark: the local model layer on the Molecule test host (make bench-models converges it).

1. The stack at rest: model server processes, VRAM (NVML where there is a GPU) and the memory
   of every unit of the stack (systemd's MemoryCurrent), before any request.
2. Time to first token of the real llama.cpp server through the catalogue's port, cold
   (the first request starts the service through the socket, the GPU gate included) against
   warm (the same server already running). Rounds alternate cold and warm.
3. The GPU gate's decision time: in this process (reading NVML, then planning 1, 10 and 100
   services on 4 GPUs) and as the unit's ExecCondition= (a Python process of its own).

There is no GPU on the test machines: the NVML double (tests/doubles/nvml) reports a GPU with
room, on the unit's gate only, as in the Molecule tests; on a GPU host run it without --double.

Usage: models_bench.py [--rounds 5] [--no-double]
"""

from __future__ import annotations

import argparse
import base64
import glob
import http.client
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
MODEL = "chat-qwen2.5-0.5b-llamacpp"
UNIT = f"litellm-model-{MODEL}"
PORT = 8080
GATE = ("/opt/litellm-models/gate/venv/bin/python", "/opt/litellm-models/gate/litellm_gpu_gate.py")
DOUBLE_DIR, DOUBLE_STATE = "/opt/nvml-double", "/etc/nvml-double.json"
DROP_IN = f"/etc/systemd/system/{UNIT}.service.d/50-nvml-double.conf"
ROOMY = {"driver": "550.54.15", "gpus": [{"name": "Test GPU", "total_mib": 24576, "processes": []}]}
# PostgreSQL's unit is named by its major (15 on Debian 12, 17 on Debian 13): found among the running units.
STACK_UNITS = ("redis-server.service", "litellm-proxy.service")


def container_pid() -> str:
    pattern = os.path.expanduser("~/.ansible/tmp/molecule.*.default/litellm-gw.pid")
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not found:
        sys.exit("No test host: run `make demo` (or `make bench-models`, which does it) first.")
    return Path(found[-1]).read_text().strip()


class Host:
    def __init__(self, pid: str) -> None:
        self.pid = pid

    def run(self, *command: str, check: bool = True) -> str:
        done = subprocess.run(["nsenter", "-t", self.pid, "-a", *command], capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def put(self, path: str, text: str) -> None:
        data = base64.b64encode(text.encode()).decode()
        script = "import base64, os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
        script += "open(sys.argv[1], 'wb').write(base64.b64decode(sys.argv[2]))"
        self.run("python3", "-c", script, path, data)


def first_token_seconds() -> tuple[float, float]:
    """Seconds to the first streamed token and to the whole answer, straight to the catalogue's port."""
    messages = [{"role": "user", "content": "say hello"}]
    body = json.dumps({"model": "qwen2.5-0.5b-instruct", "messages": messages, "max_tokens": 16, "stream": True})
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    answer = conn.getresponse()
    if answer.status != 200:
        sys.exit(f"the model answered {answer.status}: {answer.read()[:200]!r}")
    first = None
    for line in answer:
        if first is None and line.startswith(b"data: {") and b'"content"' in line:
            first = time.perf_counter() - started
    conn.close()
    return first if first is not None else float("nan"), time.perf_counter() - started


def at_rest(host: Host) -> None:
    print("## The stack at rest (no request to a local model yet)")
    processes = host.run("pgrep", "-fc", "llama_cpp.server|vllm|infinity_emb|ollama serve", check=False) or "0"
    print(f"model server processes: {processes}")
    nvml = host.run(GATE[0], "-c", "import pynvml; pynvml.nvmlInit(); print('NVML present')", check=False)
    print(f"VRAM: {'see nvidia-smi' if nvml else 'no GPU on this machine: 0 MiB used by the stack (NVML absent)'}")
    rss = unit_rss(host)
    total = 0.0
    postgresql = sorted(unit for unit in rss if unit.startswith("postgresql@")) or ["postgresql@-main.service"]
    for unit in (postgresql[0], *STACK_UNITS, f"{UNIT}.socket", f"{UNIT}.service"):
        total += rss.get(unit, 0.0)
        print(f"  {unit:<48} {rss.get(unit, 0.0):8.1f} MiB")
    print(f"  {'total (resident set sizes, summed per unit)':<48} {total:8.1f} MiB")


def unit_rss(host: Host) -> dict[str, float]:
    """MiB of resident memory per systemd unit, from ps (the containers here have no memory accounting)."""
    rss: dict[str, float] = {}
    for line in host.run("ps", "-e", "-o", "rss=,unit=").splitlines():
        kib, _, unit = line.strip().partition(" ")
        rss[unit.strip()] = rss.get(unit.strip(), 0.0) + int(kib) / 1024
    return rss


def cold_and_warm(host: Host, rounds: int) -> None:
    print(f"\n## Time to first token, {MODEL} (llama.cpp server, tiny GGUF, CPU), {rounds} rounds")
    cold, warm, cold_total, warm_total = [], [], [], []
    for _ in range(rounds):
        host.run("systemctl", "stop", f"{UNIT}-proxy.service", f"{UNIT}.service", check=False)
        first, whole = first_token_seconds()
        cold.append(first)
        cold_total.append(whole)
        first, whole = first_token_seconds()
        warm.append(first)
        warm_total.append(whole)
    running = unit_rss(host).get(f"{UNIT}.service", 0.0)
    host.run("systemctl", "stop", f"{UNIT}-proxy.service", f"{UNIT}.service", check=False)
    stopped = unit_rss(host).get(f"{UNIT}.service", 0.0)
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"{'':<28}{'median s':>10}{'min s':>10}{'max s':>10}")
    print(f"{'cold (socket activation)':<28}{c:>10.3f}{min(cold):>10.3f}{max(cold):>10.3f}")
    print(f"{'warm (already running)':<28}{w:>10.3f}{min(warm):>10.3f}{max(warm):>10.3f}")
    print(f"the model service: {running:.1f} MiB resident while it runs, {stopped:.1f} MiB once stopped")
    print(
        f"cold / warm: {c / w:.1f}x; whole answers: cold {statistics.median(cold_total):.3f} s, "
        f"warm {statistics.median(warm_total):.3f} s"
    )


def gate_in_process() -> None:
    print("\n## GPU gate decision, in process (NVML double: 4 GPUs, 8 processes)")
    sys.path.insert(0, str(PROJECT / "module_utils"))
    import litellm_gpu_gate as gate

    spec = importlib.util.spec_from_file_location("fake_pynvml", PROJECT / "tests/doubles/nvml/pynvml.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    state = {
        "gpus": [
            {
                "total_mib": 24576,
                "processes": [{"pid": 1000 + 2 * i, "used_mib": 2000}, {"pid": 1001 + 2 * i, "used_mib": 500}],
            }
            for i in range(4)
        ]
    }
    units = {1000 + i: f"svc{i}.service" for i in range(8)}
    reads = []
    for _ in range(200):
        started = time.perf_counter()
        snapshot = gate.read_gpus(fake.FakeNvml(state), unit_of=units.get)
        reads.append(time.perf_counter() - started)
    read_ms = statistics.median(reads) * 1000
    print(f"{'services':>10}{'read NVML ms':>15}{'plan ms':>10}{'plan / read':>13}")
    for count in (1, 10, 100):
        services = [{"name": f"svc{i}.service", "vram_mib": 1500 + 37 * i, "priority": i % 3} for i in range(count)]
        plans = []
        for _ in range(200):
            started = time.perf_counter()
            gate.plan(snapshot, services, 512)
            plans.append(time.perf_counter() - started)
        plan_ms = statistics.median(plans) * 1000
        print(f"{count:>10}{read_ms:>15.3f}{plan_ms:>10.3f}{plan_ms / read_ms:>12.1f}x")


def gate_as_exec_condition(host: Host, rounds: int) -> None:
    print("\n## GPU gate as ExecCondition= (its own Python process, in the test host)")
    env = ["env", f"PYTHONPATH={DOUBLE_DIR}", f"FAKE_NVML_STATE={DOUBLE_STATE}"]
    times, decided = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        out = host.run(*env, *GATE, "check", "--unit", f"{UNIT}.service", "--vram-mib", "1024", "--headroom-mib", "512")
        times.append(time.perf_counter() - started)
        decided.append(float(out.rsplit("decided in ", 1)[1].split()[0]))
    baseline = []
    for _ in range(rounds):
        started = time.perf_counter()
        host.run(GATE[0], "-c", "pass")
        baseline.append(time.perf_counter() - started)
    whole, bare = statistics.median(times), statistics.median(baseline)
    print(
        f"whole check: {whole * 1000:.1f} ms (a bare `python -c pass` there: {bare * 1000:.1f} ms, "
        f"{whole / bare:.1f}x); the decision itself: {statistics.median(decided):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-double", action="store_true", help="a host with a real GPU: use NVML itself")
    args = parser.parse_args()
    host = Host(container_pid())
    host.run("systemctl", "stop", f"{UNIT}-proxy.service", f"{UNIT}.service", check=False)
    at_rest(host)
    if not args.no_double:
        host.put(f"{DOUBLE_DIR}/pynvml.py", (PROJECT / "tests/doubles/nvml/pynvml.py").read_text(encoding="utf-8"))
        host.put(DOUBLE_STATE, json.dumps(ROOMY))
        host.put(DROP_IN, f'[Service]\nEnvironment="PYTHONPATH={DOUBLE_DIR}" "FAKE_NVML_STATE={DOUBLE_STATE}"\n')
        host.run("systemctl", "daemon-reload")
    try:
        cold_and_warm(host, args.rounds)
        gate_in_process()
        if not args.no_double:
            gate_as_exec_condition(host, args.rounds)
    finally:
        host.run("systemctl", "stop", f"{UNIT}-proxy.service", f"{UNIT}.service", check=False)
        if not args.no_double:
            host.run("rm", "-rf", DROP_IN, DOUBLE_DIR, DOUBLE_STATE)
            host.run("systemctl", "daemon-reload")


if __name__ == "__main__":
    main()
