"""Fixes to every built page: scripts added twice are written once, and the theme gets a colour mode.

jupyter-book 1 adds sphinx-thebe's inline configuration script twice, so every page threw "Identifier
'THEBE_JS_URL' has already been declared" in the browser console (tests/test_book.py fails on console errors).
"""

from __future__ import annotations


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
    app.connect("html-page-context", _default_mode, priority=900)
    app.connect("html-page-context", _write_each_script_once, priority=900)  # after the others add theirs
    app.connect("html-page-context", _widget_manager_only_with_widgets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

