#!/usr/bin/python
"""Ansible module: a list of systemd units enabled and started (or stopped), read with one systemctl call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: litellm_units
short_description: Bring a list of systemd units to their state, reading them all at once
description:
  - Reads every unit's load state, active state and unit-file state with one C(systemctl show), then
    unmasks, enables, starts or stops only the units that differ, in the order given.
  - Equivalent to one M(ansible.builtin.systemd_service) task per unit, at the cost of one.
options:
  names:
    description: The units, with their suffix (C(.service), C(.socket), C(.timer)), in the order they are handled.
    type: list
    elements: str
    required: true
  enabled:
    description: Enabled (and unmasked) when true, disabled when false, left as they are when left out.
    type: bool
  state:
    description: C(started) or C(stopped); left as they are when left out.
    type: str
    choices: [started, stopped]
  daemon_reload:
    description: Run C(systemctl daemon-reload) first, as after unit files changed.
    type: bool
    default: false
notes:
  - Supports check mode. A unit that systemd does not know is a failure, except in check mode, where
    an earlier task of the run would have written it.
author:
  - litellm-gateway
"""

EXAMPLES = r"""
- name: Enable and start the timers
  litellm_units:
    names: [litellm-ops-backup.timer, litellm-ops-probe.timer]
    enabled: true
    state: started
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), such as C(start litellm-ops-backup.timer).
  returned: always
  type: list
  elements: str
"""


from ansible.module_utils.basic import AnsibleModule

# The unit starts where it is wanted, for good; the states ansible.builtin.systemd_service takes as
# enabled. Not enabled-runtime (a link under /run, which Debian's PostgreSQL generator makes for its
# clusters, gone at the next boot), indirect or alias: enabled: true runs systemctl enable there.
ENABLED = {"enabled", "static", "generated", "linked"}
RUNNING = {"active", "activating", "reloading"}


def read_states(module: AnsibleModule, systemctl: str, names: list[str]) -> dict[str, dict[str, str]]:
    """Each unit's properties, by the name asked for."""
    rc, out, err = module.run_command(
        [systemctl, "show", "--property=Id,LoadState,ActiveState,UnitFileState", "--", *names]
    )
    if rc != 0:
        module.fail_json(msg=f"systemctl show failed (exit status {rc}): {err.strip()}")
    blocks = [block for block in out.strip("\n").split("\n\n")]
    if len(blocks) != len(names):
        module.fail_json(msg=f"systemctl show answered for {len(blocks)} of {len(names)} units")
    states = {}
    for name, block in zip(names, blocks, strict=True):
        states[name] = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    return states


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True},
            "enabled": {"type": "bool"},
            "state": {"type": "str", "choices": ["started", "stopped"]},
            "daemon_reload": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    systemctl = module.get_bin_path("systemctl", required=True)
    actions: list[str] = []

    def act(*argv: str) -> None:
        actions.append(" ".join(argv))
        if module.check_mode:
            return
        rc, out, err = module.run_command([systemctl, *argv])
        if rc != 0:
            module.fail_json(
                msg=f"systemctl {' '.join(argv)} failed (exit status {rc}): {(err or out).strip()}",
                changed=True,
                actions=actions,
            )

    if module.params["daemon_reload"]:
        act("daemon-reload")
    names, enabled, wanted = module.params["names"], module.params["enabled"], module.params["state"]
    states = read_states(module, systemctl, names) if names else {}
    for name in names:
        state = states[name]
        if state.get("LoadState") == "not-found":
            if module.check_mode:
                actions.append(f"start {name} (not known to systemd yet)")
                continue
            module.fail_json(msg=f"{name}: systemd has no such unit", changed=bool(actions), actions=actions)
        file_state = state.get("UnitFileState", "")
        if enabled is True:
            if file_state.startswith("masked"):
                act("unmask", name)
                file_state = "disabled"
            if file_state not in ENABLED:
                act("enable", name)
        elif enabled is False and file_state in {"enabled", "enabled-runtime", "linked"}:
            act("disable", name)
        running = state.get("ActiveState") in RUNNING
        if wanted == "started" and not running:
            act("start", name)
        elif wanted == "stopped" and running:
            act("stop", name)
    module.exit_json(changed=any(action != "daemon-reload" for action in actions), actions=actions)


if __name__ == "__main__":
    main()
