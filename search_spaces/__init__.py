"""Shipped study specifications: YAML data only (no Ray, no torch).

``python -m orchestrator list`` lists them; ``python -m orchestrator run NAME`` runs one.
"""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent


def shipped() -> dict[str, Path]:
    """Name -> path of every shipped study spec."""
    return {p.stem: p for p in sorted(DIRECTORY.glob("*.yaml"), key=lambda p: p.stem)}
