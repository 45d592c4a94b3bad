"""Calls to the LiteLLM proxy's HTTP API with the master key (never logged, never in a result)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from . import config


class Reply:
    def __init__(self, status: int, body: bytes, seconds: float) -> None:
        self.status, self.body, self.seconds = status, body, seconds

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    settings: dict[str, Any],
    method: str,
    path: str,
    payload: Any = None,
    timeout: float | None = None,
    authorized: bool = True,
) -> Reply:
    headers = {"Content-Type": "application/json"}
    if authorized:
        headers["Authorization"] = "Bearer " + config.secret("master-key")
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(settings["proxy"]["url"] + path, data=data, headers=headers, method=method)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout or float(settings["proxy"]["timeout"])) as response:
            return Reply(response.status, response.read(), time.monotonic() - started)
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.read(), time.monotonic() - started)


def reason(reply: Reply) -> str:
    """A short reason from an error reply (LiteLLM puts it under error.message)."""
    try:
        body = reply.json()
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("detail")
    except (ValueError, AttributeError):
        message = reply.body[:200].decode(errors="replace")
    return f"HTTP {reply.status}: {str(message)[:200]}"
