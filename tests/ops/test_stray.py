"""Stray generated files are archived (OPS-06); current files and an operator's own files stay."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from litellm_ops import compliance, stray

CURRENT = {"config.yaml", "litellm.env", "security-floors.json"}


@pytest.mark.parametrize(
    "name",
    [
        "config.yaml.bak",
        "config.runtime.yaml",
        "config.yaml.1",
        "litellm.env.orig",
        "config-old.yaml",
        "snapshot.tmp",
        "x.yaml~",
        "models.snapshot.json",
        "config.yaml.dpkg-old",
    ],
)
def test_stray(name):
    assert stray.is_stray(name, CURRENT)


@pytest.mark.parametrize("name", ["config.yaml", "litellm.env", "custom_callbacks.py", "README"])
def test_not_stray(name):
    assert not stray.is_stray(name, CURRENT)


def test_archive_moves_stray_files_and_check_mode_moves_nothing(tmp_path):
    conf = tmp_path / "etc"
    conf.mkdir()
    for name in ("config.yaml", "config.yaml.bak", "config.runtime.yaml", "custom_callbacks.py"):
        (conf / name).write_text(name)
    archive = tmp_path / "archive"
    archive.mkdir()
    watch = [{"path": str(conf), "current": sorted(CURRENT)}, {"path": str(tmp_path / "absent"), "current": []}]
    planned = stray.archive(watch, str(archive), check=True)
    assert planned["changed"] is True
    assert sorted(p.name for p in conf.iterdir()) == [
        "config.runtime.yaml",
        "config.yaml",
        "config.yaml.bak",
        "custom_callbacks.py",
    ]
    assert list(archive.iterdir()) == []
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    done = stray.archive(watch, str(archive), check=False, now=now)
    assert [m["from"] for m in done["moved"]] == [str(conf / "config.runtime.yaml"), str(conf / "config.yaml.bak")]
    assert sorted(p.name for p in conf.iterdir()) == ["config.yaml", "custom_callbacks.py"]
    moved = archive / "20261123T120000Z" / str(conf).lstrip("/") / "config.yaml.bak"
    assert moved.read_text() == "config.yaml.bak"
    assert stat.S_IMODE(moved.parent.stat().st_mode) == 0o750
    assert stray.archive(watch, str(archive), check=False) == {"changed": False, "moved": []}
    settings = {"stray": {"watch": watch}}
    assert compliance.check_stray(settings)["status"] == "pass"
    (conf / "config.yaml.bak").write_text("again")
    assert compliance.check_stray(settings)["status"] == "fail"
