"""Knowledge refresh: the skill files named in the inventory, synced into LiteLLM_SkillsTable.

Each sub-directory holding a ``SKILL.md`` is one skill (the layout LiteLLM's skills use): the
front matter gives its title and description, the body its instructions, and the whole
directory is stored as the zip LiteLLM reads. Rows this tool wrote carry
``metadata.managed_by``; only those are updated or removed, so skills created through the API
or the UI are never touched. A skill whose files did not change is not written again.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import yaml

from . import config, db

MANAGED_BY = "litellm-gateway"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.DOTALL)


def read_skill(directory: Path) -> dict[str, Any]:
    name = directory.name
    if not _NAME.match(name):
        raise config.OpsError(f"skill directory {directory}: name it in lower case (a-z, 0-9, . _ -)")
    text = (directory / "SKILL.md").read_text(encoding="utf-8")
    match = _FRONT.match(text)
    front, body = ({}, text) if not match else (yaml.safe_load(match.group(1)) or {}, match.group(2))
    if not isinstance(front, dict):
        raise config.OpsError(f"{directory / 'SKILL.md'}: the front matter is not a mapping")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            # Fixed timestamps: the same files give the same bytes, so an unchanged skill is not rewritten.
            info = zipfile.ZipInfo(f"{name}/{path.relative_to(directory).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    content = buffer.getvalue()
    return {
        "skill_id": f"litellm_skill_{name}",
        "display_title": str(front.get("name") or name),
        "description": str(front.get("description") or "").strip() or None,
        "instructions": body.strip(),
        "file_content": content,
        "file_name": f"{name}.zip",
        "sha256": hashlib.sha256(content).hexdigest(),
        "source_dir": name,
    }


def read_all(root: Path) -> dict[str, dict[str, Any]]:
    if not root.is_dir():
        raise config.OpsError(f"skills directory {root} is missing")
    skills = [read_skill(d) for d in sorted(root.iterdir()) if d.is_dir() and (d / "SKILL.md").is_file()]
    return {s["skill_id"]: s for s in skills}


def plan(wanted: dict[str, dict[str, Any]], stored: dict[str, str]) -> dict[str, list[str]]:
    """stored: skill_id -> sha256 of the rows this tool manages."""
    return {
        "add": sorted(set(wanted) - set(stored)),
        "update": sorted(s for s in set(wanted) & set(stored) if wanted[s]["sha256"] != stored[s]),
        "remove": sorted(set(stored) - set(wanted)),
        "unchanged": sorted(s for s in set(wanted) & set(stored) if wanted[s]["sha256"] == stored[s]),
    }


def sync(settings: dict[str, Any], check: bool = False) -> dict[str, Any]:
    import psycopg2

    wanted = read_all(Path(settings["knowledge"]["dir"]))
    with db.transaction(settings) as cursor:
        cursor.execute(
            "SELECT skill_id, metadata::jsonb ->> 'sha256' FROM \"LiteLLM_SkillsTable\""
            " WHERE metadata::jsonb ->> 'managed_by' = %s FOR UPDATE",
            (MANAGED_BY,),
        )
        stored = dict(cursor.fetchall())
        steps = plan(wanted, stored)
        if not check:
            for skill_id in steps["add"] + steps["update"]:
                skill = wanted[skill_id]
                metadata = json.dumps(
                    {"managed_by": MANAGED_BY, "sha256": skill["sha256"], "source_dir": skill["source_dir"]}
                )
                cursor.execute(
                    'INSERT INTO "LiteLLM_SkillsTable" (skill_id, display_title, description, instructions,'
                    " source, file_content, file_name, file_type, metadata, created_by, updated_by, updated_at)"
                    " VALUES (%s, %s, %s, %s, 'custom', %s, %s, 'application/zip', %s::jsonb, 'litellm-ops',"
                    " 'litellm-ops', now())"
                    " ON CONFLICT (skill_id) DO UPDATE SET display_title = EXCLUDED.display_title,"
                    " description = EXCLUDED.description, instructions = EXCLUDED.instructions,"
                    " file_content = EXCLUDED.file_content, file_name = EXCLUDED.file_name,"
                    " metadata = EXCLUDED.metadata, updated_by = 'litellm-ops', updated_at = now()",
                    (
                        skill_id,
                        skill["display_title"],
                        skill["description"],
                        skill["instructions"],
                        psycopg2.Binary(skill["file_content"]),
                        skill["file_name"],
                        metadata,
                    ),
                )
            if steps["remove"]:
                cursor.execute('DELETE FROM "LiteLLM_SkillsTable" WHERE skill_id = ANY(%s)', (steps["remove"],))
    changed = bool(steps["add"] or steps["update"] or steps["remove"])
    return {
        "status": "ok",
        "changed": changed,
        "check_mode": check,
        "skills": len(wanted),
        **{k: v for k, v in steps.items()},
    }
