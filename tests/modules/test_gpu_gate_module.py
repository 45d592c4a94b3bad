"""The gpu_service_gate module run through Ansible, as a playbook runs it.

``import pynvml`` in the module gets the NVML double (tests/doubles/nvml on PYTHONPATH,
its figures in FAKE_NVML_STATE); systemctl is never reached here: enforcement with a real
systemd is checked in the Molecule scenario.
"""

from __future__ import annotations

import json

from conftest import PROJECT, run_module

DOUBLE = PROJECT / "tests" / "doubles" / "nvml"


def run_gate(args, state, tmp_path, check=False):
    state_file = tmp_path / "nvml.json"
    state_file.write_text(json.dumps(state))
    return run_module(
        "gpu_service_gate", args, check=check, env={"PYTHONPATH": str(DOUBLE), "FAKE_NVML_STATE": str(state_file)}
    )


STATE = {
    "gpus": [
        {"name": "L4", "total_mib": 23034, "processes": [{"pid": 1, "used_mib": 15000}]},
        {"name": "L4", "total_mib": 23034, "processes": []},
    ]
}
SERVICES = [
    {"name": "litellm-model-chat-big-vllm.service", "vram_mib": 20000, "priority": 10, "start": True},
    {"name": "litellm-model-embed-small-infinity.service", "vram_mib": 2000, "start": True},
    {"name": "litellm-model-chat-huge-vllm.service", "vram_mib": 40000},
    {"name": "litellm-model-chat-tiny-llamacpp.service", "vram_mib": 0},
]


def test_check_mode_plans_and_acts_on_nothing(tmp_path):
    rc, result, raw = run_gate({"services": SERVICES, "state": "enforced"}, STATE, tmp_path, check=True)
    assert rc == 0, raw
    statuses = {item["name"]: (item["status"], item["device"]) for item in result["services"]}
    assert statuses == {
        "litellm-model-chat-big-vllm.service": ("fits", "1"),
        "litellm-model-embed-small-infinity.service": ("fits", "0"),
        "litellm-model-chat-huge-vllm.service": ("never_fits", None),
        "litellm-model-chat-tiny-llamacpp.service": ("cpu", None),
    }
    # It would start the two that fit (no systemd runs here: an action would have failed).
    assert result["actions"] == [
        "start litellm-model-chat-big-vllm.service",
        "start litellm-model-embed-small-infinity.service",
    ]
    assert result["changed"] is True
    assert result["gpus"][0]["free_mib"] == 8034
    assert result["decision_ms"] >= 0


def test_planned_state_never_acts(tmp_path):
    rc, result, raw = run_gate({"services": SERVICES}, STATE, tmp_path)
    assert rc == 0, raw
    assert result["changed"] is False
    assert result["actions"] == []
    assert result["fit"] == ["litellm-model-chat-big-vllm.service", "litellm-model-embed-small-infinity.service"]
    assert result["never_fit"] == ["litellm-model-chat-huge-vllm.service"]


def test_without_a_driver_gpu_services_are_unavailable_not_failed(tmp_path):
    rc, result, raw = run_gate({"services": SERVICES, "state": "enforced"}, {"error": "DriverNotLoaded"}, tmp_path)
    assert rc == 0, raw
    assert result["nvml"]["available"] is False
    assert "Driver Not Loaded" in result["nvml"]["reason"]
    assert result["unavailable"] == [s["name"] for s in SERVICES if s["vram_mib"]]
    assert result["changed"] is False


def test_bad_input_fails_naming_the_field(tmp_path):
    rc, result, raw = run_gate({"services": [{"name": "x.service", "vram_mib": "much"}]}, STATE, tmp_path)
    assert rc != 0
    assert "vram_mib" in result.get("msg", raw)
