"""Extract a downloaded archive without letting any member write outside its target folder.

Every member of a .zip or .tar is checked before anything is written: an absolute path, a ``..``,
a link pointing outside the target or a special file (device, pipe) refuses the whole archive.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from medtl_helpers.errors import DataError, UnsafeArchiveError


def _checked_destination(archive: Path, root: Path, name: str) -> Path:
    """Where member ``name`` would land under ``root``; refuses any path that could escape it."""
    posix = PurePosixPath(name.replace("\\", "/"))
    windows = PureWindowsPath(name)
    destination = (root / posix).resolve()
    if (
        posix.is_absolute()
        or windows.drive
        or ".." in posix.parts
        or not destination.is_relative_to(root)
    ):
        raise UnsafeArchiveError(
            f"{archive} contains the unsafe member {name!r}, which would be written outside "
            f"{root}. Nothing was extracted. Do not use this archive; download it from its "
            "official source."
        )
    return destination


def _check_tar_member(archive: Path, root: Path, member: tarfile.TarInfo) -> None:
    destination = _checked_destination(archive, root, member.name)
    if member.issym() or member.islnk():
        # A symlink is relative to its own folder; a hard link names another member.
        base = destination.parent if member.issym() else root
        target = PurePosixPath(member.linkname.replace("\\", "/"))
        if target.is_absolute() or not (base / target).resolve().is_relative_to(root):
            raise UnsafeArchiveError(
                f"{archive} contains the link {member.name!r} -> {member.linkname!r}, which points "
                f"outside {root}. Nothing was extracted. Do not use this archive."
            )
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"{archive} contains the special file {member.name!r} (device or pipe). Nothing was "
            "extracted. Do not use this archive."
        )


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Extract a .zip, .tar, .tar.gz or .tgz into ``target``; returns the files written.

    Every member is checked before anything is written, so one unsafe member (absolute path,
    ``..``, a link leading outside ``target``) means nothing is extracted at all.
    """
    archive, root = Path(archive), Path(target).resolve()
    if not archive.is_file():
        raise DataError(f"Archive {archive} does not exist. Download it first.")
    kind = archive.name.lower()
    try:
        if kind.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                files = [_checked_destination(archive, root, m.filename) for m in members]
                root.mkdir(parents=True, exist_ok=True)
                zf.extractall(root, members)
            return [f for f, m in zip(files, members) if not m.is_dir()]
        if kind.endswith((".tar", ".tar.gz", ".tgz")):
            with tarfile.open(archive) as tf:
                tar_members = tf.getmembers()
                for member in tar_members:
                    _check_tar_member(archive, root, member)
                root.mkdir(parents=True, exist_ok=True)
                # Python's own "data" filter, where it exists, is a second line of defence.
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(root, tar_members, **extra)
            return [root / m.name for m in tar_members if not m.isdir()]
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(
            f"{archive} is corrupt or truncated ({err}). Delete it and download it again."
        ) from err
    raise DataError(
        f"{archive} is not a supported archive: expected .zip, .tar, .tar.gz or .tgz. Rename it if "
        "its extension is wrong, or extract it by hand."
    )
