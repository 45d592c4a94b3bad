"""LiteLLM's own encryption helpers, served over stdin/stdout: the oracle of the model-table tests.

Run with the Python of a virtual environment where ``litellm[proxy]`` is installed (the Makefile
builds one per release under ~/.cache/litellm-gateway). One JSON request per line in, one JSON
answer per line out:

    {"op": "encrypt", "value": "...", "key": "...", "algorithm": "aes-256-gcm"}
    {"op": "decrypt", "value": "...", "key": "..."}   -> {"result": "..." or null}
    {"op": "hash_token", "value": "sk-..."}          -> {"result": what LiteLLM stores for the key}

Decryption goes through ``decrypt_value_helper`` with LITELLM_SALT_KEY set, exactly as the proxy
loads a model row; ``null`` means LiteLLM could not decrypt it.
"""

from __future__ import annotations

import json
import os
import sys

# LiteLLM prints while importing: answers go to the real stdout, everything else to stderr.
answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr
os.environ.setdefault("LITELLM_LOG", "ERROR")

import litellm.proxy.proxy_server as proxy_server  # noqa: E402
from litellm.proxy.common_utils.encrypt_decrypt_utils import (  # noqa: E402
    decrypt_value_helper,
    encrypt_value_helper,
)


def handle(request: dict) -> dict:
    op = request["op"]
    if op == "version":
        from importlib.metadata import version

        return {"result": version("litellm")}
    if op == "encrypt":
        algorithm = request.get("algorithm", "xsalsa20-poly1305")
        proxy_server.general_settings["encryption_algorithm"] = algorithm
        value = encrypt_value_helper(request["value"], new_encryption_key=request["key"])
        if algorithm == "aes-256-gcm" and not value.startswith("v2:gcm:"):
            return {"error": "this LiteLLM release does not write aes-256-gcm"}
        return {"result": value}
    if op == "decrypt":
        os.environ["LITELLM_SALT_KEY"] = request["key"]
        return {
            "result": decrypt_value_helper(
                request["value"], key="oracle", exception_type="debug", return_original_value=False
            )
        }
    if op == "hash_token":
        from litellm.proxy._types import hash_token

        return {"result": hash_token(request["value"])}
    return {"error": f"unknown op {op!r}"}


for line in sys.stdin:
    try:
        answer = handle(json.loads(line))
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    answers.write(json.dumps(answer) + "\n")
    answers.flush()
