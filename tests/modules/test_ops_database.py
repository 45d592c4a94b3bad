"""The operations tools against a real PostgreSQL 15: backup, verify, restore, skills, keys, pool.

Backups use the real pg_dump and pg_restore; the tools get the password the way their units do
(a systemd credentials directory), never on a command line.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import create_database, drop_database
from litellm_ops import backup, compliance, config, keys, knowledge

# The tables the tools read, as LiteLLM's Prisma schema creates them (the columns they use).
SCHEMA = """
CREATE TABLE "LiteLLM_ProxyModelTable" (model_id TEXT PRIMARY KEY, model_name TEXT NOT NULL,
  litellm_params JSONB NOT NULL, model_info JSONB);
CREATE TABLE "LiteLLM_VerificationToken" (token TEXT PRIMARY KEY, key_name TEXT, key_alias TEXT,
  expires TIMESTAMP(3), spend DOUBLE PRECISION NOT NULL DEFAULT 0);
CREATE TABLE "LiteLLM_SkillsTable" (skill_id TEXT PRIMARY KEY, display_title TEXT, description TEXT,
  instructions TEXT, source TEXT NOT NULL DEFAULT 'custom', latest_version TEXT, file_content BYTEA,
  file_name TEXT, file_type TEXT, metadata JSONB DEFAULT '{}', created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
  created_by TEXT, updated_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_by TEXT);
"""


@pytest.fixture
def live(pg_admin, tmp_path, monkeypatch):
    db = create_database(pg_admin, "ops_live")
    scratch = create_database(pg_admin, "ops_scratch")
    db.sql(SCHEMA)
    for i in range(25):
        db.sql(
            'INSERT INTO "LiteLLM_ProxyModelTable" VALUES (%s, %s, %s, NULL)',
            (f"id-{i}", f"chat-m{i % 5}-vllm", json.dumps({"model": "x"})),
        )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "db-password").write_text(pg_admin["password"] + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    conf = tmp_path / "etc-litellm"
    conf.mkdir()
    (conf / "config.yaml").write_text("model_list: []\n")
    (conf / "litellm.env").write_text("LITELLM_SALT_KEY=plain-text-secret\n")
    settings = {
        "state_dir": str(tmp_path / "state"),
        "salt_key_fingerprint": "f" * 64,
        "litellm_version": "1.80.16",
        "database": {"host": pg_admin["host"], "port": pg_admin["port"], "name": db.name, "user": pg_admin["user"]},
        "backup": {
            "dir": str(tmp_path / "backups"),
            "retention": {"daily": 7, "weekly": 4, "monthly": 3},
            "config_paths": [str(conf)],
            "exclude": [str(conf / "litellm.env")],
            "pg_bin_dir": "/usr/lib/postgresql/15/bin",
            "scratch_database": scratch.name,
        },
        "compliance": {
            "keys": {"warn_days": 7, "grace_days": 7},
            "pool": {"limit_per_worker": 2, "workers": 2, "proxy_hosts": 1, "usage_threshold": 0.8},
        },
        "knowledge": {"dir": str(tmp_path / "skills")},
    }
    yield settings, db, scratch
    drop_database(pg_admin, db.name)
    drop_database(pg_admin, scratch.name)


def test_backup_is_verified_and_restores_with_the_same_counts(live):
    settings, _db, scratch = live
    outcome = backup.create(settings)
    path = Path(outcome["backup"])
    assert oct(path.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in path.iterdir())
    manifest = json.loads((path / backup.MANIFEST).read_text())
    assert manifest["row_counts"]["LiteLLM_ProxyModelTable"] == 25
    assert manifest["salt_key_fingerprint"] == "f" * 64
    # The plain-text secrets stay out of the backup.
    assert manifest["config_files"] == [str(Path(settings["backup"]["config_paths"][0]) / "config.yaml")]
    assert b"plain-text-secret" not in b"".join(p.read_bytes() for p in path.iterdir())
    restored = backup.restore(settings, path, scratch.name)
    assert restored["rows"] == sum(manifest["row_counts"].values())
    assert scratch.sql('SELECT count(*) FROM "LiteLLM_ProxyModelTable"') == [(25,)]
    check = backup.restore_check(settings)
    assert check["status"] == "ok"
    assert scratch.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_restore_refuses_another_salt_key_and_damaged_files(live):
    settings, _db, scratch = live
    path = Path(backup.create(settings)["backup"])
    other = {**settings, "salt_key_fingerprint": "0" * 64}
    with pytest.raises(config.OpsError, match=r"fingerprint f{64}, but litellm_salt_key has fingerprint 0{64}"):
        backup.restore(other, path, scratch.name)
    with (path / backup.DUMP).open("ab") as handle:
        handle.write(b"garbage")
    with pytest.raises(config.OpsError, match="does not match its manifest"):
        backup.verify(settings, path)
    assert scratch.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_a_failed_dump_leaves_no_backup(live):
    settings, _db, _scratch = live
    broken = {**settings, "backup": {**settings["backup"], "pg_bin_dir": "/nonexistent"}}
    with pytest.raises(FileNotFoundError):
        backup.create(broken)
    assert list(Path(settings["backup"]["dir"]).iterdir()) == []


def test_skills_sync_is_idempotent_and_removes_only_its_own(live):
    settings, db, _scratch = live
    root = Path(settings["knowledge"]["dir"])
    for name in ("alpha", "beta"):
        (root / name).mkdir(parents=True)
        (root / name / "SKILL.md").write_text(f"---\nname: {name}\ndescription: d\n---\nbody {name}\n")
    db.sql("INSERT INTO \"LiteLLM_SkillsTable\" (skill_id, display_title) VALUES ('litellm_skill_api', 'by the API')")
    planned = knowledge.sync(settings, check=True)
    assert planned["add"] == ["litellm_skill_alpha", "litellm_skill_beta"]
    assert planned["changed"]
    assert db.sql('SELECT count(*) FROM "LiteLLM_SkillsTable"') == [(1,)]
    assert knowledge.sync(settings)["changed"] is True
    assert knowledge.sync(settings)["changed"] is False
    rows = db.sql('SELECT skill_id, instructions, length(file_content) > 0 FROM "LiteLLM_SkillsTable" ORDER BY 1')
    assert rows == [
        ("litellm_skill_alpha", "body alpha", True),
        ("litellm_skill_api", None, None),
        ("litellm_skill_beta", "body beta", True),
    ]
    (root / "beta" / "SKILL.md").unlink()
    (root / "beta").rmdir()
    (root / "alpha" / "SKILL.md").write_text("---\nname: alpha\n---\nnew body\n")
    outcome = knowledge.sync(settings)
    assert (outcome["update"], outcome["remove"]) == (["litellm_skill_alpha"], ["litellm_skill_beta"])
    assert db.sql('SELECT skill_id, instructions FROM "LiteLLM_SkillsTable" ORDER BY 1') == [
        ("litellm_skill_alpha", "new body"),
        ("litellm_skill_api", None),
    ]


def test_expired_keys_fail_sec03_and_are_pruned(live):
    settings, db, _scratch = live
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for token, alias, expires in (
        ("t1", "old-key", now - dt.timedelta(days=40)),
        ("t2", "recent", now - dt.timedelta(days=1)),
        ("t3", "soon", now + dt.timedelta(days=3)),
        ("t4", "fine", now + dt.timedelta(days=90)),
        ("t5", "forever", None),
    ):
        db.sql(
            'INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, expires) VALUES (%s, %s, %s)',
            (token, alias, expires),
        )
    result = compliance.check_keys(settings)
    assert result["status"] == "fail"
    assert result["lingering"] == ["old-key"]
    assert result["expiring"] == ["soon"]
    assert keys.prune(settings, check=True) == {
        "changed": True,
        "check_mode": True,
        "grace_days": 7,
        "keys": ["old-key"],
    }
    assert db.sql('SELECT count(*) FROM "LiteLLM_VerificationToken"') == [(5,)]
    assert keys.prune(settings)["keys"] == ["old-key"]
    assert keys.prune(settings)["changed"] is False
    assert compliance.check_keys(settings)["status"] == "warn"


def test_pool_check_compares_with_max_connections(live):
    settings, _db, _scratch = live
    assert compliance.check_pool(settings)["status"] == "pass"
    huge = {
        **settings,
        "compliance": {
            **settings["compliance"],
            "pool": {"limit_per_worker": 100, "workers": 4, "proxy_hosts": 3, "usage_threshold": 0.8},
        },
    }
    result = compliance.check_pool(huge)
    assert result["status"] == "fail"
    assert "the proxies may open 1200 connections" in result["detail"]


def test_a_database_without_litellm_tables_is_named(live):
    settings, db, _scratch = live
    db.sql('DROP TABLE "LiteLLM_SkillsTable"; DROP TABLE "LiteLLM_VerificationToken"')
    Path(settings["knowledge"]["dir"]).mkdir()
    with pytest.raises(
        config.OpsError, match=r"\"LiteLLM_SkillsTable\" does not exist in ops_live_\w+: LiteLLM's schema"
    ):
        knowledge.sync(settings)
    with pytest.raises(config.OpsError, match="LiteLLM_VerificationToken"):
        keys.prune(settings, check=True)


def test_rotation_mints_a_replacement_litellm_accepts_with_a_90_day_expiry(
    module, database, releases, oracles, pg_admin, tmp_path, monkeypatch
):
    """SEC-03, optional rotation, in LiteLLM 1.80.16's own table: check mode writes nothing; the
    replacement copies the old key's grants, LiteLLM's own hash_token finds it, its plaintext is
    only in a 0600 file, and a second run mints nothing."""
    release = releases["1.80.16"]
    rc, _result, raw = module(
        {"database_url": database.url, "schema_file": str(release.schema), "migrations_dir": str(release.migrations)}
    )
    assert rc == 0, raw
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for token, alias, expires in (
        ("hash-old", "team-a-key", now - dt.timedelta(days=3)),
        ("hash-anon", None, now - dt.timedelta(days=3)),
        ("hash-live", "live-key", now + dt.timedelta(days=30)),
    ):
        database.sql(
            'INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, expires, models, user_id, max_budget, '
            "metadata, updated_at) VALUES (%s, %s, %s, ARRAY['gpt-4o'], 'user-a', 10, '{\"owner\": \"a\"}', now())",
            (token, alias, expires),
        )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "db-password").write_text(pg_admin["password"] + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    rotated_dir = tmp_path / "rotated"
    settings = {
        "database": {
            "host": pg_admin["host"],
            "port": pg_admin["port"],
            "name": database.name,
            "user": pg_admin["user"],
        },
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    new_alias = f"team-a-key-rotated-{stamp}"

    planned = keys.rotate(settings, 90, str(rotated_dir), check=True)
    assert planned["changed"] is True
    assert [(r["from"], r["to"]) for r in planned["rotated"]] == [("team-a-key", new_alias)]
    assert database.sql('SELECT count(*) FROM "LiteLLM_VerificationToken"') == [(3,)]
    assert not rotated_dir.exists()

    result = keys.rotate(settings, 90, str(rotated_dir))
    assert result["rotated"] == [
        {"from": "team-a-key", "to": new_alias, "file": str(rotated_dir / f"{new_alias}.key"), "expires_in_days": 90}
    ]
    key_file = rotated_dir / f"{new_alias}.key"
    assert (rotated_dir.stat().st_mode & 0o777, key_file.stat().st_mode & 0o777) == (0o700, 0o600)
    key = key_file.read_text(encoding="utf-8").strip()
    assert key.startswith("sk-")
    assert key not in json.dumps(result)
    token = oracles("1.80.16").hash_token(key)
    ((alias, models, user, budget, metadata, spend, days, key_name),) = database.sql(
        "SELECT key_alias, models, user_id, max_budget, metadata, spend, round(extract(epoch FROM expires - now()) "
        '/ 86400), key_name FROM "LiteLLM_VerificationToken" WHERE token = %s',
        (token,),
    )
    assert (alias, models, user, budget, spend, int(days)) == (new_alias, ["gpt-4o"], "user-a", 10, 0, 90)
    assert metadata == {"owner": "a", "rotated_from": "hash-old"}
    assert key_name == f"sk-...{key[-4:]}"
    # The old key is left for prune (after the grace period); nothing else was rotated.
    assert database.sql('SELECT count(*) FROM "LiteLLM_VerificationToken"') == [(4,)]

    assert keys.rotate(settings, 90, str(rotated_dir)) == {"changed": False, "check_mode": False, "rotated": []}
