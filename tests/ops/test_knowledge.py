"""Skill files are read the way LiteLLM stores them, deterministically, and planned idempotently."""

from __future__ import annotations

import io
import zipfile

import pytest
from litellm_ops import config, knowledge


def make_skill(root, name, body="Do the thing.", extra=None):
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "SKILL.md").write_text(f"---\nname: {name.title()}\ndescription: About {name}.\n---\n{body}\n")
    for file, text in (extra or {}).items():
        (directory / file).write_text(text)
    return directory


def test_a_skill_reads_as_litellm_stores_it(tmp_path):
    make_skill(tmp_path, "triage", extra={"checklist.txt": "1. /readyz"})
    skill = knowledge.read_all(tmp_path)["litellm_skill_triage"]
    assert skill["display_title"] == "Triage"
    assert skill["description"] == "About triage."
    assert skill["instructions"] == "Do the thing."
    with zipfile.ZipFile(io.BytesIO(skill["file_content"])) as archive:
        assert sorted(archive.namelist()) == ["triage/SKILL.md", "triage/checklist.txt"]


def test_the_same_files_give_the_same_bytes(tmp_path):
    make_skill(tmp_path, "one")
    first = knowledge.read_all(tmp_path)["litellm_skill_one"]["sha256"]
    (tmp_path / "one" / "SKILL.md").touch()  # a new mtime alone changes nothing
    assert knowledge.read_all(tmp_path)["litellm_skill_one"]["sha256"] == first
    (tmp_path / "one" / "notes.md").write_text("more")
    assert knowledge.read_all(tmp_path)["litellm_skill_one"]["sha256"] != first


def test_plan():
    wanted = {
        "litellm_skill_a": {"sha256": "1"},
        "litellm_skill_b": {"sha256": "2"},
        "litellm_skill_c": {"sha256": "3"},
    }
    stored = {"litellm_skill_a": "1", "litellm_skill_b": "old", "litellm_skill_gone": "9"}
    assert knowledge.plan(wanted, stored) == {
        "add": ["litellm_skill_c"],
        "update": ["litellm_skill_b"],
        "remove": ["litellm_skill_gone"],
        "unchanged": ["litellm_skill_a"],
    }


def test_bad_input_is_named(tmp_path):
    make_skill(tmp_path, "Bad Name")
    with pytest.raises(config.OpsError, match="Bad Name: name it in lower case"):
        knowledge.read_all(tmp_path)
    with pytest.raises(config.OpsError, match=r"skills directory .* is missing"):
        knowledge.read_all(tmp_path / "nope")
