#!/usr/bin/env python3
"""Benchmark: the wall time of a no-op re-run on the converged demo host (make bench-rerun).

Times, in alternating rounds and in this one process, against the same converged host, over SSH
(as users reach their hosts: a key, pipelining, ControlPersist; sshd is installed in the test host
for the run, on 127.0.0.1:2222 only, and stopped after) and over the nsenter connection the Molecule
scenarios use:
- the baseline: `ansible -m ping`, what any run pays to start Ansible and reach the host;
- `site.yml` on the converged host (a no-op: changed=0 is checked), the audits, the smoke validation
  and the remediation report included;
- `playbooks/remediate.yml` on the healthy host (the same, with the repairs that remove rows on);
- `site.yml --tags hardening`, the hardening layer alone;
- `playbooks/audit.yml`, one phase of the audit that site.yml runs twice (before and after).

It prints, per connection, the median and the fastest round of each, the ratio to the baseline, the
number of tasks and the time per task, and compares each with its goal (issue 24: the no-op at most
30 s, remediate.yml at most 35 s, --tags hardening at most 15 s, on 2 cores).

Usage: rerun_bench.py [--rounds 2] [--connection both|ssh|nsenter]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml  # type: ignore[import-untyped]

PROJECT = Path(__file__).resolve().parents[1]
GOALS = {"site.yml, no-op re-run": 30.0, "remediate.yml, healthy host": 35.0, "site.yml --tags hardening": 15.0}
SSH_PORT = 2222
SSHD_DROPIN = "/etc/ssh/sshd_config.d/50-litellm-bench.conf"


def ephemeral() -> Path:
    """The converged test host's Molecule directory: MOLECULE_EPHEMERAL_DIRECTORY (the shared one `make
    molecule` keeps with --destroy never), else the newest `make demo` host."""
    if os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY"):
        return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    found = sorted(glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.default/inventory")), key=os.path.getmtime)
    if not found:
        sys.exit("No test host: run `make demo` (or `make bench-rerun`, which does it) first.")
    return Path(found[-1]).parent


def in_host(eph: Path, script: str) -> None:
    """Run a shell script as root in the test host; stop the benchmark with its output if it fails."""
    pid = (eph / "litellm-gw.pid").read_text().strip()
    done = subprocess.run(["nsenter", "-t", pid, "-a", "sh", "-ec", script], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"in the test host: {script.splitlines()[0]}...: {(done.stdout + done.stderr)[-2000:]}")


def start_sshd(eph: Path) -> str:
    """sshd in the test host on 127.0.0.1:2222 with a key made for this run; an inventory that reaches it."""
    keys = eph / "bench-ssh"
    shutil.rmtree(keys, ignore_errors=True)
    keys.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id")], check=True)
    public = (keys / "id.pub").read_text().strip()
    in_host(
        eph,
        f"""mkdir -p /etc/ssh/sshd_config.d /root/.ssh
printf 'Port {SSH_PORT}\\nListenAddress 127.0.0.1\\nPasswordAuthentication no\\n' > {SSHD_DROPIN}
command -v sshd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server >/dev/null
printf '%s\\n' '{public}' > /root/.ssh/authorized_keys
chmod 700 /root/.ssh; chmod 600 /root/.ssh/authorized_keys
systemctl restart ssh.service""",
    )
    # An inventory of its own: extra vars would reach the tasks delegated to localhost too.
    inventory = keys / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "group_vars").symlink_to((eph / "inventory" / "group_vars").resolve())
    text = (eph / "inventory" / "ansible_inventory.yml").read_text(encoding="utf-8")
    text = (
        text.replace("ansible_connection: community.docker.nsenter", "ansible_connection: ssh")
        .replace("ansible_host: localhost", "ansible_host: 127.0.0.1")
        .replace("ansible_port: 0", f"ansible_port: {SSH_PORT}")
    )
    (inventory / "ansible_inventory.yml").write_text(text, encoding="utf-8")
    host_vars = yaml.safe_load((eph / "inventory" / "host_vars" / "litellm-gw.yml").read_text(encoding="utf-8"))
    for nsenter_only in ("ansible_connection", "ansible_nsenter_pid"):
        host_vars.pop(nsenter_only, None)
    host_vars.update(
        {
            "ansible_ssh_private_key_file": str(keys / "id"),
            # Pipelining (ansible.cfg) and ControlPersist (Ansible's default ssh_args) as users have them.
            "ansible_ssh_common_args": f"-o StrictHostKeyChecking=no -o UserKnownHostsFile={keys / 'known_hosts'}",
        }
    )
    (inventory / "host_vars" / "litellm-gw.yml").write_text(yaml.safe_dump(host_vars), encoding="utf-8")
    return str(inventory)


def stop_sshd(eph: Path) -> None:
    in_host(eph, f"systemctl disable --now ssh.service ssh.socket 2>/dev/null || true\nrm -f {SSHD_DROPIN}")


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


def report(connection: str, times: dict[str, list[float]], tasks: dict[str, int], rounds: int) -> None:
    base = statistics.median(times["baseline: ansible -m ping"])
    print(f"\n{connection}: {os.cpu_count()} CPUs, {rounds} rounds")
    print(f"{'run':32} {'median s':>9} {'best s':>8} {'x base':>7} {'tasks':>6} {'ms/task':>8} {'goal s':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        shown = f"{GOALS[name]:7.0f}" if name in GOALS else " " * 7
        print(
            f"{name:32} {median:9.1f} {min(values):8.1f} {median / base:7.1f} {tasks[name]:6d}"
            f" {1000 * median / tasks[name]:8.0f} {shown}"
        )
    for name, goal in GOALS.items():
        median = statistics.median(times[name])
        verdict = "met" if median <= goal else "not met"
        ratio = median / goal
        print(f"{connection}: {name}: {median:.1f} s against the goal of {goal:.0f} s ({ratio:.2f}x, {verdict})")
    noop = statistics.median(times["site.yml, no-op re-run"])
    audit = statistics.median(times["audit.yml, one phase"])
    spent = 2 * (audit - base)
    print(f"{connection}: the audit's share of the no-op re-run (two phases): {spent:.1f} s of {noop - base:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connection", choices=["both", "ssh", "nsenter"], default="both")
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
    connections: dict[str, str] = {
        name: inventory for name in (["ssh", "nsenter"] if args.connection == "both" else [args.connection])
    }
    try:
        if "ssh" in connections:
            connections["ssh"] = start_sshd(eph)
        times: dict[str, dict[str, list[float]]] = {c: {name: [] for name in cases} for c in connections}
        tasks: dict[str, dict[str, int]] = {c: {} for c in connections}
        for round_no in range(1, args.rounds + 1):
            for connection, hosts in connections.items():
                for name, command in cases.items():
                    elapsed, changed, count = run([hosts if word == inventory else word for word in command], env)
                    if changed:
                        sys.exit(f"{name} ({connection}): changed={changed} on round {round_no}; not converged")
                    times[connection][name].append(elapsed)
                    tasks[connection][name] = count
                    print(f"round {round_no}, {connection}: {name}: {elapsed:.1f} s, {count} tasks", flush=True)
    finally:
        if "ssh" in connections:
            stop_sshd(eph)
    for connection in connections:
        report(connection, times[connection], tasks[connection], args.rounds)


if __name__ == "__main__":
    main()
