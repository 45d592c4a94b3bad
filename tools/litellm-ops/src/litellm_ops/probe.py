"""The capability probe (OPS-07): per model and alias, what works through the proxy, and how fast.

Chat models are asked for a plain answer, a streamed one and a tool call; embedding models
for a vector; rerank models for a ranking. A capability passes only when the reply has the
shape the caller needs, not merely an HTTP 200.
"""

from __future__ import annotations

import json
import time
import urllib.error
from typing import Any

from . import http

CAPABILITIES = {
    "chat": ("chat", "stream", "tools"),
    "vision": ("chat", "stream"),
    "embeddings": ("embeddings",),
    "rerank": ("rerank",),
}
PROMPT = [{"role": "user", "content": "Reply with the single word: pong"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Return the current time in a time zone.",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}


def _chat(reply: http.Reply) -> str | None:
    message = reply.json()["choices"][0]["message"]
    return None if isinstance(message.get("content"), str) and message["content"] else "the answer has no text"


def _stream(reply: http.Reply) -> str | None:
    chunks, done = 0, False
    for line in reply.body.decode(errors="replace").splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
        elif json.loads(data).get("choices"):
            chunks += 1
    if not chunks:
        return "no chunk arrived"
    return None if done else "the stream did not end with [DONE]"


def _tools(reply: http.Reply) -> str | None:
    calls = reply.json()["choices"][0]["message"].get("tool_calls") or []
    if calls and calls[0]["function"]["name"] == TOOL["function"]["name"]:
        json.loads(calls[0]["function"]["arguments"] or "{}")
        return None
    return "the model answered without calling the tool"


def _embeddings(reply: http.Reply) -> str | None:
    vector = reply.json()["data"][0]["embedding"]
    return None if len(vector) > 0 else "an empty vector"


def _rerank(reply: http.Reply) -> str | None:
    results = reply.json().get("results") or []
    return None if results and "relevance_score" in results[0] else "no ranked results"


def _request(model: str, capability: str) -> tuple[str, dict[str, Any], Any]:
    if capability == "chat":
        return "/v1/chat/completions", {"model": model, "messages": PROMPT, "max_tokens": 16}, _chat
    if capability == "stream":
        return "/v1/chat/completions", {"model": model, "messages": PROMPT, "max_tokens": 16, "stream": True}, _stream
    if capability == "tools":
        body = {
            "model": model,
            "max_tokens": 64,
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            "messages": [{"role": "user", "content": "What time is it in UTC? Use the tool."}],
        }
        return "/v1/chat/completions", body, _tools
    if capability == "embeddings":
        return "/v1/embeddings", {"model": model, "input": ["capability probe"]}, _embeddings
    return (
        "/v1/rerank",
        {
            "model": model,
            "query": "capital of France",
            "documents": ["Paris is the capital of France.", "Bananas are yellow."],
        },
        _rerank,
    )


def probe_one(settings: dict[str, Any], model: str, capability: str) -> dict[str, Any]:
    path, body, judge = _request(model, capability)
    try:
        reply = http.call(settings, "POST", path, body, timeout=float(settings["probe"]["timeout"]))
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        return {"ok": False, "latency_seconds": None, "error": f"no answer: {err}"}
    outcome: dict[str, Any] = {"latency_seconds": round(reply.seconds, 4), "http_status": reply.status}
    if reply.status != 200:
        return {**outcome, "ok": False, "error": http.reason(reply)}
    try:
        error = judge(reply)
    except (ValueError, KeyError, IndexError, TypeError) as err:
        error = f"unexpected reply: {type(err).__name__}: {err}"
    return {**outcome, "ok": error is None, **({"error": error} if error else {})}


def targets(settings: dict[str, Any]) -> dict[str, str]:
    """Every catalogue name and alias, with the kind it is probed as."""
    kinds = {m["name"]: m["kind"] for m in settings["catalogue"]["models"]}
    found = dict(kinds)
    for alias, name in settings["catalogue"]["aliases"].items():
        found[alias] = kinds.get(name, "chat")
    return dict(sorted(found.items()))


def run(settings: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    models, failed = {}, []
    for model, kind in targets(settings).items():
        capabilities = {}
        for capability in CAPABILITIES.get(kind, ("chat",)):
            capabilities[capability] = probe_one(settings, model, capability)
            if not capabilities[capability]["ok"]:
                failed.append(f"{model}/{capability}")
        models[model] = {"kind": kind, "capabilities": capabilities}
    return {
        "status": "pass" if not failed else "degraded",
        "models": models,
        "failed": failed,
        "duration_seconds": round(time.monotonic() - started, 3),
    }
