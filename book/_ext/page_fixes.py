"""Fixes to every built page: scripts added twice are written once, and the theme gets a colour mode.

jupyter-book 1 adds sphinx-thebe's inline configuration script twice, so every page threw "Identifier
'THEBE_JS_URL' has already been declared" in the browser console (tests/test_book.py fails on console errors).
"""

from __future__ import annotations

from pathlib import Path

#: A picture's panel (one photo of a grid, one plot) is found as a run of inked columns at least this many
#: natural pixels wide inside a band of inked rows at least this many pixels high; narrower runs and lower bands
#: are labels, arrows, legends and titles.
PANEL_MIN_PX = 20
BAND_MIN_PX = 40


def _runs(flags) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a sequence of booleans."""
    runs, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def narrowest_panel(path: Path) -> int:
    """Width in natural pixels of the narrowest panel of the picture at ``path`` (a PNG on a white background).

    The picture is cut into bands of rows that hold ink, separated by white rows; in each band high enough to
    hold a panel, the runs of inked columns are the panels and the labels beside them. Runs under half the
    band's widest are labels (row titles, tick labels) and do not count. A picture with no panel found counts
    as one panel as wide as itself."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    ink = (pixels < 245).any(axis=2)  # (H, W): anything not (nearly) white
    widths = []
    for top, bottom in _runs(ink.any(axis=1)):
        if bottom - top < BAND_MIN_PX:
            continue
        spans = [stop - start for start, stop in _runs(ink[top:bottom].any(axis=0)) if stop - start >= PANEL_MIN_PX]
        if spans:
            widths += [w for w in spans if w >= max(spans) / 2]
    return min(widths, default=pixels.shape[1])


def _write_each_script_once(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        name = getattr(script, "filename", script) or ""  # an inline script's name is None or "": the same
        key = (str(name), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def _default_mode(app, pagename, templatename, context, doctree) -> None:
    """The theme writes ``default_mode`` into the page; left empty it logs "Got invalid theme mode" on
    every page. "auto" follows the reader's system setting, as the theme does anyway."""
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app):
    app.connect("html-page-context", _default_mode, priority=900)
    app.connect("html-page-context", _write_each_script_once, priority=900)  # after the others add theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}

