"""Command line: ``inpaintlib {train,evaluate,inpaint,book} ...`` (or ``python -m inpaintlib ...``).

Thin on purpose: each subcommand's parser and logic live in the module it belongs to
(``train.cli``, ``evaluate.cli``, ``inference.cli``, ``book.cli``, ``export.cli``); how user errors end is
:mod:`inpaintlib.errors`; this file only dispatches, so
``--help`` and ``--version`` answer without importing torch.
"""

from __future__ import annotations

import importlib
import os
import sys

from inpaintlib import __version__
from inpaintlib.cliname import program
from inpaintlib.errors import DEBUG_ENV

COMMANDS = {
    "train": ("inpaintlib.train", "train a Context Encoder or a PConv U-Net into a run directory"),
    "evaluate": ("inpaintlib.evaluate", "score models and classical methods by hole-ratio bucket"),
    "inpaint": ("inpaintlib.inference", "fill the holes of one picture with a trained model"),
    "book": ("inpaintlib.book", "execute the book's chapters with papermill; sync their Colab links"),
    "export": ("inpaintlib.export", "export a run's model to ONNX (e.g. for the live demo in the HTML book)"),
}


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print(f"inpaintlib {__version__}")
        return 0
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        lines = [f"usage: {program()} COMMAND [--help] [--debug] ...", "       " + program() + " --version", "",
                 "commands:"]
        lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
        from inpaintlib.hub import stored_run_names

        lines += ["", "--checkpoint (inpaint, evaluate) and --init-from (train) also take the name of a stored run "
                  f"({', '.join(stored_run_names())}), downloaded outside a checkout"]
        asked = argv[:1] in ([], ["-h"], ["--help"])
        print("\n".join(lines), file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.cli(argv[1:]) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--debug" in argv:  # tracebacks for user errors too (read by inpaintlib.errors)
        os.environ[DEBUG_ENV] = "1"
        argv = [a for a in argv if a != "--debug"]
    try:
        try:
            status = _dispatch(argv)
        except SystemExit:  # argparse's --help and errors: flush now, where a closed pipe can be caught
            sys.stdout.flush()
            raise
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (e.g. `| head -1`): stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, what a shell reports for a program killed by a closed pipe
    return status


if __name__ == "__main__":
    sys.exit(main())
