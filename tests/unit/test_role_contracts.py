"""A wrong inventory value fails before any change, with a message naming the variable.

Each case runs the real layer playbook in check mode against this machine; the role's
argument spec (or its validation tasks) must stop it before its first real task.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

CASES = [
    ("playbooks/database.yml", "gateway_db_port=not-a-port", "postgresql_port"),
    ("playbooks/database.yml", "gateway_db_port=70000", "postgresql_port must be a TCP port"),
    (
        "playbooks/database.yml",
        '{"gateway_db_listen_addresses": {"address": "0.0.0.0"}}',
        "postgresql_listen_addresses",
    ),
    ("playbooks/database.yml", "postgresql_idle_session_timeout='5 minutes'", "postgresql_idle_session_timeout"),
    ("playbooks/database.yml", "gateway_db_password=short", "postgresql_db_password is empty or shorter"),
    ("playbooks/database.yml", "postgresql_max_connections=10", "postgresql_max_connections (10)"),
    ("playbooks/cache.yml", "redis_persistence=sometimes", "redis_persistence"),
    ("playbooks/cache.yml", "redis_maxmemory_policy=lru", "redis_maxmemory_policy"),
    ("playbooks/cache.yml", "redis_maxmemory=lots", "redis_maxmemory must be a size"),
    ("playbooks/cache.yml", '{"gateway_redis_port": [6379]}', "redis_port"),
    ("playbooks/proxy.yml", "gateway_proxy_mode=sometimes", "litellm_proxy_mode"),
    ("playbooks/proxy.yml", "litellm_proxy_server=apache", "litellm_proxy_server"),
    ("playbooks/proxy.yml", "gateway_litellm_version=latest", "litellm_proxy_version must be a release"),
    ("playbooks/proxy.yml", "gateway_master_key=not-a-key", "litellm_proxy_master_key must start with sk-"),
    ("playbooks/proxy.yml", "litellm_proxy_database_url=mysql://x", "litellm_proxy_database_url must be a"),
    ("playbooks/proxy.yml", '{"gateway_old_salt_keys": ["short"]}', "litellm_proxy_old_salt_keys must be a list"),
    ("playbooks/proxy.yml", "litellm_proxy_encryption_algorithm=rot13", "litellm_proxy_encryption_algorithm"),
    (
        "playbooks/proxy.yml",
        "litellm_proxy_encryption_algorithm=aes-256-gcm",
        "aes-256-gcm needs a LiteLLM that reads v2:gcm: values",
    ),
    (
        "playbooks/proxy.yml",
        '{"gateway_smoke_chat_models": ["chat-nope"]}',
        "litellm_proxy_smoke_chat_models: chat-nope",
    ),
    ("playbooks/proxy.yml", '{"gateway_api_keys": {"openai key": "x"}}', "litellm_proxy_api_keys: openai key"),
    (
        "playbooks/proxy.yml",
        '{"gateway_security_floors": [{"package": "urllib3", "minimum": "latest"}]}',
        "litellm_proxy_security_floors",
    ),
    (
        "playbooks/proxy.yml",
        '{"gateway_models": [{"name": "chat-qwen-ollama", "kind": "chat", "engine": "llamacpp", "model": "q",'
        ' "api_base": "http://127.0.0.1:8080/v1"}]}',
        "gateway_models[0] (chat-qwen-ollama): name must follow [type]-[name]-[engine]",
    ),
    ("playbooks/operations.yml", '{"operations_backup_retention": {"daily": 7}}', "operations_backup_retention"),
    (
        "playbooks/operations.yml",
        '{"operations_backup_retention": {"daily": 0, "weekly": 4, "monthly": 3}}',
        "operations_backup_retention must be {daily: N, weekly: N, monthly: N}",
    ),
    ("playbooks/operations.yml", "gateway_health_port=99999", "operations_health_port must be a TCP port"),
    (
        "playbooks/operations.yml",
        '{"operations_timers": {"backup": {"on_calendar": "daily"}}}',
        "operations_timers must name each of",
    ),
    ("playbooks/operations.yml", "operations_dashboard_scheme=plaintext", "operations_dashboard_scheme"),
]

# What may run before a bad value stops the play: the wiring check, fact gathering, the role's
# argument spec, and its always-tagged checks (distribution variables and validate.yml).
VALIDATION = re.compile(
    r"/playbooks/(wiring|database|cache|models|proxy|operations)\.yml:\d+$"
    r"|/roles/[a-z_]+/tasks/(validate\.yml|main\.yml):\d+$"
)


def ran(output: str) -> list[tuple[str, str]]:
    """(task name, task path) of every task the run started, in order (from -vv output)."""
    tasks = re.findall(r"^TASK \[(.+?)\] \**\n(?:.*\n)*?task path: (\S+)", output, flags=re.M)
    assert tasks, output[-2000:]
    return tasks


@pytest.mark.parametrize(("playbook", "extra_var", "named"), CASES)
def test_bad_value_fails_before_any_change(run_playbook, playbook, extra_var, named):
    result = run_playbook(playbook, "-vv", "-e", extra_var)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert named in output, output[-2000:]
    tasks = ran(output)
    # The run stopped in the validation: the last task started is a check, and it failed.
    name, path = tasks[-1]
    assert VALIDATION.search(path), f"{extra_var} stopped in {name} ({path}), not in a check"
    assert "Validating arguments" in name or "/tasks/validate.yml:" in path, (name, path)
    assert re.search(r"^(fatal|failed): ", output, flags=re.M), output[-2000:]
    # Nothing but checks ran before it.
    assert [t for t in tasks if not VALIDATION.search(t[1])] == []
    assert "changed: [" not in output


# The release facts of a Debian the roles lack, in place of this machine's gathered ones.
PROJECT = Path(__file__).resolve().parents[2]
DEBIAN_11 = '{"ansible_facts": {"distribution": "Debian", "distribution_major_version": "11", "os_family": "Debian"}}'
ROLES = sorted(path.name for path in (PROJECT / "roles").iterdir() if (path / "tasks" / "main.yml").is_file())


@pytest.mark.parametrize("role", ROLES)
def test_each_role_has_the_variables_of_both_releases(role):
    """Debian 12 and 13 each have their vars/Debian-N.yml, and the role loads it before anything else."""
    assert sorted(p.name for p in (PROJECT / "roles" / role / "vars").glob("Debian-*.yml")) == [
        "Debian-12.yml",
        "Debian-13.yml",
    ]
    first = yaml.safe_load((PROJECT / "roles" / role / "tasks" / "main.yml").read_text(encoding="utf-8"))[:2]
    assert [task["name"] for task in first] == [
        "Load the variables for this release",
        "Check that this release is supported",
    ]


@pytest.mark.parametrize(
    ("playbook", "role"),
    [
        ("playbooks/database.yml", "postgresql"),
        ("playbooks/cache.yml", "redis"),
        ("playbooks/models.yml", "model_services"),
        ("playbooks/proxy.yml", "litellm_proxy"),
        ("playbooks/operations.yml", "operations"),
    ],
)
def test_an_unsupported_release_fails_before_any_change(run_playbook, playbook, role):
    """Debian 11: the role stops in its release check, naming the file to add, before anything else runs."""
    result = run_playbook(playbook, "-vv", "-e", DEBIAN_11)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert f"The {role} role does not support Debian 11 (supported: Debian 12 and 13)" in output, output[-2000:]
    assert f"add roles/{role}/vars/Debian-11.yml" in " ".join(output.split()), output[-2000:]
    tasks = ran(output)
    assert tasks[-1][0] == f"{role} : Check that this release is supported", tasks[-1]
    assert [t for t in tasks if not VALIDATION.search(t[1])] == []
    assert "changed: [" not in output


@pytest.mark.parametrize(
    ("extra_var", "named"),
    [
        ("litellm_proxy_workers=8", "litellm_proxy_workers (wired from gateway_proxy_workers)"),
        ("postgresql_port=5435", "postgresql_port (wired from gateway_db_port)"),
        ("operations_db_password=another-password-value", "operations_db_password (wired from gateway_db_password)"),
    ],
)
def test_a_wired_role_variable_cannot_disagree_with_its_source(run_playbook, extra_var, named):
    """DB-06: a role variable set beside its gateway_* source stops the run, naming both and no value."""
    result = run_playbook("playbooks/database.yml", "-vv", "-e", extra_var)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert named in output, output[-2000:]
    assert ran(output)[-1][1].endswith(tuple(f"/playbooks/wiring.yml:{n}" for n in range(1, 100)))
    assert "another-password-value" not in output.replace(extra_var, "")


def test_the_same_value_as_the_source_passes(run_playbook):
    result = run_playbook("playbooks/database.yml", "--tags", "always", "-e", "litellm_proxy_workers=4")
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]


def test_valid_defaults_pass_validation(run_playbook):
    """The default inventory's values get past validation (then check mode stops nowhere near a change)."""
    result = run_playbook("playbooks/database.yml", "--tags", "always")
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert "Validating arguments against arg spec 'main'" in result.stdout
    assert "Check the idle timeouts" in result.stdout


def test_valid_proxy_defaults_pass_validation(run_playbook):
    result = run_playbook("playbooks/proxy.yml", "--tags", "always")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert "Check the model catalogue" in output
    # The default inventory has no OpenAI key: it says so instead of failing.
    assert "No API key for OPENAI_API_KEY" in output
