"""Compile report tables in the document classes papers use and read the log: every table
must fit its page (no overfull box over 1 pt, no float larger than the page) in a one-column
and a two-column ``article`` and in Elsevier's ``elsarticle`` (``5p`` two-column and
``review``: Debian's texlive-publishers)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

CLASSES = {
    "article": r"\documentclass{article}",
    "article, two columns": r"\documentclass[twocolumn]{article}",
    "elsarticle 5p": r"\documentclass[5p,twocolumn]{elsarticle}",
    "elsarticle review": r"\documentclass[review]{elsarticle}",
}
OVERFULL = re.compile(r"Overfull \\[hv]box \(([\d.]+)pt too (?:wide|high)\)")
#: What a table may overrun by: TeX's own rounding, not a box a reader sees.
SLACK_PT = 1.0


def layout_problems(tables: list[Path], tmp_path: Path) -> dict[str, list[str]]:
    """Per document class, what its log says does not fit (empty lists: everything fits)."""
    assert shutil.which("pdflatex"), "pdflatex is needed (Debian: texlive-latex-base texlive-latex-recommended)"
    found: dict[str, list[str]] = {}
    inputs = "".join(f"\\input{{{t}}}\n\\clearpage\n" for t in tables)
    for i, (name, cls) in enumerate(CLASSES.items()):
        work = tmp_path / f"doc{i}"
        work.mkdir(parents=True, exist_ok=True)
        (work / "doc.tex").write_text(
            f"{cls}\n\\usepackage{{booktabs,siunitx}}\n\\begin{{document}}\n{inputs}\\end{{document}}\n"
        )
        proc = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = (work / "doc.log").read_text(errors="replace") if (work / "doc.log").is_file() else proc.stdout
        problems = [] if proc.returncode == 0 else [f"pdflatex failed: {proc.stdout[-1500:]}"]
        problems += [m.group(0) for m in OVERFULL.finditer(log) if float(m.group(1)) > SLACK_PT]
        problems += [line.strip() for line in log.splitlines() if "Float too large" in line]
        found[name] = problems
    return found


def assert_fits(tables: list[Path], tmp_path: Path) -> None:
    problems = {k: v for k, v in layout_problems(tables, tmp_path).items() if v}
    assert not problems, problems
