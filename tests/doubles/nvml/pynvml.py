"""A double of ``pynvml`` (nvidia-ml-py) for hosts without a GPU.

It has the functions and exception classes the GPU gate calls, with the same names,
arguments and return shapes, and answers from a described state. Two ways to use it:

- in unit tests: ``FakeNvml(state)`` is passed where the ``pynvml`` module would be;
- on a test host: this directory on ``PYTHONPATH`` and ``FAKE_NVML_STATE`` naming a JSON
  file, so ``import pynvml`` in an unmodified program gets the double. The file is read at
  every ``nvmlInit()``, so a test can change the figures between two starts.

State: ``{"error": null, "driver": "550.54.15", "gpus": [{"name": "...", "total_mib": 24576,
"used_mib": 0, "processes": [{"pid": 1, "used_mib": 512}], "mig": false, "instances": [...],
"fail": {"nvmlDeviceGetMemoryInfo": "Unknown"}}]}``. ``error`` names an NVML error class
(``LibraryNotFound``, ``DriverNotLoaded``, ...) that ``nvmlInit`` raises.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

MIB = 1024 * 1024


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_NotFound(NVMLError):
    pass


class NVMLError_Unknown(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


_ERRORS = {
    "LibraryNotFound": (NVMLError_LibraryNotFound, "NVML Shared Library Not Found"),
    "DriverNotLoaded": (NVMLError_DriverNotLoaded, "Driver Not Loaded"),
    "NotSupported": (NVMLError_NotSupported, "Not Supported"),
    "NotFound": (NVMLError_NotFound, "Not Found"),
    "Unknown": (NVMLError_Unknown, "Unknown Error"),
    "GpuIsLost": (NVMLError_GpuIsLost, "GPU is lost"),
}


def _raise(name):
    cls, text = _ERRORS[name]
    raise cls(text)


class FakeNvml:
    NVMLError = NVMLError
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound

    def __init__(self, state=None, path=None):
        self._state, self._path = state, path
        self.initialized = 0

    # -- what the gate calls -------------------------------------------------
    def nvmlInit(self):
        if self._path:
            with open(self._path, encoding="utf-8") as handle:
                self._state = json.load(handle)
        if self._state.get("error"):
            _raise(self._state["error"])
        self.initialized += 1

    def nvmlShutdown(self):
        self.initialized -= 1

    def nvmlSystemGetDriverVersion(self):
        return self._state.get("driver", "550.54.15")

    def nvmlDeviceGetCount(self):
        return len(self._state.get("gpus", []))

    def nvmlDeviceGetHandleByIndex(self, index):
        gpus = self._state.get("gpus", [])
        if not 0 <= index < len(gpus):
            _raise("NotFound")
        return ("gpu", index)

    def _device(self, handle, call):
        gpu = self._state["gpus"][handle[1]]
        failure = gpu.get("fail", {}).get(call)
        if failure:
            _raise(failure)
        if handle[0] == "mig":
            return gpu["instances"][handle[2]]
        return gpu

    def nvmlDeviceGetName(self, handle):
        return self._device(handle, "nvmlDeviceGetName").get("name", "NVIDIA Test GPU")

    def nvmlDeviceGetUUID(self, handle):
        device = self._device(handle, "nvmlDeviceGetUUID")
        return device.get("uuid", f"GPU-fake-{handle[1]}{'-' + str(handle[2]) if handle[0] == 'mig' else ''}")

    def nvmlDeviceGetMemoryInfo(self, handle):
        device = self._device(handle, "nvmlDeviceGetMemoryInfo")
        total = device["total_mib"] * MIB
        used = device.get("used_mib", sum(p.get("used_mib") or 0 for p in device.get("processes", []))) * MIB
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        device = self._device(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [
            SimpleNamespace(
                pid=process["pid"],
                usedGpuMemory=None if process.get("used_mib") is None else process["used_mib"] * MIB,
            )
            for process in device.get("processes", [])
        ]

    def nvmlDeviceGetMigMode(self, handle):
        device = self._device(handle, "nvmlDeviceGetMigMode")
        if "mig" not in device:
            _raise("NotSupported")
        mode = int(bool(device["mig"]))
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return self._device(handle, "nvmlDeviceGetMaxMigDeviceCount").get("max_instances", 7)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        instances = self._device(handle, "nvmlDeviceGetMigDeviceHandleByIndex").get("instances", [])
        if index >= len(instances) or instances[index] is None:
            _raise("NotFound")
        return ("mig", handle[1], index)


# On a test host: ``import pynvml`` gets a module whose functions answer from FAKE_NVML_STATE.
if os.environ.get("FAKE_NVML_STATE"):
    _instance = FakeNvml(path=os.environ["FAKE_NVML_STATE"])
    for _name in dir(FakeNvml):
        if _name.startswith("nvml") and not _name.startswith("nvmlError"):
            globals()[_name] = getattr(_instance, _name)
