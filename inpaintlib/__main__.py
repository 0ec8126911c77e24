"""Command line: ``python -m inpaintlib {train,evaluate,inpaint,book} ...``.

Thin on purpose: each subcommand's parser and logic live in the module it belongs to
(``train.cli``, ``evaluate.cli``, ``inference.cli``, ``book.cli``); this file only dispatches.
"""

from __future__ import annotations

import importlib
import os
import sys

from inpaintlib.errors import DEBUG_ENV

COMMANDS = {
    "train": ("inpaintlib.train", "train a Context Encoder or a PConv U-Net into a run directory"),
    "evaluate": ("inpaintlib.evaluate", "score models and classical methods by hole-ratio bucket"),
    "inpaint": ("inpaintlib.inference", "fill the holes of one picture with a trained model"),
    "book": ("inpaintlib.book", "execute the book's chapters with papermill"),
    "export": ("inpaintlib.export", "export a run's model to ONNX (e.g. for the live demo in the HTML book)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--debug" in argv:  # tracebacks for user errors too (read by inpaintlib.errors)
        os.environ[DEBUG_ENV] = "1"
        argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        lines = ["usage: python -m inpaintlib COMMAND [--help] [--debug] ...", "", "commands:"]
        lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("\n".join(lines), file=sys.stdout if argv[:1] in ([], ["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.cli(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
