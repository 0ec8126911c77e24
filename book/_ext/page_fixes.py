"""Fixes to every built page: scripts added twice are written once, the theme gets a colour mode, every image
says what it shows, and no picture is drawn so small that its panels cannot be seen.

* jupyter-book 1 adds sphinx-thebe's inline configuration script twice, so every page threw "Identifier
  'THEBE_JS_URL' has already been declared" in the browser console (tests/test_book.py fails on console errors).
* MyST-NB gives a notebook's output image no alt text, so the HTML writer used its file path; the figure's
  caption (``mystnb.figure.caption`` in the cell's metadata) says what it shows, and its first sentence
  becomes the alt text.
* A grid of photos scaled down to a phone's column showed panels of about 40 px: each output picture gets
  ``--panel-min-width``, the width at which its narrowest panel (:func:`narrowest_panel`) is 100 CSS px, and a
  box that scrolls sideways when that is wider than the column (book.css); a tap opens the full picture.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path

from docutils import nodes

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


#: The width the narrowest panel of a picture gets at least, in CSS px (the browser test asks for 96).
PANEL_CSS_PX = 100


@lru_cache(maxsize=None)
def _panel_min_width(path: str, mtime: float) -> int:
    """CSS width at which the narrowest panel of the PNG at ``path`` is PANEL_CSS_PX wide (0: no need, it
    fits a phone's column anyway). ``mtime`` only keys the cache."""
    from PIL import Image

    with Image.open(path) as image:
        width = image.width
    need = -(-width * PANEL_CSS_PX // narrowest_panel(Path(path)))  # ceil
    return need if need > 320 else 0


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s+[A-Z(]|$)", text)
    return match.group(1) if match else text


def _describe_images(app, doctree, docname) -> None:
    """An image without alt text (or with its file path as alt text) in a captioned figure gets the first
    sentence of the caption."""
    for image in doctree.findall(nodes.image):
        alt = image.get("alt", "")
        if alt and not re.search(r"^\S*[\\/]\S*$|\.(png|jpe?g|svg|gif|webp)$", alt.strip(), re.I):
            continue
        figure = image.parent if isinstance(image.parent, nodes.figure) else None
        caption = figure.next_node(nodes.caption) if figure is not None else None
        if caption is not None and caption.astext().strip():
            image["alt"] = _first_sentence(_readable(caption))


def _readable(node) -> str:
    """The text of ``node`` with its TeX made readable aloud: ``M \\odot x`` becomes ``M odot x``."""
    parts = []
    for text in node.findall(nodes.Text):
        text_ = str(text)
        if isinstance(text.parent, (nodes.math, nodes.math_block)):
            text_ = re.sub(r"[{}^_\\]", " ", re.sub(r"\\([A-Za-z]+)", r"\1", text_))
        parts.append(text_)
    return re.sub(r" ([.,;:)])", r"\1", " ".join("".join(parts).split()))


_IMG = re.compile(r'<img (?P<attrs>[^>]*?)src="(?P<src>[^"]*_images/(?P<name>[^"/]+\.png))"(?P<rest>[^>]*)>')


def _scrolling_figures(app, pagename, templatename, context, doctree) -> None:
    """Wrap each PNG of the page body in a link to itself (tap to enlarge) that scrolls sideways, and give
    the picture its ``--panel-min-width`` (see book.css)."""
    body = context.get("body")
    if not body or "_images/" not in body:
        return
    sources = {Path(dest).name: src for src, dest in getattr(app.builder, "images", {}).items()}

    def wrap(match: re.Match) -> str:
        before = body[:match.start()]
        if before.rfind("<a ") > before.rfind("</a>"):  # already inside a link: leave it
            return match.group(0)
        style = ""
        source = sources.get(match.group("name"))
        if source and (Path(app.srcdir) / source).is_file():
            path = Path(app.srcdir) / source
            need = _panel_min_width(str(path), path.stat().st_mtime)
            style = f' style="--panel-min-width: {need}px"' if need else ""
        src = match.group("src")
        img = f'<img {match.group("attrs")}src="{src}"{style}{match.group("rest")}>'
        return f'<a class="figure-scroll" href="{html.escape(src)}">{img}</a>'

    context["body"] = _IMG.sub(wrap, body)


def _widget_manager_only_with_widgets(app, pagename, templatename, context, doctree) -> None:
    """The widget manager (embed.js, 1.9 MB, and its MathJax 2 shim) only on pages that show a widget: the
    live demo's page must load under 3 MB before its demo starts (issue 27)."""
    scripts = context.get("script_files")
    if not scripts or "application/vnd.jupyter.widget-view+json" in context.get("body", ""):
        return
    context["script_files"] = [
        s for s in scripts
        if str(getattr(s, "filename", s) or "").rsplit("/", 1)[-1] not in ("embed.js", "mathjax2_shim.js")
    ]


def setup(app):
    app.connect("doctree-resolved", _describe_images)
    app.connect("html-page-context", _scrolling_figures)
    app.connect("html-page-context", _default_mode, priority=900)
    app.connect("html-page-context", _write_each_script_once, priority=900)  # after the others add theirs
    app.connect("html-page-context", _widget_manager_only_with_widgets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

