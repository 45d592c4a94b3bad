"""The model catalogue filters: what they accept, what they refuse and what they render."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("litellm_catalogue", PROJECT / "filter_plugins" / "litellm_catalogue.py")
cat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cat)

INVENTORY = yaml.safe_load((PROJECT / "inventory" / "group_vars" / "all" / "models.yml").read_text())

LOCAL = {
    "name": "chat-qwen2.5-0.5b-llamacpp",
    "kind": "chat",
    "engine": "llamacpp",
    "model": "qwen",
    "api_base": "http://127.0.0.1:8080/v1",
    "fallbacks": ["chat-gpt-4o-mini-openai"],
}
CLOUD = {"name": "chat-gpt-4o-mini-openai", "kind": "chat", "engine": "openai", "model": "gpt-4o-mini"}


def models(*changes):
    entries = [dict(LOCAL), dict(CLOUD)]
    for index, change in changes:
        entries[index].update(change)
        entries[index] = {k: v for k, v in entries[index].items() if v is not None}
    return entries


def test_the_default_inventory_is_valid():
    catalogue = cat.litellm_catalogue(INVENTORY["gateway_models"], INVENTORY["gateway_model_aliases"])
    assert {m["name"] for m in catalogue} >= {"chat-selftest-mock"}


def test_local_models_get_timeout_and_rpm_and_vision_max_tokens():
    """GPU-02."""
    vision = {
        "name": "vision-qwen3-vl-4b-ollama",
        "kind": "vision",
        "engine": "ollama",
        "model": "qwen3-vl:4b",
        "api_base": "http://127.0.0.1:11434",
    }
    catalogue = cat.litellm_catalogue([*models(), vision], defaults={"local_rpm": 12})
    by_name = {m["name"]: m for m in catalogue}
    assert (by_name[LOCAL["name"]]["timeout"], by_name[LOCAL["name"]]["rpm"]) == (120, 12)
    assert by_name["vision-qwen3-vl-4b-ollama"]["max_tokens"] == 4096
    assert by_name[CLOUD["name"]]["timeout"] is None
    assert by_name[CLOUD["name"]]["rpm"] is None
    params = {e["model_name"]: e["litellm_params"] for e in cat.litellm_model_list(catalogue)}
    assert params["vision-qwen3-vl-4b-ollama"]["model"] == "ollama_chat/qwen3-vl:4b"
    assert params[CLOUD["name"]] == {"model": "openai/gpt-4o-mini", "api_key": "os.environ/OPENAI_API_KEY"}


def test_an_alias_is_served_and_falls_back_like_its_model():
    """GPU-03: chat-default falls back to the cloud model."""
    aliases = {"chat-default": LOCAL["name"]}
    catalogue = cat.litellm_catalogue(models(), aliases)
    served = [e["model_name"] for e in cat.litellm_model_list(catalogue, aliases)]
    assert served == [LOCAL["name"], CLOUD["name"], "chat-default"]
    assert cat.litellm_fallbacks(catalogue, aliases) == [
        {LOCAL["name"]: [CLOUD["name"]]},
        {"chat-default": [CLOUD["name"]]},
    ]


def test_every_entry_has_a_stable_id_of_its_own():
    """MT-03, MT-05: config.yaml and the model table name each deployment by the same id, every run."""
    aliases = {"chat-default": LOCAL["name"]}
    entries = cat.litellm_model_list(cat.litellm_catalogue(models(), aliases), aliases)
    ids = [e["model_info"]["id"] for e in entries]
    assert len(set(ids)) == len(ids) == 3
    again = cat.litellm_model_list(cat.litellm_catalogue(models(), aliases), aliases)
    assert ids == [e["model_info"]["id"] for e in again]
    assert ids[0] == cat.litellm_model_id(LOCAL["name"]) != cat.litellm_model_id(LOCAL["name"] + "x")


def test_provider_api_base_applies_to_cloud_models_without_their_own():
    catalogue = cat.litellm_catalogue(models())
    params = {
        e["model_name"]: e["litellm_params"]
        for e in cat.litellm_model_list(catalogue, None, {"openai": "http://relay/v1"})
    }
    assert params[CLOUD["name"]]["api_base"] == "http://relay/v1"
    assert params[LOCAL["name"]]["api_base"] == LOCAL["api_base"]


@pytest.mark.parametrize(
    ("change", "aliases", "message"),
    [
        ((0, {"name": "chat-qwen-ollama"}), None, "gateway_models[0] (chat-qwen-ollama): name must follow"),
        ((0, {"name": "embed-qwen-llamacpp"}), None, "name must follow [type]-[name]-[engine]"),
        ((0, {"name": "chat-Qwen-llamacpp"}), None, "name must follow"),
        ((0, {"kind": "audio"}), None, "kind must be one of"),
        ((0, {"engine": "lmstudio"}), None, "engine must be one of"),
        ((0, {"api_base": None}), None, "api_base is required for a local model"),
        ((0, {"api_base": "127.0.0.1:8080"}), None, "api_base must be an http(s) URL"),
        ((0, {"timeout": "soon"}), None, "timeout must be a whole number"),
        ((0, {"rpm": 0}), None, "rpm must be greater than 0"),
        ((0, {"fallbacks": ["chat-nothing-openai"]}), None, "fallback 'chat-nothing-openai' is not in gateway_models"),
        ((0, {"litellm_params": {"api_key": "sk-123"}}), None, "must not carry api_key"),
        ((0, {"colour": "red"}), None, "unknown field(s) colour"),
        (
            (1, {"name": LOCAL["name"], "engine": "llamacpp", "api_base": "http://127.0.0.1:9/v1"}),
            None,
            "is declared twice (GPU-04)",
        ),
        ((1, {"vram_mib": 100}), None, "vram_mib is only for local engines"),
        ((1, {"api_key_env": "openai-key"}), None, "api_key_env must be an environment variable name"),
        ((0, {}), {"chat-default": "chat-missing-openai"}, "points at 'chat-missing-openai'"),
        ((0, {}), {"default": LOCAL["name"]}, "an alias starts with its type"),
        ((0, {}), {"embed-default": LOCAL["name"]}, "is named as another type"),
        ((0, {}), {CLOUD["name"]: LOCAL["name"]}, "is also a model name"),
    ],
)
def test_bad_entries_are_refused_with_the_field_named(change, aliases, message):
    with pytest.raises(cat.AnsibleFilterError) as error:
        cat.litellm_catalogue(models(change), aliases)
    assert message in str(error.value)


def test_two_entries_for_one_model_are_refused():
    """GPU-04: the same model served twice from one place is merged, not duplicated."""
    twin = dict(LOCAL, name="chat-qwen-twin-llamacpp", fallbacks=[])
    with pytest.raises(cat.AnsibleFilterError, match="serve the same model from the same place"):
        cat.litellm_catalogue([*models(), twin])


def test_a_mock_model_needs_its_answer():
    with pytest.raises(cat.AnsibleFilterError, match="needs mock_response"):
        cat.litellm_catalogue([{"name": "chat-selftest-mock", "kind": "chat", "engine": "mock"}])


def services(*entries, host=None, **settings):
    return cat.litellm_model_services(cat.litellm_catalogue([*entries, dict(CLOUD)]), settings, host)


GGUF = {"model_path": "/var/lib/litellm-models/qwen.gguf"}


def test_the_default_inventory_runs_its_local_model_behind_a_socket():
    (service,) = cat.litellm_model_services(cat.litellm_catalogue(INVENTORY["gateway_models"]))
    assert service["unit"] == "litellm-model-chat-qwen2.5-0.5b-llamacpp"
    assert (service["listen"], service["port"], service["backend_port"]) == ("127.0.0.1", 8080, 18080)
    assert service["gpu"] is True
    assert service["vram_mib"] == 1024
    assert service["idle_stop"] == 300


def test_a_model_service_takes_its_settings_and_the_role_defaults():
    (service,) = services(
        dict(LOCAL, vram_mib=0, service=dict(GGUF, idle_stop=20, backend_port=9999, args=["--verbose", 1])),
        idle_stop=60,
    )
    assert service["gpu"] is False
    assert service["idle_stop"] == 20
    assert service["backend_port"] == 9999
    assert service["args"] == ["--verbose", "1"]
    (service,) = services(dict(LOCAL, service=GGUF), idle_stop=60)
    assert service["idle_stop"] == 60


def test_only_the_hosts_named_run_a_model():
    entry = dict(LOCAL, service=dict(GGUF, hosts=["gpu1"]))
    assert [s["name"] for s in services(entry, host="gpu1")] == [LOCAL["name"]]
    assert services(entry, host="gpu2") == []
    assert len(services(dict(LOCAL, service=GGUF), host="gpu2")) == 1


def test_a_model_run_elsewhere_is_not_managed():
    assert services(dict(LOCAL, service=dict(GGUF, managed=False))) == []


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({}, "a llama.cpp model needs model_path"),
        ({"model_path": "qwen.gguf"}, "model_path must be absolute"),
        ({"model_url": "https://example.net/q.gguf"}, "model_sha256 (64 hex digits) is required with model_url"),
        (dict(GGUF, colour="red"), "unknown field(s) colour"),
        (dict(GGUF, backend_port=70000), "backend_port must be a TCP port"),
        (dict(GGUF, backend_port=8080), "port 8080 is also used by chat-qwen2.5-0.5b-llamacpp"),
        (dict(GGUF, args="--verbose"), "args must be a list"),
        (dict(GGUF, idle_stop=0), "idle_stop must be greater than 0"),
    ],
)
def test_bad_services_are_refused_with_the_field_named(service, message):
    with pytest.raises(cat.AnsibleFilterError) as error:
        services(dict(LOCAL, service=service))
    assert message in str(error.value)
    assert LOCAL["name"] in str(error.value)


def test_a_remote_api_base_needs_a_listen_address():
    entry = dict(LOCAL, api_base="http://10.0.0.5:8080/v1", service=GGUF)
    with pytest.raises(cat.AnsibleFilterError, match=r"api_base points at 10\.0\.0\.5"):
        services(entry)
    (service,) = services(dict(entry, service=dict(GGUF, listen="10.0.0.5")))
    assert service["listen"] == "10.0.0.5"


def test_two_services_for_one_model_or_one_port_are_refused():
    """GPU-04: one model, one unit; and no two units on one port."""
    twin = dict(LOCAL, name="chat-qwen-twin-llamacpp", api_base="http://127.0.0.1:8081/v1", fallbacks=[], service=GGUF)
    with pytest.raises(cat.AnsibleFilterError, match="already runs this model on llamacpp"):
        services(dict(LOCAL, service=GGUF), twin)
    other = dict(twin, model="other", service={"model_path": "/m/other.gguf", "backend_port": 18080})
    with pytest.raises(cat.AnsibleFilterError, match="port 18080 is also used"):
        services(dict(LOCAL, service=GGUF), other)


def test_service_is_only_for_managed_engines():
    entry = dict(LOCAL, name="chat-x-openai-compatible", engine="openai-compatible", service=GGUF)
    with pytest.raises(cat.AnsibleFilterError, match="service is only for the engines"):
        cat.litellm_catalogue([entry])


FLOORS_TOOL = PROJECT / "roles" / "litellm_proxy" / "files" / "litellm-check-floors"


def test_floor_check_reports_below_ok_absent_and_unfixable():
    floors = [
        {"package": "pytest", "minimum": "1.0"},
        {"package": "pytest", "minimum": "999.0"},
        {"package": "no-such-package-here", "minimum": "1.0"},
        {"package": "pyyaml", "note": "no safe release"},
    ]
    run = subprocess.run(
        [sys.executable, str(FLOORS_TOOL), "-"], input=json.dumps(floors), capture_output=True, text=True
    )
    result = json.loads(run.stdout)
    assert run.returncode == 1
    assert [e["package"] for e in result["ok"]] == ["pytest"]
    assert result["below"][0]["requirement"] == "pytest>=999.0"
    assert result["absent"] == [{"package": "no-such-package-here"}]
    assert result["reported"][0]["note"] == "no safe release"
    run = subprocess.run(
        [sys.executable, str(FLOORS_TOOL), "-"], input=json.dumps(floors[:1]), capture_output=True, text=True
    )
    assert run.returncode == 0


def test_floor_check_says_which_pins_pip_must_install():
    """The proxy's install runs pip only when a pinned requirement (an extra's dependencies
    included) is not met: the same read that checks the floors says which."""
    spec = {
        "floors": [{"package": "pytest", "minimum": "1.0"}],
        "pins": [
            f"pytest=={metadata.version('pytest')}",
            "pytest==0.0.1",
            "no-such-package-here==1.0",
            "git+https://example.invalid/x.git",
        ],
    }
    run = subprocess.run(
        [sys.executable, str(FLOORS_TOOL), "-"], input=json.dumps(spec), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["unmet"] == spec["pins"][1:]
    assert [e["package"] for e in result["ok"]] == ["pytest"]
