"""The secrets play: generated once, private, never regenerated, vault wins, never printed."""

from __future__ import annotations

import yaml
from conftest import PROJECT

# The secrets play lists every secret; the tests check whatever it lists.
NAMES = tuple(
    yaml.safe_load((PROJECT / "playbooks" / "secrets.yml").read_text(encoding="utf-8"))[0]["vars"]["__secret_names"]
)


def secret_file(name: str) -> str:
    """The generated secret's file: its name from before the gateway_ prefix, so existing secrets stay."""
    return name.replace("gateway_", "litellm_", 1)


def read_secrets(secrets_dir):
    return {name: (secrets_dir / secret_file(name)).read_text(encoding="utf-8").strip() for name in NAMES}


def test_first_run_generates_private_secrets_and_says_where(run_playbook):
    result = run_playbook("playbooks/secrets.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    secrets_dir = run_playbook.secrets_dir
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    for name in NAMES:
        assert (secrets_dir / secret_file(name)).stat().st_mode & 0o777 == 0o600, name
    values = read_secrets(secrets_dir)
    assert all(len(value) >= 40 for value in values.values()), {k: len(v) for k, v in values.items()}
    assert len(set(values.values())) == len(NAMES)
    assert str(secrets_dir) in result.stdout
    for name, value in values.items():
        assert value not in result.stdout + result.stderr, f"{name} printed"


def test_second_run_keeps_every_secret(run_playbook):
    assert run_playbook("playbooks/secrets.yml").returncode == 0
    first = read_secrets(run_playbook.secrets_dir)
    assert run_playbook("playbooks/secrets.yml").returncode == 0
    assert read_secrets(run_playbook.secrets_dir) == first


def test_vaulted_secret_is_used_and_not_generated(run_playbook):
    vaulted = "vault-salt-key-0123456789abcdefghij"
    result = run_playbook(
        "playbooks/secrets.yml",
        "-e",
        f"vault_litellm_salt_key={vaulted}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (run_playbook.secrets_dir / "litellm_salt_key").exists()
    assert (run_playbook.secrets_dir / "litellm_db_password").exists()
    assert "gateway_salt_key" not in result.stdout.split("are kept in")[0].split("Generated secrets")[-1]
    assert vaulted not in result.stdout + result.stderr


def test_short_vaulted_secret_is_refused_by_name(run_playbook):
    result = run_playbook("playbooks/secrets.yml", "-e", "vault_litellm_redis_password=short")
    assert result.returncode != 0
    assert "gateway_redis_password is shorter than 16 characters" in result.stdout


def test_master_key_needs_the_sk_prefix(run_playbook):
    result = run_playbook("playbooks/secrets.yml", "-e", "vault_litellm_master_key=no-prefix-0123456789abcdef")
    assert result.returncode != 0
    assert "gateway_master_key must start with 'sk-'" in result.stdout
