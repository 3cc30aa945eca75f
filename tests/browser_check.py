"""Open a report page in headless Chromium (Debian's): what its console says, a screenshot,
and whether any element reaches past a 1280 px window."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np


def console_and_screenshot(page: Path, tmp_path: Path) -> tuple[list[str], np.ndarray]:
    """Open ``page`` in headless Chromium: its console messages and a screenshot (grey levels)."""
    from PIL import Image

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Chromium is needed (Debian: chromium)"
    shot = tmp_path / f"{page.stem}-shot.png"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return console, np.asarray(Image.open(shot).convert("L"), dtype=float)


#: Run in the page once it has loaded (a copy of it, next to it): every element whose right
#: edge lies beyond the window, unless a box that scrolls on its own (``.scroll``) holds it,
#: and whether the page itself scrolls sideways; printed to the console as one JSON line.
WIDTH_CHECK = """<script>
window.addEventListener("load", () => {
  const inner = window.innerWidth, wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest(".scroll") || el.closest("details:not([open])")) continue;
    const r = el.getBoundingClientRect();
    if (r.width && r.right > inner + 1) wide.push(el.tagName + " " + Math.round(r.right));
  }
  console.log("WIDTH-CHECK " + JSON.stringify({inner, scroll: document.documentElement.scrollWidth, wide}));
});
</script>"""


def page_fits(page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """``page`` opened 1280 px wide: what WIDTH_CHECK found, and every other console line."""
    probe = page.with_name(f".width-check-{page.name}")
    probe.write_text(page.read_text().replace("</body>", WIDTH_CHECK + "</body>"))
    try:
        console, _ = console_and_screenshot(probe, tmp_path)
    finally:
        probe.unlink()
    found = [ln for ln in console if "WIDTH-CHECK " in ln]
    assert len(found) == 1, console
    text = found[0].split("WIDTH-CHECK ", 1)[1]
    return json.loads(text[: text.rindex("}") + 1]), [ln for ln in console if "WIDTH-CHECK " not in ln]


def assert_page_fits(page: Path, tmp_path: Path) -> None:
    """No element of ``page`` reaches past the window and nothing goes to its console (no
    script error, no missing image)."""
    fits, console = page_fits(page, tmp_path)
    assert fits["wide"] == [] and fits["scroll"] <= fits["inner"], (page, fits)
    assert console == [], (page, console)
