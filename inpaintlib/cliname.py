"""How the command line was invoked, for usage lines: ``inpaintlib`` (the console script) or ``python -m inpaintlib``."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["program"]


def program() -> str:
    """``"inpaintlib"`` when run through the installed console script, else ``"python -m inpaintlib"``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "inpaintlib" if name in ("inpaintlib", "inpaintlib.exe") else "python -m inpaintlib"
