#!/usr/bin/python
"""Ansible module: Debian packages present, read with one dpkg-query and installed only where missing."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: litellm_packages
short_description: Install the Debian packages of a list that are not installed yet
description:
  - Reads the state of every package with one C(dpkg-query). Where all are installed, that is all it does,
    which is what makes a re-run cheap (M(ansible.builtin.apt) opens the whole package cache every time).
  - Where some are missing, it updates the package lists when they are older than I(cache_valid_time), then
    installs the missing ones with C(apt-get install), non-interactively.
  - Give real package names. A virtual package (one that only other packages provide) is never installed
    under its own name, so the module fails after installing it rather than install it on every run.
options:
  names:
    description: The packages.
    type: list
    elements: str
    required: true
  cache_valid_time:
    description: Seconds the package lists are trusted before an install updates them.
    type: int
    default: 3600
notes:
  - Supports check mode; it then reports the missing packages and installs nothing.
author:
  - litellm-gateway
"""

EXAMPLES = r"""
- name: Install the Redis packages
  litellm_packages:
    names: [redis-server]
"""

RETURN = r"""
missing:
  description: The packages that were not installed (and are now, unless in check mode).
  returned: always
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

# apt-get update touches this on success; the lists' own directory is the fallback.
UPDATE_STAMPS = ("/var/lib/apt/periodic/update-success-stamp", "/var/lib/apt/lists")


def missing_packages(module: AnsibleModule, names: list[str]) -> list[str]:
    """The names dpkg does not have installed (status ii)."""
    dpkg_query = module.get_bin_path("dpkg-query", required=True)
    # dpkg-query exits 1 when some name is unknown to it; it still prints the others.
    _, out, _ = module.run_command([dpkg_query, "-W", "-f", "${Package}\t${db:Status-Abbrev}\n", "--", *names])
    installed = set()
    for line in out.splitlines():
        package, _, status = line.partition("\t")
        if status.startswith("ii"):
            installed.add(package.split(":", 1)[0])
    return [name for name in names if name not in installed]


def lists_age(now: float) -> float:
    for stamp in UPDATE_STAMPS:
        try:
            return now - os.stat(stamp).st_mtime
        except OSError:
            continue
    return float("inf")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True},
            "cache_valid_time": {"type": "int", "default": 3600},
        },
        supports_check_mode=True,
    )
    names = list(dict.fromkeys(module.params["names"]))
    missing = missing_packages(module, names) if names else []
    if not missing or module.check_mode:
        module.exit_json(changed=bool(missing), missing=missing)
    apt_get = module.get_bin_path("apt-get", required=True)
    environ = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    if lists_age(time.time()) > module.params["cache_valid_time"]:
        rc, out, err = module.run_command([apt_get, "update", "-q"], environ_update=environ)
        if rc != 0:
            module.fail_json(msg=f"apt-get update failed (exit status {rc}): {(err or out).strip()[-2000:]}")
    rc, out, err = module.run_command(
        [
            apt_get,
            "install",
            "-y",
            "-q",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            *missing,
        ],
        environ_update=environ,
    )
    if rc != 0:
        module.fail_json(
            msg=f"apt-get install {' '.join(missing)} failed (exit status {rc}): {(err or out).strip()[-2000:]}",
            missing=missing,
        )
    still = missing_packages(module, missing)
    if still:
        module.fail_json(msg=f"apt-get installed nothing under the names {', '.join(still)}: use real package names")
    module.exit_json(changed=True, missing=missing, stdout=out)


if __name__ == "__main__":
    main()
