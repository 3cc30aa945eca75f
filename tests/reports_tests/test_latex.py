"""Numbers in the LaTeX tables: siunitx ``S`` columns sized for what they hold (aligned on
the decimal marker, a true minus sign), and what is not a plain number in math mode."""

from __future__ import annotations

import pandas as pd
import pytest

from reports.latex import frame_latex
from reports.latex_cells import Num, s_cell, s_column, s_format


@pytest.mark.parametrize(
    "texts,expected",
    [
        (["0.652", "0.036"], "1.3"),  # one integer digit, three decimals
        (["+0.035", "-0.150", "n/a"], "+1.3"),  # room for a sign; "n/a" is no number
        (["0.067", "<0.001"], "<1.3"),  # a p-value below what is printed
        (["12", "3"], "2"),  # integers: no decimal part
        (["12.5", "0.6012", "-3"], "+2.4"),  # the widest integer part and the most decimals
        (["n/a", "--"], None),
    ],
)
def test_a_column_format_has_room_for_every_number_it_holds(texts, expected):
    assert s_format(texts) == expected


def test_cells_are_numbers_for_siunitx_and_text_in_braces():
    assert s_cell(Num("-0.025")) == "-0.025"
    assert s_cell(Num("0.649", bold=True)) == r"\bfseries 0.649"
    assert s_cell(Num("0.012", post="$^{**}$")) == "0.012{$^{**}$}"
    assert s_cell(Num("n/a")) == "{n/a}" and s_cell(Num("a_b")) == r"{a\_b}"
    # the longest text after a number gets its room; a column of no number is centred text
    column = s_column([Num("0.1", post="$^{*}$"), Num("0.2", post=r"$^{***}$\,(n=2)")])
    assert column.startswith("S[table-format=1.1,") and r"table-space-text-post={$^{***}$\,(n=2)}" in column
    assert s_column([Num("--"), Num("n/a")]) == "c"


def test_numbers_of_every_width_and_sign_fit_their_columns_in_every_class(tmp_path):
    """A frame's numeric columns become ``S`` columns: integers, decimals of different widths,
    negative values and a bold best all fit the room the column format gives (siunitx sets
    a number wider than its format into an overfull box, which ``assert_fits`` reads)."""
    from tests.latex_check import assert_fits

    frame = pd.DataFrame(
        {
            "rank": [1, 2, 10],
            "trial": ["trial002", "trial000", "trial013"],
            "val acc": [0.7123, 12.65, 0.6012],
            "delta": [-10.0123, 0.0, 0.0312],
            "lr": [1.2e-5, 0.00123, 0.0456],
        }
    )
    tex = frame_latex(
        frame,
        caption="Numbers",
        label="numbers",
        bold={(0, "val acc")},
        formats={"lr": lambda v: f"{v:.4g}"},
        keep=2,
    )
    assert "S[table-format=2," in tex and "S[table-format=2.4," in tex and "S[table-format=+2.4," in tex
    assert r"\bfseries 0.7123" in tex and "-10.0123" in tex
    # a learning rate written with an exponent: right-aligned in math mode, as a power of ten
    assert r"$1.2 \times 10^{-5}$" in tex and "$0.00123$" in tex
    (tmp_path / "numbers.tex").write_text(tex)
    assert_fits([tmp_path / "numbers.tex"], tmp_path)
