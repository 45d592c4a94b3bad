"""The entries of one litellm_files task that this run selects, by their own tags and conditions.

A role hands all its files to one ``litellm_files`` task (one module run instead of one per file).
That task carries the union of its entries' tags, so ``--tags hardening`` still runs it; each entry
keeps the tags its own task had (``tags:``) and its condition (``when:``), and
``entries | litellm_tagged(ansible_run_tags, ansible_skip_tags)`` keeps those the run selects,
with Ansible's rules: ``all`` selects every entry, ``tagged`` every entry with a tag, a skipped tag
drops an entry, ``always`` runs unless skipped by name. An entry without ``tags`` has the task's
own: it is kept whenever the task runs.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def litellm_tagged(entries: list[dict[str, Any]], run_tags: list[str], skip_tags: list[str]) -> list[dict[str, Any]]:
    """The entries the run's tags select whose condition holds, without their ``tags`` and ``when`` keys."""
    if not isinstance(entries, list):
        raise AnsibleFilterError(f"litellm_tagged: expected a list of entries, got {type(entries).__name__}")
    run = set(run_tags or ["all"])
    skip = set(skip_tags or [])
    kept = []
    for entry in entries:
        if not isinstance(entry, dict) or "path" not in entry:
            raise AnsibleFilterError(f"litellm_tagged: every entry needs a path, got {entry!r}")
        if not entry.get("when", True):
            continue
        if "tags" not in entry:
            kept.append({key: value for key, value in entry.items() if key != "when"})
            continue
        tags = set(entry["tags"])
        if tags & skip or ("tagged" in skip and tags):
            continue
        selected = (
            "all" in run
            or "always" in tags
            or bool(tags & run)
            or ("tagged" in run and bool(tags))
            or ("untagged" in run and not tags)
        )
        if selected:
            kept.append({key: value for key, value in entry.items() if key not in ("tags", "when")})
    return kept


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"litellm_tagged": litellm_tagged}
