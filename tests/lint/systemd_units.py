#!/usr/bin/env python3
"""Score every systemd unit the roles install with systemd-analyze security (make lint).

tests/lint/units.yml renders the units and drop-ins from the role defaults and the default
inventory into a temporary directory; each service is then scored offline (no running systemd,
no root) against that directory alone, and the lint fails when one scores above the threshold
or systemd warns about a rendered file (an unknown or misspelt directive).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PLAYBOOK = PROJECT / "tests" / "lint" / "units.yml"
EXPOSURE = re.compile(r"Overall exposure level for (\S+): ([0-9.]+)")


def render(directory: Path) -> None:
    """Render the units into ``directory`` (tests/lint/units.yml); the secrets stay in a scratch dir."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "LITELLM_SECRETS_DIR": str(directory / ".secrets")}
    run = subprocess.run(
        ["ansible-playbook", str(PLAYBOOK), "-e", f"lint_units_dir={directory}"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        sys.exit(f"Rendering the units failed (ansible-playbook {PLAYBOOK.relative_to(PROJECT)}):\n{run.stdout}")


def score(directory: Path, unit: str, threshold: float) -> tuple[float, list[str]]:
    """The unit's exposure and the problems found: over the threshold, or systemd's warnings."""
    run = subprocess.run(
        # --threshold counts tenths (systemd 252 refuses 3.0; 30 is an exposure of 3.0).
        ["systemd-analyze", "security", "--offline=yes", f"--threshold={round(threshold * 10)}", "--no-pager", unit],
        # Only the rendered directory: no unit or drop-in of this machine takes part.
        env={**os.environ, "SYSTEMD_UNIT_PATH": str(directory), "SYSTEMD_COLORS": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    found = EXPOSURE.search(run.stdout)
    if not found:
        return float("nan"), [f"no score: {run.stderr.strip() or run.stdout.strip()}"]
    exposure = float(found.group(2))
    problems = [line for line in run.stderr.splitlines() if str(directory) in line]
    if run.returncode != 0 or exposure > threshold:
        problems.append(f"exposure {exposure} is over {threshold}")
    return exposure, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=3.0)
    parser.add_argument("--keep", type=Path, help="render into this directory and keep it")
    args = parser.parse_args()
    if shutil.which("systemd-analyze") is None:
        sys.exit("systemd-analyze is not installed (Debian: apt-get install systemd); the units cannot be scored.")

    directory = args.keep or Path(tempfile.mkdtemp(prefix="litellm-units-"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        render(directory.resolve())
        # A template (name@.service) is scored as one of its instances.
        units = sorted(p.name.replace("@.", "@lint.") for p in directory.glob("*.service"))
        if not any(unit.startswith("litellm-model-") for unit in units):
            sys.exit("The default inventory places no local model on this host: the model units went unscored.")
        failed = False
        for unit in units:
            exposure, problems = score(directory.resolve(), unit, args.threshold)
            print(f"{unit:64} {exposure:4.1f}{'  FAIL' if problems else ''}")
            for problem in problems:
                print(f"    {problem}")
            failed = failed or bool(problems)
        return 1 if failed else 0
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
