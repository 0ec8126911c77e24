"""Stopping a run by a signal without losing it: the first SIGINT (Ctrl-C) or SIGTERM lets the current step
finish and the checkpoint be written; a second one stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["TrainingInterrupted", "stop_requests"]


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :func:`train` after SIGINT (Ctrl-C) or SIGTERM: the step that was running finished and
    the checkpoint was written. ``signal`` is the signal's number, ``step`` the step reached and
    ``checkpoint`` the file to resume from."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"{name} at step {step}: checkpoint written to {checkpoint}")
        self.signal, self.step, self.checkpoint = signum, step, checkpoint


@contextlib.contextmanager
def stop_requests(enabled: bool) -> Iterator[dict[str, int]]:
    """While the block runs, the first SIGINT/SIGTERM only asks the loop to stop after its current step
    (``flags["signal"]``); a second one stops at once. Handlers exist only in the main thread."""
    flags: dict[str, int] = {}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flags
        return

    def ask(signum: int, frame: Any) -> None:
        if "signal" in flags:  # the second request: stop now
            raise KeyboardInterrupt
        flags["signal"] = signum
        print(f"\n{signal.Signals(signum).name}: finishing the current step and writing a checkpoint "
              "(press Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    before = {sig: signal.signal(sig, ask) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flags
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
