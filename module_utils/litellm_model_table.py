"""LiteLLM's model table and the other values it encrypts with the salt key: audit and repair.

LiteLLM encrypts every string of a stored model's ``litellm_params`` (and credential values,
database environment variables, MCP credentials) with a key derived from
``LITELLM_SALT_KEY``, and loads them with "return the original value if decryption fails".
A value encrypted twice, or under an old key, therefore loads silently as ciphertext. This
module reads every value layer by layer with the keys given (litellm_crypto), reports what it
found by incident ID, and, only when asked, makes it right in one transaction:

- normalize (MT-01, MT-02): every value one layer under the current key; rotation is the same
  with the old keys given to read with;
- remove duplicates (MT-03) and zombies (MT-04);
- seed the catalogue's models and ``LiteLLM_Config`` rows from the inventory (MT-05);
- the proxy admin's user row (DB-05).

Every write is planned first. Check mode stops there. Otherwise the affected rows are written
to a JSON backup (0600) and the whole change runs in one transaction. A value no key opens
stops a write before anything is written. Results name rows and fields; never a value or key.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ansible.module_utils.litellm_crypto import (
    ALGORITHMS,
    CryptoError,
    Key,
    Reading,
    read,
    what_litellm_sees,
)

# Fields LiteLLM routes with: ciphertext here is a silent 500 on every call (MT-01).
ROUTING_FIELDS = frozenset(
    {
        "model",
        "custom_llm_provider",
        "api_base",
        "api_version",
        "base_model",
        "litellm_credential_name",
        "region_name",
        "vertex_project",
        "vertex_location",
        "organization",
    }
)
# LITELLM_Config rows whose values LiteLLM encrypts: handled as stores, never seeded as settings.
ENCRYPTED_CONFIG_PARAMS = ("environment_variables", "cloudzero_settings")
_SECRET_SETTING = ("key", "password", "secret", "token")


class ModelTableError(Exception):
    """Stops the run before anything is written. The message names rows and fields only."""


@dataclass(frozen=True)
class Store:
    """A place where LiteLLM keeps values encrypted with the salt key."""

    name: str
    table: str
    id_column: str
    json_column: str
    label_column: str | None = None
    # None: every top-level string of the JSON object (LiteLLM encrypts them all).
    fields: tuple[str, ...] | None = None
    where: str = ""


STORES = (
    Store("model", "LiteLLM_ProxyModelTable", "model_id", "litellm_params", "model_name"),
    Store("credential", "LiteLLM_CredentialsTable", "credential_id", "credential_values", "credential_name"),
    Store(
        "environment_variables",
        "LiteLLM_Config",
        "param_name",
        "param_value",
        where="param_name = 'environment_variables'",
    ),
    Store(
        "cloudzero_settings",
        "LiteLLM_Config",
        "param_name",
        "param_value",
        fields=("api_key",),
        where="param_name = 'cloudzero_settings'",
    ),
    Store(
        "mcp_server",
        "LiteLLM_MCPServerTable",
        "server_id",
        "credentials",
        "server_name",
        fields=("auth_value", "client_id", "client_secret"),
    ),
)


@dataclass
class Options:
    normalize: bool = False
    remove_duplicates: bool = False
    remove_zombies: bool = False
    # Seeding: the catalogue's models as LiteLLM's model_list entries (model_info.id set).
    models: list[dict] | None = None
    # Names that may have rows (models and aliases); None: zombies are not looked for.
    catalogue: list[str] | None = None
    config: dict = field(default_factory=dict)
    admin_user_id: str | None = None
    algorithm: str = "xsalsa20-poly1305"
    backup_dir: str = "/var/lib/litellm/model-table-backups"
    actor: str = "litellm-gateway"
    lock_timeout: int = 30

    @property
    def rewrites_values(self) -> bool:
        return self.normalize or bool(self.models) or self.remove_duplicates or self.remove_zombies


@dataclass
class Row:
    store: Store
    id: str
    label: str
    data: dict | None
    model_info: dict | None = None
    newest: tuple = ()
    readings: dict[str, Reading] = field(default_factory=dict)

    @functools.cached_property
    def where(self) -> str:
        """The row as results name it (computed once: every finding on the row repeats it)."""
        if self.store.table == "LiteLLM_Config":
            return f"LiteLLM_Config {self.id}"
        return f"{self.store.name} {self.label!r} ({self.id})"

    @property
    def readable(self) -> bool:
        return self.data is not None and all(r.readable for r in self.readings.values())

    def plain(self) -> dict:
        """The JSON object as LiteLLM means it: every value decrypted (only when readable)."""
        out = dict(self.data or {})
        for name, reading in self.readings.items():
            out[name] = reading.plaintext
        return out


@dataclass
class Change:
    """One row to write: the masked account of what changes, and the new content."""

    action: str  # update, insert, delete, upsert
    store: str
    table: str
    key: str
    where: str
    reason: str
    fields: list[dict] = field(default_factory=list)
    values: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"action": self.action, "store": self.store, "row": self.where, "reason": self.reason}
        if self.fields:
            out["fields"] = self.fields
        return out


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_object(value) -> dict | None:
    """A JSON column's object (also when it was stored as a JSON string holding one), else None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _secret_name(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_SETTING)


def is_reference(name: str, value) -> bool:
    """True unless ``value`` is a literal secret: a string under a secret-looking name that is
    neither an os.environ/ reference nor a placeholder such as "none"."""
    if not isinstance(value, str) or not _secret_name(name):
        return True
    return value.startswith("os.environ/") or value.lower() in ("", "none")


def mask_setting(name: str, value):
    """A setting as a report may show it: values of secret-looking keys are hidden."""
    if isinstance(value, dict):
        return {k: mask_setting(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_setting(name, v) for v in value]
    if isinstance(value, str) and _secret_name(name) and not value.startswith("os.environ/"):
        return "********"
    return value


def build_keys(salt_key: str, old_salt_keys: list[str] | None) -> list[Key]:
    """The current key first, then the old ones; an old key equal to an earlier one is dropped."""
    keys = [Key("salt_key", salt_key)]
    for index, secret in enumerate(old_salt_keys or []):
        key = Key(f"old_salt_keys[{index}]", secret)
        if not any(key.same_as(k) for k in keys):
            keys.append(key)
    return keys


class ModelTable:
    def __init__(self, conn, schema: str, keys: list[Key], options: Options, check_mode: bool) -> None:
        if options.algorithm not in ALGORITHMS:
            raise ModelTableError(
                f"encryption_algorithm must be one of {', '.join(ALGORITHMS)}, got {options.algorithm!r}"
            )
        for name, value in options.config.items():
            if name in ENCRYPTED_CONFIG_PARAMS:
                raise ModelTableError(f"config.{name}: LiteLLM encrypts this row's values; it cannot be seeded here")
            for key, setting in value.items() if isinstance(value, dict) else ():
                if not is_reference(key, setting):
                    raise ModelTableError(
                        f"config.{name}.{key} must name its secret as os.environ/VARIABLE, never hold it (SEC-05)"
                    )
        self.conn = conn
        self.schema = schema
        self.keys = keys
        self.current = keys[0]
        self.options = options
        self.check_mode = check_mode
        self.rows: dict[str, list[Row]] = {}
        self.columns: dict[str, set[str]] = {}
        self.findings: list[dict] = []
        self.changes: list[Change] = []
        self.missing_stores: list[str] = []

    # ------------------------------------------------------------------ reading

    def _table(self, table: str) -> str:
        return f"{_q(self.schema)}.{_q(table)}"

    def _load_columns(self, cur) -> None:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
            (self.schema,),
        )
        for table, column in cur.fetchall():
            self.columns.setdefault(table, set()).add(column)

    def _load(self, cur, store: Store) -> list[Row]:
        have = self.columns.get(store.table, set())
        if store.json_column not in have:
            self.missing_stores.append(
                f"{store.name}: {store.table}.{store.json_column} does not exist in this database"
            )
            return []
        is_model = store.name == "model"
        label = _q(store.label_column) if store.label_column and store.label_column in have else _q(store.id_column)
        extra = ", model_info, updated_at, created_at" if is_model else ""
        where = f" WHERE {store.where}" if store.where else ""
        cur.execute(
            f"SELECT {_q(store.id_column)}, {label}, {_q(store.json_column)}{extra} "
            f"FROM {self._table(store.table)}{where} ORDER BY 1"
        )
        rows = []
        for record in cur.fetchall():
            row = Row(store, str(record[0]), str(record[1]), _json_object(record[2]))
            if is_model:
                row.model_info = _json_object(record[3])
                row.newest = (record[4] is not None, str(record[4] or ""), str(record[5] or ""), row.id)
            if row.data is None:
                self._finding("MT-02", "invalid", row, None, f"{store.json_column} is not a JSON object")
            else:
                for name, value in row.data.items():
                    if isinstance(value, str) and (store.fields is None or name in store.fields):
                        row.readings[name] = read(value, self.keys)
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ audit

    def _finding(self, incident: str, kind: str, row: Row | None, name: str | None, message: str) -> None:
        entry = {"id": incident, "kind": kind, "message": message}
        if row is not None:
            entry["store"] = row.store.name
            entry["row"] = row.where
        if name is not None:
            entry["field"] = name
        self.findings.append(entry)

    def _audit_values(self) -> dict:
        counts: dict[str, Any] = {
            "values": 0,
            "plaintext": 0,
            "encrypted_once": 0,
            "encrypted_more_than_once": 0,
            "under_an_old_key": 0,
            "unreadable": 0,
            "unsupported_format": 0,
        }
        algorithms: dict[str, int] = {}
        for rows in self.rows.values():
            for row in rows:
                for name, reading in row.readings.items():
                    counts["values"] += 1
                    self._audit_value(row, name, reading, counts)
                    if reading.layers:
                        algorithm = reading.layers[-1].algorithm
                        algorithms[algorithm] = algorithms.get(algorithm, 0) + 1
        counts["algorithms"] = algorithms
        return counts

    def _audit_value(self, row: Row, name: str, reading: Reading, counts: dict) -> None:
        layers = reading.layers
        if (
            len(layers) == 1
            and layers[0].key == self.current.label
            and reading.plaintext is not None
            and not reading.sealed_remainder
        ):
            # The usual case and the one without a finding, decided before any message is built:
            # one layer under the current key, which LiteLLM's one decryption opens.
            counts["encrypted_once"] += 1
            return
        where = f"{row.where} field {name}"
        if reading.unsupported:
            counts["unsupported_format"] += 1
            self._finding("MT-02", "unsupported_format", row, name, f"{where} is {reading.describe()}")
            return
        if not reading.readable:
            counts["unreadable"] += 1
            self._finding(
                "MT-02",
                "undecryptable",
                row,
                name,
                f"{where} is {reading.describe()}: add the key that wrote it to old_salt_keys",
            )
            return
        if not layers:
            counts["plaintext"] += 1
            self._finding("MT-02", "plaintext", row, name, f"{where} is stored unencrypted; LiteLLM encrypts it")
        elif len(layers) == 1:
            counts["encrypted_once"] += 1
        else:
            counts["encrypted_more_than_once"] += 1
            self._finding("MT-02", "double_encrypted", row, name, f"{where} is {reading.describe()}")
        if any(layer.key != self.current.label for layer in layers):
            counts["under_an_old_key"] += 1
            if len(layers) == 1:
                self._finding("MT-02", "old_key", row, name, f"{where} is {reading.describe()}")
        if reading.sealed_remainder and layers:
            self._finding(
                "MT-02",
                "sealed_inside",
                row,
                name,
                f"{where} is {reading.describe()}: if it is a ciphertext, give its key in old_salt_keys",
            )
        routing = row.store.name == "model" and name in ROUTING_FIELDS
        if routing and what_litellm_sees(reading, self.current) == "ciphertext":
            self._finding(
                "MT-01",
                "routing_field_ciphertext",
                row,
                name,
                f"{where}: LiteLLM's one decryption leaves a ciphertext in this routing field",
            )

    # ------------------------------------------------------------------ planning

    def _sealed(self, plain: dict) -> dict:
        """The parameters as LiteLLM stores them: every string encrypted once under the current key."""
        return {
            name: self.current.seal(value, self.options.algorithm) if isinstance(value, str) else value
            for name, value in plain.items()
        }

    def _needs_normalizing(self, reading: Reading) -> bool:
        return reading.readable and not (len(reading.layers) == 1 and reading.layers[0].key == self.current.label)

    @functools.cached_property
    def _once(self) -> str:
        return f"encrypted once: {self.current.label} ({self.options.algorithm})"

    def _plan_normalize(self, row: Row, seeded: set[str]) -> None:
        if row.data is None or (row.store.name == "model" and row.id in seeded):
            return
        todo = [name for name, reading in row.readings.items() if self._needs_normalizing(reading)]
        if not todo:
            return
        values = dict(row.data)
        fields = []
        for name in todo:
            reading = row.readings[name]
            values[name] = self.current.seal(cast(str, reading.plaintext), self.options.algorithm)  # readable
            fields.append({"field": name, "before": reading.describe(), "after": self._once})
        self.changes.append(
            Change(
                "update",
                row.store.name,
                row.store.table,
                row.id,
                row.where,
                "normalize: one layer under the current salt key (MT-01, MT-02)",
                fields,
                {"data": values},
            )
        )

    def _desired_models(self) -> list[dict]:
        desired = []
        seen = set()
        for index, entry in enumerate(self.options.models or []):
            where = f"models[{index}]"
            if not isinstance(entry, dict) or not entry.get("model_name"):
                raise ModelTableError(f"{where}: each model needs model_name and litellm_params")
            params = entry.get("litellm_params")
            info = entry.get("model_info") or {}
            if not isinstance(params, dict) or not isinstance(params.get("model"), str):
                raise ModelTableError(f"{where} ({entry['model_name']}): litellm_params needs a model string")
            if not isinstance(info, dict) or not info.get("id"):
                raise ModelTableError(
                    f"{where} ({entry['model_name']}): model_info.id is required, so the row has a stable id"
                )
            if str(info["id"]) in seen:
                raise ModelTableError(f"{where} ({entry['model_name']}): model_info.id {info['id']} is used twice")
            seen.add(str(info["id"]))
            for name, value in params.items():
                if not is_reference(name, value):
                    raise ModelTableError(
                        f"{where} ({entry['model_name']}): litellm_params.{name} must name its secret as "
                        "os.environ/VARIABLE; a seeded model carries references, never a secret (SEC-05)"
                    )
            desired.append({"model_name": str(entry["model_name"]), "litellm_params": params, "model_info": info})
        return desired

    def _plan_seed(self, desired: list[dict]) -> None:
        by_id = {row.id: row for row in self.rows.get("model", [])}
        for model in desired:
            model_id = str(model["model_info"]["id"])
            row = by_id.get(model_id)
            params = model["litellm_params"]
            # Sealed only for a row that is written: a no-op run encrypts nothing.
            new = {"model_name": model["model_name"], "model_info": model["model_info"]}
            if row is None:
                fields = [
                    {"field": k, "after": self._once if isinstance(v, str) else v} for k, v in sorted(params.items())
                ]
                self._finding("MT-05", "missing_model", None, None, f"model {model['model_name']!r} has no row")
                self.changes.append(
                    Change(
                        "insert",
                        "model",
                        "LiteLLM_ProxyModelTable",
                        model_id,
                        f"model {model['model_name']!r} ({model_id})",
                        "seed: a catalogue model has no row (MT-05)",
                        fields,
                        {**new, "data": self._sealed(params)},
                    )
                )
                continue
            if not row.readable:
                continue  # reported as unreadable; the write is refused before anything runs
            fields, drifted = self._seed_fields(row, params)
            if row.label != model["model_name"]:
                fields.append({"field": "model_name", "before": row.label, "after": model["model_name"]})
                drifted.append("model_name")
            if _canonical(row.model_info or {}) != _canonical(model["model_info"]):
                fields.append({"field": "model_info", "before": "differs", "after": "as the catalogue renders it"})
                drifted.append("model_info")
            if not fields:
                continue
            if drifted:
                self._finding(
                    "MT-05", "model_drift", row, None, f"{row.where} differs from the catalogue in {', '.join(drifted)}"
                )
            self.changes.append(
                Change(
                    "update",
                    "model",
                    "LiteLLM_ProxyModelTable",
                    model_id,
                    row.where,
                    "seed: the row as the catalogue renders it, one layer under the current salt key (MT-05)",
                    fields,
                    {**new, "data": self._sealed(params)},
                )
            )

    def _seed_fields(self, row: Row, params: dict) -> tuple[list[dict], list[str]]:
        """What seeding changes in a row: masked per field, and the fields whose content differs."""
        plain = row.plain()
        fields, drifted = [], []
        for name in sorted(set(plain) | set(params)):
            reading = row.readings.get(name)
            if name not in params:
                fields.append({"field": name, "before": "set", "after": "removed (not in the catalogue)"})
            elif name not in plain:
                after = self._once if isinstance(params[name], str) else params[name]
                fields.append({"field": name, "before": "missing", "after": after})
            elif type(plain[name]) is not type(params[name]) or plain[name] != params[name]:
                if isinstance(params[name], str) or isinstance(plain[name], str):
                    fields.append({"field": name, "before": "differs from the catalogue", "after": self._once})
                else:
                    fields.append({"field": name, "before": plain[name], "after": params[name]})
            else:
                if reading is not None and self._needs_normalizing(reading):
                    fields.append({"field": name, "before": reading.describe(), "after": self._once})
                continue
            drifted.append(name)
        return fields, drifted

    def _plan_duplicates_and_zombies(self, desired: list[dict]) -> None:
        seeded = {str(m["model_info"]["id"]): m for m in desired}
        rows = self.rows.get("model", [])
        deleting: dict[str, tuple[Row, str]] = {}
        # Duplicates (MT-03): same name and the same decrypted parameters, as the rows will be.
        # (name, row, its parameters or None for the row's own), in row order, then seeded rows to come.
        named: list[tuple[str, Row, dict | None]] = []
        for row in rows:
            if not row.readable:
                continue
            if row.id in seeded:
                named.append((seeded[row.id]["model_name"], row, seeded[row.id]["litellm_params"]))
            else:
                named.append((row.label, row, None))
        present = {row.id for row in rows}
        for model_id, model in seeded.items():
            if model_id not in present:
                row = Row(self._store("model"), model_id, model["model_name"], {}, newest=(True, "~", "~", model_id))
                named.append((model["model_name"], row, model["litellm_params"]))
        # Only a name that several rows carry can have duplicates: the parameters of the others
        # are never decrypted into a dict and serialized just to be compared with nothing.
        shared = Counter(name for name, _row, _params in named)
        groups: dict[tuple[str, str], list[Row]] = {}
        for name, row, params in named:
            if shared[name] > 1:
                groups.setdefault((name, _canonical(row.plain() if params is None else params)), []).append(row)
        for (name, _params), members in groups.items():
            if len(members) < 2:
                continue
            keep = max(members, key=lambda r: (r.id in seeded, r.newest))
            others = [r for r in members if r is not keep]
            self._finding(
                "MT-03",
                "duplicate",
                None,
                None,
                f"model {name!r} has {len(members)} rows with the same parameters: keeping {keep.id}, "
                f"duplicates {', '.join(r.id for r in others)}",
            )
            if self.options.remove_duplicates:
                for row in others:
                    deleting[row.id] = (row, f"duplicate of {keep.id} (MT-03)")
        # Zombies (MT-04): rows for models the catalogue no longer has. Team models are the teams'.
        names = self.options.catalogue
        if names is None and self.options.models:
            names = [m["model_name"] for m in desired]
        if names is not None:
            known = set(names)
            for row in rows:
                if row.label in known or row.id in seeded or (row.model_info or {}).get("team_id"):
                    continue
                self._finding("MT-04", "zombie", row, None, f"{row.where} is not in the catalogue")
                if self.options.remove_zombies:
                    deleting.setdefault(row.id, (row, "not in the catalogue (MT-04)"))
        for row, reason in deleting.values():
            self.changes = [c for c in self.changes if not (c.store == "model" and c.key == row.id)]
            self.changes.append(Change("delete", "model", row.store.table, row.id, row.where, f"remove: {reason}"))

    def _plan_config(self, cur) -> None:
        if not self.options.config:
            return
        if "param_value" not in self.columns.get("LiteLLM_Config", set()):
            raise ModelTableError("LiteLLM_Config does not exist: run the schema sync first")
        cur.execute(
            f"SELECT param_name, param_value FROM {self._table('LiteLLM_Config')} WHERE param_name = ANY(%s)",
            (list(self.options.config),),
        )
        current = dict(cur.fetchall())
        for name, wanted in sorted(self.options.config.items()):
            have = current.get(name)
            if name in current and _canonical(have) == _canonical(wanted):
                continue
            fields = []
            if isinstance(have, dict) and isinstance(wanted, dict):
                for key in sorted(set(have) | set(wanted)):
                    if _canonical(have.get(key)) != _canonical(wanted.get(key)):
                        fields.append(
                            {
                                "field": key,
                                "before": mask_setting(key, have[key]) if key in have else "missing",
                                "after": mask_setting(key, wanted[key]) if key in wanted else "removed",
                            }
                        )
            else:
                fields.append({"field": name, "before": "missing" if name not in current else "differs"})
            self._finding(
                "MT-05",
                "config_drift",
                None,
                None,
                f"LiteLLM_Config {name} "
                + ("is missing" if name not in current else f"differs in {', '.join(f['field'] for f in fields)}"),
            )
            self.changes.append(
                Change(
                    "upsert",
                    "config",
                    "LiteLLM_Config",
                    name,
                    f"LiteLLM_Config {name}",
                    "seed: as the inventory renders it (MT-05)",
                    fields,
                    {"value": wanted},
                )
            )

    def _plan_admin(self, cur) -> None:
        user = self.options.admin_user_id
        if not user:
            return
        if "user_role" not in self.columns.get("LiteLLM_UserTable", set()):
            raise ModelTableError("LiteLLM_UserTable does not exist: run the schema sync first")
        cur.execute(f"SELECT user_role FROM {self._table('LiteLLM_UserTable')} WHERE user_id = %s", (user,))
        found = cur.fetchone()
        if found is not None and found[0] == "proxy_admin":
            return
        before = "missing" if found is None else f"user_role {found[0]!r}"
        self._finding("DB-05", "admin_user", None, None, f"the proxy admin user {user!r} is {before}")
        self.changes.append(
            Change(
                "upsert",
                "admin_user",
                "LiteLLM_UserTable",
                user,
                f"LiteLLM_UserTable {user}",
                "the proxy admin's row that keys and budgets refer to (DB-05)",
                [{"field": "user_role", "before": before, "after": "proxy_admin"}],
            )
        )

    def _key_column(self, change: Change) -> str:
        if change.store == "config":
            return "param_name"
        if change.store == "admin_user":
            return "user_id"
        return self._store(change.store).id_column

    def _store(self, name: str) -> Store:
        return next(s for s in STORES if s.name == name)

    # ------------------------------------------------------------------ writing

    def _refuse_unreadable(self) -> None:
        bad = []
        for rows in self.rows.values():
            for row in rows:
                for name, reading in row.readings.items():
                    if not reading.readable:
                        bad.append(f"{row.where} field {name} ({reading.describe()})")
        if bad:
            shown = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
            raise ModelTableError(
                f"cannot read {len(bad)} value(s) with the keys given, so nothing was written: {shown}. "
                "Give the key that wrote them in old_salt_keys (or check salt_key), then run again."
            )

    def _backup(self, cur) -> str:
        directory = Path(self.options.backup_dir)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        snapshot = [{"table": c.table, "key": c.key, "before": None} for c in self.changes if c.action == "insert"]
        keys: dict[tuple[str, str], list[str]] = {}
        for change in self.changes:
            if change.action != "insert":
                keys.setdefault((change.table, self._key_column(change)), []).append(change.key)
        for (table, column), wanted in keys.items():
            cur.execute(
                f"SELECT {_q(column)}, row_to_json(t) FROM {self._table(table)} t WHERE {_q(column)} = ANY(%s)",
                (wanted,),
            )
            found = dict(cur.fetchall())
            snapshot.extend({"table": table, "key": key, "before": found.get(key)} for key in wanted)
        path = directory / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-model-table.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        # json.dumps, not json.dump: the same text, from the C encoder instead of the Python one.
        text = json.dumps({"schema": self.schema, "rows": snapshot}, default=str)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        return str(path)

    def _execute(self, cur) -> None:
        from psycopg2.extras import execute_values

        updates: dict[str, list[tuple]] = {}
        for change in self.changes:
            table = self._table(change.table)
            if change.action == "delete":
                column = self._store(change.store).id_column
                cur.execute(f"DELETE FROM {table} WHERE {_q(column)} = %s", (change.key,))
            elif change.action == "insert":
                cur.execute(
                    f"INSERT INTO {table} (model_id, model_name, litellm_params, model_info, created_by, updated_by) "
                    "VALUES (%s, %s, %s::jsonb, %s::jsonb, %s, %s)",
                    (
                        change.key,
                        change.values["model_name"],
                        json.dumps(change.values["data"]),
                        json.dumps(change.values["model_info"]),
                        self.options.actor,
                        self.options.actor,
                    ),
                )
            elif change.store == "config":
                cur.execute(
                    f"INSERT INTO {table} (param_name, param_value) VALUES (%s, %s::jsonb) "
                    "ON CONFLICT (param_name) DO UPDATE SET param_value = EXCLUDED.param_value",
                    (change.key, json.dumps(change.values["value"])),
                )
            elif change.store == "admin_user":
                cur.execute(
                    f"INSERT INTO {table} (user_id, user_role) VALUES (%s, 'proxy_admin') "
                    "ON CONFLICT (user_id) DO UPDATE SET user_role = 'proxy_admin', updated_at = CURRENT_TIMESTAMP",
                    (change.key,),
                )
            elif "model_name" in change.values:
                cur.execute(
                    f"UPDATE {table} SET model_name = %s, litellm_params = %s::jsonb, model_info = %s::jsonb, "
                    "updated_at = CURRENT_TIMESTAMP, updated_by = %s WHERE model_id = %s",
                    (
                        change.values["model_name"],
                        json.dumps(change.values["data"]),
                        json.dumps(change.values["model_info"]),
                        self.options.actor,
                        change.key,
                    ),
                )
            else:
                updates.setdefault(change.store, []).append((json.dumps(change.values["data"]), change.key))
        # One UPDATE ... FROM (VALUES ...) per thousand rows, not one statement per row: the server
        # parses and plans once per page. Each key is one row's (changes hold a row once).
        for name, params in updates.items():
            store = self._store(name)
            have = self.columns.get(store.table, set())
            touch = ", updated_at = CURRENT_TIMESTAMP" if "updated_at" in have else ""
            touch += ", updated_by = v.actor" if "updated_by" in have else ""
            execute_values(
                cur,
                f"UPDATE {self._table(store.table)} AS t SET {_q(store.json_column)} = v.data::jsonb{touch} "
                f"FROM (VALUES %s) AS v (key, data, actor) WHERE t.{_q(store.id_column)} = v.key",
                [(key, data, self.options.actor) for data, key in params],
                page_size=1000,
            )

    # ------------------------------------------------------------------ run

    def run(self) -> dict:
        cur = self.conn.cursor()
        try:
            writing = not self.check_mode
            if writing:
                cur.execute("SET LOCAL lock_timeout = %s", (f"{int(self.options.lock_timeout)}s",))
            self._load_columns(cur)
            tables = sorted({s.table for s in STORES if s.json_column in self.columns.get(s.table, set())})
            if writing and tables:
                # Readers go on; writers (a proxy saving a model) wait until this transaction ends.
                cur.execute("LOCK TABLE " + ", ".join(self._table(t) for t in tables) + " IN SHARE ROW EXCLUSIVE MODE")
            for store in STORES:
                self.rows[store.name] = self._load(cur, store)
            counts = self._audit_values()
            desired = self._desired_models()
            seeded = {str(m["model_info"]["id"]) for m in desired}
            if desired:
                self._plan_seed(desired)
            if self.options.normalize:
                for rows in self.rows.values():
                    for row in rows:
                        self._plan_normalize(row, seeded)
            self._plan_duplicates_and_zombies(desired)
            self._plan_config(cur)
            self._plan_admin(cur)
            if self.options.rewrites_values:
                self._refuse_unreadable()
            backup = None
            if self.changes and not self.check_mode:
                backup = self._backup(cur)
                self._execute(cur)
                self.conn.commit()
            else:
                self.conn.rollback()
        except CryptoError as exc:
            self.conn.rollback()
            raise ModelTableError(str(exc)) from None
        except Exception:
            self.conn.rollback()
            raise
        finally:
            cur.close()
        return {
            "changed": bool(self.changes),
            "summary": {
                "rows": {name: len(rows) for name, rows in self.rows.items()},
                **counts,
            },
            "findings": self.findings,
            "changes": [change.as_dict() for change in self.changes],
            "backup": backup,
            "missing_stores": self.missing_stores,
        }


def diff_text(changes: list[dict], state: str) -> str:
    """Ansible's before/after text: one line per row and field, values masked."""
    lines = []
    for change in changes:
        if change["action"] == "delete":
            lines.append(f"{change['row']}: {'present' if state == 'before' else 'deleted'}")
            continue
        if change["action"] == "insert" and state == "before":
            lines.append(f"{change['row']}: missing")
            continue
        for item in change.get("fields", []):
            value = item.get(state, "")
            if not isinstance(value, str):
                value = json.dumps(value)
            lines.append(f"{change['row']}: {item['field']}: {value}")
    return "\n".join(lines) + ("\n" if lines else "")
