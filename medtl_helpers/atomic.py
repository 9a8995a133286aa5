"""Files that are either the old version or the complete new one, never half written.

Checkpoints, caches, reports, learning curves and run markers are written to a temporary file in
the target's own folder, flushed to disk (`fsync`), and moved over the target with `os.replace`,
which is atomic on one file system. A crash, a power cut or Ctrl-C in the middle leaves the
previous file loadable; the temporary file is removed. Each write gets its own temporary name, so
two processes writing the same file never write into each other's temporary file. The new file
gets the permissions a plain `open` would give it (0644 under the usual umask 022), so caches and
finished runs can be shared.

A write that fails (a full disk, a used-up quota, a read-only or foreign folder, a file-size
limit) is a `WriteError` naming the file, the cause and the fix, instead of an OSError or a
RuntimeError from deep inside torch; the previous version of the file is kept as it was.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from medtl_helpers.errors import WriteError

ANOTHER_FOLDER = "write to another folder"
# What torch's zip writer says when the disk refuses bytes written by path ("unexpected pos …"
# in torch 2.x, "file write failed" in others); written through a Python file (`atomic_file`),
# the disk's own OSError is kept in the exception's context and named instead.
_TORCH_WRITE_FAILED = ("PytorchStreamWriter", "inline_container", "file write failed")


def _fix(code: int | None, folder: Path, elsewhere: str) -> str:
    """What to do about a failed write, by its cause."""
    if code == errno.ENOSPC:
        return f"Free some space on that disk (old runs, caches, downloads), or {elsewhere}."
    if code == errno.EDQUOT:
        return f"Your disk quota is used up: delete files you no longer need, or {elsewhere}."
    if code == errno.EROFS:
        return f"That file system is mounted read-only: {elsewhere}."
    if code in (errno.EACCES, errno.EPERM):
        return f"You may not write in {folder}: {elsewhere}, or make the folder writable."
    if code == errno.EFBIG:
        return (
            "The file is larger than a file-size limit allows (`ulimit -f`, or 4 GiB on a FAT32 "
            f"drive): raise the limit, or {elsewhere}."
        )
    if code is None:
        return f"This usually means a full disk, a quota or a file-size limit: {elsewhere}."
    return f"Check that folder and its disk, or {elsewhere}."


def write_error(
    path: Path, cause: str, code: int | None, existed: bool, elsewhere: str
) -> WriteError:
    """The WriteError for `path`: the file, the cause in words, what was kept, the fix."""
    kept = (
        f"{path.name} is unchanged: it still holds its previous version."
        if existed
        else "Nothing was written there."
    )
    fix = _fix(code, path.parent, elsewhere)
    return WriteError(f"Could not write {path}: {cause}. {kept} {fix}", path, code)


def _os_error(err: BaseException) -> OSError | None:
    """The OSError behind `err`: itself, or one in its chain (torch wraps the disk's error)."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, OSError):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def _cause(err: Exception) -> tuple[str, int | None] | None:
    """(cause in words, errno) when `err` is a failed write, else None (not ours to translate)."""
    disk = _os_error(err)
    if disk is not None:
        return disk.strerror or str(disk), disk.errno
    if isinstance(err, RuntimeError) and any(s in str(err) for s in _TORCH_WRITE_FAILED):
        return f"torch could not write it ({str(err).splitlines()[0]})", None
    return None


def _umask() -> int:
    """The process's umask, read without changing it (Linux); else set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, elsewhere: str = ANOTHER_FOLDER) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` when the block succeeds.

    A failed write raises WriteError; `elsewhere` completes its fix ("or <elsewhere>"), in the
    words of the caller's interface (`errors.in_terms`).
    """
    path = Path(path)
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp's 0600 otherwise: shared caches, runs
        os.close(handle)
    except OSError as err:  # a read-only folder already refuses the temporary file
        raise write_error(path, err.strerror or str(err), err.errno, existed, elsewhere) from err
    partial = Path(name)
    try:
        yield partial
        with open(partial, "rb") as written:
            os.fsync(written.fileno())  # the bytes are on disk before the name points at them
        os.replace(partial, path)
    except (OSError, RuntimeError) as err:
        if (cause := _cause(err)) is None:
            raise
        raise write_error(path, *cause, existed, elsewhere) from err
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: str | Path, elsewhere: str = ANOTHER_FOLDER) -> Iterator[BinaryIO]:
    """`atomic_path`, opened for writing bytes: give this to `torch.save`, not the path, so that
    a full disk is named as one ("No space left on device"), not as torch's "unexpected pos"."""
    with atomic_path(path, elsewhere) as partial, open(partial, "wb") as file:
        yield file


def write_text(path: str | Path, text: str, elsewhere: str = ANOTHER_FOLDER) -> Path:
    """Write `text` (UTF-8) atomically; return the path."""
    with atomic_path(path, elsewhere) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: dict, indent: int = 2, elsewhere=ANOTHER_FOLDER) -> Path:
    """Write `data` as JSON atomically; return the path."""
    return write_text(path, json.dumps(data, indent=indent), elsewhere)
