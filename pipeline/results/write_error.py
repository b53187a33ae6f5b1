"""A result that could not be written (a full disk, a read-only folder, a quota): one line
naming the file, never a traceback.

Every local result is written to a temporary file and renamed into place, so a
failed write leaves what was committed before as it was; the run stops and the
same command resumes once there is room. Standard library only: the CLI names
:class:`ResultWriteError` in its error handling without importing pyarrow.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

#: errno values that mean "this place cannot be written": a full disk, a quota, a
#: read-only or forbidden folder, a file over the process's size limit.
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


class ResultWriteError(OSError):
    """A result file could not be written; the message names it and the cause."""


def cannot_write(where: object, exc: OSError) -> ResultWriteError:
    """The error for ``where`` from the OSError a write raised (pyarrow's included)."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.filename and os.fsdecode(exc.filename) != str(where):
        reason += f": {os.fsdecode(exc.filename)}"  # e.g. a folder on the way is a file
    return ResultWriteError(f"{where}: cannot write ({reason})")


@contextmanager
def writing(where: object) -> Iterator[None]:
    """Turn an OSError raised while ``where`` is written into a :class:`ResultWriteError`."""
    try:
        yield
    except ResultWriteError:
        raise
    except OSError as exc:
        raise cannot_write(where, exc) from None


def failure_line(exc: OSError) -> str | None:
    """The CLI's line for a result that could not be written, or None for another OSError
    (a bug keeps its traceback)."""
    if isinstance(exc, ResultWriteError):
        what = str(exc)
    elif exc.errno in WRITE_ERRNOS:
        what = f"{exc.filename or 'a result file'}: cannot write ({os.strerror(exc.errno)})"
    else:
        return None
    return (
        f"write error: {what}; the results committed before it are kept: free space or make "
        "the folder writable, then rerun the same command (a run resumes where it stopped)"
    )
