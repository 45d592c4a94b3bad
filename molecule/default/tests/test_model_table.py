"""LiteLLM's model table on the converged host: the admin row exists (DB-05) and seeding writes the
catalogue as LiteLLM reads it (MT-05). The repair of rows that LiteLLM's own code double-encrypted
(MT-01, MT-02) is in the remediation scenario, which uses the helpers here. LiteLLM's helpers
inside the proxy's venv write and read the rows; the salt key is read there from the root-only
environment file, never passed on a command line."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import PROJECT, run_playbook

PSQL = "runuser -u postgres -- psql -p 5434 -d litellm -v ON_ERROR_STOP=1 -qAt"
PYTHON = "/opt/litellm/venv/bin/python"
# Runs inside the container: LiteLLM 1.80.16's own helpers with the deployed salt key.
LITELLM = """
import json, os, re, subprocess, sys
env = dict(re.findall(r'^(\\w+)="(.*)"$', open("/etc/litellm/litellm.env").read(), re.M))
os.environ["LITELLM_SALT_KEY"] = key = env["LITELLM_SALT_KEY"]
from litellm.proxy.common_utils.encrypt_decrypt_utils import decrypt_value_helper, encrypt_value_helper
request = json.loads(sys.argv[1])
if request["op"] in ("insert", "insert_twice_encrypted"):
    layers = 2 if request["op"] == "insert_twice_encrypted" else 1
    if request.get("key_file"):  # another (old) salt key, from a root-only file on the host
        key = open(request["key_file"]).read().strip()
    params = dict(request["params"])
    for _ in range(layers):
        params = {k: encrypt_value_helper(v, key) for k, v in params.items()}
    sql = ('INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, model_info, created_by, '
           "updated_by) VALUES ('%s', '%s', '%s'::jsonb, '{}'::jsonb, 'molecule', 'molecule')"
           % (request["id"], request["name"], json.dumps(params)))
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-p", "5434", "-d", "litellm", "-q",
                    "-v", "ON_ERROR_STOP=1"], input=sql, text=True, check=True)
    print(json.dumps({}))
else:
    rows = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-p", "5434", "-d", "litellm", "-Atc",
                           'SELECT model_id, litellm_params FROM "LiteLLM_ProxyModelTable"'],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    out = {}
    for line in rows:
        model_id, params = line.split("|", 1)
        once = {k: decrypt_value_helper(v, k, "debug") if isinstance(v, str) else v
                for k, v in json.loads(params).items()}
        again = sorted(k for k, v in once.items() if isinstance(v, str) and decrypt_value_helper(v, k, "debug"))
        out[model_id] = {"once": once, "decryptable_again": again}
    print(json.dumps(out))
"""

LOCAL = {
    "model": "openai/qwen2.5-0.5b-instruct",
    "custom_llm_provider": "openai",
    "api_base": "http://127.0.0.1:8080/v1",
}


def sql(host, statement: str) -> str:
    return host.check_output(f"{PSQL} <<'SQL'\n{statement}\nSQL")


def litellm(host, request: dict) -> dict:
    script = LITELLM.replace("'", "'\"'\"'")
    out = host.check_output(f"{PYTHON} -c '{script}' '{json.dumps(request)}' 2>/dev/null")
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def clean_table(host):
    yield
    sql(host, 'DELETE FROM "LiteLLM_ProxyModelTable"')
    sql(host, "DELETE FROM \"LiteLLM_Config\" WHERE param_name IN ('general_settings', 'router_settings')")


def test_the_proxy_admin_row_exists(host):
    """DB-05: keys and budgets refer to LiteLLM's admin user."""
    assert sql(host, "SELECT user_role FROM \"LiteLLM_UserTable\" WHERE user_id = 'default_user_id'") == "proxy_admin"
    code, output, changed = run_playbook(str(PROJECT / "playbooks" / "model_table.yml"), "--check")
    assert code == 0, output
    assert changed == 0, output


def test_seeding_writes_the_catalogue_with_stable_ids(host, clean_table):
    sys.path.insert(0, str(PROJECT / "filter_plugins"))
    from litellm_catalogue import litellm_model_id

    extra = ["-e", '{"gateway_store_model_in_db": true}']
    code, output, changed = run_playbook(str(PROJECT / "playbooks" / "model_table.yml"), *extra)
    assert code == 0, output
    assert changed == 1, output
    seen = litellm(host, {"op": "read"})
    names = ["chat-qwen2.5-0.5b-llamacpp", "chat-gpt-4o-mini-openai", "chat-selftest-mock", "chat-default"]
    assert set(seen) == {litellm_model_id(name) for name in names}
    local = seen[litellm_model_id("chat-default")]
    assert local["decryptable_again"] == []
    assert local["once"]["model"] == "openai/qwen2.5-0.5b-instruct"
    assert local["once"]["timeout"] == 120
    router = sql(host, "SELECT param_value::text FROM \"LiteLLM_Config\" WHERE param_name = 'router_settings'")
    assert json.loads(router)["timeout"] == 120

    code, output, changed = run_playbook(str(PROJECT / "playbooks" / "model_table.yml"), *extra)
    assert code == 0, output
    assert changed == 0, output
