#!/usr/bin/python
"""Ansible module: LiteLLM's model table (and its other salt-key-encrypted values), audited and repaired."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: litellm_model_table
short_description: Audit and repair LiteLLM's encrypted model table; rotate the salt key; seed the catalogue
description:
  - Reads every value LiteLLM encrypts with C(LITELLM_SALT_KEY) (the string values of
    C(LiteLLM_ProxyModelTable.litellm_params), C(LiteLLM_CredentialsTable.credential_values), the
    C(environment_variables) and C(cloudzero_settings) rows of C(LiteLLM_Config), MCP server credentials)
    layer by layer with the keys given, in LiteLLM's legacy format (XSalsa20-Poly1305) and its versioned
    C(v2:gcm:) format (AES-256-GCM). Other versioned formats are refused by name.
  - Reports, by incident ID, plaintext values, values encrypted more than once or under an old key,
    values no key opens (MT-02), routing fields LiteLLM would load as ciphertext (MT-01), duplicate
    models (MT-03), models not in the catalogue (MT-04), catalogue and C(LiteLLM_Config) drift (MT-05)
    and a missing proxy admin user (DB-05). Results name rows and fields, never a value or a key.
  - Writes only what is asked for. Every write is planned first; check mode stops there. Otherwise
    the rows about to change are saved to a JSON backup (0600, in a 0700 directory) and the whole
    change runs in one transaction. A value no key opens stops any rewrite before anything is written.
options:
  salt_key:
    description: The current C(LITELLM_SALT_KEY). Everything written is encrypted with it.
    type: str
    required: true
  old_salt_keys:
    description:
      - Earlier salt keys, used only to read. With I(normalize=true) every value under one of them is
        re-encrypted under I(salt_key), which rotates the salt key.
    type: list
    elements: str
    default: []
  encryption_algorithm:
    description:
      - The format new values are written in, as the deployed LiteLLM writes it
        (C(general_settings.encryption_algorithm)). LiteLLM releases before C(v2:gcm:) support
        cannot read C(aes-256-gcm).
    type: str
    choices: [xsalsa20-poly1305, aes-256-gcm]
    default: xsalsa20-poly1305
  normalize:
    description:
      - Make every value decrypt to its plaintext in exactly one layer under I(salt_key) (MT-01, MT-02);
        plaintext values are encrypted. Values already in one layer under I(salt_key) are left as they are.
    type: bool
    default: false
  models:
    description:
      - The catalogue's models as LiteLLM C(model_list) entries (C(model_name), C(litellm_params),
        C(model_info) with a stable C(id)). Each gets a row with that id, its string parameters encrypted
        as LiteLLM encrypts them; a row that differs is rewritten (MT-05).
      - Secrets are named, never given (C(api_key=os.environ/OPENAI_API_KEY)); a literal value under a
        secret-looking name is refused.
    type: list
    elements: dict
  catalogue:
    description:
      - The model names that may have rows (models and aliases). Rows for other names are zombies (MT-04);
        rows of team models are not. Defaults to the names in I(models); without either, zombies are not looked for.
    type: list
    elements: str
  remove_duplicates:
    description: Delete rows that repeat another row's name and decrypted parameters, keeping the seeded or newest one.
    type: bool
    default: false
  remove_zombies:
    description: Delete rows whose model is not in the catalogue.
    type: bool
    default: false
  config:
    description:
      - C(LiteLLM_Config) rows to hold exactly these values, by C(param_name) (C(general_settings),
        C(router_settings), ...). The encrypted C(environment_variables) row cannot be set here.
    type: dict
    default: {}
  admin_user_id:
    description:
      - The proxy admin's C(user_id); its C(LiteLLM_UserTable) row is made to exist with role proxy_admin (DB-05).
    type: str
  backup_dir:
    description: Where the JSON backup of the rows about to change is written.
    type: path
    default: /var/lib/litellm/model-table-backups
  actor:
    description: The C(created_by) and C(updated_by) of rows this module writes.
    type: str
    default: litellm-gateway
  lock_timeout:
    description: Seconds to wait for the tables while a proxy writes to them.
    type: int
    default: 30
requirements:
  - pynacl
  - cryptography
notes:
  - Run it with the LiteLLM virtual environment's Python, which carries all three.
  - Supports check mode (plan only) and diff mode (per row and field, values masked).
extends_documentation_fragment:
  - litellm_database
author: litellm-gateway
"""

EXAMPLES = r"""
- name: Audit (read-only)
  litellm_model_table:
    database_url: "{{ litellm_proxy_database_url }}"
    salt_key: "{{ litellm_proxy_salt_key }}"

- name: Rotate the salt key
  litellm_model_table:
    database_url: "{{ litellm_proxy_database_url }}"
    salt_key: "{{ new_salt_key }}"
    old_salt_keys: ["{{ old_salt_key }}"]
    normalize: true
"""

RETURN = r"""
summary:
  description:
    - Rows per store, and values counted by state (plaintext, encrypted once, more than once, under an old
      key, unreadable) and by format.
  returned: always
  type: dict
findings:
  description: What is wrong, each with its incident ID (id), kind, store, row, field and a message.
  returned: always
  type: list
  elements: dict
changes:
  description: The rows written (or, in check mode, that would be), with masked before and after per field.
  returned: always
  type: list
  elements: dict
backup:
  description: The JSON backup of the rows before the change; null when nothing was written.
  returned: always
  type: str
missing_stores:
  description: Stores that this database's schema does not have.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.litellm_crypto import CryptoError, missing_libraries
from ansible.module_utils.litellm_model_table import ModelTable, ModelTableError, Options, build_keys, diff_text
from ansible.module_utils.litellm_postgres import DatabaseError, connect, connection_from_params, database_module


def main() -> None:
    module = database_module(
        {
            "salt_key": {"type": "str", "required": True, "no_log": True},
            "old_salt_keys": {"type": "list", "elements": "str", "default": [], "no_log": True},
            "encryption_algorithm": {
                "type": "str",
                "default": "xsalsa20-poly1305",
                "choices": ["xsalsa20-poly1305", "aes-256-gcm"],
            },
            "normalize": {"type": "bool", "default": False},
            "models": {"type": "list", "elements": "dict"},
            "catalogue": {"type": "list", "elements": "str"},
            "remove_duplicates": {"type": "bool", "default": False},
            "remove_zombies": {"type": "bool", "default": False},
            "config": {"type": "dict", "default": {}},
            "admin_user_id": {"type": "str"},
            "backup_dir": {"type": "path", "default": "/var/lib/litellm/model-table-backups"},
            "actor": {"type": "str", "default": "litellm-gateway"},
            "lock_timeout": {"type": "int", "default": 30},
        }
    )
    missing = missing_libraries()
    if missing:
        module.fail_json(msg=missing_required_lib(" and ".join(missing)))
    p = module.params
    try:
        result = run(module, p)
    except (ModelTableError, DatabaseError, CryptoError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


def run(module: AnsibleModule, p: dict) -> dict:
    conn_params = connection_from_params(p)
    options = Options(
        normalize=p["normalize"],
        remove_duplicates=p["remove_duplicates"],
        remove_zombies=p["remove_zombies"],
        models=p["models"],
        catalogue=p["catalogue"],
        config=p["config"],
        admin_user_id=p["admin_user_id"],
        algorithm=p["encryption_algorithm"],
        backup_dir=p["backup_dir"],
        actor=p["actor"],
        lock_timeout=p["lock_timeout"],
    )
    keys = build_keys(p["salt_key"], p["old_salt_keys"])
    conn = connect(conn_params)
    try:
        result = ModelTable(conn, conn_params.schema, keys, options, module.check_mode).run()
    finally:
        conn.close()
    if module._diff and result["changes"]:
        result["diff"] = {
            "before": diff_text(result["changes"], "before"),
            "after": diff_text(result["changes"], "after"),
        }
    return result


if __name__ == "__main__":
    main()
