"""litellm_model_table against a real PostgreSQL 15 with LiteLLM 1.80.16's schema, and LiteLLM as the oracle.

Rows are written with LiteLLM's own encrypt_value_helper (in LiteLLM's own venv), broken as the
incidents broke them; after the module, LiteLLM's own decrypt_value_helper must return every
original plaintext in one step. Every write runs in check mode first, and the tables must be
identical before and after it. No plaintext secret or key may appear in anything the module prints.
"""

from __future__ import annotations

import json
import re
import stat
import uuid
from pathlib import Path

import ansible.module_utils  # noqa: F401  (conftest put module_utils on its path)
import pytest
from conftest import create_database, drop_database, run_module

SALT = "sk-salt-current-4f9a1c2e7b"
OLD_SALT = "sk-salt-previous-0d3b8e61aa"
OTHER_SALT = "sk-salt-unknown-77c2d9e014"
# Plaintext secrets that must never be printed.
OPENAI_KEY = "sk-live-openai-Zq81nXk2Lm9Rw4Tb7Yc3Vd6"
LOCAL_KEY = "local-server-key-PLxw92Kd"
CRED_KEY = "sk-cred-anthropic-Hh3Jk5Ll7Mm9"
ENV_SECRET = "langfuse-secret-Qq1Ww2Ee3Rr4"
SECRETS = (SALT, OLD_SALT, OTHER_SALT, OPENAI_KEY, LOCAL_KEY, CRED_KEY, ENV_SECRET)

GOOD = {"model": "openai/gpt-4o-mini", "api_key": OPENAI_KEY, "rpm": 60}
LOCAL = {
    "model": "qwen2.5-0.5b-instruct",
    "custom_llm_provider": "openai",
    "api_base": "http://127.0.0.1:8080/v1",
    "api_key": LOCAL_KEY,
    "timeout": 120,
}
EMBED = {"model": "ollama/nomic-embed-text", "api_base": "http://127.0.0.1:11434"}


@pytest.fixture(scope="session")
def template(pg_admin, releases):
    """A database with LiteLLM 1.80.16's schema, migrated once; each test copies it."""
    import psycopg2
    from ansible.module_utils.litellm_prisma_db import Options, SchemaSync
    from ansible.module_utils.litellm_prisma_migrations import load_migrations

    db = create_database(pg_admin, "model_table_tmpl")
    conn = psycopg2.connect(dbname=db.name, **pg_admin)
    try:
        SchemaSync(conn, "public", None, load_migrations(releases["1.80.16"].migrations), Options(), False).run()
    finally:
        conn.close()
    yield db.name
    drop_database(pg_admin, db.name)


@pytest.fixture
def db(pg_admin, template):
    copy = create_database(pg_admin, "model_table", template)
    yield copy
    drop_database(pg_admin, copy.name)


@pytest.fixture
def litellm(oracles):
    return oracles("1.80.16")


def encrypt_params(oracle, params: dict, keys: list[str], algorithm: str = "xsalsa20-poly1305") -> dict:
    """Every string encrypted by LiteLLM once per key given, innermost first."""
    out = {}
    for name, value in params.items():
        if isinstance(value, str):
            for key in keys:
                value = oracle.encrypt(value, key, algorithm)
        out[name] = value
    return out


def insert_model(db, name: str, params: dict, model_id: str | None = None, info: dict | None = None, age: int = 0):
    model_id = model_id or str(uuid.uuid4())
    db.sql(
        'INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, model_info, created_by, '
        "updated_by, created_at, updated_at) VALUES (%s, %s, %s::jsonb, %s::jsonb, 'test', 'test', "
        "now() - make_interval(mins => %s), now() - make_interval(mins => %s))",
        (model_id, name, json.dumps(params), json.dumps(info or {"id": model_id}), age, age),
    )
    return model_id


def snapshot(db) -> list:
    """Everything the module may write: the tables' full contents."""
    out = []
    for table, key in (
        ("LiteLLM_ProxyModelTable", "model_id"),
        ("LiteLLM_CredentialsTable", "credential_id"),
        ("LiteLLM_Config", "param_name"),
        ("LiteLLM_UserTable", "user_id"),
    ):
        out.append(db.sql(f'SELECT row_to_json(t)::text FROM "{table}" t ORDER BY {key}'))
    return out


def models(db) -> dict[str, tuple[str, dict]]:
    return {
        r[0]: (r[1], r[2]) for r in db.sql('SELECT model_id, model_name, litellm_params FROM "LiteLLM_ProxyModelTable"')
    }


def table_module(db, args: dict, check: bool = False, diff: bool = False, tmp_path: Path | None = None):
    full = {"database_url": db.url, "salt_key": SALT, **args}
    if tmp_path is not None:
        full.setdefault("backup_dir", str(tmp_path / "backups"))
    rc, result, raw = run_module("litellm_model_table", full, check=check, diff=diff)
    for secret in SECRETS:
        assert secret not in raw, "a secret appears in the module's output"
    return rc, result, raw


def kinds(result: dict) -> set[tuple[str, str, str]]:
    return {(f["id"], f["kind"], f.get("row", "")) for f in result["findings"]}


def assert_litellm_reads_once(oracle, stored: dict, expected: dict, key: str = SALT, old: tuple[str, ...] = ()):
    """LiteLLM's own helper returns each plaintext in one step, and the plaintext is not itself decryptable."""
    for name, value in expected.items():
        if not isinstance(value, str):
            assert stored[name] == value
            continue
        plain = oracle.decrypt(stored[name], key)
        assert plain == value, f"{name}: LiteLLM does not read the original value"
        assert oracle.decrypt(plain, key) is None, f"{name}: the decrypted value is itself a ciphertext"
        for old_key in old:
            assert oracle.decrypt(stored[name], old_key) is None, f"{name}: still readable under an old key"


# ------------------------------------------------------------------ the broken table, written by LiteLLM


@pytest.fixture
def broken(db, litellm):
    """The incidents' table: MT-01, MT-02 (double, old key, plaintext), MT-03, MT-04, plus credentials and env."""
    rows = {
        "good": insert_model(db, "chat-gpt-4o-mini-openai", encrypt_params(litellm, GOOD, [SALT]), age=50),
        # MT-01 and MT-02: the provider (and everything else) encrypted twice.
        "double": insert_model(db, "chat-qwen2.5-0.5b-llamacpp", encrypt_params(litellm, LOCAL, [SALT, SALT]), age=40),
        # Under a key that was rotated out.
        "old": insert_model(db, "embed-nomic-ollama", encrypt_params(litellm, EMBED, [OLD_SALT]), age=30),
        # MT-03: the same model twice; the newer one is kept.
        "dup_old": insert_model(db, "embed-arctic-infinity", encrypt_params(litellm, EMBED, [SALT]), age=20),
        "dup_new": insert_model(db, "embed-arctic-infinity", encrypt_params(litellm, EMBED, [SALT]), age=10),
        # MT-04: a service that no longer exists; written by hand, in plaintext.
        "zombie": insert_model(db, "embed-arctic-m-f16-ollama", dict(EMBED), age=5),
    }
    db.sql(
        'INSERT INTO "LiteLLM_CredentialsTable" (credential_id, credential_name, credential_values, created_by, '
        "updated_by) VALUES ('cred-1', 'anthropic-team', %s::jsonb, 'test', 'test')",
        (json.dumps(encrypt_params(litellm, {"api_key": CRED_KEY}, [OLD_SALT, SALT])),),
    )
    db.sql(
        "INSERT INTO \"LiteLLM_Config\" (param_name, param_value) VALUES ('environment_variables', %s::jsonb)",
        (json.dumps(encrypt_params(litellm, {"LANGFUSE_SECRET_KEY": ENV_SECRET}, [OLD_SALT])),),
    )
    return rows


def test_audit_names_every_incident_and_writes_nothing(db, broken):
    before = snapshot(db)
    rc, result, raw = table_module(db, {"old_salt_keys": [OLD_SALT], "catalogue": ["chat-gpt-4o-mini-openai"]})
    assert rc == 0, raw
    assert result["changed"] is False
    assert snapshot(db) == before
    found = kinds(result)
    double = f"model 'chat-qwen2.5-0.5b-llamacpp' ({broken['double']})"
    assert ("MT-01", "routing_field_ciphertext", double) in found
    assert ("MT-02", "double_encrypted", double) in found
    assert ("MT-02", "old_key", f"model 'embed-nomic-ollama' ({broken['old']})") in found
    assert ("MT-02", "plaintext", f"model 'embed-arctic-m-f16-ollama' ({broken['zombie']})") in found
    assert ("MT-02", "double_encrypted", "credential 'anthropic-team' (cred-1)") in found
    assert ("MT-02", "old_key", "LiteLLM_Config environment_variables") in found
    assert ("MT-04", "zombie", f"model 'embed-arctic-m-f16-ollama' ({broken['zombie']})") in found
    duplicates = [f for f in result["findings"] if f["kind"] == "duplicate"]
    assert len(duplicates) == 1
    assert f"keeping {broken['dup_new']}" in duplicates[0]["message"]
    # The good row is not reported at all.
    assert not [f for f in result["findings"] if broken["good"] in f.get("row", "")]
    summary = result["summary"]
    assert summary["rows"]["model"] == 6
    assert summary["encrypted_more_than_once"] == 5  # 4 of the llama.cpp row, 1 credential
    assert summary["unreadable"] == 0


def test_normalize_makes_litellm_read_every_value_in_one_step(db, broken, litellm, tmp_path):
    args = {
        "old_salt_keys": [OLD_SALT],
        "normalize": True,
        "remove_duplicates": True,
        "remove_zombies": True,
        "catalogue": [
            "chat-gpt-4o-mini-openai",
            "chat-qwen2.5-0.5b-llamacpp",
            "embed-nomic-ollama",
            "embed-arctic-infinity",
        ],
    }
    before = snapshot(db)
    good_before = models(db)[broken["good"]][1]
    rc, result, raw = table_module(db, args, check=True, diff=True, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is True
    assert snapshot(db) == before, "check mode wrote to the database"
    assert not (tmp_path / "backups").exists(), "check mode wrote a backup"
    assert "encrypted 2 times" in result["diff"]["before"]
    assert "encrypted once: salt_key" in result["diff"]["after"]

    rc, result, raw = table_module(db, args, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is True
    rows = models(db)
    assert set(rows) == {broken["good"], broken["double"], broken["old"], broken["dup_new"]}
    assert rows[broken["good"]][1] == good_before, "a row that was right was rewritten"
    assert_litellm_reads_once(litellm, rows[broken["good"]][1], GOOD)
    assert_litellm_reads_once(litellm, rows[broken["double"]][1], LOCAL)
    assert_litellm_reads_once(litellm, rows[broken["old"]][1], EMBED, old=(OLD_SALT,))
    assert_litellm_reads_once(litellm, rows[broken["dup_new"]][1], EMBED)
    (cred,) = db.sql('SELECT credential_values FROM "LiteLLM_CredentialsTable"')[0]
    assert_litellm_reads_once(litellm, cred, {"api_key": CRED_KEY}, old=(OLD_SALT,))
    (env,) = db.sql("SELECT param_value FROM \"LiteLLM_Config\" WHERE param_name = 'environment_variables'")[0]
    assert_litellm_reads_once(litellm, env, {"LANGFUSE_SECRET_KEY": ENV_SECRET}, old=(OLD_SALT,))

    backup = Path(result["backup"])
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.parent.stat().st_mode) == 0o700
    saved = json.loads(backup.read_text())
    assert {r["key"] for r in saved["rows"]} >= {broken["zombie"], broken["dup_old"], broken["double"]}

    rc, result, raw = table_module(db, args, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is False
    assert result["findings"] == []


def test_a_wrong_key_fails_before_writing_and_names_the_row_and_field(db, broken):
    before = snapshot(db)
    rc, result, _raw = table_module(db, {"salt_key": OTHER_SALT, "normalize": True})
    assert rc != 0
    assert snapshot(db) == before
    message = result["msg"]
    # Every encrypted value of the fixture (the zombie's plaintext reads without a key).
    assert "cannot read 14 value(s) with the keys given, so nothing was written" in message
    named = re.findall(r"model '([^']+)' \(([0-9a-f-]{36})\) field (\w+)", message)
    assert named
    assert all(model_id in broken.values() for _name, model_id, _field in named)
    assert "old_salt_keys" in message


def test_a_missing_old_key_is_named_too(db, broken):
    before = snapshot(db)
    rc, result, _raw = table_module(db, {"normalize": True})
    assert rc != 0
    assert snapshot(db) == before
    assert f"model 'embed-nomic-ollama' ({broken['old']}) field model" in result["msg"]
    assert "LiteLLM_Config environment_variables field LANGFUSE_SECRET_KEY" in result["msg"]


def test_rotation_leaves_every_value_under_the_new_key_only(db, litellm, tmp_path):
    ids = {
        "a": insert_model(db, "chat-gpt-4o-mini-openai", encrypt_params(litellm, GOOD, [OLD_SALT])),
        "b": insert_model(db, "chat-qwen2.5-0.5b-llamacpp", encrypt_params(litellm, LOCAL, [OLD_SALT])),
    }
    new_salt = "sk-salt-rotated-" + uuid.uuid4().hex
    args = {"salt_key": new_salt, "old_salt_keys": [OLD_SALT, SALT], "normalize": True}
    before = snapshot(db)
    rc, result, raw = table_module(db, args, check=True, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is True
    assert snapshot(db) == before
    rc, result, raw = table_module(db, args, tmp_path=tmp_path)
    assert rc == 0, raw
    assert new_salt not in raw
    rows = models(db)
    assert_litellm_reads_once(litellm, rows[ids["a"]][1], GOOD, key=new_salt, old=(OLD_SALT, SALT))
    assert_litellm_reads_once(litellm, rows[ids["b"]][1], LOCAL, key=new_salt, old=(OLD_SALT, SALT))
    rc, result, raw = table_module(db, args, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is False


def test_v2_gcm_round_trip_with_the_newest_litellm_that_installs(db, oracles, litellm, tmp_path):
    newest = oracles("1.103.7")
    gcm = insert_model(db, "chat-gpt-4o-mini-openai", encrypt_params(newest, GOOD, [OLD_SALT], "aes-256-gcm"))
    legacy = insert_model(db, "chat-qwen2.5-0.5b-llamacpp", encrypt_params(litellm, LOCAL, [SALT]))
    assert models(db)[gcm][1]["api_key"].startswith("v2:gcm:")
    rc, result, raw = table_module(db, {"old_salt_keys": [OLD_SALT]})
    assert rc == 0, raw
    assert result["summary"]["algorithms"] == {"aes-256-gcm": 2, "xsalsa20-poly1305": 4}
    args = {"old_salt_keys": [OLD_SALT], "normalize": True, "encryption_algorithm": "aes-256-gcm"}
    rc, result, raw = table_module(db, args, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is True
    rows = models(db)
    assert rows[gcm][1]["api_key"].startswith("v2:gcm:")
    assert_litellm_reads_once(newest, rows[gcm][1], GOOD, old=(OLD_SALT,))
    # The legacy row was already right: left in LiteLLM 1.80.16's format, which both releases read.
    assert not rows[legacy][1]["api_key"].startswith("v2:")
    assert_litellm_reads_once(newest, rows[legacy][1], LOCAL)


def test_an_unknown_versioned_format_is_refused_by_name(db, litellm):
    insert_model(db, "chat-gpt-4o-mini-openai", {"model": "v3:xchacha:AAAABBBBCCCC", "api_key": "x"})
    rc, result, raw = table_module(db, {})
    assert rc == 0, raw
    assert any(f["kind"] == "unsupported_format" and "v3:xchacha:" in f["message"] for f in result["findings"])
    before = snapshot(db)
    rc, result, raw = table_module(db, {"normalize": True})
    assert rc != 0
    assert "v3:xchacha:" in result["msg"]
    assert snapshot(db) == before


# ------------------------------------------------------------------ seeding (MT-05, DB-05)


def catalogue_models() -> list[dict]:
    return [
        {
            "model_name": "chat-qwen2.5-0.5b-llamacpp",
            "litellm_params": {**LOCAL, "api_key": "none", "rpm": 30},
            "model_info": {"mode": "chat", "id": "8c7b0f0e-5d0a-5b38-9b43-000000000001"},
        },
        {
            "model_name": "chat-gpt-4o-mini-openai",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "os.environ/OPENAI_API_KEY"},
            "model_info": {"mode": "chat", "id": "8c7b0f0e-5d0a-5b38-9b43-000000000002"},
        },
    ]


def test_seed_writes_the_catalogue_as_litellm_would_and_keeps_it(db, litellm, tmp_path):
    wanted = catalogue_models()
    # A duplicate of a catalogue model added through the UI, and the router settings changed there.
    ui_copy = insert_model(db, "chat-gpt-4o-mini-openai", encrypt_params(litellm, wanted[1]["litellm_params"], [SALT]))
    db.sql(
        "INSERT INTO \"LiteLLM_Config\" (param_name, param_value) VALUES ('router_settings', %s::jsonb)",
        (json.dumps({"routing_strategy": "latency-based-routing", "num_retries": 2}),),
    )
    config = {
        "router_settings": {"routing_strategy": "simple-shuffle", "num_retries": 2},
        "general_settings": {"store_model_in_db": True, "master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    args = {"models": wanted, "config": config, "admin_user_id": "default_user_id", "remove_duplicates": True}
    before = snapshot(db)
    rc, result, raw = table_module(db, args, check=True, diff=True, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is True
    assert snapshot(db) == before
    found = {(f["id"], f["kind"]) for f in result["findings"]}
    assert {
        ("MT-05", "missing_model"),
        ("MT-05", "config_drift"),
        ("MT-03", "duplicate"),
        ("DB-05", "admin_user"),
    } <= found
    assert "routing_strategy: latency-based-routing" in result["diff"]["before"]

    rc, result, raw = table_module(db, args, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is True
    rows = models(db)
    assert ui_copy not in rows, "the duplicate of a seeded model was kept"
    for model in wanted:
        name, params = rows[model["model_info"]["id"]]
        assert name == model["model_name"]
        assert_litellm_reads_once(litellm, params, model["litellm_params"])
    settings = dict(db.sql('SELECT param_name, param_value FROM "LiteLLM_Config"'))
    assert settings["router_settings"] == config["router_settings"]
    assert settings["general_settings"] == config["general_settings"]
    assert db.sql("SELECT user_role FROM \"LiteLLM_UserTable\" WHERE user_id = 'default_user_id'") == [("proxy_admin",)]

    rc, result, raw = table_module(db, args, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is False

    # Drift in a seeded row (a changed rpm, an encrypted-twice provider) is put back.
    model_id = wanted[0]["model_info"]["id"]
    params = rows[model_id][1]
    params["rpm"] = 500
    params["custom_llm_provider"] = litellm.encrypt(params["custom_llm_provider"], SALT)
    db.sql(
        'UPDATE "LiteLLM_ProxyModelTable" SET litellm_params = %s::jsonb WHERE model_id = %s',
        (json.dumps(params), model_id),
    )
    rc, result, raw = table_module(db, args, tmp_path=tmp_path)
    assert rc == 0, raw
    assert result["changed"] is True
    assert any(f["kind"] == "model_drift" and "rpm" in f["message"] for f in result["findings"])
    assert_litellm_reads_once(litellm, models(db)[model_id][1], wanted[0]["litellm_params"])


def test_bad_input_is_refused_by_name(db):
    rc, result, _raw = table_module(db, {"models": [{"model_name": "chat-x-openai", "litellm_params": {"model": "x"}}]})
    assert rc != 0
    assert "models[0] (chat-x-openai): model_info.id is required" in result["msg"]
    literal = {"model_name": "chat-x-openai", "litellm_params": {"model": "openai/x", "api_key": "sk-abc"}}
    literal["model_info"] = {"id": "x"}
    rc, result, _raw = table_module(db, {"models": [literal]})
    assert rc != 0
    assert "litellm_params.api_key must name its secret as os.environ/VARIABLE" in result["msg"]
    rc, result, _raw = table_module(db, {"config": {"environment_variables": {}}})
    assert rc != 0
    assert "config.environment_variables" in result["msg"]
    rc, result, _raw = table_module(db, {"database_url": db.url + "?sslmode=disable&bogus=1"})
    assert rc != 0
    assert "'bogus'" in result["msg"]


def test_stores_the_schema_lacks_are_skipped_not_failed(pg_admin, database):
    database.sql(
        'CREATE TABLE "LiteLLM_ProxyModelTable" (model_id text PRIMARY KEY, model_name text, litellm_params jsonb, '
        "model_info jsonb, created_at timestamp, updated_at timestamp)"
    )
    rc, result, raw = run_module("litellm_model_table", {"database_url": database.url, "salt_key": SALT})
    assert rc == 0, raw
    assert any("LiteLLM_CredentialsTable" in s for s in result["missing_stores"])
