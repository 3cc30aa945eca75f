"""An attribute of the test benchmarks' people (ethnicity, gender, age group...), from a CSV, by
which fairness groups a benchmark's pairs: ``identity,<attribute>`` with a header, one person a
line, the identity as the benchmark names it (a pair list's folder name, LFW's ``Aaron_Peirsol``).
The second column's header names the attribute. A pair is in a group when both its people have
that value; a pair of people of two values, or of a person the file does not list, takes part
in the global threshold only.

Only benchmarks that name their people (pair lists) can be grouped: an insightface ``.bin``
names nobody.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reports.rundir.evaluation import NO_GROUP
from trainables.evaluation.benchmarks import BenchmarkError


class AttributeFileError(BenchmarkError):
    """An attribute file that is missing or malformed."""


@dataclass(frozen=True)
class Attributes:
    """The attribute's name, its values (sorted) and each listed person's value."""

    name: str
    values: tuple[str, ...]
    of: dict[str, str]

    def pair_groups(self, image_identity: tuple[str, ...], left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Each pair's group index in ``values``, ``NO_GROUP`` where its two people differ in it
        or one is not listed."""
        index = {v: k for k, v in enumerate(self.values)}
        code = np.array([index.get(self.of.get(name, ""), NO_GROUP) for name in image_identity], dtype=np.int64)
        a, b = code[left], code[right]
        return np.where((a == b) & (a != NO_GROUP), a, NO_GROUP)


def read_attributes(path: str | Path) -> Attributes:
    """The attribute file (see the module's note); refused in one line when it is unreadable,
    has fewer than two columns, or lists a person twice."""
    path = Path(path).expanduser()
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise AttributeFileError(f"attributes {path}: not readable ({err})") from None
    if not rows or len(rows[0]) < 2 or not rows[0][1].strip():
        raise AttributeFileError(f"attributes {path}: expected a header 'identity,<attribute>' and a row per person")
    of: dict[str, str] = {}
    for k, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise AttributeFileError(f"attributes {path}, line {k}: expected '<identity>,<value>'")
        name, value = row[0].strip(), row[1].strip()
        if name in of:
            raise AttributeFileError(f"attributes {path}, line {k}: {name} is listed twice")
        of[name] = value
    if len(set(of.values())) < 2:
        raise AttributeFileError(f"attributes {path}: fairness needs at least two values of {rows[0][1].strip()}")
    return Attributes(rows[0][1].strip(), tuple(sorted(set(of.values()))), of)


__all__ = ["Attributes", "read_attributes"]
