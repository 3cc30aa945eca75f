"""Where a result came from: package versions and the project's git commit."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TRACKED_PACKAGES = ("torch", "ray", "optuna", "peft", "timm", "transformers")


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """HEAD of the project's checkout (``+dirty`` when it has changes), or '' outside git."""
    if not (root / ".git").exists():
        return ""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def run_provenance() -> dict[str, str]:
    """Columns every row of ``results.csv`` carries, besides its own config hash and seed."""
    return {"git_commit": git_commit(), **{f"{k}_version": v for k, v in package_versions().items()}}
