"""Writing one section of bench/RESULTS.md: the scripts that measure replace their own section and leave the rest."""

from __future__ import annotations

from pathlib import Path

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(heading: str, text: str, path: Path = RESULTS_PATH) -> None:
    """Replace the section that starts with the line ``heading`` (up to the next ``## `` heading) by ``text``,
    or append ``text`` when there is no such section."""
    old = path.read_text()
    start = old.find(heading)
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = old.find("\n## ", start + len(heading))
    path.write_text(old[:start] + text + (old[end:] if end >= 0 else ""))
