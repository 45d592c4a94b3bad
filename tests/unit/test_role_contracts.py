"""A wrong inventory value fails before any change, with a message naming the variable.

Each case runs the real layer playbook in check mode against this machine; the role's
argument spec (or its validation tasks) must stop it before its first real task.
"""

from __future__ import annotations

import pytest

CASES = [
    ("playbooks/database.yml", "postgresql_port=not-a-port", "postgresql_port"),
    ("playbooks/database.yml", "postgresql_port=70000", "postgresql_port must be a TCP port"),
    (
        "playbooks/database.yml",
        '{"postgresql_listen_addresses": {"address": "0.0.0.0"}}',
        "postgresql_listen_addresses",
    ),
    ("playbooks/database.yml", "postgresql_idle_session_timeout='5 minutes'", "postgresql_idle_session_timeout"),
    ("playbooks/database.yml", "postgresql_db_password=short", "postgresql_db_password is empty or shorter"),
    ("playbooks/database.yml", "postgresql_max_connections=10", "postgresql_max_connections (10)"),
    ("playbooks/cache.yml", "redis_persistence=sometimes", "redis_persistence"),
    ("playbooks/cache.yml", "redis_maxmemory_policy=lru", "redis_maxmemory_policy"),
    ("playbooks/cache.yml", "redis_maxmemory=lots", "redis_maxmemory must be a size"),
    ("playbooks/cache.yml", '{"redis_port": [6379]}', "redis_port"),
    ("playbooks/proxy.yml", "litellm_proxy_mode=sometimes", "litellm_proxy_mode"),
    ("playbooks/proxy.yml", "litellm_proxy_server=apache", "litellm_proxy_server"),
    ("playbooks/proxy.yml", "litellm_proxy_version=latest", "litellm_proxy_version must be a release"),
    ("playbooks/proxy.yml", "litellm_proxy_master_key=not-a-key", "litellm_proxy_master_key must start with sk-"),
    ("playbooks/proxy.yml", "litellm_proxy_database_url=mysql://x", "litellm_proxy_database_url must be a"),
    ("playbooks/proxy.yml", '{"litellm_proxy_old_salt_keys": ["short"]}', "litellm_proxy_old_salt_keys must be a list"),
    ("playbooks/proxy.yml", "litellm_proxy_encryption_algorithm=rot13", "litellm_proxy_encryption_algorithm"),
    (
        "playbooks/proxy.yml",
        "litellm_proxy_encryption_algorithm=aes-256-gcm",
        "aes-256-gcm needs a LiteLLM that reads v2:gcm: values",
    ),
    (
        "playbooks/proxy.yml",
        '{"litellm_smoke_chat_models": ["chat-nope"]}',
        "litellm_proxy_smoke_chat_models: chat-nope",
    ),
    ("playbooks/proxy.yml", '{"litellm_api_keys": {"openai key": "x"}}', "litellm_proxy_api_keys: openai key"),
    (
        "playbooks/proxy.yml",
        '{"litellm_security_floors": [{"package": "urllib3", "minimum": "latest"}]}',
        "litellm_proxy_security_floors",
    ),
    (
        "playbooks/proxy.yml",
        '{"litellm_models": [{"name": "chat-qwen-ollama", "kind": "chat", "engine": "llamacpp", "model": "q",'
        ' "api_base": "http://127.0.0.1:8080/v1"}]}',
        "litellm_models[0] (chat-qwen-ollama): name must follow [type]-[name]-[engine]",
    ),
    ("playbooks/operations.yml", '{"operations_backup_retention": {"daily": 7}}', "operations_backup_retention"),
    (
        "playbooks/operations.yml",
        '{"operations_backup_retention": {"daily": 0, "weekly": 4, "monthly": 3}}',
        "operations_backup_retention must be {daily: N, weekly: N, monthly: N}",
    ),
    ("playbooks/operations.yml", "operations_health_port=99999", "operations_health_port must be a TCP port"),
    (
        "playbooks/operations.yml",
        '{"operations_timers": {"backup": {"on_calendar": "daily"}}}',
        "operations_timers must name each of",
    ),
    ("playbooks/operations.yml", "operations_dashboard_scheme=plaintext", "operations_dashboard_scheme"),
]

FIRST_REAL_TASKS = (
    "Install the packages the operations tools need",
    "Install the PostgreSQL packages",
    "Install the Redis packages",
    "Install the packages the proxy's environment needs",
)


@pytest.mark.parametrize(("playbook", "extra_var", "named"), CASES)
def test_bad_value_fails_before_any_change(run_playbook, playbook, extra_var, named):
    result = run_playbook(playbook, "-e", extra_var)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert named in output, output[-2000:]
    for task in FIRST_REAL_TASKS:
        assert task not in output, f"{task} ran despite {extra_var}"


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
