"""The one systemd sandbox: the baseline, the exceptions each unit names, and the check of each unit file."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

PROJECT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sandbox = _load("litellm_systemd", PROJECT / "filter_plugins" / "litellm_systemd.py")
lint = _load("systemd_units", PROJECT / "tests" / "lint" / "systemd_units.py")

TEMPLATES = sorted((PROJECT / "roles").glob("*/templates/*.j2"))
# Templates with a [Service] section whose sandbox lives elsewhere, and where.
SANDBOXED_ELSEWHERE = {"roles/litellm_proxy/templates/litellm-proxy.service.j2": "its drop-in, hardening.conf.j2"}
needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed on this machine"
)


def directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def baseline_lines() -> list[str]:
    lines = []
    for name, value in sandbox.BASELINE.items():
        values = value if isinstance(value, list) else [] if value is None else [value]
        for item in values:
            text = {True: "true", False: "false"}.get(item, item) if isinstance(item, bool) else str(item)
            lines.append(f"{name}={text}")
    return lines


def test_no_exceptions_render_the_baseline():
    text = sandbox.litellm_systemd_sandbox({})
    assert directives(text) == baseline_lines()
    assert text.splitlines()[0].endswith("no exceptions.")
    for line in (
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "PrivateUsers=true",
        "ProcSubset=pid",
        "MemoryDenyWriteExecute=true",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
    ):
        assert line in directives(text)
    assert not [line for line in directives(text) if line.startswith(("DeviceAllow=", "SystemCallErrorNumber="))]
    assert sandbox.litellm_systemd_sandbox(None) == text


def test_an_exception_changes_only_what_it_names():
    base = directives(sandbox.litellm_systemd_sandbox({}))
    text = sandbox.litellm_systemd_sandbox({"MemoryDenyWriteExecute": False, "UMask": "0077"})
    changed = directives(text)
    assert [line for line in base if line not in changed] == ["UMask=0027", "MemoryDenyWriteExecute=true"]
    assert [line for line in changed if line not in base] == ["UMask=0077", "MemoryDenyWriteExecute=false"]
    assert len(changed) == len(base)
    assert "this unit's exceptions: UMask, MemoryDenyWriteExecute." in text.splitlines()[0]


def test_list_and_none_exceptions():
    text = directives(
        sandbox.litellm_systemd_sandbox(
            {
                "DeviceAllow": ["char-nvidiactl rw", "char-nvidia-uvm rw"],
                "SystemCallFilter": ["@system-service", "~@privileged"],
                "SystemCallErrorNumber": "EPERM",
                "ProcSubset": None,
            }
        )
    )
    assert [line for line in text if line.startswith("DeviceAllow=")] == [
        "DeviceAllow=char-nvidiactl rw",
        "DeviceAllow=char-nvidia-uvm rw",
    ]
    assert [line for line in text if line.startswith("SystemCallFilter=")] == [
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
    ]
    assert "SystemCallErrorNumber=EPERM" in text
    assert not [line for line in text if line.startswith("ProcSubset=")]


@pytest.mark.parametrize("name", ["MemoryDenyWriteExecutes", "ProtectSystm", "ExecStart", "memorydenywriteexecute"])
def test_an_unknown_directive_is_a_clear_error(name):
    with pytest.raises(AnsibleFilterError, match=rf"{name} is not a directive of the sandbox baseline"):
        sandbox.litellm_systemd_sandbox({name: True})


@pytest.mark.parametrize(
    ("exceptions", "message"),
    [
        ({"UMask": {"a": 1}}, "UMask must be a string"),
        ({"UMask": "0077\nExecStart=/bin/sh"}, "spans lines"),
        (["MemoryDenyWriteExecute"], "must be a dict"),
    ],
)
def test_bad_exception_values_are_refused(exceptions, message):
    with pytest.raises(AnsibleFilterError, match=message):
        sandbox.litellm_systemd_sandbox(exceptions)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(PROJECT)))
def test_no_template_spells_out_a_sandbox_directive(template):
    """The baseline's directives come from the filter only: no copy to drift (issue 19, item 5)."""
    spelt = re.compile(rf"^\s*({'|'.join(sandbox.BASELINE)})=", re.MULTILINE)
    assert spelt.findall(template.read_text()) == []


def test_every_service_template_uses_the_baseline():
    services = {str(p.relative_to(PROJECT)) for p in TEMPLATES if "[Service]" in p.read_text()}
    using = {str(p.relative_to(PROJECT)) for p in TEMPLATES if "litellm_systemd_sandbox" in p.read_text()}
    assert services - using == set(SANDBOXED_ELSEWHERE)
    assert using <= services
    assert len(using) == 6


@pytest.mark.parametrize(
    "template", [p for p in TEMPLATES if "litellm_systemd_sandbox" in p.read_text()], ids=lambda p: p.name
)
def test_each_exception_is_named_in_a_comment(template):
    """Every directive a template passes as an exception is explained in a comment of that template."""
    text = template.read_text()
    call = text[text.index("{{ {") : text.index("litellm_systemd_sandbox }}")]
    named = set(re.findall(r"'([A-Za-z]+)':", call))
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    assert named <= set(sandbox.BASELINE)
    assert {name for name in named if name not in comments} == set()


def _tasks(tasks):
    for task in tasks or []:
        if isinstance(task, dict):
            yield task
            yield from _tasks(task.get("block"))


def _unit_writes():
    """(file, task name, src or path, dest or path, validate) of every template task and every
    litellm_files entry; a role builds some entry lists in Jinja (one per unit), read as text."""
    for path in sorted((PROJECT / "roles").glob("*/tasks/*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text())):
            if "ansible.builtin.template" in task:
                args = task["ansible.builtin.template"]
                yield path, task["name"], str(args["src"]), str(args["dest"]), str(args.get("validate", ""))
            if "litellm_files" in task:
                listed = task["litellm_files"]["files"]
                if isinstance(listed, str):
                    # files: "{{ __name | filter }}": the list (or the Jinja that builds it) is the task's var.
                    named = [value for key, value in task.get("vars", {}).items() if key in listed]
                    listed = named[0] if named else listed
                if isinstance(listed, str):
                    # Entries built in a Jinja loop: the template, the path and the validate are in one text.
                    yield path, task["name"], listed, listed, listed
                    continue
                for entry in listed:
                    if entry.get("state", "file") == "file":
                        source = str(entry.get("content", ""))
                        yield path, task["name"], source, str(entry["path"]), str(entry.get("validate", ""))


def test_every_unit_file_is_verified_when_written():
    units = 0
    for path, name, src, dest, validate in _unit_writes():
        unit_file = (
            re.search(r"\.(service|socket|timer)\.j2['\"]|\.(service|socket|timer)\.j2$|hardening\.conf\.j2", src)
            or "/etc/systemd/system" in dest
            or "unit_dir" in dest
        )
        if unit_file:
            units += 1
            assert "litellm_systemd_verify" in validate, f"{path}: {name}: {dest}"
    # The proxy's unit and its drop-in, the model units, the operations units and timers, and the
    # PostgreSQL and Redis drop-ins.
    assert units >= 6


def test_verify_command_shape():
    command = sandbox.litellm_systemd_verify("postgresql@15-main.service", "50-hardening.conf")
    assert command.endswith(" %s")
    assert command.count("%") == 1
    argv = shlex.split(command % "/tmp/file")
    assert argv[0] == "/bin/sh"
    assert argv[-4:] == ["postgresql@15-main.service", "postgresql@.service", "50-hardening.conf", "/tmp/file"]
    assert shlex.split(sandbox.litellm_systemd_verify("litellm-ops-probe.timer") % "/f")[-4:] == [
        "litellm-ops-probe.timer",
        "litellm-ops-probe.timer",
        "",
        "/f",
    ]


@pytest.mark.parametrize(("unit", "dropin"), [("../x.service", None), ("x", None), ("x.service", "../50.conf")])
def test_verify_refuses_bad_names(unit, dropin):
    with pytest.raises(AnsibleFilterError):
        sandbox.litellm_systemd_verify(unit, dropin)


def _validate(command: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run a validate: command as Ansible's template module does (validate % path, no shell)."""
    return subprocess.run(shlex.split(command % path), capture_output=True, text=True, check=False)


@needs_systemd
def test_verify_passes_a_good_unit_and_fails_a_misspelt_directive(tmp_path):
    good = "[Service]\nExecStart=/bin/true\n" + sandbox.litellm_systemd_sandbox({}) + "\n"
    (tmp_path / "good").write_text(good)
    (tmp_path / "bad").write_text(good.replace("ProtectSystem=", "ProtectSystm="))
    (tmp_path / "missing").write_text(good.replace("/bin/true", "/nonexistent/bin/server"))
    command = sandbox.litellm_systemd_verify("litellm-sandbox-test.service")
    assert _validate(command, tmp_path / "good").returncode == 0
    bad = _validate(command, tmp_path / "bad")
    assert bad.returncode != 0
    assert "ProtectSystm" in bad.stdout
    assert _validate(command, tmp_path / "missing").returncode != 0


@needs_systemd
def test_verify_checks_a_drop_in_over_a_stand_in_when_its_unit_is_not_installed(tmp_path):
    dropin = "[Service]\n" + sandbox.litellm_systemd_sandbox({"UMask": "0077"}) + "\n"
    (tmp_path / "good.conf").write_text(dropin)
    (tmp_path / "bad.conf").write_text(dropin.replace("PrivateTmp=", "PrivateTemp="))
    command = sandbox.litellm_systemd_verify("litellm-sandbox-test.service", "50-hardening.conf")
    assert _validate(command, tmp_path / "good.conf").returncode == 0
    bad = _validate(command, tmp_path / "bad.conf")
    assert bad.returncode != 0
    assert "PrivateTemp" in bad.stdout


@needs_systemd
def test_the_lint_scores_a_unit_and_flags_its_warnings(tmp_path):
    unit = "[Service]\nExecStart=/bin/true\nDynamicUser=true\n" + sandbox.litellm_systemd_sandbox({}) + "\n"
    (tmp_path / "good.service").write_text(unit)
    (tmp_path / "bad.service").write_text(unit.replace("ProtectHome=", "ProtectHom="))
    (tmp_path / "open.service").write_text("[Service]\nExecStart=/bin/true\n")
    exposure, problems = lint.score(tmp_path, "good.service", 3.0)
    assert exposure <= 3.0
    assert problems == []
    assert any("ProtectHom" in problem for problem in lint.score(tmp_path, "bad.service", 3.0)[1])
    exposure, problems = lint.score(tmp_path, "open.service", 3.0)
    assert exposure > 3.0
    assert problems == [f"exposure {exposure} is over 3.0"]
