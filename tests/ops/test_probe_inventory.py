"""The probe and the inventory against an OpenAI-compatible server: the cloud stand-in, in place of the proxy.

The stand-in speaks the proxy's client-facing API (the same routes and shapes) and checks the
bearer key, so these tests also prove the tools send the master key they get from systemd.
"""

from __future__ import annotations

import importlib.util
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from litellm_ops import inventory, probe

KEY = "sk-test-master-key-0123456789"
DOUBLE = Path(__file__).resolve().parents[1] / "doubles" / "fake_openai.py"


@pytest.fixture
def server(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("fake_openai", DOUBLE)
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    monkeypatch.setenv("FAKE_OPENAI_KEY", KEY)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "master-key").write_text(KEY + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), fake.Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def settings_for(url: str, models: list[dict], aliases: dict | None = None) -> dict:
    return {
        "proxy": {"url": url, "timeout": 5},
        "probe": {"timeout": 5},
        "catalogue": {"models": models, "aliases": aliases or {}, "models_in_db": False},
    }


def test_probe_records_each_capability_with_its_latency(server):
    settings = settings_for(
        server,
        [
            {"name": "gpt-4o-mini", "kind": "chat"},
            {"name": "embed-x-openai", "kind": "embeddings"},
            {"name": "rerank-x-infinity", "kind": "rerank"},
        ],
        {"chat-default": "gpt-4o-mini"},
    )
    outcome = probe.run(settings)
    chat = outcome["models"]["gpt-4o-mini"]["capabilities"]
    assert set(chat) == {"chat", "stream", "tools"}
    assert all(c["ok"] and c["latency_seconds"] > 0 for c in chat.values())
    assert outcome["models"]["chat-default"]["kind"] == "chat"
    assert outcome["models"]["embed-x-openai"]["capabilities"]["embeddings"]["ok"] is True
    rerank = outcome["models"]["rerank-x-infinity"]["capabilities"]["rerank"]
    assert rerank["ok"] is False
    assert rerank["error"].startswith("HTTP 404")
    assert outcome["failed"] == ["rerank-x-infinity/rerank"]
    assert outcome["status"] == "degraded"


def test_probe_fails_a_capability_when_the_key_is_refused(server, monkeypatch, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "master-key").write_text("sk-not-the-key\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(wrong))
    outcome = probe.probe_one(settings_for(server, []), "gpt-4o-mini", "chat")
    assert outcome["ok"] is False
    assert outcome["http_status"] == 401


def test_probe_judges_the_shape_not_the_status():
    class Reply:
        status, seconds = 200, 0.1

        def __init__(self, body):
            self.body = body

        def json(self):
            import json

            return json.loads(self.body)

    assert probe._tools(Reply(b'{"choices": [{"message": {"content": "it is noon"}}]}')) is not None
    assert probe._stream(Reply(b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n')) == (
        "the stream did not end with [DONE]"
    )
    assert probe._chat(Reply(b'{"choices": [{"message": {"content": ""}}]}')) == "the answer has no text"


def test_inventory_finds_missing_and_zombies(server):
    settings = settings_for(
        server,
        [{"name": "gpt-4o-mini", "kind": "chat"}, {"name": "chat-gone-vllm", "kind": "chat"}],
        {"chat-default": "gpt-4o-mini"},
    )
    outcome = inventory.run(settings)
    assert outcome["served"] == ["gpt-4o-mini"]
    assert outcome["findings"]["missing"] == ["chat-default", "chat-gone-vllm"]
    assert outcome["status"] == "fail"


def test_inventory_compare():
    findings = inventory.compare({"a", "b"}, ["a", "b", "b", "z"], ["a", "a", "old"])
    assert findings == {
        "missing": [],
        "zombies": ["z"],
        "duplicates": ["b"],
        "db_zombies": ["old"],
        "db_duplicates": ["a"],
    }
    assert inventory.compare({"a"}, ["a"], None) == {"missing": [], "zombies": [], "duplicates": []}
