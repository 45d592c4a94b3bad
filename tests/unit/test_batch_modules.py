"""The modules that do in one run what took a task per item: litellm_files, litellm_http_checks,
litellm_packages (read side) and the litellm_tagged filter. Each module runs as Ansible runs it (a
process given its arguments as JSON), against a temporary directory or a local HTTP server."""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import PROJECT

sys.path.insert(0, str(PROJECT / "filter_plugins"))

from litellm_files import litellm_tagged

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def module(name: str, args: dict, tmp_path: Path, check: bool = False, diff: bool = False) -> dict:
    """Run library/<name>.py with ``args``; its JSON result (rc kept as "_rc")."""
    args_file = tmp_path / f"{name}-args.json"
    args_file.write_text(
        json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_diff": diff}}),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, str(PROJECT / "library" / f"{name}.py"), str(args_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads(proc.stdout)
    result["_rc"] = proc.returncode
    return result


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode, owner and content."""
    seen = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        seen[str(path.relative_to(root))] = (
            stat.S_IFMT(info.st_mode),
            stat.S_IMODE(info.st_mode),
            info.st_uid,
            content,
        )
    return seen


def entries(root: Path) -> list[dict]:
    return [
        {"path": str(root / "conf"), "state": "directory", "owner": ME, "group": MY_GROUP, "mode": "0750"},
        {"path": str(root / "conf/app.yaml"), "content": "a: 1\n", "owner": ME, "group": MY_GROUP, "mode": "0640"},
        {
            "path": str(root / "conf/secret.env"),
            "content": "KEY=x\n",
            "owner": ME,
            "group": MY_GROUP,
            "mode": "0600",
            "diff": False,
        },
        {
            "path": str(root / "conf/blob.bin"),
            "content_base64": base64.b64encode(b"\x00\xff\x10").decode(),
            "owner": ME,
            "group": MY_GROUP,
            "mode": "0644",
        },
        {"path": str(root / "old"), "state": "absent"},
    ]


def test_files_check_mode_writes_nothing_then_a_run_writes_then_nothing_changes(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "old").write_text("stale\n")
    before = snapshot(root)

    planned = module("litellm_files", {"files": entries(root)}, tmp_path, check=True, diff=True)
    assert planned["_rc"] == 0, planned
    assert planned["changed"] is True
    assert snapshot(root) == before, "check mode wrote something"
    assert len(planned["changed_paths"]) == 5
    shown = {d["after_header"] for d in planned["diff"]}
    assert str(root / "conf/app.yaml") in shown
    assert str(root / "conf/secret.env") not in shown, "a file with diff: false is never shown"
    assert str(root / "conf/blob.bin") not in shown, "bytes are not shown as text"

    done = module("litellm_files", {"files": entries(root)}, tmp_path)
    assert done["changed"] is True
    assert done["_rc"] == 0
    assert (root / "conf/app.yaml").read_text() == "a: 1\n"
    assert (root / "conf/blob.bin").read_bytes() == b"\x00\xff\x10"
    assert stat.S_IMODE((root / "conf").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "conf/secret.env").stat().st_mode) == 0o600
    assert not (root / "old").exists()

    again = module("litellm_files", {"files": entries(root)}, tmp_path, check=True)
    assert again["changed"] is False
    assert again["changed_paths"] == []
    assert module("litellm_files", {"files": entries(root)}, tmp_path)["changed"] is False


def test_files_repair_mode_content_and_a_symlink(tmp_path):
    root = tmp_path / "root"
    module("litellm_files", {"files": entries(root)}, tmp_path)
    (root / "conf/app.yaml").chmod(0o666)
    (root / "conf/secret.env").write_text("KEY=tampered\n")
    target = tmp_path / "elsewhere"
    target.write_text("not ours\n")
    (root / "conf/blob.bin").unlink()
    (root / "conf/blob.bin").symlink_to(target)

    repaired = module("litellm_files", {"files": entries(root)}, tmp_path)
    assert sorted(Path(p).name for p in repaired["changed_paths"]) == ["app.yaml", "blob.bin", "secret.env"]
    assert stat.S_IMODE((root / "conf/app.yaml").stat().st_mode) == 0o640
    assert (root / "conf/secret.env").read_text() == "KEY=x\n"
    assert not (root / "conf/blob.bin").is_symlink(), "a link is replaced, not followed"
    assert target.read_text() == "not ours\n"


def test_files_validate_failure_keeps_the_old_file_and_names_the_path(tmp_path):
    root = tmp_path / "root"
    module("litellm_files", {"files": entries(root)}, tmp_path)
    bad = [{**entries(root)[1], "content": "a: 2\n", "validate": "/bin/sh -c 'echo nope >&2; exit 3' x %s"}]
    result = module("litellm_files", {"files": bad}, tmp_path)
    assert result["_rc"] != 0
    assert result["failed"] is True
    assert result["msg"].startswith(str(root / "conf/app.yaml") + ": the new content failed its validate command")
    assert "nope" in result["msg"]
    assert (root / "conf/app.yaml").read_text() == "a: 1\n"
    assert sorted(p.name for p in (root / "conf").iterdir()) == ["app.yaml", "blob.bin", "secret.env"], "temp left"

    good = [{**bad[0], "validate": "/bin/grep -q 'a: 2' %s"}]
    assert module("litellm_files", {"files": good}, tmp_path)["changed"] is True
    assert (root / "conf/app.yaml").read_text() == "a: 2\n"


def test_files_unknown_owner_fails_with_its_name_but_is_a_change_in_check_mode(tmp_path):
    entry = {"path": str(tmp_path / "x"), "content": "x\n", "owner": "no-such-user-here"}
    planned = module("litellm_files", {"files": [entry]}, tmp_path, check=True)
    assert planned["changed"] is True
    assert planned["_rc"] == 0
    failed = module("litellm_files", {"files": [entry]}, tmp_path)
    assert failed["failed"] is True
    assert failed["msg"] == f"{tmp_path / 'x'}: the owner 'no-such-user-here' does not exist on this host"
    assert not (tmp_path / "x").exists()


def test_files_purge_mirrors_a_directory(tmp_path):
    mirror = tmp_path / "skills"
    wanted = [
        {"path": str(mirror), "state": "directory", "owner": ME, "group": MY_GROUP, "purge": True},
        {"path": str(mirror / "a"), "state": "directory", "owner": ME, "group": MY_GROUP},
        {"path": str(mirror / "a/SKILL.md"), "content": "# a\n", "owner": ME, "group": MY_GROUP},
    ]
    module("litellm_files", {"files": wanted}, tmp_path)
    (mirror / "gone").mkdir()
    (mirror / "gone/SKILL.md").write_text("# gone\n")
    (mirror / "a/extra.txt").write_text("x\n")
    planned = module("litellm_files", {"files": wanted}, tmp_path, check=True)
    assert sorted(planned["changed_paths"]) == [str(mirror / "a/extra.txt"), str(mirror / "gone")]
    assert (mirror / "gone/SKILL.md").exists()
    module("litellm_files", {"files": wanted}, tmp_path)
    assert sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*")) == ["a", "a/SKILL.md"]


def test_tagged_keeps_what_the_run_selects():
    files = [
        {"path": "/c", "tags": ["proxy", "config"]},
        {"path": "/h", "tags": ["proxy", "hardening"]},
        {"path": "/off", "tags": ["proxy", "hardening"], "when": False},
        {"path": "/task"},
    ]
    assert [e["path"] for e in litellm_tagged(files, ["all"], [])] == ["/c", "/h", "/task"]
    assert [e["path"] for e in litellm_tagged(files, ["hardening"], [])] == ["/h", "/task"]
    assert [e["path"] for e in litellm_tagged(files, ["all"], ["config"])] == ["/h", "/task"]
    assert [e["path"] for e in litellm_tagged(files, ["tagged"], [])] == ["/c", "/h", "/task"]
    assert all("tags" not in e and "when" not in e for e in litellm_tagged(files, ["all"], []))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        if self.path == "/live":
            self._send(200, b'{"ok": true}')
        elif self.headers.get("Authorization") == "Bearer right":
            self._send(200, b'{"data": [{"id": "m"}]}')
        else:
            self._send(401, b'{"error": {"message": "no key"}}')

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("stream"):
            chunks = [{"choices": [{"delta": {"content": word}}]} for word in ("po", "ng")]
            payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            self._send(200, payload.encode(), "text/event-stream")
        else:
            self._send(200, json.dumps({"choices": [{"message": {"content": "pong"}}]}).encode())

    def _send(self, status, payload, kind="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_http_checks_answers_each_request_by_name(server, tmp_path):
    requests = [
        {"name": "models", "url": f"{server}/v1/models", "headers": {"Authorization": "Bearer right"}},
        {"name": "no key", "url": f"{server}/v1/models"},
        {"name": "plain", "url": f"{server}/v1/chat", "method": "POST", "body": {"stream": False}},
        {"name": "streamed", "url": f"{server}/v1/chat", "method": "POST", "body": {"stream": True}},
        {"name": "down", "url": "http://127.0.0.1:9/", "timeout": 2},
    ]
    result = module("litellm_http_checks", {"wait_url": f"{server}/live", "requests": requests}, tmp_path, check=True)
    assert result["changed"] is False
    answers = {r["name"]: r for r in result["results"]}
    assert answers["models"]["status"] == 200
    assert answers["models"]["json"]["data"][0]["id"] == "m"
    assert answers["no key"]["status"] == 401
    assert answers["no key"]["error"] == "no key"
    assert answers["plain"]["answer"] == "pong"
    assert answers["streamed"]["answer"] == "pong"
    assert answers["down"]["status"] == -1
    assert answers["down"]["error"]


def test_http_checks_fails_when_the_wait_url_never_answers(tmp_path):
    result = module(
        "litellm_http_checks", {"wait_url": "http://127.0.0.1:9/", "wait_timeout": 1, "requests": []}, tmp_path
    )
    assert result["failed"] is True
    assert result["msg"].startswith("http://127.0.0.1:9/ did not answer 200 within 1 s")


def test_packages_reads_with_dpkg_and_installs_nothing_in_check_mode(tmp_path):
    if not Path("/usr/bin/dpkg-query").exists():
        pytest.skip("no dpkg on this machine")
    installed = module("litellm_packages", {"names": ["dpkg"]}, tmp_path)
    assert installed["changed"] is False
    assert installed["missing"] == []
    planned = module("litellm_packages", {"names": ["dpkg", "no-such-package-litellm-test"]}, tmp_path, check=True)
    assert planned["changed"] is True
    assert planned["missing"] == ["no-such-package-litellm-test"]


# systemd cannot run as PID 1 here: a stand-in systemctl answers `show` from a state file and
# records every other command, the way the real one would change the state.
FAKE_SYSTEMCTL = """#!/usr/bin/env python3
import json, os, sys
path = os.environ["FAKE_SYSTEMD_STATE"]
state = json.load(open(path))
args = sys.argv[1:]
if args[0] == "show":
    names = args[args.index("--") + 1:]
    blocks = []
    for name in names:
        unit = state.get(name, {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""})
        blocks.append("\\n".join(f"{key}={value}" for key, value in {"Id": name, **unit}.items()))
    print("\\n\\n".join(blocks))
    sys.exit(0)
with open(path + ".log", "a") as log:
    log.write(" ".join(args) + "\\n")
verb, name = (args + [None])[:2]
effects = {"unmask": ("UnitFileState", "disabled"), "enable": ("UnitFileState", "enabled"),
           "disable": ("UnitFileState", "disabled"), "start": ("ActiveState", "active"),
           "stop": ("ActiveState", "inactive")}
if verb in effects:
    key, value = effects[verb]
    state[name][key] = value
json.dump(state, open(path, "w"))
"""


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    """The stand-in's state file, with a systemctl first on PATH; the commands it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    state = tmp_path / "systemd.json"
    state.write_text(
        json.dumps(
            {
                "ok.service": {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"},
                "masked.timer": {"LoadState": "masked", "ActiveState": "inactive", "UnitFileState": "masked"},
                "runtime@1.service": {
                    "LoadState": "loaded",
                    "ActiveState": "active",
                    "UnitFileState": "enabled-runtime",
                },
            }
        )
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMD_STATE", str(state))
    log = Path(f"{state}.log")
    return lambda: log.read_text().splitlines() if log.exists() else []


def test_units_act_only_where_a_unit_differs(systemd, tmp_path):
    args = {"names": ["ok.service", "masked.timer", "runtime@1.service"], "enabled": True, "state": "started"}
    planned = module("litellm_units", args, tmp_path, check=True)
    assert planned["changed"] is True
    assert planned["actions"] == [
        "unmask masked.timer",
        "enable masked.timer",
        "start masked.timer",
        "enable runtime@1.service",
    ]
    assert systemd() == [], "check mode ran systemctl"

    done = module("litellm_units", {**args, "daemon_reload": True}, tmp_path)
    assert done["changed"] is True
    assert systemd() == ["daemon-reload", *planned["actions"]]
    again = module("litellm_units", args, tmp_path)
    assert again["changed"] is False
    assert again["actions"] == []


def test_units_unknown_to_systemd_fail_except_in_check_mode(systemd, tmp_path):
    args = {"names": ["ok.service", "missing.socket"], "enabled": True, "state": "started"}
    planned = module("litellm_units", args, tmp_path, check=True)
    assert planned["actions"] == ["start missing.socket (not known to systemd yet)"]
    failed = module("litellm_units", args, tmp_path)
    assert failed["failed"] is True
    assert failed["msg"] == "missing.socket: systemd has no such unit"
