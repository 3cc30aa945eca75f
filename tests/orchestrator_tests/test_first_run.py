"""The first ``make run`` on a fresh machine: Chromium (the report's static figures) is
installed before the study runs where this user may, and where it may not, the run goes on
with one line saying what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_installs_the_figures_browser_before_the_study():
    lines = subprocess.run(
        ["make", "-n", "run", "quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAKEFLAGS": ""},
    ).stdout.splitlines()
    figures = [i for i, ln in enumerate(lines) if "scripts/install-system-deps --figures" in ln]
    runs = [i for i, ln in enumerate(lines) if "-m orchestrator run ablation" in ln]
    assert figures and runs and figures[0] < runs[0], lines


def test_without_chromium_or_the_right_to_install_it_one_line_says_so_and_make_goes_on(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root
    (bin_dir / "id").chmod(0o755)
    for tool in ("bash", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    proc = subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "scripts" / "install-system-deps"), "--figures"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(bin_dir)},  # no chromium on it
    )
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "need Chromium" in proc.stderr and "apt-get install chromium" in proc.stderr
