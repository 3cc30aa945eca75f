"""The cells of the LaTeX tables: text escaped, long text in lines, and numbers in siunitx
``S`` columns. Written by hand: pandas' ``to_latex`` escapes the bold, math and significance
markers these cells mix, and nothing else sizes an ``S`` column from what it holds."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "†": r"$^\dagger$",
    "‡": r"$^\ddagger$",
    "±": r"$\pm$",
}


def escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def prose(text: str) -> str:
    """Escape plain text, then typeset the few symbols the captions use."""
    return escape(text).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("<", r"$<$").replace("d\\_z", r"$d_z$")


#: Row labels and text cells longer than this (characters) break into lines at ", " (a
#: sensitivity point's settings, a candidate's settings).
ROW_CHARS, CELL_CHARS = 26, 40


def break_lines(text: str, limit: int) -> list[str]:
    """``text`` in lines of at most ``limit`` characters, broken after ", " (a part longer
    than ``limit`` stays whole)."""
    parts = text.split(", ")
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 2 + len(part) <= limit:
            lines[-1] += ", " + part
        else:
            lines[-1] += ","
            lines.append(part)
    return lines


def wrapped(text: str, limit: int) -> str:
    """An escaped cell; in lines (a nested tabular) where longer than ``limit``."""
    lines = break_lines(str(text), limit)
    if len(lines) == 1:
        return escape(lines[0])
    return r"\begin{tabular}[t]{@{}l@{}}" + r" \\ ".join(escape(x) for x in lines) + r"\end{tabular}"


# -- numbers: siunitx ``S`` columns ---------------------------------------------------------
# Numbers are set in siunitx's ``S`` columns, which align them on the decimal marker (a bold
# best value, whose digits are wider, included) and typeset a true minus sign; no other
# package does both. Each column's ``table-format`` is computed from the numbers it holds.

#: A number as the tables write it: an optional comparator (``<0.001``), sign, digits.
NUMBER = re.compile(r"^([<>]?)([+-]?)(\d+)(?:\.(\d+))?$")
_EXPONENT = re.compile(r"^([+-]?\d+(?:\.\d+)?)e([+-]?)0*(\d+)$")


def math_number(text: str) -> str:
    """A number in math mode (a true minus sign, not a hyphen; ``2.3e-05`` as a power of
    ten); other text escaped as it is."""
    if NUMBER.match(text):
        return f"${text}$"
    if e := _EXPONENT.match(text):
        mantissa, sign, power = e.groups()
        return rf"${mantissa} \times 10^{{{'-' if sign == '-' else ''}{power}}}$"
    return escape(text)


@dataclass(frozen=True)
class Num:
    """A cell of an ``S`` column: ``text`` as ``num`` or ``signed`` writes it (or "n/a",
    "--"), in bold where ``bold``, ``post`` (LaTeX: significance stars, a note) after it."""

    text: str
    bold: bool = False
    post: str = ""


def s_format(texts: list[str]) -> str | None:
    """siunitx's ``table-format`` for these numbers: room for the widest integer part, the
    most decimals, a sign and a comparator where any has one (None: no number among them)."""
    found = [m.groups() for t in texts if (m := NUMBER.match(t))]
    if not found:
        return None
    comparator = next((c for c, _, _, _ in found if c), "")
    sign = "+" if any(s for _, s, _, _ in found) else ""
    digits = max(len(i) for _, _, i, _ in found)
    decimals = max(len(d or "") for _, _, _, d in found)
    return f"{comparator}{sign}{digits}" + (f".{decimals}" if decimals else "")


def s_column(cells: list[Num]) -> str:
    """The column specification for these cells: an ``S`` column sized for them (a plain
    ``c`` where none is a number)."""
    fmt = s_format([c.text for c in cells])
    if fmt is None:
        return "c"
    options = [f"table-format={fmt}", "detect-weight", "mode=math", "retain-explicit-plus"]
    posts = [c.post for c in cells if c.post]
    if posts:  # room for the longest text after a number (by characters: stars, a note)
        options.append("table-space-text-post={" + max(posts, key=_visible_length) + "}")
    return "S[" + ", ".join(options) + "]"


def _visible_length(latex: str) -> int:
    return len(re.sub(r"\\[a-z]+|[${}^]", "", latex))


def s_cell(cell: Num) -> str:
    """A cell of an ``S`` column: a number as siunitx reads it, other text in braces."""
    if not NUMBER.match(cell.text):
        return "{" + escape(cell.text) + "}"
    post = "{" + cell.post + "}" if cell.post else ""
    return (r"\bfseries " if cell.bold else "") + cell.text + post


def interval_cell(text: str) -> str:
    """``[-0.041, -0.009]`` in math mode (true minus signs); "[CI n/a]", "--" as text."""
    if text.startswith("[") and all(NUMBER.match(x.strip()) for x in text[1:-1].split(",")):
        return f"${text}$"
    return escape(text)


#: Between a mean's column and its standard deviation's: the two align apart.
PM = r"@{${}\pm{}$}"
