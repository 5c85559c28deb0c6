"""provenance.json of a run directory: what ran, where, and with which packages.

Both training backends write it through these functions, each adding its own seeds and
settings to the common header.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ledgerzoo.training.config import write_atomic

FILE_NAME = "provenance.json"


def run_header(packages: Sequence[str]) -> dict[str, Any]:
    """Return the entries every run records: time, command, Python, package versions (None
    for a package that is not installed), git state and machine."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "created": datetime.now(timezone.utc).isoformat(),
        "command": sys.argv,
        "python": sys.version,
        "packages": versions,
        "git": git_state(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
    }


def save_provenance(directory: Path, provenance: dict[str, Any]) -> None:
    """Write provenance.json atomically, keeping the provenance of earlier sessions of the run
    under "previous"."""
    previous = read_json(directory / FILE_NAME)
    if previous:
        provenance["previous"] = previous
    write_atomic(directory / FILE_NAME, json.dumps(provenance, indent=2) + "\n")


def update_provenance(directory: Path, values: dict[str, Any]) -> None:
    """Add or replace top-level entries of provenance.json, atomically."""
    provenance = read_json(directory / FILE_NAME)
    provenance.update(values)
    write_atomic(directory / FILE_NAME, json.dumps(provenance, indent=2) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, or return {} when the file is missing or contains no object."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def git_state() -> dict[str, Any] | None:
    """Return the commit and dirty flag of the git checkout that contains the package, or else
    of the working directory, when either is one."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        commit = _git(root, "rev-parse", "HEAD")
        if commit is None:
            continue
        status = _git(root, "status", "--porcelain") or ""
        return {"commit": commit.strip(), "dirty": bool(status.strip()), "checkout": str(root)}
    return None


def _git(root: Path, *arguments: str) -> str | None:
    """Run a git command in ``root`` and return its output, or None if it fails."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(root), *arguments],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout
