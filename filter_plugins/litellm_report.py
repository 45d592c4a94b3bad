"""The remediation report: every incident ID of the catalogue, checked, found, fixed or left.

``site.yml`` and ``playbooks/remediate.yml`` audit each host before they change anything and
again after (the schema and model-table modules in check mode, the compliance check without
saving), and the smoke validation runs at the end. These filters turn the two audits into one
report: an incident found before and gone after was fixed; one still there was left, with the
reason its check gives; in check mode nothing was changed, so what was found is only reported.
IDs that no check on the host covers say why.
"""

from __future__ import annotations

from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only for use without Ansible

    class AnsibleFilterError(Exception):
        pass


# The catalogue (incidents.md): ID and a short title, in its order.
INCIDENTS = {
    "DB-01": "schema drift",
    "DB-02": "missing table",
    "DB-03": "Prisma client/binary mismatch",
    "DB-04": "duplicates block a migration",
    "DB-05": "missing admin user",
    "DB-06": "pool exhaustion",
    "DB-07": "Prisma-only URL parameters",
    "MT-01": "encrypted provider",
    "MT-02": "double encryption",
    "MT-03": "duplicate model rows",
    "MT-04": "zombie model rows",
    "MT-05": "configuration drift",
    "GPU-01": "VRAM saturated at boot",
    "GPU-02": "unhardened local models",
    "GPU-03": "fallback to the cloud",
    "GPU-04": "model naming",
    "SEC-01": "vulnerable dependencies",
    "SEC-02": "prompts stored",
    "SEC-03": "expired keys",
    "SEC-04": "world-writable state",
    "SEC-05": "secrets in plain text",
    "SEC-06": "exposure",
    "SEC-07": "error logs off",
    "OPS-01": "unit drift",
    "OPS-02": "no backups",
    "OPS-03": "timers",
    "OPS-04": "health and metrics",
    "OPS-05": "timeouts and workers",
    "OPS-06": "stray state",
    "OPS-07": "smoke validation",
}

# Where each ID is audited: an ID stays not_audited only on an inventory without the hosts that run
# its check, and the report says which. Everything else is seen on a host: the compliance check and the
# secrets scan on litellm_ops hosts, the schema and model-table audits on litellm_proxy hosts.
_DATABASE_AUDIT = {"DB-01", "DB-02", "DB-04", "DB-05", "MT-01", "MT-02", "MT-03", "MT-04", "MT-05"}
NOT_AUDITED = {
    incident: (
        "no litellm_proxy host ran the database audit (schema and model table)"
        if incident in _DATABASE_AUDIT
        else "no litellm_ops host ran the compliance check"
    )
    for incident in INCIDENTS
    if incident != "OPS-07"
}
NOT_AUDITED["OPS-07"] = "no litellm_proxy host ran the smoke validation"


def _schema_findings(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The schema module's check-mode plan: pending migrations, what differed from schema.prisma when it
    started (older results: what it would repair and what was left), statements whose end state already
    held, steps that would fail, duplicates, and the Prisma client."""
    out = [("DB-01", f"migration {name} not applied") for name in result.get("pending", [])]
    seen = result.get("drift_before")
    for item in seen if seen is not None else [*result.get("repaired", []), *result.get("drift", [])]:
        incident = "DB-02" if item.get("kind") == "missing_table" else "DB-01"
        out.append((incident, item.get("message") or f"{item.get('kind')} {item.get('table')}.{item.get('name')}"))
    for item in result.get("skipped_statements", []):
        skipped = f"{item.get('statement')} skipped: {item.get('reason')}"
        out.append(("DB-01", f"migration {item.get('migration')}: {skipped}"))
    for item in result.get("unplanned", []):
        where = f" ({item['statement']})" if item.get("statement") else ""
        out.append(("DB-01", f"migration {item.get('migration')}{where} would fail: {item.get('reason')}"))
    for item in result.get("duplicates", []):
        out.append(
            (
                "DB-04",
                f"{item.get('rows_to_remove')} duplicate row(s) in {item.get('groups')} group(s) of "
                f"{item.get('table')} block the unique index {item.get('index')}",
            )
        )
    client = result.get("client")
    if client and client.get("state", "current") != "current":
        out.append(("DB-03", f"Prisma client {client['state']}: {'; '.join(client.get('problems', []))}"))
    return out


def _model_table_findings(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["id"], f.get("message", f.get("kind", ""))) for f in result.get("findings", [])]


def _compliance(result: dict[str, Any], status: str) -> list[tuple[str, str]]:
    """The compliance checks with STATUS (fail: findings; warn: warnings), each with its detail."""
    return [(c["id"], c.get("detail", "")) for c in result.get("checks", []) if c.get("status") == status]


def _ran(audit: dict[str, Any], source: str) -> bool:
    return isinstance(audit.get(source), dict) and "error" not in audit[source]


def _checked(audit: dict[str, Any]) -> set[str]:
    checked: set[str] = set()
    if _ran(audit, "schema"):
        checked |= {"DB-01", "DB-02", "DB-04"}
        if audit["schema"].get("client") is not None:
            checked.add("DB-03")
    if _ran(audit, "model_table"):
        checked |= {"MT-01", "MT-02", "MT-03", "MT-04", "MT-05", "DB-05"}
    if _ran(audit, "compliance"):
        checked |= {c["id"] for c in audit["compliance"].get("checks", [])}
    if _ran(audit, "rendered"):
        checked |= set(audit["rendered"].get("checked", []))
    return checked


def audit_findings(audit: dict[str, Any] | None) -> list[dict[str, str]]:
    """One audit of one host -> its findings, each with the incident ID and what was seen."""
    if not audit:
        return []
    pairs: list[tuple[str, str]] = []
    if _ran(audit, "schema"):
        pairs += _schema_findings(audit["schema"])
    if _ran(audit, "model_table"):
        pairs += _model_table_findings(audit["model_table"])
    if _ran(audit, "compliance"):
        pairs += _compliance(audit["compliance"], "fail")
    if _ran(audit, "rendered"):
        pairs += [(f["id"], f["detail"]) for f in audit["rendered"].get("findings", [])]
    return [{"id": incident, "detail": detail} for incident, detail in pairs]


def _actions(actions: list[Any]) -> dict[str, list[str]]:
    """What the run did that an operator must know of (a unit stopped, a link removed): "ID|what" each."""
    pairs = [str(action).split("|", 1) for action in actions]
    return _by_id([{"id": pair[0], "detail": pair[1]} for pair in pairs if len(pair) == 2])


def _by_id(items: list[dict[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        out.setdefault(item["id"], []).append(item["detail"])
    return out


def remediation_report(
    audits: dict[str, dict[str, Any]],
    check_mode: bool,
    smoke: dict[str, str] | None = None,
    generated_at: str = "",
) -> dict[str, Any]:
    """Build the report from {host: {"before": audit, "after": audit}} and {host: smoke outcome}.

    Each host may also carry "actions": what the run did that stops or removes something, as "ID|what"
    strings, reported with that ID (done).

    An audit is {"schema": ..., "model_table": ..., "compliance": ..., "rendered": ...}, each the
    tool's own result (rendered: files compared with what the inventory renders, {"checked": [IDs],
    "findings": [{"id", "detail"}]}),
    None where that host has nothing to audit, or {"error": ...} where the audit could not run. A
    host without an "after" audit stopped on an error: what was found there is left. Smoke
    outcomes: "passed", or empty where the validation did not finish.
    """
    if not isinstance(audits, dict):
        kind = type(audits).__name__
        raise AnsibleFilterError(f"remediation_report: the audits must be a mapping of hosts, not {kind}")
    smoke = smoke or {}
    entries: dict[str, dict[str, Any]] = {
        incident: {"id": incident, "title": title, "status": "not_audited", "hosts": {}}
        for incident, title in INCIDENTS.items()
    }
    errors = []
    for host in sorted(audits):
        before_audit = audits[host].get("before") or {}
        after_audit = audits[host].get("after")
        stopped = after_audit is None
        after_audit = after_audit or {}
        for phase, audit in (("before", before_audit), ("after", after_audit)):
            errors += [
                f"{host}: the {phase} audit of the {source.replace('_', ' ')} could not run: {result['error']}"
                for source, result in sorted(audit.items())
                if isinstance(result, dict) and "error" in result
            ]
        if stopped:
            errors.append(f"{host}: the run stopped on an error before its final audit")
        checked = _checked(before_audit) | _checked(after_audit)
        before = _by_id(audit_findings(before_audit))
        after = _by_id(audit_findings(after_audit)) if not stopped else before
        latest = after_audit if _ran(after_audit, "compliance") else before_audit
        done = _actions(audits[host].get("actions") or [])
        warnings = _by_id([{"id": i, "detail": d} for i, d in _compliance(latest.get("compliance") or {}, "warn")])
        for incident in sorted(checked | set(before) | set(after)):
            entry = entries.setdefault(incident, {"id": incident, "title": "", "status": "not_audited", "hosts": {}})
            if incident in before and check_mode:
                state = {"status": "found", "found": before[incident], "reason": "check mode: nothing was changed"}
            elif incident in after:
                state = {"status": "left", "found": before.get(incident, []), "left": after[incident]}
            elif incident in before:
                state = {"status": "fixed", "found": before[incident]}
            else:
                state = {"status": "ok"}
            if incident in warnings:
                state["warnings"] = warnings[incident]
            if incident in done:
                state["done"] = done[incident]
            entry["hosts"][host] = state
    for host, outcome in sorted(smoke.items()):
        if outcome == "passed":
            state: dict[str, Any] = {"status": "ok"}
        elif (audits.get(host) or {}).get("after") is None:
            state = {"status": "left", "left": ["the smoke validation did not pass: the run stopped on this host"]}
        else:
            state = {"status": "not_audited", "reason": "the smoke validation did not run (check mode, no proxy yet)"}
        entries["OPS-07"]["hosts"][host] = state
    rank = ["ok", "not_audited", "fixed", "found", "left"]
    for entry in entries.values():
        states = [s["status"] for s in entry["hosts"].values()]
        entry["status"] = max(states, key=rank.index) if states else "not_audited"
        if not states:
            entry["reason"] = NOT_AUDITED.get(entry["id"], "no check on these hosts covers it")
    summary = {status: [e["id"] for e in entries.values() if e["status"] == status] for status in rank}
    return {
        "generated_at": generated_at,
        "mode": "check" if check_mode else "run",
        "hosts": sorted(audits),
        "summary": summary,
        "clean": not summary["found"] and not summary["left"] and not errors,
        "errors": errors,
        "incidents": list(entries.values()),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def remediation_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary line, then one row per incident and host."""
    mode = "audit (check mode, nothing changed)" if report["mode"] == "check" else "remediation run"
    lines = [
        "# Remediation report",
        "",
        f"- Generated: {report['generated_at']}, {mode}",
        f"- Hosts: {', '.join(report['hosts']) or 'none'}",
        "- " + ", ".join(f"{status}: {len(ids)}" for status, ids in report["summary"].items()),
        f"- Clean: {'yes' if report['clean'] else 'no'}",
        *(f"- Error: {error}" for error in report["errors"]),
        "",
        "| ID | Incident | Status | Host | Details |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry in report["incidents"]:
        if not entry["hosts"]:
            reason = _cell(entry.get("reason", ""))
            lines.append(f"| {entry['id']} | {entry['title']} | {entry['status']} | - | {reason} |")
            continue
        for host, state in entry["hosts"].items():
            parts = []
            if state.get("found"):
                parts.append("found: " + "; ".join(state["found"]))
            if state.get("left"):
                parts.append("left: " + "; ".join(state["left"]))
            if state.get("warnings"):
                parts.append("warning: " + "; ".join(state["warnings"]))
            if state.get("done"):
                parts.append("done: " + "; ".join(state["done"]))
            if state.get("reason"):
                parts.append(state["reason"])
            lines.append(
                f"| {entry['id']} | {entry['title']} | {state['status']} | {host} | {_cell(' / '.join(parts))} |"
            )
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {
            "remediation_report": remediation_report,
            "remediation_markdown": remediation_markdown,
        }
