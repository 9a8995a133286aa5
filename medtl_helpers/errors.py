"""Exceptions the course raises on bad input.

Every message names the file or setting at fault and says how to fix it, so a student sees one
clear sentence instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class MedtlError(Exception):
    """Base class: a problem the user can fix, described in words."""


class DataError(MedtlError):
    """A data folder, image or file that cannot be used as it is."""


class ChecksumError(DataError):
    """A downloaded or cached file whose MD5 differs from the published one."""


class DownloadError(DataError):
    """A download that failed or was cut off."""


class UnsafeArchiveError(DataError):
    """An archive member that would be written outside the target folder."""


class CheckpointError(MedtlError):
    """A checkpoint that is truncated, unsafe, or made for another model."""


class WeightsUnavailableError(MedtlError):
    """ImageNet weights that are neither cached nor downloadable."""


class DeviceError(MedtlError, RuntimeError):
    """A device that was asked for but is not there (no GPU, or a name torch does not know)."""


# Messages name the fix in the terms of the interface the user is in: a keyword argument or an
# environment variable in a notebook, a flag on the command line. The command line sets this for
# the duration of a command (`command_line()`); everything else is a notebook or a script.
_INTERFACE: ContextVar[str] = ContextVar("medtl_interface", default="python")


@contextmanager
def command_line() -> Iterator[None]:
    """While active, `in_terms` picks the command line's words (flags) over Python's."""
    token = _INTERFACE.set("cli")
    try:
        yield
    finally:
        _INTERFACE.reset(token)


def on_command_line() -> bool:
    return _INTERFACE.get() == "cli"


def error_line(err: BaseException) -> str:
    """What the command line prints for `err`: the whole message, except under torchrun on a
    rank other than 0. The processes mostly fail alike, and rank 0 prints the message with its
    fix; the others print one line: their rank and the message's first sentence."""
    rank, size = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    if rank in ("", "0"):
        return f"error: {err}"
    first = (str(err).splitlines() or [type(err).__name__])[0]
    return f"error on rank {rank} of {size}: {first.split('. ', 1)[0].rstrip('.')}."


def in_terms(python: str, cli: str) -> str:
    """`cli` inside `python -m medtl_helpers …`, else `python` (a notebook or a script).

    >>> in_terms("MEDTL_DATA=/data/chest_xray", "--data /data/chest_xray")
    'MEDTL_DATA=/data/chest_xray'
    """
    return cli if on_command_line() else python


class WriteError(MedtlError):
    """A file that could not be written: a full disk, a quota, a read-only folder, a size limit.

    The message names the file, the cause and the fix; the previous version of the file is kept
    (`atomic.py`). `path` is the file and `errno` the cause's number (None when torch hid it).
    """

    def __init__(self, message: str, path: object = None, errno: int | None = None):
        super().__init__(message)
        self.path, self.errno = path, errno
