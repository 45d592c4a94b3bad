#!/usr/bin/python
"""Ansible module: HTTP requests sent at once, from the host, for the smoke validation."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: litellm_http_checks
short_description: Send a list of HTTP requests concurrently from the host and report each answer
description:
  - Waits until I(wait_url) answers 200, then sends every request of I(requests) at the same time and
    returns, for each, its status, its JSON body and, for a chat completion, the text of the answer (the
    message's content, or the deltas of a streamed answer joined).
  - Reads only; it never fails on an answer, so that the tasks after it can say which request failed and why.
    It fails only when I(wait_url) does not answer 200 within I(wait_timeout).
options:
  requests:
    description: The requests.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: A label the result carries back.
        type: str
        required: true
      url:
        description: The URL.
        type: str
        required: true
      method:
        description: The HTTP method.
        type: str
        default: GET
      headers:
        description: Request headers.
        type: dict
        default: {}
      body:
        description: A body sent as JSON.
        type: raw
      timeout:
        description: Seconds to wait for the whole answer.
        type: int
        default: 30
  wait_url:
    description: A URL that must answer 200 before the requests are sent (a liveness endpoint).
    type: str
  wait_timeout:
    description: Seconds to wait for I(wait_url).
    type: int
    default: 30
notes:
  - Supports check mode; it only reads, so it runs the same in check mode.
author:
  - litellm-gateway
"""

EXAMPLES = r"""
- name: Smoke | Send the requests
  litellm_http_checks:
    wait_url: http://127.0.0.1:4000/health/liveliness
    requests:
      - name: no key
        url: http://127.0.0.1:4000/v1/models
"""

RETURN = r"""
results:
  description: One per request, in the order given - I(name), I(status) (-1 where no answer came),
    I(json) (the body, where it is JSON), I(answer) (a chat completion's text) and I(error).
  returned: always
  type: list
  elements: dict
"""

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def answer_text(body: str, parsed: Any) -> str:
    """The text of a chat completion: the message's content, or a streamed answer's deltas joined."""
    if isinstance(parsed, dict):
        choices = parsed.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")
    parts = []
    for line in body.splitlines():
        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
            continue
        try:
            chunk = json.loads(line[5:])
        except ValueError:
            continue
        for choice in chunk.get("choices") or []:
            parts.append(str((choice.get("delta") or {}).get("content") or ""))
    return "".join(parts)


def send(request: dict[str, Any]) -> dict[str, Any]:
    data = None
    headers = dict(request["headers"] or {})
    if request.get("body") is not None:
        data = json.dumps(request["body"]).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    http = urllib.request.Request(request["url"], data=data, headers=headers, method=request["method"])
    result: dict[str, Any] = {"name": request["name"], "status": -1, "json": None, "answer": "", "error": ""}
    try:
        with urllib.request.urlopen(http, timeout=request["timeout"]) as response:
            result["status"] = response.status
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        result["status"] = error.code
        body = error.read().decode("utf-8", "replace")
    except (OSError, ValueError) as error:
        result["error"] = str(getattr(error, "reason", error))
        return result
    try:
        result["json"] = json.loads(body)
    except ValueError:
        result["json"] = None
    result["answer"] = answer_text(body, result["json"])
    if result["status"] >= 400:
        detail = result["json"].get("error") if isinstance(result["json"], dict) else None
        message = detail.get("message") if isinstance(detail, dict) else detail
        result["error"] = str(message or body)[:400]
    return result


def wait(url: str, timeout: int) -> str | None:
    """None once ``url`` answers 200; else what the last try got."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return None
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except OSError as error:
            last = str(getattr(error, "reason", error))
        if time.monotonic() >= deadline:
            return last
        time.sleep(1)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "requests": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "url": {"type": "str", "required": True},
                    "method": {"type": "str", "default": "GET"},
                    "headers": {"type": "dict", "default": {}},
                    "body": {"type": "raw"},
                    "timeout": {"type": "int", "default": 30},
                },
            },
            "wait_url": {"type": "str"},
            "wait_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    url, timeout = module.params["wait_url"], module.params["wait_timeout"]
    if url:
        failure = wait(url, timeout)
        if failure is not None:
            module.fail_json(msg=f"{url} did not answer 200 within {timeout} s: {failure}")
    requests = module.params["requests"]
    with ThreadPoolExecutor(max_workers=max(1, len(requests))) as pool:
        results = list(pool.map(send, requests))
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()
