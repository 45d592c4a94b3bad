"""The newcomer's path on a fresh Debian 12 (or 13) host: the README's `make deploy`, run on the host.

converge.yml ran the first `make deploy`; these tests read what it left on the host, run it a second
time, and check what a newcomer sees when the machine lacks something. Secrets are read on the host
and compared there as names only, never put on a command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
# The host's release (molecule.yml's suite) and the PostgreSQL major the postgresql role installs there.
RELEASE = {"bookworm": 12, "trixie": 13}[os.environ.get("LITELLM_NEWCOMER_SUITE") or "bookworm"]
PG_VERSION = yaml.safe_load(
    (PROJECT / "roles" / "postgresql" / "vars" / f"Debian-{RELEASE}.yml").read_text(encoding="utf-8")
)["__postgresql_version"]
REPO = "/root/litellm-gateway"
SECRETS = "/root/.local/share/litellm-gateway/secrets"
ARGS = 'ANSIBLE_ARGS="-e @/root/newcomer-vars.yml"'
BACKUPS = "/var/backups/litellm-gateway"
# Where the backup for the move to Debian 13 goes (the remediation scenario restores it there): make molecule
# names it; run alone, the scenario's own directory.
MOVING = Path(os.environ.get("LITELLM_TEST_MOVING_DIR") or Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "moving")
ROOTFS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "instances" / "litellm-newcomer"
# A model row as the proxy's UI writes it: encrypted with LiteLLM 1.80.16's own helper and the host's salt key.
MOVED_ROW = {"model_id": "moved-from-debian-12", "model_name": "chat-moved", "api_key": "sk-moved-0123456789"}
INSERT_ROW = """
import json, re, subprocess, sys
env = dict(re.findall(r'^(\\w+)="(.*)"$', open("/etc/litellm/litellm.env").read(), re.M))
from litellm.proxy.common_utils.encrypt_decrypt_utils import encrypt_value_helper
row = json.loads(sys.argv[1])
params = {"model": "openai/moved", "api_key": encrypt_value_helper(row["api_key"], env["LITELLM_SALT_KEY"])}
sql = ('INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, model_info, created_by, '
       "updated_by) VALUES ('%s', '%s', '%s'::jsonb, '{}'::jsonb, 'newcomer', 'newcomer')"
       % (row["model_id"], row["model_name"], json.dumps(params)))
subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-p", "5434", "-d", "litellm", "-q", "-v",
                "ON_ERROR_STOP=1"], input=sql, text=True, check=True)
"""
# The runs on the host may colour their output (Molecule forces colour, and the command inherits it).
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap(log: str) -> dict[str, tuple[int, int, int, int]]:
    """Host -> (ok, changed, unreachable, failed) from the last PLAY RECAP of an ansible-playbook run."""
    tail = log.rsplit("PLAY RECAP", 1)[-1]
    return {m[1]: (int(m[2]), int(m[3]), int(m[4]), int(m[5])) for m in RECAP.finditer(tail)}


def changed_tasks(log: str) -> list[str]:
    """The tasks of a run that reported a change, by name."""
    task, found = "", []
    for line in log.splitlines():
        if line.startswith("TASK ["):
            task = line[6:].split("]", 1)[0]
        elif line.startswith("changed: "):
            found.append(task)
    return found


def leaked(host, log_path: str) -> list[str]:
    """Names of the generated secrets whose values appear in the file, compared on the host."""
    out = host.check_output(
        f'for f in {SECRETS}/*; do v=$(cat "$f"); [ -n "$v" ] && grep -qF -- "$v" {log_path} '
        '&& basename "$f"; done; true'
    )
    return out.split()


@pytest.fixture(scope="module")
def second_run(host):
    """The second `make deploy`, as the newcomer runs it again: (exit status, output, seconds)."""
    host.run(
        f"cd {REPO} && start=$(date +%s) && {{ make deploy {ARGS} > /root/newcomer-deploy-2.log 2>&1; "
        "echo $? > /root/newcomer-deploy-2.rc; }; echo $(( $(date +%s) - start )) > /root/newcomer-deploy-2.seconds"
    )
    return (
        int(host.file("/root/newcomer-deploy-2.rc").content_string),
        COLOUR.sub("", host.file("/root/newcomer-deploy-2.log").content_string),
        int(host.file("/root/newcomer-deploy-2.seconds").content_string),
    )


def test_host_runs_the_release_asked_for(host):
    assert host.file("/etc/debian_version").content_string.startswith(f"{RELEASE}.")


def test_first_deploy_succeeded_with_its_smoke_validation(host):
    rc = int(host.file("/root/newcomer-deploy-1.rc").content_string)
    log = COLOUR.sub("", host.file("/root/newcomer-deploy-1.log").content_string)
    seconds = host.file("/root/newcomer-deploy-1.seconds").content_string.strip()
    print(f"first make deploy: {seconds} s")
    assert rc == 0, log[-3000:]
    assert recap(log) == {"localhost": recap(log)["localhost"]}
    ok, _, unreachable, failed = recap(log)["localhost"]
    assert (unreachable, failed) == (0, 0)
    assert ok > 100
    # The smoke validation ran (site.yml's own play) and answered for every chat model it checks.
    assert "PLAY [Smoke validation" in log
    assert "chat-default" in log


def test_second_deploy_changes_nothing(second_run):
    rc, log, seconds = second_run
    print(f"second make deploy (no-op): {seconds} s")
    assert rc == 0, log[-3000:]
    _, changed, unreachable, failed = recap(log)["localhost"]
    assert (changed, unreachable, failed) == (0, 0, 0), changed_tasks(log)[:20]


# The OpenAI Python SDK (a dependency of LiteLLM, in the proxy's environment) as a client on the host; the
# master key is read from the proxy's environment file inside the script, never put on a command line.
CLIENT = """
import re, sys
from openai import OpenAI
key = re.search(r'^LITELLM_MASTER_KEY="(.*)"$', open(sys.argv[1]).read(), re.M).group(1)
client = OpenAI(base_url="http://127.0.0.1:4000/v1", api_key=key, max_retries=0, timeout=60)
answer = client.chat.completions.create(model="chat-selftest-mock", messages=[{"role": "user", "content": "hi"}])
print(answer.choices[0].message.content)
"""


def test_the_gateway_answers_a_client(host):
    """A chat completion through the proxy with the generated master key, from the host itself."""
    script = CLIENT.replace("'", "'\"'\"'")
    result = host.run(f"/opt/litellm/venv/bin/python -c '{script}' /etc/litellm/litellm.env")
    assert result.rc == 0, result.stderr[-2000:]
    models = yaml.safe_load((PROJECT / "inventory" / "group_vars" / "all" / "models.yml").read_text(encoding="utf-8"))
    mock = next(m for m in models["gateway_models"] if m["name"] == "chat-selftest-mock")
    assert result.stdout.strip() == mock["mock_response"]


@pytest.mark.parametrize("log", ["/root/newcomer-deploy-1.log", "/root/newcomer-deploy-2.log"])
def test_no_secret_in_what_the_newcomer_sees(host, second_run, log):
    found = leaked(host, log)
    assert not found, found


# Every unit the gateway runs or hardens on this release (the same ones the default scenario scores on 13).
UNITS = [
    f"postgresql@{PG_VERSION}-main.service",
    "redis-server.service",
    "litellm-proxy.service",
    "litellm-model-chat-qwen2.5-0.5b-llamacpp.service",
    "litellm-model-chat-qwen2.5-0.5b-llamacpp-proxy.service",
    *(
        f"litellm-ops-{name}.service"
        for name in ("backup", "restore-check", "compliance", "inventory", "probe", "knowledge", "health", "exporter")
    ),
]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_exposure_at_most_3(host, unit):
    out = host.check_output(f"systemd-analyze security --no-pager {unit} | tail -n 1")
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))
    print(f"{unit}: exposure {score}")
    assert score <= 3.0


def test_the_compliance_check_passes(host):
    result = host.run("/usr/local/sbin/litellm-ops compliance")
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-2000:]


def message(stderr: str) -> list[str]:
    """What make printed beside its own `make: *** [...] Error` line (`make[1]: ***` when MAKELEVEL is inherited)."""
    return [line for line in stderr.splitlines() if line and not re.match(r"make(\[\d+\])?: \*\*\* ", line)]


def test_no_root_is_one_clear_message(host):
    host.run("id newcomer >/dev/null 2>&1 || useradd --create-home newcomer")
    result = host.run(
        f"mkdir -p /home/newcomer/litellm-gateway && tar -C {REPO} --exclude=./.venv -cf - ."
        " | tar -C /home/newcomer/litellm-gateway -xf - && chown -R newcomer /home/newcomer"
        " && runuser -u newcomer -- make -s -C /home/newcomer/litellm-gateway deploy"
    )
    assert result.rc != 0
    assert message(result.stderr) == [
        "make: installing Debian packages needs root: run it as root, or as a user that may use sudo."
    ]


def test_unsupported_release_is_one_clear_message(host):
    """The same command on a release the roles lack (an os-release of Debian 11 bound over the real one)."""
    result = host.run(
        'printf \'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\\nID=debian\\nVERSION_ID="11"\\n\''
        f" > /root/os-release-11 && unshare -m sh -c 'mount --bind /root/os-release-11 /etc/os-release"
        f" && make -s -C {REPO} deploy'"
    )
    assert result.rc != 0
    assert message(result.stderr) == [
        "make deploy: this machine runs Debian GNU/Linux 11 (bullseye); the gateway supports Debian 12/13"
        " (see README.md)."
    ]


def test_no_internet_is_one_clear_message(host):
    """A fresh copy in a network namespace of its own (no route anywhere), with no pip cache to fall back on."""
    result = host.run(
        f"rm -rf /root/offline && mkdir /root/offline && tar -C {REPO} --exclude=./.venv -cf - . | tar -C /root/offline"
        " -xf - && PIP_NO_CACHE_DIR=1 PIP_RETRIES=0 unshare -n make -s -C /root/offline deploy"
    )
    assert result.rc != 0
    assert message(result.stderr)[-1] == (
        "make: pip could not install the tool environment (its error is above): the machine needs access to PyPI,"
        " or to the index pip.conf names."
    ), result.stderr[-2000:]


@pytest.mark.skipif(RELEASE != 12, reason="the move is from Debian 12 to 13")
def test_a_backup_for_the_move_to_debian_13(host):
    """PostgreSQL 15's backup of this host, with a model row LiteLLM encrypted, handed to the Debian 13 restore.

    The backup unit takes it as its timer would; the backup and the host's salt key (0600) go to MOVING, where
    the remediation scenario's test_restore_moved.py restores it onto PostgreSQL 17.
    """
    assert host.check_output("runuser -u postgres -- psql -p 5434 -Atc 'SHOW server_version'").startswith("15.")
    script = INSERT_ROW.replace("'", "'\"'\"'")
    host.check_output(f"/opt/litellm/venv/bin/python -c '{script}' '{json.dumps(MOVED_ROW)}'")
    host.check_output("systemctl start litellm-ops-backup.service")
    latest = host.check_output(f"ls -1 {BACKUPS} | grep '^litellm-' | sort | tail -n 1").strip()
    manifest = json.loads(host.file(f"{BACKUPS}/{latest}/manifest.json").content_string)
    assert manifest["row_counts"]["LiteLLM_ProxyModelTable"] >= 1, manifest["row_counts"]
    shutil.rmtree(MOVING, ignore_errors=True)
    (MOVING / "backup").mkdir(parents=True, mode=0o700)
    shutil.copytree(ROOTFS / BACKUPS.lstrip("/") / latest, MOVING / "backup" / latest)
    salt = MOVING / "salt_key"
    salt.touch(mode=0o600)
    shutil.copyfile(ROOTFS / SECRETS.lstrip("/") / "litellm_salt_key", salt)
    (MOVING / "row.json").write_text(json.dumps({**MOVED_ROW, "backup": latest}), encoding="utf-8")
