#!/usr/bin/python
"""Ansible module: a role's files and directories in one call, each written only where it differs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: litellm_files
short_description: Make a list of files and directories right in one module run
description:
  - Each entry is a directory, a file with the given content, or a path that must not exist, with its
    owner, group and mode. Entries are handled in order, so a directory listed first holds the files
    listed after it.
  - A file is written only when its content differs, through a temporary file in the same directory that
    the entry's I(validate) command checks first and that then replaces the file in one rename; owner,
    group and mode are set on it before the rename. A file whose content is right gets only its owner,
    group and mode corrected.
  - A symbolic link where a file or directory belongs is replaced, not followed.
  - One module run costs what one M(ansible.builtin.template) task costs, whatever the number of entries.
    Render templates on the controller with the C(template) lookup and pass the text as I(content).
options:
  files:
    description: The entries, in the order they are made right.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: str
        required: true
      state:
        description: C(file), C(directory) (parents are created C(0755) root-owned where missing) or C(absent).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The file's text; for C(state=file), this or I(content_base64).
        type: str
      content_base64:
        description: The file's bytes, base64-encoded, for a file that is not text (a wheel, an archive).
        type: str
      owner:
        description: Owner's user name; root when left out.
        type: str
        default: root
      group:
        description: Group name; root when left out.
        type: str
        default: root
      mode:
        description: Octal mode such as C(0640).
        type: str
      validate:
        description:
          - Command that checks the new content before it replaces the file, with C(%s) standing for the
            temporary file's path, as M(ansible.builtin.template)'s I(validate). Split by the shell's rules.
        type: str
      diff:
        description: Show this file's content in the diff (C(--diff)); false for files that hold secrets.
        type: bool
        default: true
      purge:
        description:
          - For C(state=directory), a mirror - once every entry is right, whatever the directory holds that no
            entry names is removed.
        type: bool
        default: false
notes:
  - Supports check mode and diff mode. In check mode nothing is written; an owner or group that does not
    exist yet (its user is created by this run) counts as a change, not a failure.
author:
  - litellm-gateway
"""

EXAMPLES = r"""
- name: Write the proxy's files
  litellm_files:
    files:
      - path: /etc/litellm
        state: directory
        group: litellm
        mode: "0750"
      - path: /etc/litellm/config.yaml
        content: "{{ lookup('ansible.builtin.template', 'config.yaml.j2') }}"
        group: litellm
        mode: "0640"
        validate: /opt/litellm/venv/bin/python /opt/litellm/bin/litellm-check-config %s
"""

RETURN = r"""
changed_paths:
  description: The paths written, created, corrected or removed (or that would be, in check mode), in order.
  returned: always
  type: list
  elements: str
"""

import base64
import binascii
import grp
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule


class EntryError(Exception):
    """An entry that cannot be made right; the message names its path."""


def lookup_id(kind: str, name: str, check_mode: bool) -> int | None:
    """The uid or gid of ``name``; None in check mode where it does not exist yet."""
    try:
        return pwd.getpwnam(name).pw_uid if kind == "owner" else grp.getgrnam(name).gr_gid
    except KeyError:
        if check_mode:
            return None
        raise EntryError(f"the {kind} {name!r} does not exist on this host") from None


def attributes_differ(info: os.stat_result, uid: int | None, gid: int | None, mode: int | None) -> bool:
    return (
        uid is None
        or gid is None
        or info.st_uid != uid
        or info.st_gid != gid
        or (mode is not None and stat.S_IMODE(info.st_mode) != mode)
    )


def set_attributes(path: str, uid: int, gid: int, mode: int | None) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    if mode is not None:
        os.chmod(path, mode)


def make_directory(entry: dict[str, Any], uid: int | None, gid: int | None, mode: int | None, check: bool) -> bool:
    path = entry["path"]
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        if not attributes_differ(info, uid, gid, mode):
            return False
        if not check:
            set_attributes(path, uid, gid, mode)  # type: ignore[arg-type]
        return True
    if check:
        return True
    if info is not None:
        os.unlink(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755)
    os.mkdir(path, 0o700)
    set_attributes(path, uid, gid, 0o755 if mode is None else mode)  # type: ignore[arg-type]
    return True


def write_file(
    module: AnsibleModule, entry: dict[str, Any], uid: int | None, gid: int | None, mode: int | None
) -> tuple[bool, dict[str, str] | None]:
    path = entry["path"]
    if entry["content_base64"] is not None:
        try:
            content = base64.b64decode(entry["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise EntryError("its content_base64 is not base64") from None
    else:
        content = entry["content"].encode("utf-8")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    before: bytes | None = None
    if info is not None and stat.S_ISREG(info.st_mode):
        with open(path, "rb") as handle:
            before = handle.read()
    elif info is not None and stat.S_ISDIR(info.st_mode):
        raise EntryError("is a directory, not a file")
    diff = None
    if module._diff and entry["diff"] and entry["content"] is not None and before != content:
        diff = {
            "before_header": path,
            "after_header": path,
            "before": before.decode("utf-8", "replace") if before is not None else "",
            "after": entry["content"],
        }
    if before == content:
        if not attributes_differ(info, uid, gid, mode):  # type: ignore[arg-type]
            return False, None
        if not module.check_mode:
            set_attributes(path, uid, gid, mode)  # type: ignore[arg-type]
        return True, None
    if module.check_mode:
        return True, diff
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise EntryError(f"its directory {directory} does not exist")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
        set_attributes(temporary, uid, gid, 0o644 if mode is None else mode)  # type: ignore[arg-type]
        if entry.get("validate"):
            if "%s" not in entry["validate"]:
                raise EntryError("its validate command has no %s for the file to check")
            argv = [
                temporary if word == "%s" else word.replace("%s", temporary) for word in shlex.split(entry["validate"])
            ]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise EntryError(
                    f"the new content failed its validate command (exit status {done.returncode}): "
                    f"{(done.stderr or done.stdout).strip()[-2000:]}"
                )
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    return True, diff


def remove(path: str, check: bool) -> bool:
    if not os.path.lexists(path):
        return False
    if not check:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return True


def purge(directory: str, named: set[str], check: bool) -> list[str]:
    """Remove what ``directory`` holds that no entry names (nor holds a named path); the paths removed."""
    removed = []
    for root, dirs, files in os.walk(directory, topdown=True):
        for name in sorted(dirs + files):
            path = os.path.join(root, name)
            if path in named or any(other.startswith(path + "/") for other in named):
                continue
            if name in dirs:
                dirs.remove(name)
            removed.append(path)
            remove(path, check)
    return removed


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "str", "required": True},
                    "state": {"type": "str", "choices": ["file", "directory", "absent"], "default": "file"},
                    "content": {"type": "str"},
                    "content_base64": {"type": "str"},
                    "owner": {"type": "str", "default": "root"},
                    "group": {"type": "str", "default": "root"},
                    "mode": {"type": "str"},
                    "validate": {"type": "str"},
                    "diff": {"type": "bool", "default": True},
                    "purge": {"type": "bool", "default": False},
                },
                "required_if": [("state", "file", ("content", "content_base64"), True)],
                "mutually_exclusive": [("content", "content_base64")],
            },
        },
        supports_check_mode=True,
    )
    changed: list[str] = []
    diffs: list[dict[str, str]] = []
    for entry in module.params["files"]:
        path = entry["path"]
        try:
            if not os.path.isabs(path):
                raise EntryError("is not an absolute path")
            if entry["state"] == "absent":
                if remove(path, module.check_mode):
                    changed.append(path)
                continue
            try:
                mode = int(entry["mode"], 8) if entry["mode"] is not None else None
            except ValueError:
                raise EntryError(f"its mode {entry['mode']!r} is not an octal mode such as 0640") from None
            uid = lookup_id("owner", entry["owner"], module.check_mode)
            gid = lookup_id("group", entry["group"], module.check_mode)
            if entry["state"] == "directory":
                if make_directory(entry, uid, gid, mode, module.check_mode):
                    changed.append(path)
                continue
            written, diff = write_file(module, entry, uid, gid, mode)
            if written:
                changed.append(path)
            if diff:
                diffs.append(diff)
        except (EntryError, OSError) as error:
            detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            module.fail_json(msg=f"{path}: {detail}", changed=bool(changed), changed_paths=changed)
    named = {entry["path"].rstrip("/") for entry in module.params["files"] if entry["state"] != "absent"}
    for entry in module.params["files"]:
        if entry["purge"] and entry["state"] == "directory" and os.path.isdir(entry["path"]):
            changed.extend(purge(entry["path"].rstrip("/"), named, module.check_mode))
    module.exit_json(changed=bool(changed), changed_paths=changed, diff=diffs)


if __name__ == "__main__":
    main()
