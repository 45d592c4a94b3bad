"""GPU-aware gating of local model services: what fits now, on which GPU, and what would
have to stop to make room (GPU-01, GPU-03).

Pure Python with no Ansible import, so that the same logic serves the ``gpu_service_gate``
module and, copied to the host, the ``ExecCondition=`` of every GPU unit (run as a
script: ``python3 litellm_gpu_gate.py check --unit U --vram-mib N``).

NVML is reached through ``pynvml`` (the ``nvidia-ml-py`` package). Every NVML error is
caught and reported with its reason: a host without a driver or a GPU gets a plan in which
GPU services are *unavailable*, never an exception.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, overload

# The shapes passed around, all JSON: read_gpus' snapshot, a GPU or MIG placement, a service of
# the planner's input (normalized), a service's decision.
Snapshot = dict[str, Any]
Placement = dict[str, Any]
Service = dict[str, Any]
Decision = dict[str, Any]
# The unit a process runs in (None: not a service), from its PID.
UnitOf = Callable[[int], "str | None"]

MIB = 1024 * 1024
# Units whose processes are ours, from a process's cgroup path.
_UNIT = re.compile(r"/([^/]+\.service)(?:/|$)")

# What a service's plan says, from best to worst.
RUNNING = "running"  # it holds VRAM now
FITS = "fits"  # it can start now
FITS_AFTER_STOP = "fits_after_stop"  # it can start once lower-priority services stop
WAITS = "does_not_fit_now"  # other processes hold the memory it needs
NEVER = "never_fits"  # no GPU it may use is big enough
UNAVAILABLE = "unavailable"  # no NVML, no driver or no GPU
CPU = "cpu"  # needs no GPU: not gated


class GateError(Exception):
    """Bad input to the planner; the message names the service and the field."""


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def unit_of_pid(pid: int, proc: str = "/proc") -> str | None:
    """The systemd service a process runs in (from its cgroup), or None."""
    try:
        with open(f"{proc}/{int(pid)}/cgroup", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, ValueError):
        return None
    for line in lines:
        # cgroup v2: "0::/system.slice/x.service"; v1: "N:name=systemd:/system.slice/x.service".
        if line.startswith("0::") or ":name=systemd:" in line:
            found = _UNIT.findall(line.split(":", 2)[2])
            if found:
                return found[-1]
    return None


def _processes(nvml: Any, handle: Any, unit_of: UnitOf) -> list[dict[str, Any]]:
    processes = []
    for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle) or []:
        used = getattr(process, "usedGpuMemory", None)
        processes.append(
            {
                "pid": int(process.pid),
                # None when the driver cannot tell (some vGPU/MIG setups): counted as 0.
                "used_mib": int(used) // MIB if used else 0,
                "unit": unit_of(process.pid),
            }
        )
    return processes


def _memory(nvml: Any, handle: Any) -> dict[str, int]:
    info = nvml.nvmlDeviceGetMemoryInfo(handle)
    return {"total_mib": int(info.total) // MIB, "used_mib": int(info.used) // MIB, "free_mib": int(info.free) // MIB}


def _mig_instances(nvml: Any, handle: Any, unit_of: UnitOf) -> list[dict[str, Any]]:
    instances = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError:
            continue  # an empty slot
        instance = {"slot": slot, "uuid": _text(nvml.nvmlDeviceGetUUID(mig)), **_memory(nvml, mig)}
        try:
            instance["processes"] = _processes(nvml, mig, unit_of)
        except nvml.NVMLError as error:
            instance["processes"] = []
            instance["processes_error"] = str(error)
        instances.append(instance)
    return instances


def read_gpus(nvml: Any = None, unit_of: UnitOf = unit_of_pid) -> Snapshot:
    """Read every GPU's memory, MIG mode and compute processes.

    Returns ``{"available": bool, "reason": str|None, "driver": str|None, "gpus": [...]}``.
    ``nvml`` is the ``pynvml`` module or a double with the same functions.
    """
    if nvml is None:
        try:
            nvml = _import_pynvml()
        except ImportError as error:
            return {"available": False, "reason": f"pynvml is not installed ({error})", "driver": None, "gpus": []}
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        return {"available": False, "reason": f"NVML: {error}", "driver": None, "gpus": []}
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            gpu: dict[str, Any] = {
                "index": index,
                "name": _text(nvml.nvmlDeviceGetName(handle)),
                **_memory(nvml, handle),
            }
            try:
                gpu["mig"] = bool(nvml.nvmlDeviceGetMigMode(handle)[0])
            except nvml.NVMLError:
                gpu["mig"] = False  # NotSupported: a GPU without MIG
            if gpu["mig"]:
                gpu["instances"] = _mig_instances(nvml, handle, unit_of)
                gpu["processes"] = [process for instance in gpu["instances"] for process in instance["processes"]]
            else:
                gpu["processes"] = _processes(nvml, handle, unit_of)
            gpus.append(gpu)
    except nvml.NVMLError as error:
        return {"available": False, "reason": f"NVML: {error}", "driver": None, "gpus": []}
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
    if not gpus:
        return {"available": False, "reason": "NVML reports no GPU", "driver": driver, "gpus": []}
    return {"available": True, "reason": None, "driver": driver, "gpus": gpus}


def devices(snapshot: Snapshot) -> list[Placement]:
    """Where a service can be placed: each GPU, or each MIG instance of a GPU in MIG mode."""
    placements = []
    for gpu in snapshot["gpus"]:
        if gpu.get("mig"):
            for instance in gpu.get("instances", []):
                placements.append(
                    {
                        "id": f"{gpu['index']}:mig{instance['slot']}",
                        "gpu": gpu["index"],
                        "total_mib": instance["total_mib"],
                        "free_mib": instance["free_mib"],
                        "processes": instance["processes"],
                    }
                )
        else:
            placements.append(
                {
                    "id": str(gpu["index"]),
                    "gpu": gpu["index"],
                    "total_mib": gpu["total_mib"],
                    "free_mib": gpu["free_mib"],
                    "processes": gpu["processes"],
                }
            )
    return placements


@overload
def _whole(where: str, field: str, value: Any, default: int) -> int: ...
@overload
def _whole(where: str, field: str, value: Any, default: None = None) -> int | None: ...
def _whole(where: str, field: str, value: Any, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool):
        raise GateError(f"{where}: {field} must be a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise GateError(f"{where}: {field} must be a whole number, got {value!r}") from None
    if number < 0:
        raise GateError(f"{where}: {field} must be 0 or more, got {value!r}")
    return number


def normalize_services(services: object) -> list[Service]:
    """Check the planner's input; each service is ``{name, vram_mib, gpu_index?, priority?}``."""
    if not isinstance(services, list):
        raise GateError(f"services must be a list, got {type(services).__name__}")
    seen, result = set(), []
    for position, service in enumerate(services):
        where = f"services[{position}]"
        if not isinstance(service, dict) or not service.get("name"):
            raise GateError(f"{where}: each service needs a name (its systemd unit)")
        name = str(service["name"])
        where = f"services[{position}] ({name})"
        if name in seen:
            raise GateError(f"{where}: the service is listed twice")
        seen.add(name)
        result.append(
            {
                "name": name,
                "vram_mib": _whole(where, "vram_mib", service.get("vram_mib"), 0),
                "gpu_index": _whole(where, "gpu_index", service.get("gpu_index")),
                "priority": int(_whole(where, "priority", service.get("priority"), 0)),
                "start": bool(service.get("start", False)),
            }
        )
    return result


def _decision(
    service: Service, status: str, reason: str, device: str | None = None, stop: Sequence[str] = ()
) -> Decision:
    """A service's plan: its input, what the planner decided, where, what would stop, and why."""
    return {**service, "status": status, "device": device, "stop": list(stop), "reason": reason}


def plan(snapshot: Snapshot, services: object, headroom_mib: object = 0) -> dict[str, Any]:
    """Decide, for each service, whether it runs, fits now, fits once others stop, or never fits.

    Services are placed by priority (highest first), each on the allowed device with the most
    free memory, keeping ``headroom_mib`` free on every device. Memory held by the services'
    own running processes counts as theirs; memory of other processes is never reclaimed.
    """
    services = normalize_services(services)
    headroom = _whole("headroom_mib", "headroom_mib", headroom_mib, 0)
    decisions = {}
    for service in services:
        if service["vram_mib"] == 0:
            decisions[service["name"]] = _decision(service, CPU, "needs no GPU")
        elif not snapshot["available"]:
            decisions[service["name"]] = _decision(service, UNAVAILABLE, snapshot["reason"])
    gpu_services = [service for service in services if service["name"] not in decisions]
    places = devices(snapshot) if gpu_services else []
    by_name = {service["name"]: service for service in services}

    # Free memory per device as planned so far, and which of our services hold memory where.
    free = {place["id"]: place["free_mib"] - headroom for place in places}
    holders: dict[str, dict[str, int]] = {place["id"]: {} for place in places}
    for place in places:
        for process in place["processes"]:
            if process["unit"] in by_name:
                holders[place["id"]][process["unit"]] = (
                    holders[place["id"]].get(process["unit"], 0) + process["used_mib"]
                )
    for service in gpu_services:
        where = [place_id for place_id, units in holders.items() if service["name"] in units]
        if where:
            decisions[service["name"]] = _decision(
                service,
                RUNNING,
                f"running on GPU {where[0]} with {holders[where[0]][service['name']]} MiB",
                device=where[0],
            )

    waiting = sorted(
        (service for service in gpu_services if service["name"] not in decisions),
        key=lambda service: (-service["priority"], service["name"]),
    )
    for service in waiting:
        need = service["vram_mib"]
        allowed = [place for place in places if service["gpu_index"] in (None, place["gpu"])]
        if not allowed:
            decisions[service["name"]] = _decision(
                service, NEVER, f"no GPU with index {service['gpu_index']} (GPUs: {len({p['gpu'] for p in places})})"
            )
            continue
        fitting = [place for place in allowed if free[place["id"]] >= need]
        if fitting:
            best = max(fitting, key=lambda place: (free[place["id"]], -int(place["gpu"])))
            free[best["id"]] -= need
            decisions[service["name"]] = _decision(
                service,
                FITS,
                f"needs {need} MiB + {headroom} MiB headroom; GPU {best['id']} has "
                f"{free[best['id']] + need + headroom} MiB free",
                device=best["id"],
            )
            continue
        # Which lower-priority services of ours would have to stop, lowest priority first.
        options = []
        for place in allowed:
            available, stop = free[place["id"]], []
            candidates = sorted(
                (
                    (by_name[unit]["priority"], unit, used)
                    for unit, used in holders[place["id"]].items()
                    if by_name[unit]["priority"] < service["priority"]
                    and decisions.get(unit, {}).get("status") == RUNNING
                ),
            )
            for _priority, unit, used in candidates:
                if available >= need:
                    break
                available += used
                stop.append(unit)
            if available >= need:
                options.append((len(stop), -available, place["id"], stop, available))
        if options:
            _count, _available, place_id, stop, available = min(options)
            free[place_id] = available - need
            for unit in stop:
                holders[place_id].pop(unit, None)
            decisions[service["name"]] = _decision(
                service,
                FITS_AFTER_STOP,
                f"needs {need} MiB + {headroom} MiB headroom; fits on GPU {place_id} once {', '.join(stop)} stop",
                device=place_id,
                stop=stop,
            )
            continue
        biggest = max(allowed, key=lambda place: place["total_mib"])
        if need + headroom > biggest["total_mib"]:
            status = NEVER
            reason = (
                f"needs {need} MiB + {headroom} MiB headroom; the largest GPU it may use "
                f"({biggest['id']}) has {biggest['total_mib']} MiB in total"
            )
        else:
            status = WAITS
            best = max(allowed, key=lambda place: free[place["id"]])
            reason = (
                f"needs {need} MiB + {headroom} MiB headroom; GPU {best['id']} has "
                f"{max(free[best['id']] + headroom, 0)} MiB free (other processes hold the rest)"
            )
        decisions[service["name"]] = _decision(service, status, reason)

    ordered = [decisions[service["name"]] for service in services]
    return {
        "nvml": {"available": snapshot["available"], "reason": snapshot["reason"], "driver": snapshot.get("driver")},
        "gpus": [
            {key: gpu[key] for key in ("index", "name", "total_mib", "used_mib", "free_mib", "mig")}
            for gpu in snapshot["gpus"]
        ],
        "services": ordered,
        "fit": [item["name"] for item in ordered if item["status"] in (FITS, FITS_AFTER_STOP)],
        "stop": sorted({unit for item in ordered for unit in item["stop"]}),
        "never_fit": [item["name"] for item in ordered if item["status"] == NEVER],
        "unavailable": [item["name"] for item in ordered if item["status"] == UNAVAILABLE],
    }


def check(
    unit: str,
    vram_mib: int,
    gpu_index: int | None = None,
    headroom_mib: int = 0,
    nvml: Any = None,
    unit_of: UnitOf = unit_of_pid,
) -> tuple[bool, str]:
    """The start-time check: (fits, message). Only memory free now counts; nothing is stopped."""
    started = time.monotonic()
    snapshot = read_gpus(nvml, unit_of)
    decision = plan(snapshot, [{"name": unit, "vram_mib": vram_mib, "gpu_index": gpu_index}], headroom_mib)
    item = decision["services"][0]
    elapsed = (time.monotonic() - started) * 1000
    fits = item["status"] in (FITS, RUNNING, CPU)
    verdict = "starting" if fits else "not starting"
    where = f" on GPU {item['device']}" if fits and item["device"] is not None else ""
    return fits, f"{unit}: {verdict}{where}: {item['reason']} ({item['status']}, decided in {elapsed:.1f} ms)"


def main(argv: Sequence[str] | None = None, nvml: Any = None) -> int:
    parser = argparse.ArgumentParser(description="GPU gate of local model services (ExecCondition=).")
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="exit 0 when the unit fits on a GPU now, 1 when not")
    check_parser.add_argument("--unit", required=True)
    check_parser.add_argument("--vram-mib", type=int, required=True)
    check_parser.add_argument("--gpu-index", type=int)
    check_parser.add_argument("--headroom-mib", type=int, default=0)
    plan_parser = commands.add_parser("plan", help="print the plan for a JSON list of services (stdin)")
    plan_parser.add_argument("--headroom-mib", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            fits, message = check(args.unit, args.vram_mib, args.gpu_index, args.headroom_mib, nvml=nvml)
            print(message, flush=True)
            # ExecCondition=: 1 skips the unit without failing it; 255 would mark it failed.
            return 0 if fits else 1
        result = plan(read_gpus(nvml), json.load(sys.stdin), args.headroom_mib)
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    except GateError as error:
        print(f"gpu gate: {error}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
