"""Files that are either the old version or the complete new one, never half written.

Checkpoints, caches, reports, learning curves and run markers are written to a temporary file in
the target's own folder, flushed to disk (`fsync`), and moved over the target with `os.replace`,
which is atomic on one file system. A crash, a power cut or Ctrl-C in the middle leaves the
previous file loadable; the temporary file is removed. Each write gets its own temporary name, so
two processes writing the same file never write into each other's temporary file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        with open(partial, "rb") as written:
            os.fsync(written.fileno())  # the bytes are on disk before the name points at them
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) atomically; return the path."""
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: dict, indent: int = 2) -> Path:
    """Write `data` as JSON atomically; return the path."""
    return write_text(path, json.dumps(data, indent=indent))
