"""What an operator checks on a converged host: the LiteLLM proxy layer."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest
import yaml
from conftest import PROJECT, exposure, leaks, run_playbook

PROXY = "http://127.0.0.1:4000"
UNIT = "litellm-proxy.service"
VENV = "/opt/litellm/venv"
CATALOGUE_FILE = PROJECT / "inventory" / "group_vars" / "all" / "models.yml"


def catalogue() -> dict:
    return yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))


def request(path: str, key: str | None = None, body: dict | None = None, timeout: int = 60) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(PROXY + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return -1, ""


def wait_live(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if request("/health/liveliness", timeout=2)[0] == 200:
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def master_key(secrets) -> str:
    return "sk-" + secrets["litellm_master_key"]


def test_unit_active_and_enabled(host):
    assert host.run(f"systemctl is-active {UNIT}; systemctl is-enabled {UNIT}").stdout.split() == ["active", "enabled"]


def test_runs_as_litellm_from_its_own_environment(host):
    """OPS-01: one venv, one user, logs in the journal."""
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert host.check_output(f"ps -o user= -p {pid}") == "litellm"
    # The venv's python is a link to the system's: the command line names the venv.
    assert host.check_output(f"ps -o args= -p {pid}").startswith(f"{VENV}/bin/python")
    assert "Application startup complete" in host.check_output(f"journalctl --no-pager -o cat -u {UNIT}")


def test_listens_on_loopback_only(host):
    lines = [line.split() for line in host.check_output("ss -H -ltnp").splitlines()]
    found = [(fields[3], fields[5]) for fields in lines if fields[3].rsplit(":", 1)[1] == "4000"]
    assert [address for address, _ in found] == ["127.0.0.1:4000"], found
    assert "litellm" in found[0][1] or "python" in found[0][1], found


def test_unit_exposure_at_most_3(host):
    assert exposure(host, UNIT) <= 3.0


def test_unit_files_verify(host):
    run = host.run(f"systemd-analyze verify /etc/systemd/system/{UNIT}")
    assert run.rc == 0, run.stderr


def test_models_are_exactly_the_catalogue(master_key):
    status, body = request("/v1/models", master_key)
    assert status == 200, body
    served = sorted(model["id"] for model in json.loads(body)["data"])
    data = catalogue()
    expected = sorted([model["name"] for model in data["gateway_models"]] + list(data["gateway_model_aliases"]))
    assert served == expected


def test_no_key_gets_401():
    assert request("/v1/models")[0] == 401


def test_unknown_key_is_refused():
    status, body = request("/v1/models", "sk-wrong-key-0000000000000000")
    assert status in (400, 401), body  # 400 "No connected db." in config-only mode


@pytest.mark.parametrize("model", ["chat-selftest-mock", "chat-default"])
def test_chat_completion(master_key, model):
    """chat-default's local model is not running here: the answer comes from its cloud fallback (GPU-03)."""
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}]}
    status, answer = request("/v1/chat/completions", master_key, body)
    assert status == 200, answer
    content = json.loads(answer)["choices"][0]["message"]["content"]
    assert content == ("pong" if model == "chat-selftest-mock" else "pong from the fake cloud")


def test_streamed_chat_completion(master_key):
    body = {"model": "chat-default", "stream": True, "messages": [{"role": "user", "content": "ping"}]}
    status, answer = request("/v1/chat/completions", master_key, body)
    assert status == 200, answer
    events = [line[len("data: ") :] for line in answer.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) > 2
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert text == "pong from the fake cloud"


def test_admin_ui_is_served():
    """The UI is copied to the state directory, not rewritten inside the read-only venv."""
    assert request("/ui/")[0] == 200


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        ("/etc/litellm", "root", "litellm", "750"),
        ("/etc/litellm/litellm.env", "root", "litellm", "600"),
        ("/etc/litellm/config.yaml", "root", "litellm", "640"),
        ("/etc/systemd/system/litellm-proxy.service", "root", "root", "644"),
        ("/var/lib/litellm", "litellm", "litellm", "750"),
        ("/var/lib/litellm/archive", "litellm", "litellm", "750"),
        ("/var/lib/litellm/artifacts", "litellm", "litellm", "750"),
        (VENV, "root", "root", "755"),
    ],
)
def test_file_owner_and_mode(host, path, owner, group, mode):
    assert host.check_output(f"stat -c '%U %G %a' {path}").split() == [owner, group, mode]


def test_secrets_only_in_the_environment_file(host, secrets, master_key):
    """SEC-05: config.yaml and the unit name the variables; the values are in the env file only."""
    env_file = host.file("/etc/litellm/litellm.env").content_string
    in_env_file = f'LITELLM_MASTER_KEY="{master_key}"' in env_file  # a bool: a failing `in` prints the file
    assert in_env_file, "LITELLM_MASTER_KEY is not in litellm.env"
    for path in ("/etc/litellm/config.yaml", f"/etc/systemd/system/{UNIT}"):
        content = host.file(path).content_string
        assert "os.environ/LITELLM_MASTER_KEY" in content or path.endswith(".service")
        found = leaks(secrets, **{path: content})
        assert not found, found
    found = leaks({"master_key": master_key}, unit_properties=host.check_output(f"systemctl show {UNIT}"))
    assert not found, found


def test_config_sets_the_incident_settings(host):
    config = yaml.safe_load(host.file("/etc/litellm/config.yaml").content_string)
    general = config["general_settings"]
    assert general["store_prompts_in_spend_logs"] is False  # SEC-02
    assert general["disable_error_logs"] is False  # SEC-07
    assert config["litellm_settings"]["request_timeout"] == 120  # OPS-05
    assert {"chat-default": ["chat-gpt-4o-mini-openai"]} in config["router_settings"]["fallbacks"]  # GPU-03
    local = next(m for m in config["model_list"] if m["model_name"] == "chat-qwen2.5-0.5b-llamacpp")
    assert local["litellm_params"]["timeout"] == 120
    assert local["litellm_params"]["rpm"] == 30
    assert "--num_workers 4" in host.file(f"/etc/systemd/system/{UNIT}").content_string  # OPS-05


def test_installed_versions_meet_the_security_floors(host):
    """SEC-01, read from the venv itself with pip, against the inventory's floors."""
    floors = yaml.safe_load((PROJECT / "inventory" / "group_vars" / "all" / "main.yml").read_text())[
        "gateway_security_floors"
    ]
    installed = {
        p["name"].lower(): p["version"] for p in json.loads(host.check_output(f"{VENV}/bin/pip list --format json"))
    }
    assert installed["litellm"] == "1.80.16"
    checked = 0
    for floor in floors:
        version = installed.get(floor["package"].lower())
        if version and "minimum" in floor:
            ok = host.run(
                f'{VENV}/bin/python -c "import sys; from packaging.version import Version as V; '
                f"sys.exit(V('{version}') < V('{floor['minimum']}'))\""
            )
            assert ok.rc == 0, f"{floor['package']} {version} < {floor['minimum']}"
            checked += 1
    assert checked >= 1  # urllib3 is always a dependency


def test_sigkill_brings_the_proxy_back_within_15_seconds(host):
    old_pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    host.check_output(f"kill -KILL {old_pid}")
    deadline = time.monotonic() + 15
    new_pid = old_pid
    while time.monotonic() < deadline and new_pid in (old_pid, "0"):
        time.sleep(0.5)
        new_pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert new_pid not in (old_pid, "0"), "systemd did not restart the proxy"
    assert wait_live(max(deadline - time.monotonic(), 1)), "the restarted proxy did not answer within 15 s"


def _starts_since(host, since: str) -> int:
    lines = host.check_output(f"journalctl --no-pager -o cat -u {UNIT} --since @{since}")
    return len(re.findall(r"^Started litellm-proxy\.service", lines, flags=re.M))


def test_catalogue_change_rewrites_config_and_restarts_once(host, tmp_path, secrets):
    """One changed entry: config.yaml changes, the proxy restarts once; the original comes back the same way."""
    assert wait_live(60)
    data = catalogue()
    changed = json.loads(json.dumps(data["gateway_models"]))
    changed[0]["rpm"] = 17
    extra = tmp_path / "catalogue.json"
    extra.write_text(json.dumps({"gateway_models": changed}))
    before = host.check_output("date +%s")
    code, output, count = run_playbook(str(PROJECT / "site.yml"), "--tags", "proxy", "-e", f"@{extra}")
    assert code == 0, output[-3000:]
    assert count == 2, output[-3000:]  # config.yaml, then the one restart
    assert "rpm: 17" in host.file("/etc/litellm/config.yaml").content_string
    assert _starts_since(host, before) == 1
    found = leaks(secrets, site_output=output)
    assert not found, found

    before = host.check_output("date +%s")
    code, output, count = run_playbook(str(PROJECT / "site.yml"), "--tags", "proxy")
    assert code == 0, output[-3000:]
    assert count == 2, output[-3000:]
    assert _starts_since(host, before) == 1
    code, output, count = run_playbook(str(PROJECT / "site.yml"), "--tags", "proxy")
    assert code == 0, output[-3000:]
    assert count == 0, output[-3000:]
