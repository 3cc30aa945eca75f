"""The one exception type that means "the user's input is wrong": one line, exit status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (study, spec, option, data). The CLI prints ``error: <message>`` and exits 2."""


def one_line(text: str) -> str:
    """Collapse whitespace so a message stays on one line."""
    return " ".join(str(text).split())
