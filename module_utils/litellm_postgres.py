"""PostgreSQL for the modules that talk to LiteLLM's database: options, URL, connection, errors.

Shaped like community.postgresql's module_utils/postgres.py: the connection options every such
module takes (`CONNECTION_ARGUMENT_SPEC`, documented in doc_fragments/litellm_database.py), an
`AnsibleModule` built with them (`database_module`), the `Connection` its parameters describe,
`connect`, and the error type a module turns into `fail_json`. A `DATABASE_URL` is read as Prisma
reads it (DB-07): Prisma's own parameters are kept apart from libpq's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule
    from psycopg2.extensions import connection as PgConnection

# URL parameters that only Prisma understands (DB-07): read, never handed to libpq.
PRISMA_URL_PARAMS = {
    "connection_limit",
    "pool_timeout",
    "schema",
    "pgbouncer",
    "socket_timeout",
    "statement_cache_size",
    "sslaccept",
    "sslidentity",
    "max_connection_lifetime",
    "max_idle_connection_lifetime",
}
LIBPQ_URL_PARAMS = {
    "host",
    "hostaddr",
    "port",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslcrl",
    "sslpassword",
    "sslcompression",
    "sslsni",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "channel_binding",
    "gssencmode",
    "requiressl",
}


class DatabaseError(Exception):
    """Stops the module; the message says what was being done and what to do next, never a secret."""


@dataclass
class Connection:
    host: str = "localhost"
    port: int = 5432
    user: str = ""
    password: str = ""
    database: str = ""
    schema: str = "public"
    libpq: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"PostgreSQL at {self.host}:{self.port} (database {self.database!r}, user {self.user!r})"

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user, "dbname": self.database}
        if self.password:
            kwargs["password"] = self.password
        kwargs.update(self.libpq)
        return kwargs


def parse_database_url(url: str) -> Connection:
    """Read a DATABASE_URL as Prisma does: its own parameters are kept apart from libpq's."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DatabaseError(f"database_url cannot be read: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseError(f"database_url must start with postgresql:// (found {parts.scheme or 'no'} scheme)")
    conn = Connection(
        host=unquote(parts.hostname or "localhost"),
        port=port or 5432,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
    )
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            conn.schema = value or "public"
        elif key in PRISMA_URL_PARAMS:
            conn.ignored.append(key)
        elif key in ("host", "port"):
            setattr(conn, key, int(value) if key == "port" else value)
        elif key in LIBPQ_URL_PARAMS:
            conn.libpq[key] = value
        else:
            raise DatabaseError(
                f"database_url has the parameter {key!r}, which neither Prisma nor libpq knows; remove it"
            )
    if not conn.database:
        raise DatabaseError("database_url names no database (postgresql://user:password@host:port/DATABASE)")
    return conn


# The connection options every module that talks to LiteLLM's database takes (documented in
# doc_fragments/litellm_database.py).
CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "database_url": {"type": "str", "no_log": True},
    "login_host": {"type": "str", "default": "localhost"},
    "login_port": {"type": "int", "default": 5432},
    "login_user": {"type": "str"},
    "login_password": {"type": "str", "no_log": True},
    "db": {"type": "str"},
    "schema": {"type": "str"},
}
CONNECTION_MUTUALLY_EXCLUSIVE = [("database_url", "login_user"), ("database_url", "db")]
CONNECTION_REQUIRED_ONE_OF = [("database_url", "db")]


def database_module(argument_spec: dict[str, dict[str, Any]]) -> AnsibleModule:
    """An AnsibleModule with the connection options besides its own, stopped early without psycopg2."""
    from ansible.module_utils.basic import AnsibleModule, missing_required_lib

    module = AnsibleModule(
        argument_spec={**CONNECTION_ARGUMENT_SPEC, **argument_spec},
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
        required_one_of=CONNECTION_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        module.fail_json(msg=missing_required_lib("psycopg2"))
    return module


def connection_from_params(params: dict[str, Any]) -> Connection:
    """The Connection a module's parameters describe: a DATABASE_URL, or login_* and db."""
    if params["database_url"]:
        conn = parse_database_url(params["database_url"])
    else:
        conn = Connection(
            params["login_host"],
            params["login_port"],
            params["login_user"] or "",
            params["login_password"] or "",
            params["db"],
        )
    if params["schema"]:
        conn.schema = params["schema"]
    return conn


def connect(conn: Connection) -> PgConnection:
    import psycopg2  # imported here so that the parsing above works without it

    try:
        return psycopg2.connect(**conn.connect_kwargs())
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if conn.password:
            reason = reason.replace(conn.password, "********")
        raise DatabaseError(
            f"cannot connect to {conn.where}: {reason}. Check that PostgreSQL is running and reachable from "
            f"this host, and the credentials."
        ) from None


def quote_ident(name: str) -> str:
    """NAME as a PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def pg_reason(exc: Exception) -> str:
    """PostgreSQL's first line of an error (never a parameter value: migrations carry none)."""
    text = (getattr(exc, "pgerror", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0].removeprefix("ERROR:").strip()
