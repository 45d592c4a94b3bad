"""litellm-ops COMMAND: the operations tools (run by their systemd units; see the role's README)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import (
    __version__,
    backup,
    compliance,
    config,
    exporter,
    health,
    inventory,
    keys,
    knowledge,
    probe,
    secrets_scan,
    stray,
)


def _print(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, sort_keys=True), flush=True)


def cmd_backup(settings: dict[str, Any], args: argparse.Namespace) -> int:
    previous = (config.read_result(settings, "backup") or {}).get("last_success")
    try:
        outcome = backup.create(settings)
    except config.OpsError as err:
        config.write_result(settings, "backup", {"status": "error", "error": str(err), "last_success": previous})
        raise
    outcome["finished_at"] = time.time()
    outcome["last_success"] = dict(outcome)
    config.write_result(settings, "backup", outcome)
    _print({k: v for k, v in outcome.items() if k != "last_success"})
    return 0


def cmd_restore_check(settings: dict[str, Any], args: argparse.Namespace) -> int:
    try:
        outcome = backup.restore_check(settings)
    except config.OpsError as err:
        config.write_result(settings, "restore-check", {"status": "error", "error": str(err)})
        raise
    config.write_result(settings, "restore-check", outcome)
    _print(outcome)
    return 0


def cmd_verify(settings: dict[str, Any], args: argparse.Namespace) -> int:
    path = backup.resolve(settings, args.backup)
    manifest = backup.verify(settings, path)
    _print(
        {
            "backup": str(path),
            "created_at": manifest["created_at"],
            "rows": sum(manifest["row_counts"].values()),
            "salt_key_fingerprint": manifest["salt_key_fingerprint"],
        }
    )
    return 0


def cmd_restore(settings: dict[str, Any], args: argparse.Namespace) -> int:
    _print(backup.restore(settings, backup.resolve(settings, args.backup), args.database))
    return 0


def _audit(name: str, run) -> Any:
    def command(settings: dict[str, Any], args: argparse.Namespace) -> int:
        # One run for the remediation report's host audit: the SEC-05 search rides along, its
        # report under "secrets_scan" (it is not a check of the saved result).
        request = _scan_request() if getattr(args, "scan_secrets", False) else None
        try:
            outcome = run(settings)
        except config.OpsError as err:
            if not args.no_save:
                config.write_result(settings, name, {"status": "error", "error": str(err)})
            raise
        if not args.no_save:
            config.write_result(settings, name, outcome)
        if request is not None:
            outcome = {**outcome, "secrets_scan": secrets_scan.scan(request)}
        _print(outcome)
        return 0 if outcome["status"] in ("pass", "ok", "degraded") else 1

    return command


def cmd_knowledge(settings: dict[str, Any], args: argparse.Namespace) -> int:
    outcome = knowledge.sync(settings, check=args.check)
    if not args.check:
        config.write_result(settings, "knowledge", outcome)
    _print(outcome)
    return 0


def cmd_prune_keys(settings: dict[str, Any], args: argparse.Namespace) -> int:
    _print(keys.prune(settings, check=args.check))
    return 0


def cmd_rotate_keys(settings: dict[str, Any], args: argparse.Namespace) -> int:
    _print(keys.rotate(settings, args.days, args.dir, check=args.check))
    return 0


def cmd_archive_stray(settings: dict[str, Any], args: argparse.Namespace) -> int:
    _print(stray.archive(settings["stray"]["watch"], settings["stray"]["archive_dir"], check=args.check))
    return 0


def _scan_request() -> dict[str, Any]:
    """SEC-05: the search's request (secrets with their values) from stdin."""
    try:
        request = json.load(sys.stdin)
    except json.JSONDecodeError as err:
        raise config.OpsError(f"stdin is not a JSON request: {err}") from err
    if not isinstance(request, dict):
        raise config.OpsError("stdin is not a JSON object")
    return request


def cmd_scan_secrets(args: argparse.Namespace) -> int:
    """SEC-05: the request (secrets with their values) comes on stdin; the report names no value."""
    _print(secrets_scan.scan(_scan_request()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="litellm-ops", description=__doc__)
    parser.add_argument("--config", default=config.DEFAULT_CONFIG, help="settings file (default: %(default)s)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backup", help="dump the database and configuration, verify, apply retention")
    sub.add_parser("restore-check", help="restore the newest backup into the scratch database and compare counts")
    for name, text in (
        ("verify", "check a backup's checksums, archive and salt key"),
        ("restore", "restore a backup into a database and compare counts"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("backup", help="a backup's path or name, or 'latest'")
        p.add_argument("--fingerprint", help="the salt-key fingerprint to expect (default: this host's settings)")
        p.add_argument("--old-fingerprint", action="append", default=[], help="also accept this one (rotation)")
        if name == "restore":
            p.add_argument("--database", required=True, help="the (scratch) database to restore into")
    for name, text in (
        ("compliance", "check the incidents that can be checked on this host"),
        ("inventory", "compare what the proxy serves with the catalogue (MT-04)"),
        ("probe", "probe each model's capabilities through the proxy (OPS-07)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--no-save", action="store_true", help="print the result only (an audit that changes nothing)")
        if name == "compliance":
            p.add_argument(
                "--scan-secrets",
                action="store_true",
                help="also run scan-secrets with the request on stdin; its report under secrets_scan",
            )
    for name, text in (
        ("knowledge", "sync the skill files into LiteLLM_SkillsTable"),
        ("prune-keys", "delete keys expired longer ago than the grace period (SEC-03)"),
        ("rotate-keys", "mint a replacement for each expired key, its plaintext in a root-only file (SEC-03)"),
        ("archive-stray", "move stray generated files to the archive (OPS-06)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--check", action="store_true", help="only say what would change")
        if name == "rotate-keys":
            p.add_argument("--days", type=int, default=90, help="days until a new key expires (default: %(default)s)")
            p.add_argument("--dir", default="/etc/litellm-ops/rotated-keys", help="where the new keys are written")
    sub.add_parser(
        "scan-secrets",
        help="search files for secret values outside their allowed files (SEC-05); the request on stdin",
    )
    sub.add_parser("health", help="serve /healthz, /readyz and the dashboard")
    sub.add_parser("exporter", help="serve Prometheus metrics")
    args = parser.parse_args(argv)
    commands = {
        "backup": cmd_backup,
        "restore-check": cmd_restore_check,
        "verify": cmd_verify,
        "restore": cmd_restore,
        "compliance": _audit("compliance", compliance.run),
        "inventory": _audit("inventory", inventory.run),
        "probe": _audit("probe", probe.run),
        "knowledge": cmd_knowledge,
        "prune-keys": cmd_prune_keys,
        "rotate-keys": cmd_rotate_keys,
        "archive-stray": cmd_archive_stray,
        "health": lambda s, a: health.serve(s) or 0,
        "exporter": lambda s, a: exporter.serve(s) or 0,
    }
    try:
        if args.command == "scan-secrets":  # needs no settings: the request says everything
            return cmd_scan_secrets(args)
        settings = config.load(args.config)
        if getattr(args, "fingerprint", None):
            settings["salt_key_fingerprint"] = args.fingerprint
        if getattr(args, "old_fingerprint", None):
            settings["old_salt_key_fingerprints"] = args.old_fingerprint
        return commands[args.command](settings, args)
    except config.OpsError as err:
        print(f"litellm-ops {args.command}: {err}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
