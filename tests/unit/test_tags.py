"""README.md's table of tags says what each tag runs: `--tags X --list-tasks` must run exactly that.

Each row names, in backticks, the task files the tag selects (`role/file.yml` for a role's
tasks/file.yml, `playbooks/file.yml` for a playbook's own tasks). Tasks tagged `always` (the
checks) run under every tag and are left out of the comparison.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `([a-z_]+)` \| (.+) \|$", re.M)
FILE = re.compile(r"`((?:playbooks/)?[a-z_]+/?[a-z_]*\.yml)`")


def table() -> dict[str, set[str]]:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Tags", 1)[1].split("\n## ", 1)[0]
    return {tag: set(FILE.findall(runs)) for tag, runs in ROW.findall(section)}


def names(tasks: list) -> list[str]:
    found = []
    for task in tasks or []:
        if isinstance(task, dict):
            if "name" in task:
                found.append(task["name"])
            for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
                found.extend(names(task.get(key)))
    return found


@cache
def where() -> dict[tuple[str, str], set[str]]:
    """(role or '', task name) -> the files that hold a task of that name."""
    index: dict[tuple[str, str], set[str]] = {}
    for path in PROJECT.glob("roles/*/tasks/*.yml"):
        for name in names(yaml.safe_load(path.read_text(encoding="utf-8"))):
            index.setdefault((path.parts[-3], name), set()).add(f"{path.parts[-3]}/{path.name}")
    for path in PROJECT.glob("playbooks/*.yml"):
        for name in names(yaml.safe_load(path.read_text(encoding="utf-8"))):
            index.setdefault(("", name), set()).add(f"playbooks/{path.name}")
    return index


def selected(tag: str) -> set[str]:
    result = subprocess.run(
        ["ansible-playbook", "site.yml", "--list-tasks", "--tags", tag],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    files: set[str] = set()
    for line in result.stdout.splitlines():
        match = re.match(r"^ {6}(?:([a-z_]+) : )?(.+?)\tTAGS: \[(.*)\]$", line)
        if not match or "always" in match[3].split(", "):
            continue
        role, name = match[1] or "", match[2]
        assert (role, name) in where(), f"--tags {tag} lists {line.strip()!r}, which no task file names"
        files |= where()[(role, name)]
    return files


def test_the_table_names_every_tag_the_tasks_carry():
    tags: set[str] = set()
    for path in [*PROJECT.glob("roles/*/tasks/*.yml"), *PROJECT.glob("playbooks/*.yml")]:
        tags |= set(re.findall(r"^\s*tags: \[?([^\]\n]+)\]?$", path.read_text(encoding="utf-8"), flags=re.M))
    carried = {t.strip() for group in tags for t in group.split(",")} - {"always"}
    assert carried == set(table()), carried ^ set(table())


@pytest.mark.parametrize("tag", sorted(table()))
def test_each_tag_runs_what_the_readme_says(tag):
    assert selected(tag) == table()[tag]
