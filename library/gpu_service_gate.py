#!/usr/bin/python
"""Ansible module: which local model services fit on the GPUs now, and acting on it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_service_gate
short_description: Plan, and optionally enforce, which GPU model services fit in free VRAM
description:
  - Reads every GPU through NVML (C(pynvml), from the C(nvidia-ml-py) package) - total, used and free
    memory, MIG mode and MIG instances, the running compute processes - and maps the processes to
    systemd units through their cgroups.
  - Plans, by priority, which services fit now and on which GPU (or MIG instance), which would fit once
    lower-priority services of the list stop, which wait for memory other processes hold, and which
    never fit on any GPU they may use. I(headroom_mib) is kept free on every GPU.
  - Without NVML (no library, no driver, no GPU) the plan says so; GPU services are I(unavailable),
    services that need no VRAM are not gated. Nothing fails for lack of a GPU.
  - With I(state=enforced), services marked I(start) that fit are started, after the lower-priority
    services the plan names are stopped. Check mode plans only.
options:
  services:
    description: The services to place.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The systemd unit, such as C(litellm-model-chat-qwen2.5-0.5b-llamacpp.service).
        type: str
        required: true
      vram_mib:
        description: VRAM the service needs when running, in MiB; 0 for a service that runs on the CPU.
        type: int
        default: 0
      gpu_index:
        description: The only GPU the service may use; any GPU when left out.
        type: int
      priority:
        description: Higher goes first, and may displace running services of lower priority.
        type: int
        default: 0
      start:
        description: With I(state=enforced), start the service when it fits.
        type: bool
        default: false
      start_unit:
        description:
          - The unit to start instead of I(name), such as the socket proxy that needs the model service
            (a unit with C(StopWhenUnneeded=yes) cannot be started on its own). It is restarted, so that
            a proxy left running after a skipped start starts the service again. Defaults to I(name).
        type: str
  headroom_mib:
    description: VRAM to keep free on every GPU, in MiB, for the drivers' and the runtimes' own use.
    type: int
    default: 512
  state:
    description: C(planned) reads and plans only; C(enforced) also stops and starts units.
    type: str
    choices: [planned, enforced]
    default: planned
notes:
  - Supports check mode; it plans and changes nothing.
  - The same planner runs at start time as the C(ExecCondition=) of every GPU unit the model_services role writes.
requirements:
  - nvidia-ml-py (optional; without it GPU services are reported unavailable)
author:
  - litellm-gateway
"""

EXAMPLES = r"""
- name: Plan which model services fit now
  gpu_service_gate:
    services:
      - name: litellm-model-chat-qwen2.5-7b-vllm.service
        vram_mib: 20000
        priority: 10
      - name: litellm-model-embed-bge-m3-infinity.service
        vram_mib: 2500
    headroom_mib: 512
  register: gpu_plan

- name: Start the chat model, stopping lower-priority models when needed
  gpu_service_gate:
    services:
      - name: litellm-model-chat-qwen2.5-7b-vllm.service
        vram_mib: 20000
        priority: 10
        start: true
    state: enforced
"""

RETURN = r"""
nvml:
  description: Whether NVML answered, why not, and the driver version.
  returned: always
  type: dict
gpus:
  description: Per GPU, C(index), C(name), C(total_mib), C(used_mib), C(free_mib) and C(mig).
  returned: always
  type: list
services:
  description:
    - Per service, its input and C(status) (C(running), C(fits), C(fits_after_stop), C(does_not_fit_now),
      C(never_fits), C(unavailable) or C(cpu)), C(device) (a GPU index, or C(index:migN)), C(stop) (units
      that would stop to make room) and C(reason), which gives the MiB needed and free.
  returned: always
  type: list
fit:
  description: Services that can start now, or once the units in I(stop) stop.
  returned: always
  type: list
stop:
  description: Units the plan would stop to make room.
  returned: always
  type: list
never_fit:
  description: Services no GPU they may use is large enough for.
  returned: always
  type: list
unavailable:
  description: GPU services that cannot be placed because NVML is not there.
  returned: always
  type: list
actions:
  description: The C(systemctl) actions taken (or, in check mode, that would be taken), in order.
  returned: always
  type: list
decision_ms:
  description: Time spent reading NVML and planning, in milliseconds.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.litellm_gpu_gate import FITS, FITS_AFTER_STOP, GateError, plan, read_gpus


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "services": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "vram_mib": {"type": "int", "default": 0},
                    "gpu_index": {"type": "int"},
                    "priority": {"type": "int", "default": 0},
                    "start": {"type": "bool", "default": False},
                    "start_unit": {"type": "str"},
                },
            },
            "headroom_mib": {"type": "int", "default": 512},
            "state": {"type": "str", "choices": ["planned", "enforced"], "default": "planned"},
        },
        supports_check_mode=True,
    )
    started = time.monotonic()
    try:
        result = plan(read_gpus(), module.params["services"], module.params["headroom_mib"])
    except GateError as exc:
        module.fail_json(msg=str(exc))
    result["decision_ms"] = round((time.monotonic() - started) * 1000, 3)
    result["actions"] = []
    if module.params["state"] == "enforced":
        enforce(module, result)
    module.exit_json(changed=bool(result["actions"]), **result)


def enforce(module: AnsibleModule, result: dict) -> None:
    systemctl = module.get_bin_path("systemctl", required=True)

    def active(unit: str) -> bool:
        return module.run_command([systemctl, "is-active", "--quiet", unit])[0] == 0

    def act(verb: str, unit: str) -> None:
        result["actions"].append(f"{verb} {unit}")
        if module.check_mode:
            return
        rc, _out, err = module.run_command([systemctl, verb, unit])
        if rc != 0:
            module.fail_json(msg=f"systemctl {verb} {unit} failed: {err.strip()}", **result)

    start_units = {
        service["name"]: service.get("start_unit") or service["name"] for service in module.params["services"]
    }
    for item in result["services"]:
        if not item["start"] or item["status"] not in (FITS, FITS_AFTER_STOP) or active(item["name"]):
            continue
        for unit in item["stop"]:
            if active(unit):
                act("stop", unit)
        # A start unit already up (a socket proxy whose model start was skipped) must start over.
        act("start" if start_units[item["name"]] == item["name"] else "restart", start_units[item["name"]])


if __name__ == "__main__":
    main()
