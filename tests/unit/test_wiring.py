"""Each fact that more than one role or playbook uses is set in one place and every consumer follows it.

The probe playbook prints what the roles see on the default inventory; each test changes one
gateway_* setting with -e and finds the new value at every consumer.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
PROBE = PROJECT / "tests" / "unit" / "playbooks" / "wiring_probe.yml"


def seen(tmp_path: Path, **settings: object) -> dict:
    result = subprocess.run(
        ["ansible-playbook", str(PROBE), "--check", "-e", json.dumps(settings)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "LITELLM_SECRETS_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    return tasks[-1]["hosts"]["localhost"]["msg"]


def test_the_install_directories(tmp_path):
    got = seen(tmp_path, gateway_proxy_install_dir="/srv/llm", gateway_models_install_dir="/srv/models")
    assert got["litellm_proxy_install_dir"] == "/srv/llm"
    assert got["operations_proxy_python"] == "/srv/llm/venv/bin/python"
    assert got["operations_floors_script"] == "/srv/llm/bin/litellm-check-floors"
    assert {"unit": "litellm-proxy.service", "prefix": "/srv/llm/venv/"} in got["operations_units"]
    assert got["model_services_install_dir"] == got["operations_models_install_dir"] == "/srv/models"


def test_the_configuration_and_state_directories(tmp_path):
    got = seen(tmp_path, gateway_proxy_config_dir="/srv/etc", gateway_proxy_state_dir="/srv/state")
    assert got["litellm_proxy_config_dir"] == "/srv/etc"
    assert got["operations_proxy_config"] == "/srv/etc/config.yaml"
    assert "/srv/etc" in got["operations_backup_config_paths"]
    assert got["litellm_proxy_state_dir"] == "/srv/state"
    assert got["operations_archive_dir"] == "/srv/state/archive"


def test_the_ports(tmp_path):
    got = seen(tmp_path, gateway_db_port=6543, gateway_proxy_port=4100)
    assert int(got["postgresql_port"]) == int(got["operations_db_port"]) == 6543
    assert int(got["litellm_proxy_database_url_port"]) == 6543
    assert int(got["litellm_proxy_bind_port"]) == int(got["operations_proxy_url_port"]) == 4100
    assert {"name": "litellm-proxy", "port": 4100, "allowed": ["127.0.0.1"]} in got["operations_listeners"]


def test_the_unit_name(tmp_path):
    got = seen(tmp_path, gateway_proxy_service="llm-gateway.service")
    assert got["litellm_proxy_service"] == "llm-gateway.service"
    assert got["operations_units"][0]["unit"] == "llm-gateway.service"
    # restore.yml stops and starts the proxies by the same name.
    plays = yaml.safe_load((PROJECT / "playbooks" / "restore.yml").read_text(encoding="utf-8"))
    names = [
        t["ansible.builtin.systemd_service"]["name"]
        for p in plays
        for t in p.get("tasks", [])
        if "ansible.builtin.systemd_service" in t
    ]
    assert names == ["{{ gateway_proxy_service }}"] * 2


def test_the_listen_addresses(tmp_path):
    got = seen(
        tmp_path, gateway_db_listen_addresses=["127.0.0.1", "10.0.0.5"], gateway_redis_bind=["127.0.0.1", "10.0.0.6"]
    )
    assert got["postgresql_listen_addresses"] == ["127.0.0.1", "10.0.0.5"]
    assert got["redis_bind"] == ["127.0.0.1", "10.0.0.6"]
    allowed = {entry["name"]: entry.get("allowed") for entry in got["operations_listeners"]}
    assert allowed["postgresql"] == ["127.0.0.1", "10.0.0.5"]
    assert allowed["redis"] == ["127.0.0.1", "10.0.0.6"]


def test_the_salt_key_fingerprint_is_one_filter(tmp_path):
    got = seen(
        tmp_path,
        vault_litellm_salt_key="a-salt-key-for-the-test-0123456789",
        vault_litellm_old_salt_keys=["old-key-0123456789abcdef"],
    )
    digest = hashlib.sha256(b"litellm-gateway salt key v1:a-salt-key-for-the-test-0123456789").hexdigest()
    old = hashlib.sha256(b"litellm-gateway salt key v1:old-key-0123456789abcdef").hexdigest()
    assert got["operations_salt_key_fingerprint"] == digest
    assert got["operations_old_salt_key_fingerprints"] == [old]
