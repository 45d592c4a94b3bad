"""Fixtures for the module tests: a real PostgreSQL 15, real LiteLLM releases, the module run by Ansible.

`make module-test` installs and starts PostgreSQL, creates the test role, downloads the wheels and
sets the variables read here. Run by hand, a missing piece skips the tests with the reason; under
`make` (LITELLM_TEST_REQUIRE=1) it fails them instead, so CI cannot pass without them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

PROJECT = Path(__file__).resolve().parents[2]

import ansible.module_utils  # noqa: E402

# The project's module_utils, importable as Ansible imports them.
ansible.module_utils.__path__.append(str(PROJECT / "module_utils"))  # type: ignore[attr-defined]

REQUIRED = os.environ.get("LITELLM_TEST_REQUIRE") == "1"

# The releases the tests use: LiteLLM's own wheel (schema.prisma) and two litellm-proxy-extras
# releases (migrations, and the newer one's own schema.prisma).
RELEASES = {
    "1.80.16": (
        "litellm-1.80.16-py3-none-any.whl",
        "litellm/proxy/schema.prisma",
        "litellm_proxy_extras-0.4.21-py3-none-any.whl",
    ),
    "0.4.110": (
        "litellm_proxy_extras-0.4.110-py3-none-any.whl",
        "litellm_proxy_extras/schema.prisma",
        "litellm_proxy_extras-0.4.110-py3-none-any.whl",
    ),
}


def unavailable(reason: str):
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin() -> dict:
    """Credentials of the superuser test role (password from the file make writes)."""
    password_file = os.environ.get("LITELLM_TEST_PG_PASSWORD_FILE")
    if not password_file or not Path(password_file).is_file():
        unavailable("no test PostgreSQL: run `make module-test` (LITELLM_TEST_PG_PASSWORD_FILE is not set)")
    params = {
        "host": "127.0.0.1",
        "port": int(os.environ.get("LITELLM_TEST_PG_PORT", "5432")),
        "user": os.environ.get("LITELLM_TEST_PG_USER", "litellm_schema_test"),
        "password": Path(password_file).read_text(encoding="utf-8").strip(),
    }
    import psycopg2

    try:
        psycopg2.connect(dbname="postgres", **params).close()
    except psycopg2.Error as exc:
        unavailable(f"the test PostgreSQL does not answer: {exc}")
    return params


class Database:
    """A throwaway database, with the helpers the tests need."""

    def __init__(self, admin: dict, name: str) -> None:
        self.admin = admin
        self.name = name
        credentials = f"{quote(admin['user'])}:{quote(admin['password'], safe='')}"
        self.url = f"postgresql://{credentials}@{admin['host']}:{admin['port']}/{name}"

    def connect(self):
        import psycopg2

        conn = psycopg2.connect(dbname=self.name, **self.admin)
        conn.autocommit = True
        return conn

    def sql(self, statement: str, params: tuple | None = None) -> list[tuple]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def dump(self, data: bool = False) -> str:
        """The schema-only dump (with DATA, the rows too): what a check-mode run must leave untouched."""
        proc = subprocess.run(
            [
                "pg_dump",
                *([] if data else ["--schema-only"]),
                "--no-owner",
                "-h",
                self.admin["host"],
                "-p",
                str(self.admin["port"]),
                "-U",
                self.admin["user"],
                self.name,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PGPASSWORD": self.admin["password"]},
        )
        # pg_dump 15.14+ wraps the dump in \restrict <random key>: not part of the schema.
        return "\n".join(
            line for line in proc.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
        )

    def table_exists(self, table: str, schema: str = "public") -> bool:
        return self.sql("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',))[0][0] is not None

    def columns(self, table: str) -> set[str]:
        rows = self.sql("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
        return {r[0] for r in rows}


def admin_sql(pg_admin: dict, statement: str) -> None:
    """One statement on the maintenance database (CREATE/DROP DATABASE)."""
    import psycopg2

    admin = psycopg2.connect(dbname="postgres", **pg_admin)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(statement)
    finally:
        admin.close()


def create_database(pg_admin: dict, prefix: str, template: str | None = None) -> Database:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_sql(pg_admin, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return Database(pg_admin, name)


def drop_database(pg_admin: dict, name: str) -> None:
    admin_sql(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database(pg_admin):
    db = create_database(pg_admin, "schema_test")
    yield db
    drop_database(pg_admin, db.name)


class Release:
    def __init__(self, root: Path, schema: Path, migrations: Path) -> None:
        self.root = root
        self.schema = schema
        self.migrations = migrations

    @property
    def names(self) -> list[str]:
        return sorted(p.name for p in self.migrations.iterdir() if (p / "migration.sql").is_file())

    def subset(self, tmp_path: Path, upto: str | None = None, extra: dict[str, str] | None = None) -> Path:
        """A copy of the migrations, up to (not including) `upto`, plus extra ones."""
        target = tmp_path / f"migrations-{uuid.uuid4().hex[:6]}"
        target.mkdir()
        for name in self.names:
            if upto is not None and name >= upto:
                break
            shutil.copytree(self.migrations / name, target / name)
        for name, script in (extra or {}).items():
            (target / name).mkdir()
            (target / name / "migration.sql").write_text(script, encoding="utf-8")
        return target


@pytest.fixture(scope="session")
def releases(tmp_path_factory) -> dict[str, Release]:
    wheels = os.environ.get("LITELLM_TEST_WHEELS")
    if not wheels or not Path(wheels).is_dir():
        unavailable("the LiteLLM wheels are not downloaded: run `make module-test` (LITELLM_TEST_WHEELS)")
    out = {}
    for version, (schema_wheel, schema_member, extras_wheel) in RELEASES.items():
        root = tmp_path_factory.mktemp(f"release-{version}")
        for wheel in {schema_wheel, extras_wheel}:
            path = Path(wheels) / wheel
            if not path.is_file():
                unavailable(f"{path} is missing: run `make module-test`")
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if m == schema_member or m.startswith("litellm_proxy_extras/")]
                archive.extractall(root, members)
        out[version] = Release(root, root / schema_member, root / "litellm_proxy_extras" / "migrations")
    return out


def run_module(
    name: str, args: dict, check: bool = False, diff: bool = False, env: dict[str, str] | None = None
) -> tuple[int, dict, str]:
    """Run one of our modules through Ansible, as a playbook would; returns (rc, result, raw output)."""
    cmd = [
        str(Path(sys.executable).parent / "ansible"),
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-m",
        name,
        "-a",
        json.dumps(args),
        "-e",
        f"ansible_python_interpreter={sys.executable}",
    ]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(
        cmd,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_NOCOLOR": "1",
            **(env or {}),
        },
    )
    raw = proc.stdout + proc.stderr
    try:
        payload = json.loads(proc.stdout)
        result = payload["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        result = {}
    # No module test may pass while its module prints a deprecation (ansible-core removes what they name).
    deprecations = [d.get("msg") for d in result.get("deprecations", [])] + [
        line for line in raw.splitlines() if "DEPRECATION" in line
    ]
    assert not deprecations, f"{name} printed a deprecation: {deprecations[0]}"
    return proc.returncode, result, raw


_LOADED: dict[str, object] = {}


def call_module(
    name: str, args: dict, check: bool = False, diff: bool = False, library: Path = PROJECT / "library"
) -> tuple[bool, dict]:
    """One of our modules, run in this process as Ansible runs it on a host: its own argument spec,
    check mode, warn() and exit_json(), given the arguments a task passes. Returns (failed, result).

    For tests that run a module hundreds of times; run_module takes the whole Ansible path.
    LIBRARY: the folder the module is in (a test's own module lives elsewhere)."""
    import contextlib
    import importlib.util
    import io

    from ansible.module_utils.common import warnings as ansible_warnings
    from ansible.module_utils.testing import patch_module_args

    if name not in _LOADED:
        spec = importlib.util.spec_from_file_location(f"litellm_test_{name}", library / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        _LOADED[name] = loaded
    # ansible-core gathers warnings and deprecations in this process's globals until it exits: each call
    # starts with none, as a module on a host does, so that one call's do not show in the next's result.
    ansible_warnings._global_warnings.clear()
    ansible_warnings._global_deprecations.clear()
    out = io.StringIO()
    with (
        patch_module_args({**args, "_ansible_check_mode": check, "_ansible_diff": diff}),
        contextlib.redirect_stdout(out),
        contextlib.suppress(SystemExit),
    ):
        _LOADED[name].main()  # type: ignore[attr-defined]
    result = json.loads(out.getvalue())
    deprecations = [message(d) for d in result.get("deprecations", [])]
    assert not deprecations, f"{name} printed a deprecation: {deprecations[0]}"
    return bool(result.get("failed")), result


def message(summary: dict) -> str:
    """The text of a warning or deprecation in a module's own result: through Ansible it is the summary's
    msg; a module run in this process leaves ansible-core's own form, the msg inside an event."""
    if isinstance(summary, str):
        return summary
    return summary.get("msg") or summary.get("event", {}).get("msg") or json.dumps(summary)


@pytest.fixture
def module():
    """litellm_schema_sync, run through Ansible."""

    def run(args: dict, check: bool = False, diff: bool = False) -> tuple[int, dict, str]:
        return run_module("litellm_schema_sync", args, check, diff)

    return run


class Oracle:
    """LiteLLM's own encrypt_value_helper / decrypt_value_helper, in a release's own venv."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(Path(__file__).with_name("litellm_oracle.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.version = self._ask({"op": "version"})

    def _ask(self, request: dict):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("LiteLLM's oracle process ended")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def encrypt(self, value: str, key: str, algorithm: str = "xsalsa20-poly1305") -> str:
        return self._ask({"op": "encrypt", "value": value, "key": key, "algorithm": algorithm})

    def decrypt(self, value: str, key: str) -> str | None:
        return self._ask({"op": "decrypt", "value": value, "key": key})

    def hash_token(self, value: str) -> str:
        return self._ask({"op": "hash_token", "value": value})

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def oracles():
    """Oracle per LiteLLM release, started on first use (its import takes seconds)."""
    root = os.environ.get("LITELLM_TEST_ORACLES")
    started: dict[str, Oracle] = {}

    def get(version: str) -> Oracle:
        if version not in started:
            python = Path(root or "/nonexistent") / f"oracle-{version}" / "bin" / "python"
            if not python.is_file():
                unavailable(f"no LiteLLM {version} to check against: run `make module-test` ({python} is missing)")
            started[version] = Oracle(python)
            assert started[version].version == version
        return started[version]

    yield get
    for oracle in started.values():
        oracle.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
