"""The model catalogue: validation and the renderings derived from it.

The inventory's ``gateway_models`` list is the only place models are declared. These
filters check it (GPU-02, GPU-03, GPU-04) and derive what the proxy's ``config.yaml``
needs from it. Every error names the entry and the field to fix.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NoReturn
from urllib.parse import urlparse

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only for use without Ansible

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        pass


# The first part of a model name, per kind: [type]-[name]-[engine] (GPU-04).
KIND_PREFIX = {"chat": "chat", "embeddings": "embed", "rerank": "rerank", "vision": "vision"}

# A model's systemd units are named after it: this prefix, the name, then .service, -proxy.service, .socket.
MODEL_UNIT_PREFIX = "litellm-model-"

# Engines that run on our own hosts. They get the local defaults (GPU-02) and need an api_base.
LOCAL_ENGINES = ("ollama", "llamacpp", "vllm", "infinity", "openai-compatible")
# Local engines whose services the model_services role runs; openai-compatible is a server
# run by someone else.
SERVICE_ENGINES = ("ollama", "llamacpp", "vllm", "infinity")
# Cloud providers, named as LiteLLM names them; the API key comes from the environment file.
CLOUD_ENGINES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "azure": "AZURE_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "cohere": "COHERE_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}
# LiteLLM answers by itself (mock_response): a self-test alias that needs no upstream.
MOCK_ENGINE = "mock"
ENGINES = (*LOCAL_ENGINES, *CLOUD_ENGINES, MOCK_ENGINE)

# LiteLLM's provider prefix per engine and kind.
_PROVIDER = {
    "ollama": {"chat": "ollama_chat", "vision": "ollama_chat", "embeddings": "ollama"},
    "llamacpp": {"chat": "openai", "vision": "openai", "embeddings": "openai"},
    "vllm": {"chat": "hosted_vllm", "vision": "hosted_vllm", "embeddings": "hosted_vllm", "rerank": "hosted_vllm"},
    "infinity": {"embeddings": "infinity", "rerank": "infinity"},
    "openai-compatible": {"chat": "openai", "vision": "openai", "embeddings": "openai", "rerank": "cohere"},
}
_MODE = {"chat": "chat", "vision": "chat", "embeddings": "embedding", "rerank": "rerank"}

KNOWN_FIELDS = {
    "name",
    "kind",
    "engine",
    "model",
    "api_base",
    "api_key_env",
    "vram_mib",
    "timeout",
    "rpm",
    "tpm",
    "max_tokens",
    "fallbacks",
    "mock_response",
    "litellm_model",
    "litellm_params",
    "service",
}
_NAME_MIDDLE_RULE = r"[a-z0-9][a-z0-9._]*(-[a-z0-9][a-z0-9._]*)*"
_NAME_MIDDLE = re.compile(f"^{_NAME_MIDDLE_RULE}$")
_ALIAS = re.compile(r"^(chat|embed|rerank|vision)-[a-z0-9][a-z0-9._-]*$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

DEFAULTS = {"local_timeout": 120, "local_rpm": 30, "vision_max_tokens": 4096}
# Model ids are derived from the name, so config.yaml, the model table and spend logs agree on
# them across runs and hosts (MT-03, MT-05).
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://litellm-gateway.invalid/model")

# A normalised catalogue entry, and a model service derived from one (plain dicts: Jinja reads them).
Model = dict[str, Any]
ModelService = dict[str, Any]


def _fail(where: str, msg: str) -> NoReturn:
    raise AnsibleFilterError(f"{where}: {msg}")


def _positive_int(where: str, field: str, value: Any, allow_zero: bool = False) -> int:
    if isinstance(value, bool):
        _fail(where, f"{field} must be a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        _fail(where, f"{field} must be a whole number, got {value!r}")
    if str(number) != str(value).strip():
        _fail(where, f"{field} must be a whole number, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        _fail(where, f"{field} must be {'0 or more' if allow_zero else 'greater than 0'}, got {value!r}")
    return number


def _check_url(where: str, field: str, value: object) -> None:
    parsed = urlparse(str(value))
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        _fail(where, f"{field} must be an http(s) URL such as http://127.0.0.1:8080/v1, got {value!r}")


def _normalize(entry: object, index: int, defaults: dict[str, Any]) -> Model:
    where = f"gateway_models[{index}]"
    if not isinstance(entry, dict):
        _fail(where, f"each entry must be a mapping with name, kind and engine, got {entry!r}")
    if entry.get("name"):
        where = f"gateway_models[{index}] ({entry['name']})"
    unknown = sorted(set(entry) - KNOWN_FIELDS)
    if unknown:
        _fail(where, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_FIELDS))}")
    for field in ("name", "kind", "engine"):
        if not entry.get(field):
            _fail(where, f"{field} is required")
    name, kind, engine = str(entry["name"]), str(entry["kind"]), str(entry["engine"])
    if kind not in KIND_PREFIX:
        _fail(where, f"kind must be one of {', '.join(KIND_PREFIX)}, got {kind!r}")
    if engine not in ENGINES:
        _fail(where, f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")

    prefix, suffix = KIND_PREFIX[kind] + "-", "-" + engine
    middle = name[len(prefix) : -len(suffix)] if name.startswith(prefix) and name.endswith(suffix) else ""
    if not _NAME_MIDDLE.match(middle):
        _fail(
            where,
            f"name must follow [type]-[name]-[engine] (GPU-04): '{prefix}<name>{suffix}' for a {kind} model"
            f" on {engine}, in lower case, such as '{prefix}qwen2.5-0.5b{suffix}'",
        )

    local = engine in LOCAL_ENGINES
    model = dict(
        name=name,
        kind=kind,
        engine=engine,
        local=local,
        model=str(entry.get("model") or ""),
        api_base=entry.get("api_base") or None,
        api_key_env=entry.get("api_key_env") or None,
        vram_mib=_positive_int(where, "vram_mib", entry.get("vram_mib", 0), allow_zero=True),
        fallbacks=entry.get("fallbacks") or [],
        mock_response=entry.get("mock_response"),
        litellm_model=entry.get("litellm_model") or None,
        litellm_params=entry.get("litellm_params") or {},
        service=entry.get("service") or {},
    )
    if not model["model"] and engine != MOCK_ENGINE:
        _fail(where, "model (the upstream model name) is required")
    if engine == MOCK_ENGINE and not model["mock_response"]:
        _fail(where, "a mock model needs mock_response, the text it answers with")
    if engine != MOCK_ENGINE and model["mock_response"] is not None:
        _fail(where, "mock_response is only for engine mock")
    if not local and model["vram_mib"]:
        _fail(where, f"vram_mib is only for local engines ({', '.join(LOCAL_ENGINES)})")
    if local and not model["api_base"]:
        _fail(where, "api_base is required for a local model, such as http://127.0.0.1:8080/v1")
    if model["api_base"]:
        _check_url(where, "api_base", model["api_base"])
    if engine in CLOUD_ENGINES and not model["api_key_env"]:
        model["api_key_env"] = CLOUD_ENGINES[engine]
    if model["api_key_env"] and not _ENV_NAME.match(str(model["api_key_env"])):
        _fail(
            where,
            f"api_key_env must be an environment variable name such as OPENAI_API_KEY, got {model['api_key_env']!r}",
        )
    if not isinstance(model["fallbacks"], list):
        _fail(where, f"fallbacks must be a list of model names, got {model['fallbacks']!r}")
    if not isinstance(model["litellm_params"], dict):
        _fail(where, "litellm_params must be a mapping of extra LiteLLM parameters")
    if not isinstance(model["service"], dict):
        _fail(where, "service must be a mapping (see the model_services role)")
    if model["service"] and engine not in SERVICE_ENGINES:
        _fail(where, f"service is only for the engines whose services are managed here ({', '.join(SERVICE_ENGINES)})")
    if "api_key" in model["litellm_params"]:
        _fail(where, "litellm_params must not carry api_key: name the variable in api_key_env (SEC-05)")
    if engine in _PROVIDER and kind not in _PROVIDER[engine] and not model["litellm_model"]:
        _fail(where, f"engine {engine} does not serve {kind} models; set litellm_model to say how LiteLLM calls it")

    # GPU-02: local models never wait forever and never take unbounded traffic.
    timeout = entry.get("timeout", defaults["local_timeout"] if local else None)
    rpm = entry.get("rpm", defaults["local_rpm"] if local else None)
    max_tokens = entry.get("max_tokens", defaults["vision_max_tokens"] if kind == "vision" else None)
    model["timeout"] = None if timeout is None else _positive_int(where, "timeout", timeout)
    model["rpm"] = None if rpm is None else _positive_int(where, "rpm", rpm)
    model["tpm"] = None if entry.get("tpm") is None else _positive_int(where, "tpm", entry["tpm"])
    model["max_tokens"] = None if max_tokens is None else _positive_int(where, "max_tokens", max_tokens)
    return model


def litellm_catalogue(
    models: object, aliases: dict[str, str] | None = None, defaults: dict[str, Any] | None = None
) -> list[Model]:
    """Validate the catalogue and return it normalised, with the defaults applied.

    ``aliases`` maps extra names (such as ``chat-default``) to catalogue names.
    """
    if not isinstance(models, list) or not models:
        _fail("gateway_models", "must be a non-empty list of models")
    aliases = aliases or {}
    if not isinstance(aliases, dict):
        _fail("gateway_model_aliases", "must be a mapping of alias to model name")
    settings = dict(DEFAULTS, **(defaults or {}))

    catalogue = [_normalize(entry, index, settings) for index, entry in enumerate(models)]
    seen: dict[str, Model] = {}
    served: dict[tuple[str, str, str | None], str] = {}
    for model in catalogue:
        if model["name"] in seen:
            _fail("gateway_models", f"{model['name']} is declared twice (GPU-04): keep one entry")
        seen[model["name"]] = model
        if model["engine"] != MOCK_ENGINE:
            upstream = (model["engine"], model["model"], model["api_base"])
            if upstream in served:
                _fail(
                    "gateway_models",
                    f"{served[upstream]} and {model['name']} serve the same model from the same place"
                    " (GPU-04): merge them into one entry",
                )
            served[upstream] = model["name"]

    for alias, target in aliases.items():
        where = f"gateway_model_aliases.{alias}"
        if not _ALIAS.match(str(alias)):
            _fail(where, "an alias starts with its type (chat-, embed-, rerank-, vision-), in lower case")
        if alias in seen:
            _fail(where, "is also a model name in gateway_models; choose another alias")
        if target not in seen:
            _fail(where, f"points at {target!r}, which is not in gateway_models")
        if KIND_PREFIX[seen[target]["kind"]] != alias.split("-", 1)[0]:
            _fail(where, f"is named as another type than {target}")

    names = set(seen) | set(aliases)
    for model in catalogue:
        for fallback in model["fallbacks"]:
            if fallback not in names:
                _fail(f"gateway_models ({model['name']})", f"fallback {fallback!r} is not in gateway_models")
            if fallback == model["name"]:
                _fail(f"gateway_models ({model['name']})", "a model cannot fall back to itself")
    return catalogue


def _litellm_params(model: Model, provider_api_base: dict[str, str] | None) -> dict[str, Any]:
    engine, kind = model["engine"], model["kind"]
    if model["litellm_model"]:
        target = model["litellm_model"]
    elif engine == MOCK_ENGINE:
        target = "openai/" + (model["model"] or model["name"])
    elif engine in CLOUD_ENGINES:
        target = f"{engine}/{model['model']}"
    else:
        target = f"{_PROVIDER[engine][kind]}/{model['model']}"
    params = {"model": target}
    api_base = model["api_base"] or (provider_api_base or {}).get(engine)
    if api_base:
        params["api_base"] = api_base
    if model["api_key_env"]:
        params["api_key"] = "os.environ/" + model["api_key_env"]
    elif engine in ("llamacpp", "openai-compatible"):
        # The OpenAI client insists on a key; local servers without one ignore it.
        params["api_key"] = "none"
    if model["mock_response"] is not None:
        params["mock_response"] = model["mock_response"]
    for field in ("timeout", "rpm", "tpm", "max_tokens"):
        if model[field] is not None:
            params[field] = model[field]
    params.update(model["litellm_params"])
    return params


def litellm_model_id(name: object) -> str:
    """The stable model id of a catalogue name or alias (a UUID derived from the name)."""
    return str(uuid.uuid5(_ID_NAMESPACE, str(name)))


def litellm_model_list(
    catalogue: list[Model], aliases: dict[str, str] | None = None, provider_api_base: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The proxy's ``model_list``: one entry per model, then one per alias, each with its stable id."""
    by_name = {model["name"]: model for model in catalogue}
    entries = []
    for model in catalogue:
        entries.append(
            {
                "model_name": model["name"],
                "litellm_params": _litellm_params(model, provider_api_base),
                "model_info": {"id": litellm_model_id(model["name"]), "mode": _MODE[model["kind"]]},
            }
        )
    for alias, target in (aliases or {}).items():
        entries.append(
            {
                "model_name": alias,
                "litellm_params": _litellm_params(by_name[target], provider_api_base),
                "model_info": {"id": litellm_model_id(alias), "mode": _MODE[by_name[target]["kind"]]},
            }
        )
    return entries


def litellm_fallbacks(catalogue: list[Model], aliases: dict[str, str] | None = None) -> list[dict[str, list[str]]]:
    """The router's ``fallbacks``: an alias falls back like the model it points at (GPU-03)."""
    by_name = {model["name"]: model for model in catalogue}
    fallbacks = [{model["name"]: list(model["fallbacks"])} for model in catalogue if model["fallbacks"]]
    for alias, target in (aliases or {}).items():
        if by_name[target]["fallbacks"]:
            fallbacks.append({alias: list(by_name[target]["fallbacks"])})
    return fallbacks


def litellm_audit_expectations(catalogue: list[Model], aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """What the host audit compares the live host with, from the checked catalogue: every name a model
    may have (GPU-04: the names and aliases, and the naming rule for anything else), the limits each local
    model's config.yaml entry carries (GPU-02), the router's fallbacks (GPU-03) and the prefix of the model
    units (GPU-01, GPU-04)."""
    kinds = "|".join(re.escape(prefix) for prefix in KIND_PREFIX.values())
    engines = "|".join(re.escape(engine) for engine in ENGINES)
    by_name = {model["name"]: model for model in catalogue}
    local = [(model["name"], model) for model in catalogue if model["local"]]
    local += [(alias, by_name[target]) for alias, target in (aliases or {}).items() if by_name[target]["local"]]
    return {
        "model_names": [*by_name, *(aliases or {})],
        "naming_rule": f"^({kinds})-{_NAME_MIDDLE_RULE}-({engines})$",
        "local_models": [
            {"name": name, "timeout": model["timeout"], "rpm": model["rpm"], "max_tokens": model["max_tokens"]}
            for name, model in local
        ],
        "fallbacks": litellm_fallbacks(catalogue, aliases),
        "model_unit_prefix": MODEL_UNIT_PREFIX,
    }


def litellm_api_key_envs(catalogue: list[Model]) -> list[str]:
    """The environment variables the catalogue's models read their API keys from."""
    return sorted({model["api_key_env"] for model in catalogue if model["api_key_env"]})


SERVICE_FIELDS = {
    "managed",
    "hosts",
    "listen",
    "backend_port",
    "idle_stop",
    "gpu_index",
    "priority",
    "model_path",
    "model_url",
    "model_sha256",
    "context_size",
    "args",
}
SERVICE_DEFAULTS = {"idle_stop": 300, "models_dir": "/var/lib/litellm-models", "backend_offset": 10000}
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _port(where: str, field: str, value: object) -> int:
    port = _positive_int(where, field, value)
    if port > 65535:
        _fail(where, f"{field} must be a TCP port (1-65535), got {value!r}")
    return port


def _service(model: Model, settings: dict[str, Any]) -> ModelService:
    where = f"gateway_models ({model['name']}) service"
    spec = model["service"]
    unknown = sorted(set(spec) - SERVICE_FIELDS)
    if unknown:
        _fail(where, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(SERVICE_FIELDS))}")
    api = urlparse(model["api_base"])
    port = api.port or (443 if api.scheme == "https" else 80)
    listen = str(spec.get("listen", "127.0.0.1"))
    if api.hostname not in _LOOPBACK and listen in _LOOPBACK:
        _fail(
            where,
            f"api_base points at {api.hostname}, but the service would listen on {listen} only:"
            " set service.listen to the address the proxies reach (SEC-06: loopback unless told otherwise)",
        )
    hosts = spec.get("hosts", [])
    if not isinstance(hosts, list):
        _fail(where, f"hosts must be a list of inventory hostnames, got {hosts!r}")
    args = spec.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, (str, int, float)) for arg in args):
        _fail(where, f"args must be a list of command-line arguments, got {args!r}")
    model_url, model_sha256 = spec.get("model_url"), str(spec.get("model_sha256") or "").lower()
    if model_url:
        _check_url(where, "model_url", model_url)
        if not _SHA256.match(model_sha256):
            _fail(where, "model_sha256 (64 hex digits) is required with model_url: downloads are checked")
    model_path = spec.get("model_path") or (
        f"{settings['models_dir']}/{model['name']}.{'gguf' if model['engine'] == 'llamacpp' else 'model'}"
        if model_url
        else None
    )
    if model["engine"] == "llamacpp" and not model_path:
        _fail(where, "a llama.cpp model needs model_path (a GGUF file on the host) or model_url and model_sha256")
    if model_path and not str(model_path).startswith("/"):
        _fail(where, f"model_path must be absolute, got {model_path!r}")
    backend = spec.get("backend_port", port + int(settings["backend_offset"]))
    return {
        "name": model["name"],
        "unit": MODEL_UNIT_PREFIX + model["name"],
        "engine": model["engine"],
        "kind": model["kind"],
        "model": model["model"],
        "listen": listen,
        "port": port,
        "backend_port": _port(where, "backend_port", backend),
        "vram_mib": model["vram_mib"],
        "gpu": model["vram_mib"] > 0,
        "gpu_index": None
        if spec.get("gpu_index") is None
        else _positive_int(where, "gpu_index", spec["gpu_index"], True),
        "priority": _positive_int(where, "priority", spec.get("priority", 0), allow_zero=True),
        "idle_stop": _positive_int(where, "idle_stop", spec.get("idle_stop", settings["idle_stop"])),
        "model_path": model_path,
        "model_url": model_url,
        "model_sha256": model_sha256 or None,
        "context_size": _positive_int(where, "context_size", spec.get("context_size", 4096)),
        "args": [str(arg) for arg in args],
        "hosts": [str(host) for host in hosts],
    }


def litellm_model_services(
    catalogue: list[Model], settings: dict[str, Any] | None = None, host: str | None = None
) -> list[ModelService]:
    """The local model services to run: one per catalogue model on a managed engine.

    Each gets a socket on its api_base port and the server itself on a backend port; ports,
    and the model a service serves, are unique across the catalogue (GPU-04). With ``host``,
    only the services that host runs (those without ``service.hosts``, or naming it).
    """
    settings = dict(SERVICE_DEFAULTS, **(settings or {}))
    services: list[ModelService] = []
    ports: dict[int, str] = {}
    served: dict[tuple[str, str, str, str | None], str] = {}
    for model in catalogue:
        if model["engine"] not in SERVICE_ENGINES or not model["service"].get("managed", True):
            continue
        service = _service(model, settings)
        for field in ("port", "backend_port"):
            if service[field] in ports:
                _fail(
                    f"gateway_models ({service['name']})",
                    f"port {service[field]} is also used by {ports[service[field]]}: give each service its own"
                    " api_base port and service.backend_port",
                )
            ports[service[field]] = service["name"]
        what = (service["engine"], service["kind"], service["model"], service["model_path"])
        if what in served:
            _fail(
                f"gateway_models ({service['name']})",
                f"{served[what]} already runs this model on {service['engine']} (GPU-04): merge the two entries",
            )
        served[what] = service["name"]
        services.append(service)
    if host is not None:
        services = [service for service in services if not service["hosts"] or host in service["hosts"]]
    return services


def litellm_gate_services(services: list[ModelService], start: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The gpu_service_gate module's input for model services: their units, VRAM and placement."""
    start = set(start or [])
    unknown = start - {service["name"] for service in services}
    if unknown:
        _fail("model_services_gate_start", f"{', '.join(sorted(unknown))}: not a model service of this host")
    return [
        {
            "name": service["unit"] + ".service",
            "vram_mib": service["vram_mib"],
            "gpu_index": service["gpu_index"],
            "priority": service["priority"],
            "start": service["name"] in start,
            # The model service stops when unneeded: starting its socket proxy keeps it up until idle.
            "start_unit": service["unit"] + "-proxy.service",
        }
        for service in services
    ]


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "litellm_catalogue": litellm_catalogue,
            "litellm_model_list": litellm_model_list,
            "litellm_model_id": litellm_model_id,
            "litellm_fallbacks": litellm_fallbacks,
            "litellm_audit_expectations": litellm_audit_expectations,
            "litellm_api_key_envs": litellm_api_key_envs,
            "litellm_model_services": litellm_model_services,
            "litellm_gate_services": litellm_gate_services,
        }
