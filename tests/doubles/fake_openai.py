#!/usr/bin/env python3
"""A stand-in for a cloud provider's OpenAI API, for tests and benchmarks.

It exists because a cloud API cannot be reached from the test machines: it speaks the
same HTTP interface the proxy uses for the real provider (/v1/models,
/v1/chat/completions with and without streaming, with a tool call when the request
forces one, /v1/embeddings), answers at once,
and refuses any key but FAKE_OPENAI_KEY, so a test also proves which key the proxy
sent. Standard library only.

Usage: FAKE_OPENAI_KEY=... fake_openai.py [--host 127.0.0.1] [--port 8098]
"""

import argparse
import json
import os
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "pong from the fake cloud"


def _forced_tool(request):
    """The function a request forces with tool_choice, if it offers it among its tools."""
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("function", {}).get("name")
        offered = {t.get("function", {}).get("name") for t in request.get("tools") or []}
        return name if name in offered else None
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, format, *args):
        pass

    def _send(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self):
        expected = os.environ.get("FAKE_OPENAI_KEY", "")
        if self.headers.get("Authorization", "") == f"Bearer {expected}" and expected:
            return True
        self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        return False

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self):
        if self.path.rstrip("/") == "/health":
            self._send(200, {"status": "ok"})
        elif self.path.rstrip("/") == "/v1/models" and self._authorized():
            self._send(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "fake"}]})
        elif not self.path.startswith("/v1/models"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        request = self._body()
        if not self._authorized():
            return
        model = request.get("model", "unknown")
        if self.path.rstrip("/") == "/v1/embeddings":
            inputs = request.get("input", "")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))]
            usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
            self._send(200, {"object": "list", "model": model, "data": data, "usage": usage})
        elif self.path.rstrip("/") == "/v1/chat/completions":
            ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
            if request.get("stream"):
                self._stream(ident, created, model)
            elif forced := _forced_tool(request):
                call = {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {"name": forced, "arguments": json.dumps({"zone": "UTC"})},
                }
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                choice = {"index": 0, "finish_reason": "tool_calls", "message": message}
                usage = {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}
                body = {"id": ident, "object": "chat.completion", "created": created, "model": model}
                self._send(200, {**body, "choices": [choice], "usage": usage})
            else:
                choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER}}
                usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
                self._send(
                    200,
                    {
                        "id": ident,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [choice],
                        "usage": usage,
                    },
                )
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def _stream(self, ident, created, model):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = ANSWER.split(" ")
        for index, word in enumerate(words):
            delta = {"content": word if index == 0 else " " + word}
            if index == 0:
                delta["role"] = "assistant"
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
        self.close_connection = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
