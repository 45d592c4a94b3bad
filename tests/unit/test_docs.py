"""The documentation stays true: a short README with the two set-up commands, links that lead
somewhere, and every role variable in its role's README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
README = PROJECT / "README.md"
DOCS = sorted((PROJECT / "docs").glob("*.md"))
ROLES = sorted(p.parent.parent.name for p in (PROJECT / "roles").glob("*/defaults/main.yml"))
# [text](target) and [text](target "title"), outside code spans.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def without_code(text: str) -> str:
    """The text without fenced blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def test_the_readme_is_short_and_names_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, "README.md is over 200 lines: move the details to docs/"
    assert "make deploy" in text
    assert "make test" in text


def test_the_two_commands_exist_in_the_makefile():
    makefile = (PROJECT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^deploy:", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(PROJECT)))
def test_every_relative_link_points_at_a_file_that_exists(doc):
    broken = []
    for target in LINK.findall(without_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same file
        path = target.split("#", 1)[0]
        if not (doc.parent / path).exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(PROJECT)} links to files that do not exist: {broken}"


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(PROJECT)))
def test_the_docs_never_point_outside_the_repository(doc):
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert "/work/shared" not in text


def test_the_docs_folder_has_the_promised_pages():
    assert {p.name for p in DOCS} >= {
        "architecture.md",
        "operations.md",
        "security.md",
        "testing.md",
        "incidents.md",
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_role_variable_is_in_the_role_readme(role):
    defaults = yaml.safe_load((PROJECT / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}
    readme = (PROJECT / "roles" / role / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([a-z0-9_]+)` \|", readme, re.M))
    missing = [name for name in defaults if not name.startswith("__") and name not in listed]
    assert not missing, f"roles/{role}/README.md does not list {missing} in its variables table"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_readme_table_has_the_variable_default_description_header(role):
    readme = (PROJECT / "roles" / role / "README.md").read_text(encoding="utf-8")
    assert "| Variable | Default | Description |" in readme
