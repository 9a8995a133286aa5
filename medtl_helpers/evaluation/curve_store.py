"""Where `learning_curve` (07) keeps its finished points, and when it may reuse them.

A point is reused only by a call with the same settings, data, caps, package version and
training code: the key holds a fingerprint of the source of the modules that train and record
a point (`TRAINING_CODE`), so code that trains or records points otherwise, even under an
unchanged version number, misses the store and trains them afresh.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import pandas as pd

from medtl_helpers import config
from medtl_helpers.config import version
from medtl_helpers.training import runs_root

# (package, module file): the loop, the batches and steps, the optimizer and schedule, how a
# point is trained and recorded, and this store
TRAINING_CODE = (
    ("medtl_helpers.training", "fit.py"),
    ("medtl_helpers.training", "steps.py"),
    ("medtl_helpers.training", "stages.py"),
    ("medtl_helpers.evaluation", "data_efficiency.py"),
    ("medtl_helpers.evaluation", "curve_store.py"),
)


def _source(package: str, name: str) -> bytes:
    return resources.files(package).joinpath(name).read_bytes()


def code_fingerprint() -> str:
    """A short hash of the source text of `TRAINING_CODE` (line endings made alike)."""
    digest = hashlib.sha1()
    for package, name in TRAINING_CODE:
        digest.update(f"{package}/{name}\n".encode())
        digest.update(_source(package, name).replace(b"\r\n", b"\n"))
    return digest.hexdigest()[:12]


def store_path(train, val, test, settings, profile: config.Profile) -> Path:
    """The CSV of a curve's points: keyed by settings, data, caps, version and training code."""
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
