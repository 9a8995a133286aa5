"""Where `learning_curve` (07) keeps its finished points, and when it may reuse them.

A point is reused only by a call with the same settings, data, caps, package version and package
code: the key holds a fingerprint of the source of every module of `medtl_helpers`
(`code_fingerprint`), so after any change to the package's code, even under an unchanged version
number, the store is missed and the points are trained afresh.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from medtl_helpers import config
from medtl_helpers.config import version
from medtl_helpers.training import runs_root

# the package's folder: a point depends on modules all over it (the loop and schedule, but also
# augmentation, model building, BatchNorm modes, scoring), so the fingerprint reads every one
PACKAGE = Path(__file__).resolve().parents[1]


def _skipped(parts: tuple[str, ...]) -> bool:
    """Hidden files and folders (".ipynb_checkpoints", where JupyterLab keeps a copy of every
    module it opens) and `__pycache__`: not part of the package, nor of the installed one."""
    return any(part.startswith(".") or part == "__pycache__" for part in parts)


def package_modules(root: Path = PACKAGE) -> list[str]:
    """The .py files under `root`, as paths relative to it ("training/fit.py"), sorted.

    Files under a hidden folder or `__pycache__`, and hidden files, are skipped. Any other .py
    file left in the folder counts, so a stray one in a checkout changes the fingerprint.
    """
    names = (path.relative_to(root) for path in root.rglob("*.py"))
    return sorted(name.as_posix() for name in names if not _skipped(name.parts))


def _source(path: Path) -> bytes:
    return path.read_bytes()


def code_fingerprint(root: Path = PACKAGE) -> str:
    """A short hash of the paths and source text of `package_modules` (line endings made alike)."""
    digest = hashlib.sha1()
    for name in package_modules(root):
        digest.update(f"{name}\n".encode())
        digest.update(_source(root / name).replace(b"\r\n", b"\n"))
    return digest.hexdigest()[:12]


def store_path(train, val, test, settings, profile: config.Profile) -> Path:
    """The CSV of a curve's points: keyed by settings, data, caps, version and package code."""
    data = [d.fingerprint() for d in (train, val, test)]
    plain = {**asdict(settings), "data": data, "caps": config.caps()}
    plain["version"] = version.__version__
    plain["code"] = code_fingerprint()  # the version number is not bumped with every change
    key = hashlib.sha1(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:12]
    return runs_root() / profile.name / "data_efficiency" / f"curve-{key}.csv"


def saved_rows(path: Path | None) -> list[dict]:
    """The points a call with the same key saved at `path` (none without a store)."""
    if path is None:
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(path).to_dict("records") if path.exists() else []
    if rows:
        print(f"Reusing {len(rows)} finished point(s) from {path}")
    return rows
