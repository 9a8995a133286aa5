"""Files that are either the old version or the complete new one, never half written.

Checkpoints, caches, reports and run markers are written to a temporary file next to the target
and moved over it with `os.replace`, which is atomic on one file system. A crash or Ctrl-C in
the middle leaves the previous file loadable; the temporary file is removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_json(path: str | Path, data: dict, indent: int = 2) -> Path:
    """Write `data` as JSON atomically; return the path."""
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(data, indent=indent))
    return Path(path)
