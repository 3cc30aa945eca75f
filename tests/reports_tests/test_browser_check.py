"""The browser checks the report tests rely on can fail: a script error and a table wider
than the window are caught."""

from tests.browser_check import console_and_screenshot, page_fits


def test_chromium_detects_console_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    console, _ = console_and_screenshot(bad, tmp_path)
    assert any("undefinedFunction" in ln for ln in console)


def test_the_width_check_finds_an_element_wider_than_the_page(tmp_path):
    """A table wider than the window, outside a scrolling box, is found; one inside it is not."""
    wide = tmp_path / "wide.html"
    wide.write_text(
        "<html><body><table><tr><td style='min-width:3000px'>x</td></tr></table>"
        "<div class=scroll style='overflow-x:auto'><table><tr><td style='min-width:3000px'>y</td></tr></table></div>"
        "</body></html>"
    )
    fits, console = page_fits(wide, tmp_path)
    assert fits["scroll"] > fits["inner"] and any(w.startswith("TABLE") for w in fits["wide"])
    assert len([w for w in fits["wide"] if w.startswith("TD")]) == 1  # the one in the scrolling box is fine
    assert console == []
