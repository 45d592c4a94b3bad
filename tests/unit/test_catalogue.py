"""The model catalogue filters: what they accept, what they refuse and what they render."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
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
    catalogue = cat.litellm_catalogue(INVENTORY["litellm_models"], INVENTORY["litellm_model_aliases"])
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
        ((0, {"name": "chat-qwen-ollama"}), None, "litellm_models[0] (chat-qwen-ollama): name must follow"),
        ((0, {"name": "embed-qwen-llamacpp"}), None, "name must follow [type]-[name]-[engine]"),
        ((0, {"name": "chat-Qwen-llamacpp"}), None, "name must follow"),
        ((0, {"kind": "audio"}), None, "kind must be one of"),
        ((0, {"engine": "lmstudio"}), None, "engine must be one of"),
        ((0, {"api_base": None}), None, "api_base is required for a local model"),
        ((0, {"api_base": "127.0.0.1:8080"}), None, "api_base must be an http(s) URL"),
        ((0, {"timeout": "soon"}), None, "timeout must be a whole number"),
        ((0, {"rpm": 0}), None, "rpm must be greater than 0"),
        ((0, {"fallbacks": ["chat-nothing-openai"]}), None, "fallback 'chat-nothing-openai' is not in litellm_models"),
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
