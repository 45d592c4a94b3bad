"""Moving to a new host: the Debian 12 newcomer host's backup (PostgreSQL 15) restored onto this Debian 13 host
(PostgreSQL 17) with playbooks/restore.yml, as docs/operations.md tells an operator to do.

The newcomer scenario (make molecule runs it first) leaves the backup, its host's salt key and one model row
LiteLLM encrypted there in LITELLM_TEST_MOVING_DIR. The old host's salt key reaches Ansible as one of the
old salt keys, through a 0600 vars file; after the restore the row decrypts with it through LiteLLM's helper.
It runs after test_remediation.py, on the repaired host.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest
from conftest import PROJECT, run_playbook

MOVING = os.environ.get("LITELLM_TEST_MOVING_DIR", "")
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
ROOTFS = EPHEMERAL / "instances" / "litellm-gw"
BACKUPS = "/var/backups/litellm-gateway"
KEY_FILE = "/root/.moved-salt-key"
PSQL = "runuser -u postgres -- psql -p 5434 -d litellm -v ON_ERROR_STOP=1 -qAt"
DECRYPT = """
import json, os, subprocess, sys
os.environ["LITELLM_SALT_KEY"] = open(sys.argv[1]).read().strip()
from litellm.proxy.common_utils.encrypt_decrypt_utils import decrypt_value_helper
row = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-p", "5434", "-d", "litellm", "-Atc",
                      "SELECT litellm_params FROM \\"LiteLLM_ProxyModelTable\\" WHERE model_id = '%s'" % sys.argv[2]],
                     capture_output=True, text=True, check=True).stdout
params = json.loads(row)
print(json.dumps({"api_key": decrypt_value_helper(params["api_key"], "api_key", "debug")}))
"""

pytestmark = pytest.mark.skipif(
    not MOVING and os.environ.get("LITELLM_TEST_MOVING_REQUIRE") != "1",
    reason="no backup from the newcomer scenario (make molecule runs it first and sets LITELLM_TEST_MOVING_DIR)",
)


def test_a_postgresql_15_backup_restores_onto_debian_13(host):
    moving = Path(MOVING)
    assert (moving / "row.json").is_file(), f"{moving}: the newcomer scenario left no backup"
    row = json.loads((moving / "row.json").read_text(encoding="utf-8"))
    name = row["backup"]
    manifest = json.loads((moving / "backup" / name / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["server_version"].startswith("15"), manifest["server_version"]
    assert host.check_output(f"{PSQL} -c 'SHOW server_version'").startswith("17.")

    # The operator copies the backup into the new host's backup directory, and keeps the old host's salt key.
    shutil.copytree(moving / "backup" / name, ROOTFS / BACKUPS.lstrip("/") / name)
    host.check_output(f"chown -R --reference={BACKUPS} {BACKUPS}/{name}")
    key = ROOTFS / KEY_FILE.lstrip("/")
    key.touch(mode=0o600)
    shutil.copyfile(moving / "salt_key", key)
    extra = EPHEMERAL / "moving-vars.json"
    extra.touch(mode=0o600)
    extra.write_text(
        json.dumps({"vault_litellm_old_salt_keys": [(moving / "salt_key").read_text(encoding="utf-8").strip()]}),
        encoding="utf-8",
    )

    code, output, _ = run_playbook(
        str(PROJECT / "playbooks" / "restore.yml"), "-e", f"backup={name}", "-e", f"@{extra}"
    )
    assert code == 0, output[-4000:]

    # Every table holds what the old host's did.
    for table, count in manifest["row_counts"].items():
        assert int(host.check_output(f"{PSQL} -c 'SELECT count(*) FROM \"{table}\"'")) == count, table
    # The row LiteLLM encrypted on the old host decrypts with its helper and the old host's salt key.
    script = DECRYPT.replace("'", "'\"'\"'")
    out = host.check_output(f"/opt/litellm/venv/bin/python -c '{script}' {KEY_FILE} {row['model_id']} 2>/dev/null")
    decrypted = json.loads(out.strip().splitlines()[-1])
    assert decrypted == {"api_key": row["api_key"]}
    # The proxy is back (the container shares this machine's network).
    with urllib.request.urlopen("http://127.0.0.1:4000/health/liveliness", timeout=10) as answer:
        assert answer.status == 200
