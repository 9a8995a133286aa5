"""`python -m medtl_helpers data …`: download, verify, cache and extract course data."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from medtl_helpers import config
from medtl_helpers.course.train_commands import fraction
from medtl_helpers.data.folder import data_given_as


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="download, verify, cache or extract data")
    actions = data.add_subparsers(dest="action", required=True)

    verify = actions.add_parser(
        "verify",
        help="check a Kermany folder or a .npz file (exit status 1: corrupt images found)",
        description="Count images and patients per split and class, and open every image. "
        "Exit status: 0 when every image decodes, 1 when corrupt images were found (they are "
        "listed), 2 when the folder or file cannot be used at all; scripts can test it.",
    )
    verify.add_argument("path", type=Path)
    verify.add_argument("--no-decode", action="store_true", help="skip opening every image")
    verify.add_argument("--seed", type=int, default=0, help="as in train --seed (preview)")
    verify.add_argument(
        "--val-fraction",
        "--holdout",
        type=fraction,
        default=0.15,
        help="as in train --val-fraction: share of patients for validation (preview)",
    )
    verify.set_defaults(run=run_verify)

    cache = actions.add_parser("cache", help="build the uint8 tensor cache of a Kermany folder")
    cache.add_argument("path", type=Path)
    cache.add_argument("--size", type=int, default=224)
    cache.add_argument(
        "--out",
        type=Path,
        default=None,
        help="cache folder (default $MEDTL_CACHE, else data/cache)",
    )
    cache.set_defaults(run=run_cache)

    download = actions.add_parser("download", help="download PneumoniaMNIST (MD5-checked)")
    download.add_argument("--source", choices=["pneumoniamnist"], default="pneumoniamnist")
    download.add_argument("--size", type=int, choices=[28, 64, 128, 224], default=128)
    download.add_argument("--out", type=Path, default=None, help="folder (default data/)")
    download.set_defaults(run=run_download)

    extract = actions.add_parser("extract", help="safely extract a downloaded Kermany archive")
    extract.add_argument("archive", type=Path)
    extract.add_argument("--to", type=Path, default=None, help="target folder (default data/)")
    extract.set_defaults(run=run_extract)


def run_verify(args: argparse.Namespace) -> int:
    from medtl_helpers.data.verify import verify_folder, verify_npz

    if args.path.is_file() or args.path.suffix == ".npz":
        table, md5_check = verify_npz(args.path)
        print(table.to_string())
        if md5_check:
            print(md5_check)
        return 0
    with data_given_as("`data verify {path}`"):
        report = verify_folder(args.path, decode=not args.no_decode)
    print(report.table().to_string())
    print(report.notes())
    _preview_split(args.path, args.seed, args.val_fraction)
    return 1 if report.corrupt else 0


def _preview_split(root: Path, seed: int, val_fraction: float) -> None:
    """The course's own split of `root`: load_folder's code, on file names (nothing decoded)."""
    from medtl_helpers.data.sources import preview_folder
    from medtl_helpers.data.split import split_report

    data = preview_folder(root, seed, val_fraction)
    print(
        f"\nthe course's patient-level split, as train --data and the notebooks make it (before "
        f"a profile's subset): seed {seed}, {val_fraction:.0%} of the patients for validation"
    )
    for row in split_report(train=data.train, val=data.val, test=data.test):
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    print("".join(f"  note: {note}\n" for note in data.notes), end="")


def run_cache(args: argparse.Namespace) -> int:
    from medtl_helpers.data.cache import TensorCache
    from medtl_helpers.data.sources import cache_folder

    cache = TensorCache(args.out or config.cache_dir())
    start = time.perf_counter()
    with data_given_as("`data cache {path}`"), warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        built = cache_folder(args.path, args.size, cache)
    for warning in said:  # a cache that could not be written is the command failing, not a note
        print(f"warning: {warning.message}", file=sys.stderr)
    if any(str(w.message).startswith("The tensor cache was not saved") for w in said):
        print(f"error: the cache was not written to {cache.folder} (see above)", file=sys.stderr)
        return 2
    for name, data in built.items():
        megabytes = data.images.numel() / 1e6
        print(f"{name}: {len(data):,} images at {args.size}px, {megabytes:.1f} MB")
    print(f"{time.perf_counter() - start:.1f} s; cache folder: {cache.folder}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from medtl_helpers.data.medmnist import download_pneumoniamnist

    path = download_pneumoniamnist(args.size, args.out)
    print(f"saved {path} ({os.path.getsize(path) / 1e6:.1f} MB, MD5 verified)")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from medtl_helpers.data.extract import safe_extract

    written = safe_extract(args.archive, args.to or config.data_dir())
    print(f"extracted {len(written):,} files from {args.archive}")
    return 0
