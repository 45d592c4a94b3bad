"""litellm-ops as a package: one version, the console script, the lock against pyproject.toml, and
the wheel the operations role builds on the controller (once, reproducibly, nothing under --check)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import litellm_ops
import pytest
from litellm_ops.__main__ import main
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[2]
SOURCE = PROJECT / "tools" / "litellm-ops"
PYPROJECT = tomllib.loads((SOURCE / "pyproject.toml").read_text(encoding="utf-8"))
LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)(?P<hashes>(?: --hash=sha256:[0-9a-f]{64})+)$")
# The operations hosts: Debian 12's CPython 3.11.2 on x86_64 (markers such as redis's
# async-timeout; python_full_version < "3.11.3" are evaluated for them, not for this Python).
HOST = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_machine": "x86_64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "extra": "",
}


def lock() -> dict[str, tuple[str, str]]:
    """Canonical name -> (version, the line's hashes)."""
    pins = {}
    for line in (SOURCE / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = LOCK_LINE.match(line)
        assert match, f"requirements.lock: not `name==version --hash=sha256:...`: {line}"
        pins[canonicalize_name(match["name"])] = (match["version"], match["hashes"])
    return pins


def applies(requirement: Requirement) -> bool:
    return requirement.marker is None or requirement.marker.evaluate(HOST)


def test_the_version_is_set_in_one_place():
    assert "version" not in PYPROJECT["project"]
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert metadata.version("litellm-ops") == litellm_ops.__version__


def test_the_console_script(capsys):
    (script,) = metadata.entry_points(group="console_scripts", name="litellm-ops")
    assert script.value == "litellm_ops.__main__:main"
    assert script.load() is main
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"litellm-ops {litellm_ops.__version__}\n"


def test_the_lock_pins_every_dependency_in_its_range():
    pins = lock()
    for text in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(text)
        if not applies(requirement):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is a dependency in pyproject.toml but not in requirements.lock"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (text, pins[name][0])


def test_the_lock_is_the_whole_environment_and_this_one_runs_it():
    """The hosts install the lock with --no-deps: it must hold every package the dependencies
    need on the hosts, and nothing else. make venv installs the same releases here."""
    pins = lock()
    needed: set[str] = set()
    todo = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if not applies(requirement) or name in needed:
            continue
        needed.add(name)
        assert name in pins, f"{name} (needed by the dependencies on the hosts) is not in requirements.lock"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (str(requirement), version)
        assert metadata.version(name) == version, f"{name}: .venv has {metadata.version(name)}, the lock {version}"
        todo.extend(Requirement(text) for text in metadata.requires(name) or [])
    assert set(pins) == needed, f"requirements.lock holds packages nothing needs: {sorted(set(pins) - needed)}"


# --- The wheel, built by the role's tasks/wheel.yml on the controller -----------------------

PLAYBOOK = """
- name: Build the litellm-ops wheel as the operations role does
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Build the wheel
      ansible.builtin.include_role:
        name: operations
        tasks_from: wheel.yml
        public: true
    - name: Report
      ansible.builtin.debug:
        msg:
          dir: "{{ __operations_wheel_dir }}"
          name: "{{ __operations_wheel_name }}"
          sha256: "{{ __operations_wheel_sha256 }}"
          requirements: "{{ __operations_requirements }}"
"""


@pytest.fixture
def build(tmp_path):
    """Run the role's wheel tasks against a cache directory; (changed count, what they report)."""
    playbook = tmp_path / "wheel.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    bin_dir = Path(sys.executable).parent

    def run(cache: Path, *args: str, source: Path = SOURCE) -> tuple[int, dict]:
        proc = subprocess.run(
            [
                str(bin_dir / "ansible-playbook"),
                str(playbook),
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"ansible_python_interpreter={sys.executable}",
                "-e",
                json.dumps({"operations_tool_cache_dir": str(cache), "operations_tool_source": str(source)}),
                *args,
            ],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=False,
            env={
                **os.environ,
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            },
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        result = json.loads(proc.stdout)
        report = result["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msg"]
        return result["stats"]["localhost"]["changed"], report

    return run


def test_the_wheel_is_built_once_and_not_under_check(build, tmp_path):
    cache = tmp_path / "cache"
    changed, report = build(cache, "--check")
    assert changed == 1, "under --check the build says it would run"
    assert not cache.exists(), "under --check nothing is written on the controller"
    assert report["sha256"] == ""

    changed, report = build(cache)
    assert changed == 1
    wheel = Path(report["dir"]) / report["name"]
    assert wheel.parent.parent == cache
    assert re.fullmatch(r"[0-9a-f]{16}", wheel.parent.name)
    assert report["name"] == f"litellm_ops-{litellm_ops.__version__}-py3-none-any.whl"
    assert report["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == [report["name"]]

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"litellm_ops-{litellm_ops.__version__}.dist-info"
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        requires = [
            line.split(": ", 1)[1]
            for line in archive.read(f"{dist_info}/METADATA").decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    modules = {f"litellm_ops/{p.name}" for p in (SOURCE / "src" / "litellm_ops").glob("*.py")}
    assert {n for n in names if not n.startswith(dist_info)} == modules
    assert "litellm-ops=litellm_ops.__main__:main" in entry_points.splitlines()
    assert requires == PYPROJECT["project"]["dependencies"]

    # The host's requirements: the lock's packages, then the wheel with its hash.
    lines = report["requirements"].splitlines()
    assert lines[1:-1] == [
        line for line in (SOURCE / "requirements.lock").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert lines[-1] == f"litellm-ops @ file:///opt/litellm-ops/dist/{report['name']} --hash=sha256:{report['sha256']}"

    changed, again = build(cache)
    assert changed == 0, "a second run with the same sources builds nothing"
    assert again == report


def test_the_wheel_is_reproducible(build, tmp_path):
    """Another checkout of the same sources (another place, other times) builds the same file."""
    first = build(tmp_path / "a")[1]
    copy = tmp_path / "checkout" / "litellm-ops"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in copy.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    second = build(tmp_path / "b", source=copy)[1]
    assert Path(second["dir"]).name == Path(first["dir"]).name
    assert second["sha256"] == first["sha256"]
