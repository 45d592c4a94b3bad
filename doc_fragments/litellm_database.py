"""Documentation shared by the modules that connect to LiteLLM's PostgreSQL database."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  database_url:
    description:
      - A Prisma C(DATABASE_URL). Prisma's own parameters (C(connection_limit), C(pool_timeout), C(pgbouncer),
        ...) are understood and not passed to libpq; C(schema=) selects the PostgreSQL schema.
      - Mutually exclusive with I(login_user) and I(db).
    type: str
  login_host:
    description: Host of the database server.
    type: str
    default: localhost
  login_port:
    description: Port of the database server.
    type: int
    default: 5432
  login_user:
    description: User to connect as.
    type: str
  login_password:
    description: Password of I(login_user).
    type: str
  db:
    description: Database name.
    type: str
  schema:
    description: The PostgreSQL schema; overrides C(schema=) in I(database_url). Defaults to C(public).
    type: str
requirements:
  - psycopg2
"""
