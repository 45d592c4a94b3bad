"""The GPU gate's planner (module_utils/litellm_gpu_gate.py) against the NVML double.

The double (tests/doubles/nvml/pynvml.py) has pynvml's functions and exception classes;
the real NVML path runs on a GPU machine when one is lent (see the issue's closing note).
"""

from __future__ import annotations

import importlib.util

import ansible.module_utils
import pytest
from conftest import PROJECT

ansible.module_utils.__path__.append(str(PROJECT / "module_utils"))  # type: ignore[attr-defined]

from ansible.module_utils import litellm_gpu_gate as gate  # noqa: E402

_spec = importlib.util.spec_from_file_location("fake_pynvml", PROJECT / "tests/doubles/nvml/pynvml.py")
fake_pynvml = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_pynvml)

# Process ids of our units in the double's process lists.
UNITS = {101: "litellm-model-chat-a.service", 102: "litellm-model-chat-b.service", 900: None}


def snapshot(state):
    return gate.read_gpus(fake_pynvml.FakeNvml(state), unit_of=UNITS.get)


def by_name(result):
    return {item["name"]: item for item in result["services"]}


def two_gpus(processes0=(), processes1=()):
    return {
        "driver": "550.54.15",
        "gpus": [
            {"name": "RTX 4090", "total_mib": 24564, "processes": list(processes0)},
            {"name": "RTX 3060", "total_mib": 12288, "processes": list(processes1)},
        ],
    }


@pytest.mark.parametrize(
    ("error", "reason"),
    [("LibraryNotFound", "NVML: NVML Shared Library Not Found"), ("DriverNotLoaded", "NVML: Driver Not Loaded")],
)
def test_without_nvml_gpu_services_are_unavailable_and_cpu_services_unaffected(error, reason):
    result = gate.plan(
        snapshot({"error": error}),
        [{"name": "gpu.service", "vram_mib": 1024}, {"name": "cpu.service", "vram_mib": 0}],
    )
    decisions = by_name(result)
    assert result["nvml"]["available"] is False
    assert decisions["gpu.service"]["status"] == gate.UNAVAILABLE
    assert decisions["gpu.service"]["reason"] == reason
    assert decisions["cpu.service"]["status"] == gate.CPU
    assert result["unavailable"] == ["gpu.service"]
    assert result["fit"] == []


def test_without_pynvml_installed_the_reason_says_so(monkeypatch):
    def missing():
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(gate, "_import_pynvml", missing)
    result = gate.read_gpus()
    assert result["available"] is False
    assert "pynvml is not installed" in result["reason"]


def test_a_driver_error_while_reading_is_reported_and_nvml_shut_down():
    nvml = fake_pynvml.FakeNvml({"gpus": [{"total_mib": 8192, "fail": {"nvmlDeviceGetMemoryInfo": "GpuIsLost"}}]})
    result = gate.read_gpus(nvml, unit_of=UNITS.get)
    assert result == {"available": False, "reason": "NVML: GPU is lost", "driver": None, "gpus": []}
    assert nvml.initialized == 0


def test_no_gpu_at_all_is_unavailable():
    assert snapshot({"gpus": []})["reason"] == "NVML reports no GPU"


def test_services_go_to_the_gpu_with_most_free_memory_and_use_it_up():
    state = two_gpus(processes0=[{"pid": 900, "used_mib": 20000}])
    result = gate.plan(
        snapshot(state),
        [
            {"name": "big.service", "vram_mib": 8000, "priority": 10},
            {"name": "small.service", "vram_mib": 3000, "priority": 5},
            {"name": "pinned.service", "vram_mib": 4000, "gpu_index": 0},
        ],
        headroom_mib=512,
    )
    decisions = by_name(result)
    # GPU 0 has 4564 MiB free (another process holds 20000), GPU 1 has 12288.
    assert decisions["big.service"]["device"] == "1"
    assert decisions["big.service"]["status"] == gate.FITS
    # What big takes is gone: 12288 - 512 - 8000 = 3776 on GPU 1 against 4052 on GPU 0.
    assert decisions["small.service"]["device"] == "0"
    # GPU 0 has 4564 - 512 - 3000 left: the pinned one has to wait for the other process.
    assert decisions["pinned.service"]["status"] == gate.WAITS
    assert "other processes hold the rest" in decisions["pinned.service"]["reason"]
    assert result["fit"] == ["big.service", "small.service"]


def test_the_planned_figures_come_from_nvml():
    state = two_gpus(processes0=[{"pid": 900, "used_mib": 1000}])
    result = gate.plan(snapshot(state), [{"name": "x.service", "vram_mib": 1}])
    assert result["gpus"][0] == {
        "index": 0,
        "name": "RTX 4090",
        "total_mib": 24564,
        "used_mib": 1000,
        "free_mib": 23564,
        "mig": False,
    }
    assert result["nvml"] == {"available": True, "reason": None, "driver": "550.54.15"}


def test_a_running_service_is_recognised_by_its_cgroup_and_can_be_displaced_by_priority():
    state = {
        "gpus": [{"total_mib": 16384, "processes": [{"pid": 101, "used_mib": 10000}, {"pid": 900, "used_mib": 2000}]}]
    }
    services = [
        {"name": "litellm-model-chat-a.service", "vram_mib": 10000, "priority": 1},
        {"name": "litellm-model-chat-b.service", "vram_mib": 9000, "priority": 5},
    ]
    decisions = by_name(gate.plan(snapshot(state), services, headroom_mib=256))
    assert decisions["litellm-model-chat-a.service"]["status"] == gate.RUNNING
    assert decisions["litellm-model-chat-b.service"]["status"] == gate.FITS_AFTER_STOP
    assert decisions["litellm-model-chat-b.service"]["stop"] == ["litellm-model-chat-a.service"]

    # The same priority does not displace: b waits.
    services[1]["priority"] = 1
    decisions = by_name(gate.plan(snapshot(state), services, headroom_mib=256))
    assert decisions["litellm-model-chat-b.service"]["status"] == gate.WAITS
    assert decisions["litellm-model-chat-b.service"]["stop"] == []


def test_more_than_the_largest_gpu_never_fits():
    result = gate.plan(snapshot(two_gpus()), [{"name": "huge.service", "vram_mib": 30000}], headroom_mib=0)
    assert by_name(result)["huge.service"]["status"] == gate.NEVER
    assert "24564 MiB in total" in by_name(result)["huge.service"]["reason"]
    assert result["never_fit"] == ["huge.service"]


def test_a_gpu_index_that_does_not_exist_never_fits():
    decision = by_name(gate.plan(snapshot(two_gpus()), [{"name": "x.service", "vram_mib": 1, "gpu_index": 4}]))
    assert decision["x.service"]["status"] == gate.NEVER
    assert "no GPU with index 4" in decision["x.service"]["reason"]


def test_mig_instances_are_the_places_and_their_size_is_the_limit():
    state = {
        "gpus": [
            {
                "name": "A100",
                "total_mib": 40960,
                "mig": True,
                "instances": [
                    {"total_mib": 9856, "processes": [{"pid": 101, "used_mib": 4000}]},
                    None,
                    {"total_mib": 9856, "processes": []},
                ],
            },
            {"name": "T4", "total_mib": 15360},  # MIG not supported: NotSupported
        ]
    }
    snap = snapshot(state)
    assert snap["gpus"][0]["mig"] is True
    assert snap["gpus"][1]["mig"] is False
    assert [place["id"] for place in gate.devices(snap)] == ["0:mig0", "0:mig2", "1"]
    result = gate.plan(
        snap,
        [
            {"name": "litellm-model-chat-a.service", "vram_mib": 4000},
            {"name": "mid.service", "vram_mib": 9000, "gpu_index": 0},
            {"name": "wide.service", "vram_mib": 12000, "gpu_index": 0},
        ],
    )
    decisions = by_name(result)
    assert decisions["litellm-model-chat-a.service"] == {
        **decisions["litellm-model-chat-a.service"],
        "status": gate.RUNNING,
        "device": "0:mig0",
    }
    assert decisions["mid.service"]["device"] == "0:mig2"
    # 12000 MiB is less than the A100's 40960, but more than any instance has.
    assert decisions["wide.service"]["status"] == gate.NEVER


def test_unknown_process_memory_counts_as_zero():
    state = {"gpus": [{"total_mib": 8192, "used_mib": 0, "processes": [{"pid": 101, "used_mib": None}]}]}
    snap = snapshot(state)
    assert snap["gpus"][0]["processes"] == [{"pid": 101, "used_mib": 0, "unit": "litellm-model-chat-a.service"}]


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ({"name": "x"}, "services must be a list"),
        ([{"vram_mib": 1}], "services[0]: each service needs a name"),
        ([{"name": "x", "vram_mib": "lots"}], "services[0] (x): vram_mib must be a whole number, got 'lots'"),
        ([{"name": "x", "vram_mib": -1}], "services[0] (x): vram_mib must be 0 or more"),
        ([{"name": "x"}, {"name": "x"}], "services[1] (x): the service is listed twice"),
    ],
)
def test_bad_input_names_the_service_and_field(services, message):
    with pytest.raises(gate.GateError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        gate.plan(snapshot(two_gpus()), services)


def test_the_start_time_check_says_needed_and_free(tmp_path, capsys):
    state = {"gpus": [{"total_mib": 8192, "processes": [{"pid": 900, "used_mib": 7000}]}]}
    fits, message = gate.check("litellm-model-chat-a.service", 2048, headroom_mib=256, nvml=fake_pynvml.FakeNvml(state))
    assert not fits
    assert "not starting" in message
    assert "needs 2048 MiB + 256 MiB headroom" in message
    assert "1192 MiB free" in message

    assert gate.main(["check", "--unit", "u.service", "--vram-mib", "1024"], nvml=fake_pynvml.FakeNvml(state)) == 0
    assert "u.service: starting on GPU 0" in capsys.readouterr().out
    assert gate.main(["check", "--unit", "u.service", "--vram-mib", "4096"], nvml=fake_pynvml.FakeNvml(state)) == 1
    assert (
        gate.main(
            ["check", "--unit", "u.service", "--vram-mib", "1"], nvml=fake_pynvml.FakeNvml({"error": "DriverNotLoaded"})
        )
        == 1
    )
    assert "Driver Not Loaded" in capsys.readouterr().out


def test_the_cgroup_names_the_unit(tmp_path):
    for pid, text in {
        1: "0::/system.slice/litellm-model-chat-a.service\n",
        2: "12:name=systemd:/system.slice/ollama.service/sub\n0::/\n",
        3: "0::/user.slice/user-0.slice/session-1.scope\n",
    }.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(text)
    assert gate.unit_of_pid(1, proc=tmp_path) == "litellm-model-chat-a.service"
    assert gate.unit_of_pid(2, proc=tmp_path) == "ollama.service"
    assert gate.unit_of_pid(3, proc=tmp_path) is None
    assert gate.unit_of_pid(4, proc=tmp_path) is None
