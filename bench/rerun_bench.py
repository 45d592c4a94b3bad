#!/usr/bin/env python3
"""Benchmark: the wall time of a no-op re-run on the converged demo host (make bench-rerun).

Times, in alternating rounds and in this one process, against the same converged host:
- the baseline: `ansible -m ping` on every host, what any run pays to start Ansible and reach
  the hosts;
- `site.yml` on the converged host (a no-op: changed=0 is checked), the audits and the
  remediation report included;
- `playbooks/remediate.yml` on the healthy host (the same, with the repairs that remove rows on);
- `site.yml --tags hardening`, the hardening layer alone;
- `playbooks/audit.yml`, one phase of the audit that site.yml runs twice (before and after): its
  share of the no-op re-run is 2 x (audit - ping) / (site - ping), Ansible's start counted once.

It prints the median and the fastest round of each, the ratio to the baseline, the number of
tasks and the time per task, and compares the no-op re-run with the goal (60 s on 2 cores).

Usage: rerun_bench.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
GOAL_S = 60.0


def ephemeral() -> Path:
    """The converged test host's Molecule directory: MOLECULE_EPHEMERAL_DIRECTORY (the shared one `make
    molecule` keeps with --destroy never), else the newest `make demo` host."""
    if os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY"):
        return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    found = sorted(glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.default/inventory")), key=os.path.getmtime)
    if not found:
        sys.exit("No test host: run `make demo` (or `make bench-rerun`, which does it) first.")
    return Path(found[-1]).parent


def run(command: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run one command; return its wall time, the host's changed count and its task count."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=PROJECT, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    recap = re.search(r"litellm-gw\s+: ok=(\d+)\s+changed=(\d+).*?skipped=(\d+)", done.stdout)
    if not recap:
        return elapsed, 0, 1
    ok, changed, skipped = (int(g) for g in recap.groups())
    return elapsed, changed, ok + skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    eph = ephemeral()
    env = {
        **os.environ,
        "MOLECULE_EPHEMERAL_DIRECTORY": str(eph),
        "MOLECULE_PROJECT_DIRECTORY": str(PROJECT),
        "ANSIBLE_CONFIG": str(eph / "ansible.cfg"),
        "LITELLM_SECRETS_DIR": str(eph / "secrets"),
        "LITELLM_REPORT_DIR": str(eph / "reports"),
        "ANSIBLE_LOG_PATH": os.devnull,
        "ANSIBLE_NOCOLOR": "1",
    }
    inventory = str(eph / "inventory")
    cases = {
        "baseline: ansible -m ping": ["ansible", "-i", inventory, "all", "-m", "ansible.builtin.ping"],
        "site.yml, no-op re-run": ["ansible-playbook", "-i", inventory, "site.yml"],
        "remediate.yml, healthy host": ["ansible-playbook", "-i", inventory, "playbooks/remediate.yml"],
        "site.yml --tags hardening": ["ansible-playbook", "-i", inventory, "site.yml", "--tags", "hardening"],
        "audit.yml, one phase": [
            "ansible-playbook",
            "-i",
            inventory,
            "playbooks/audit.yml",
            "-e",
            "gateway_audit_phase=before",
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    tasks: dict[str, int] = {}
    for round_no in range(1, args.rounds + 1):
        for name, command in cases.items():
            elapsed, changed, count = run(command, env)
            if changed:
                sys.exit(f"{name}: changed={changed} on round {round_no}; the host is not converged")
            times[name].append(elapsed)
            tasks[name] = count
            print(f"round {round_no}: {name}: {elapsed:.1f} s, {count} tasks", flush=True)
    base = statistics.median(times["baseline: ansible -m ping"])
    print(f"\n{os.cpu_count()} CPUs, {args.rounds} rounds")
    print(f"{'run':32} {'median s':>9} {'best s':>8} {'x base':>7} {'tasks':>6} {'ms/task':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:32} {median:9.1f} {min(values):8.1f} {median / base:7.1f} {tasks[name]:6d}"
            f" {1000 * median / tasks[name]:8.0f}"
        )
    noop = statistics.median(times["site.yml, no-op re-run"])
    print(f"\nno-op re-run of the whole stack: {noop:.1f} s against the goal of {GOAL_S:.0f} s ({noop / GOAL_S:.2f}x)")
    audit = statistics.median(times["audit.yml, one phase"])
    share = 2 * (audit - base) / (noop - base)
    spent = 2 * (audit - base)
    print(f"the audit's share of the no-op re-run (two phases): {spent:.1f} s of {noop - base:.1f} s, {share:.0%}")


if __name__ == "__main__":
    main()
