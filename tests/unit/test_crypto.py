"""The layer-by-layer reader of LiteLLM's encrypted values (module_utils/litellm_crypto.py).

LiteLLM's own helpers are the oracle in tests/modules; here the reader's decisions are pinned
down one by one with values it seals itself.
"""

from __future__ import annotations

import base64

import ansible.module_utils
import pytest
from conftest import PROJECT

ansible.module_utils.__path__.append(str(PROJECT / "module_utils"))  # type: ignore[attr-defined]

from ansible.module_utils import litellm_crypto as crypto  # noqa: E402
from ansible.module_utils.litellm_model_table import build_keys, is_reference, mask_setting  # noqa: E402

CURRENT = crypto.Key("salt_key", "current-salt-key-0123")
OLD = crypto.Key("old_salt_keys[0]", "old-salt-key-4567")
KEYS = [CURRENT, OLD]


@pytest.mark.parametrize("algorithm", crypto.ALGORITHMS)
def test_one_layer_under_the_current_key(algorithm):
    reading = crypto.read(CURRENT.seal("openai/gpt-4o", algorithm), KEYS)
    assert reading.plaintext == "openai/gpt-4o"
    assert [(layer.key, layer.algorithm) for layer in reading.layers] == [("salt_key", algorithm)]
    assert reading.describe() == f"encrypted once: salt_key ({algorithm})"


def test_layers_are_peeled_across_keys_and_formats():
    value = CURRENT.seal(OLD.seal(CURRENT.seal("sk-secret", crypto.AES_GCM), crypto.XSALSA20), crypto.XSALSA20)
    reading = crypto.read(value, KEYS)
    assert reading.plaintext == "sk-secret"
    assert [layer.key for layer in reading.layers] == ["salt_key", "old_salt_keys[0]", "salt_key"]
    assert crypto.what_litellm_sees(reading, CURRENT) == "ciphertext"
    assert "sk-secret" not in reading.describe()


def test_standard_base64_is_read_like_litellm_reads_it():
    urlsafe = CURRENT.seal("x" * 90, crypto.XSALSA20)
    standard = base64.b64encode(base64.urlsafe_b64decode(urlsafe)).decode()
    assert crypto.read(standard, KEYS).plaintext == "x" * 90


def test_plaintext_is_plaintext_even_when_it_looks_like_base64_inside():
    # An Anthropic-style key is valid base64 of more than 40 bytes; inside one layer it is the plaintext.
    secret = "sk-ant-api03-" + "A" * 95
    reading = crypto.read(CURRENT.seal(secret, crypto.XSALSA20), KEYS)
    assert reading.plaintext == secret
    assert reading.sealed_remainder  # reported as a question, not as a second layer
    assert crypto.what_litellm_sees(reading, CURRENT) == "plaintext"
    assert crypto.read("http://127.0.0.1:8080/v1", KEYS).describe() == "plaintext"


def test_a_ciphertext_no_key_opens_is_unreadable_not_plaintext():
    stranger = crypto.Key("other", "some-other-key-89ab")
    for algorithm in crypto.ALGORITHMS:
        reading = crypto.read(stranger.seal("value", algorithm), KEYS)
        assert not reading.readable
        assert reading.describe() == "encrypted under none of the keys given"


def test_unknown_versioned_formats_are_refused_by_name():
    reading = crypto.read("v3:xchacha:AAAA", KEYS)
    assert reading.unsupported == "v3:xchacha:"
    assert "v3:xchacha:" in reading.describe()
    assert crypto.looks_encrypted("v9:whatever:")


def test_keys_are_labelled_and_repeated_keys_dropped():
    keys = build_keys("current-salt-key-0123", ["old-salt-key-4567", "current-salt-key-0123"])
    assert [k.label for k in keys] == ["salt_key", "old_salt_keys[0]"]
    with pytest.raises(crypto.CryptoError, match="old_salt_keys\\[0\\] is empty"):
        build_keys("current-salt-key-0123", [""])


def test_settings_are_masked_and_literal_secrets_refused():
    assert mask_setting("redis_password", "hunter2") == "********"
    assert mask_setting("master_key", "os.environ/LITELLM_MASTER_KEY") == "os.environ/LITELLM_MASTER_KEY"
    assert mask_setting("router", {"num_retries": 2, "api_key": "x"}) == {"num_retries": 2, "api_key": "********"}
    assert is_reference("api_key", "os.environ/OPENAI_API_KEY")
    assert is_reference("api_key", "none")
    assert is_reference("rpm", 30)
    assert not is_reference("aws_secret_access_key", "abc")
