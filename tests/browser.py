"""Headless Chromium for the tests of the built HTML book, driven by Playwright (pip package ``playwright``).

Playwright drives the system's Chromium (``executable_path``; Debian's ``chromium`` package, installed by
``.ci/run`` where it can) -- never ``playwright install``, which would download a browser. Every request the page
makes is routed through :class:`Page`'s checker: ``file://``, ``data:``, ``blob:`` and loopback
(``http://127.0.0.1``) pass; anything else is aborted and recorded in ``page.outside``, so a test can fail on
a request that would leave the machine.

Use::

    from browser import open_page, require_built_page

    html = require_built_page("book/04_live_demo.html")      # pytest.skip when Chromium or the build is missing
    with open_page(html.as_uri(), viewport=(390, 900)) as page:
        page.wait_for_selector(...)
        assert page.outside == [] and page.errors == []

:func:`serve` starts a static http server on 127.0.0.1 (optionally sending the cross-origin-isolation headers
that WebAssembly threads need), for pages that must be served rather than opened from disk.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "_build" / "html"

#: Flags for a quiet, offline-friendly headless Chromium (no background requests to Google services).
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Request URL schemes and hosts that stay on this machine.
LOCAL_SCHEMES = ("file", "data", "blob", "about", "chrome-extension")
LOCAL_HOSTS = ("127.0.0.1",)

#: Cross-origin isolation: with these response headers a page gets SharedArrayBuffer (WebAssembly threads).
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def find_chromium() -> str | None:
    """Path of the system's Chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def is_local(url: str) -> bool:
    """True when fetching ``url`` cannot leave this machine (file, data, blob URLs, or a 127.0.0.1 server)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


def require_chromium() -> str:
    """The Chromium binary and an importable Playwright, or ``pytest.skip`` saying what is missing."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401  (heavy optional dependency, only for browser tests)
    except ImportError:
        pytest.skip("the pip package playwright is not installed (pip install -r requirements.txt)")
    return chromium


def require_built_page(relative: str, *needs: str) -> Path:
    """``_build/html/<relative>`` (plus the other files ``needs`` under ``_build/html``), or ``pytest.skip``."""
    require_chromium()
    for name in (relative, *needs):
        if not (HTML / name).is_file():
            pytest.skip(f"{HTML / name} is missing: build the book first (make html)")
    return HTML / relative


class Page:
    """A Playwright page plus what the checker saw: ``outside`` (aborted non-local URLs), ``errors``
    (uncaught page errors and console errors), ``requests`` (every URL requested) and ``failed`` (URLs whose
    request failed, e.g. a missing file)."""

    def __init__(self, page) -> None:
        self.page = page
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self.page, name)


@contextlib.contextmanager
def open_page(url: str, viewport: tuple[int, int] = (1280, 900), extra_args: tuple[str, ...] = (),
              timeout_ms: float = 120_000, init_script: str | None = None) -> Iterator[Page]:
    """Open ``url`` in a fresh headless Chromium; yields a :class:`Page` (see the module docstring).

    ``extra_args``: more Chromium flags; ``init_script``: JavaScript run in every page before its own scripts."""
    from playwright.sync_api import sync_playwright  # heavy optional dependency, only for browser tests

    chromium = require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=[*LAUNCH_ARGS, *extra_args])
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                          service_workers="block")
            if init_script:
                context.add_init_script(init_script)
            page = Page(context.new_page())

            def check(route) -> None:
                if is_local(route.request.url):
                    route.continue_()
                else:
                    page.outside.append(route.request.url)
                    route.abort()

            context.route("**/*", check)
            page.on("request", lambda request: page.requests.append(request.url))
            page.on("requestfailed", lambda request: page.failed.append(request.url))
            page.on("pageerror", lambda error: page.errors.append(f"page error: {error}"))
            page.on("console", lambda msg: msg.type == "error" and page.errors.append(f"console: {msg.text}"))
            page.set_default_timeout(timeout_ms)
            page.goto(url)
            yield page
            page.outside.extend(u for u in page.requests if not is_local(u) and u not in page.outside)
        finally:
            browser.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extra_headers: dict[str, str] = {}

    def end_headers(self) -> None:
        for key, value in self.extra_headers.items():
            self.send_header(key, value)
        super().end_headers()

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@contextlib.contextmanager
def serve(directory: str | Path, headers: dict[str, str] | None = None) -> Iterator[str]:
    """A static http server for ``directory`` on 127.0.0.1 (a free port); yields its base URL
    ``http://127.0.0.1:PORT/``."""
    handler = type("Handler", (_QuietHandler,), {"extra_headers": dict(headers or {})})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
