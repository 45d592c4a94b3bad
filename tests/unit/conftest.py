"""Run ansible-playbook from the project, against this machine, always in check mode."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_playbook(tmp_path):
    """Run a project playbook with the default inventory and a private secrets dir.

    Check mode is forced: these tests never change this machine.
    """
    secrets_dir = tmp_path / "secrets"

    def run(playbook: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ansible-playbook", playbook, "--check", *args],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LITELLM_SECRETS_DIR": str(secrets_dir), "ANSIBLE_NOCOLOR": "1", **(env or {})},
        )

    run.secrets_dir = secrets_dir  # type: ignore[attr-defined]
    return run
