"""The remediation report filters: found, fixed, left and not audited, from two audits."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("litellm_report", PROJECT / "filter_plugins" / "litellm_report.py")
report_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report_mod)

# The project's own incident catalogue: one `## ID — title` heading per incident, and under each the
# tests that prove it, named as `path::function`.
CATALOGUE = PROJECT / "docs" / "incidents.md"
HEADING = re.compile(r"^## ([A-Z]+-\d\d) — (.+?)\s*$", re.M)
PROOF = re.compile(r"`([\w./-]+\.py)::(\w+)`")


def catalogue_sections() -> dict[str, tuple[str, str]]:
    """Each incident ID of docs/incidents.md -> (its title, the text of its section), in file order."""
    text = CATALOGUE.read_text(encoding="utf-8")
    headings = list(HEADING.finditer(text))
    ends = [h.start() for h in headings[1:]] + [len(text)]
    return {h[1]: (h[2], text[h.end() : end]) for h, end in zip(headings, ends, strict=True)}


def compliance(**statuses: str) -> dict:
    checks = [
        {"id": check_id.replace("_", "-"), "status": s, "detail": f"{s} detail"} for check_id, s in statuses.items()
    ]
    return {"status": "fail" if "fail" in statuses.values() else "pass", "checks": checks}


HEALTHY = {
    "schema": {"pending": [], "repaired": [], "drift": [], "duplicates": [], "client": None},
    "model_table": {"findings": []},
    "compliance": compliance(SEC_04="pass", OPS_06="pass", SEC_03="pass"),
    "rendered": {"checked": ["MT-05"], "findings": []},
}
BROKEN = {
    "schema": {
        "pending": ["20260107111013_add_router_settings_to_keys_teams"],
        "repaired": [{"kind": "missing_table", "table": "LiteLLM_SkillsTable", "message": 'table "X" is missing'}],
        "drift": [],
        "duplicates": [
            {"index": "ix", "table": "LiteLLM_DailyTeamSpend", "groups": 1, "rows_to_remove": 2, "migration": "repair"}
        ],
        "client": None,
    },
    "model_table": {"findings": [{"id": "MT-02", "kind": "double_encrypted", "message": "row a | encrypted 2 times"}]},
    "compliance": compliance(SEC_04="fail", OPS_06="fail", SEC_03="warn"),
    "rendered": {"checked": ["MT-05"], "findings": [{"id": "MT-05", "detail": "config.yaml differs"}]},
}


def entry(report: dict, incident: str) -> dict:
    return next(e for e in report["incidents"] if e["id"] == incident)


def test_every_catalogue_id_is_in_the_report_in_the_catalogue_order():
    report = report_mod.remediation_report({"gw": {"before": HEALTHY, "after": HEALTHY}}, False, {"gw": "passed"})
    ids = [e["id"] for e in report["incidents"]]
    assert ids == list(catalogue_sections())
    assert ids == list(report_mod.INCIDENTS)


def test_the_catalogue_and_the_report_filter_give_each_incident_the_same_title():
    titles = {incident: title for incident, (title, _) in catalogue_sections().items()}
    assert titles == report_mod.INCIDENTS
    assert list(titles) == list(report_mod.INCIDENTS)


def test_every_incident_names_tests_that_prove_it_and_they_exist():
    missing = []
    for incident, (_, section) in catalogue_sections().items():
        proofs = PROOF.findall(section)
        assert proofs, f"{incident} in docs/incidents.md names no test (`path::test_name`)"
        for path, name in proofs:
            source = PROJECT / path
            if not source.is_file() or not re.search(rf"^\s*def {name}\(", source.read_text(encoding="utf-8"), re.M):
                missing.append(f"{incident}: {path}::{name}")
    assert not missing, "docs/incidents.md names tests that do not exist: " + ", ".join(missing)


def test_a_healthy_host_gives_a_clean_report_and_says_why_the_unchecked_are_not_audited():
    report = report_mod.remediation_report({"gw": {"before": HEALTHY, "after": HEALTHY}}, False, {"gw": "passed"})
    assert report["clean"] is True
    assert report["summary"]["found"] == report["summary"]["fixed"] == report["summary"]["left"] == []
    assert {"DB-01", "DB-02", "DB-04", "DB-05", "MT-01", "MT-05", "SEC-04", "OPS-06", "OPS-07"} <= set(
        report["summary"]["ok"]
    )
    for e in report["incidents"]:
        if e["status"] == "not_audited":
            assert e["reason"], e["id"]


def test_check_mode_reports_what_it_found_and_fixes_nothing():
    report = report_mod.remediation_report({"gw": {"before": BROKEN, "after": BROKEN}}, True, {"gw": "passed"})
    assert report["mode"] == "check"
    assert report["summary"]["found"] == ["DB-01", "DB-02", "DB-04", "MT-02", "MT-05", "SEC-04", "OPS-06"]
    assert report["summary"]["fixed"] == []
    assert entry(report, "DB-04")["hosts"]["gw"]["found"] == [
        "2 duplicate row(s) in 1 group(s) of LiteLLM_DailyTeamSpend block the unique index ix"
    ]
    assert entry(report, "SEC-04")["hosts"]["gw"]["reason"] == "check mode: nothing was changed"
    assert entry(report, "SEC-03")["status"] == "ok"
    assert entry(report, "SEC-03")["hosts"]["gw"]["warnings"] == ["warn detail"]
    assert report["clean"] is False


def test_a_run_says_what_it_fixed_and_what_it_left_with_the_reason():
    after = {**HEALTHY, "compliance": compliance(SEC_04="fail", OPS_06="pass", SEC_03="pass")}
    report = report_mod.remediation_report({"gw": {"before": BROKEN, "after": after}}, False, {"gw": "passed"})
    assert report["summary"]["fixed"] == ["DB-01", "DB-02", "DB-04", "MT-02", "MT-05", "OPS-06"]
    assert report["summary"]["left"] == ["SEC-04"]
    assert entry(report, "SEC-04")["hosts"]["gw"] == {
        "status": "left",
        "found": ["fail detail"],
        "left": ["fail detail"],
    }


def test_a_host_that_stopped_leaves_what_it_found_and_fails_the_smoke():
    report = report_mod.remediation_report({"gw": {"before": BROKEN}}, False, {"gw": ""})
    assert report["summary"]["fixed"] == []
    assert "MT-02" in report["summary"]["left"]
    assert entry(report, "OPS-07")["status"] == "left"
    assert report["errors"] == ["gw: the run stopped on an error before its final audit"]


def test_an_audit_that_could_not_run_is_named_and_checks_nothing():
    broken_audit = {**HEALTHY, "model_table": {"error": "could not connect"}}
    report = report_mod.remediation_report({"gw": {"before": broken_audit, "after": broken_audit}}, False, {})
    assert entry(report, "MT-02")["status"] == "not_audited"
    assert report["errors"] == [
        "gw: the before audit of the model table could not run: could not connect",
        "gw: the after audit of the model table could not run: could not connect",
    ]
    assert report["clean"] is False


def test_the_markdown_has_a_row_per_incident_and_host_and_escapes_pipes():
    report = report_mod.remediation_report({"gw": {"before": BROKEN, "after": BROKEN}}, True, {"gw": "passed"})
    text = report_mod.remediation_markdown(report)
    rows = [line for line in text.splitlines() if re.match(r"^\| [A-Z]+-\d\d ", line)]
    assert len(rows) == 30
    assert "| MT-02 | double encryption | found | gw | found: row a \\| encrypted 2 times" in text
    assert "- Clean: no" in text


def test_audits_that_are_not_a_mapping_are_refused():
    with pytest.raises(report_mod.AnsibleFilterError, match="must be a mapping of hosts, not list"):
        report_mod.remediation_report([], False)


def test_the_schema_plan_of_a_database_behind_and_drifted_names_db01_db02_db04():
    """The schema module's check mode on the incident host's database: six pending migrations, a
    dropped column, a dropped unique index with duplicates behind it, one step that would fail."""
    plan = {
        "pending": ["20251220144550_schema_update", "20260106155622_add_endpoint_to_daily_activity_tables"],
        "drift_before": [
            {"kind": "missing_table", "table": "S", "message": 'table "LiteLLM_SkillsTable" is missing'},
            {"kind": "missing_column", "table": "T", "name": "c", "message": '"T"."organization_id" gone'},
        ],
        "repaired": [{"kind": "missing_column", "table": "T", "name": "c"}],
        "skipped_statements": [
            {
                "migration": "20260106155622_add_endpoint_to_daily_activity_tables",
                "statement": 'DROP INDEX "ix"',
                "reason": 'index "ix" does not exist: already dropped',
            }
        ],
        "unplanned": [{"migration": "29990101000000_site", "statement": "SELECT 1/0", "reason": "division by zero"}],
        "drift": [],
        "duplicates": [{"index": "ix", "table": "D", "groups": 1, "rows_to_remove": 2, "migration": "m"}],
        "client": None,
    }
    report = report_mod.remediation_report({"gw": {"before": {"schema": plan}, "after": {"schema": plan}}}, True)
    assert report["summary"]["found"] == ["DB-01", "DB-02", "DB-04"]
    found = entry(report, "DB-01")["hosts"]["gw"]["found"]
    assert found == [
        "migration 20251220144550_schema_update not applied",
        "migration 20260106155622_add_endpoint_to_daily_activity_tables not applied",
        '"T"."organization_id" gone',
        'migration 20260106155622_add_endpoint_to_daily_activity_tables: DROP INDEX "ix" skipped: '
        'index "ix" does not exist: already dropped',
        "migration 29990101000000_site (SELECT 1/0) would fail: division by zero",
    ], "drift_before is what was seen: the planned repairs are not counted twice"
    assert entry(report, "DB-02")["hosts"]["gw"]["found"] == ['table "LiteLLM_SkillsTable" is missing']


# What the database audit covers on a litellm_proxy host; every other ID but the smoke validation is the
# compliance check's (with the secrets scan) on a litellm_ops host.
DATABASE_AUDIT = {"DB-01", "DB-02", "DB-04", "DB-05", "MT-01", "MT-02", "MT-03", "MT-04", "MT-05"}
HOST_CHECKS = set(report_mod.INCIDENTS) - DATABASE_AUDIT - {"OPS-07"}


def test_the_compliance_check_and_the_secrets_scan_cover_every_host_incident():
    from litellm_ops import compliance as compliance_tool

    # SEC-05 is the scan's (litellm-ops scan-secrets): it needs the secrets, which only the audit has.
    assert {*compliance_tool.CHECKS, "SEC-05"} == HOST_CHECKS


def test_a_healthy_host_is_audited_for_all_thirty_incidents():
    every = {
        **HEALTHY,
        "schema": {**HEALTHY["schema"], "client": {"state": "current"}},
        "compliance": compliance(**{i.replace("-", "_"): "pass" for i in sorted(HOST_CHECKS)}),
    }
    report = report_mod.remediation_report({"gw": {"before": every, "after": every}}, False, {"gw": "passed"})
    assert report["summary"]["ok"] == list(report_mod.INCIDENTS)
    assert len(report["summary"]["ok"]) == 30
    assert report["summary"]["not_audited"] == []


def test_an_inventory_without_an_ops_host_says_which_host_would_audit_the_rest():
    proxy_only = {key: value for key, value in HEALTHY.items() if key != "compliance"}
    report = report_mod.remediation_report({"gw": {"before": proxy_only, "after": proxy_only}}, False, {})
    assert entry(report, "GPU-01")["reason"] == "no litellm_ops host ran the compliance check"
    assert entry(report, "OPS-07")["reason"] == "no litellm_proxy host ran the smoke validation"
    assert entry(report, "DB-01")["status"] == "ok"


def test_what_a_run_stopped_or_removed_is_reported_with_its_incident():
    before = {**HEALTHY, "compliance": compliance(GPU_01="fail")}
    after = {**HEALTHY, "compliance": compliance(GPU_01="pass")}
    actions = ["GPU-01|removed the boot link /etc/systemd/system/multi-user.target.wants/m.service", "not an action"]
    audits = {"gw": {"before": before, "after": after, "actions": actions}}
    report = report_mod.remediation_report(audits, False, {"gw": "passed"})
    state = entry(report, "GPU-01")["hosts"]["gw"]
    assert state["status"] == "fixed"
    assert state["done"] == ["removed the boot link /etc/systemd/system/multi-user.target.wants/m.service"]
    assert "done: removed the boot link" in report_mod.remediation_markdown(report)
