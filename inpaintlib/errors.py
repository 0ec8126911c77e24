"""How the command line ends on bad input: one line on stderr naming the file and the cause, exit status 2.

Errors a user can act on -- a missing or unreadable file, a refused pickle, an image over the pixel
limit, a full or read-only disk, a device that is not there, a value out of range -- are raised as
``ValueError`` / ``OSError`` by the library and turned into that one line here. Anything else is a bug and
keeps its traceback. ``--debug`` (or ``INPAINTLIB_DEBUG=1``) shows the traceback for user errors too.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable

__all__ = ["DEBUG_ENV", "debug_enabled", "is_user_error", "message", "exits_cleanly"]

DEBUG_ENV = "INPAINTLIB_DEBUG"

#: OSError numbers that describe the user's machine or files, not a bug.
_USER_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
    errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY, errno.ENAMETOOLONG,
}


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def is_user_error(error: BaseException) -> bool:
    """True for the errors the command line reports in one line (see the module docstring)."""
    if isinstance(error, OSError):
        return error.errno in _USER_ERRNOS or isinstance(error, FileNotFoundError)
    return isinstance(error, ValueError)


def message(error: BaseException) -> str:
    """The one line for ``error``: its text, without the ``[Errno N]`` prefix and repeated file name."""
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
        if error.filename and str(error.filename) not in text:
            text = f"{error.filename}: {text}"
        return text
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def exits_cleanly(cli: Callable[..., int]) -> Callable[..., int]:
    """Decorate a subcommand's ``cli(argv) -> int``: user errors print ``error: ...`` and return 2 and a
    Ctrl-C returns 130; bugs propagate (a closed pipe is handled by ``__main__``)."""

    @functools.wraps(cli)
    def wrapper(*args, **kwargs) -> int:
        try:
            return cli(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as error:  # user errors are reported in one line, bugs re-raised
            if not is_user_error(error) or debug_enabled():
                raise
            print(f"error: {message(error)}", file=sys.stderr)
            return 2

    return wrapper
