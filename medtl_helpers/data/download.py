"""Download files safely: resume, retry, MD5 check, atomic rename, and archive extraction that
cannot write outside its target folder.

A download streams into ``<dest>.part``. A cut-off download keeps that file, so the next call
resumes from it with an HTTP Range request. ``dest`` itself only appears, through ``os.replace``,
once its MD5 has been checked. No half-written file ever sits where a loader would trust it.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from tqdm.auto import tqdm

from medtl_helpers import config
from medtl_helpers.errors import ChecksumError, DataError, DownloadError, UnsafeArchiveError

_BACKOFF_S = 2.0
_TIMEOUT_S = 60
# OSError covers URLError, ConnectionError, TimeoutError and socket errors during a read.
_TRANSIENT_ERRORS = (OSError, http.client.HTTPException)
# Codes worth trying again; any other HTTP error (404, 403, ...) will not fix itself.
_RETRYABLE_HTTP_CODES = {408, 429, 500, 502, 503, 504}


def md5sum(path: Path | str, chunk_size: int = 1 << 20) -> str:
    """MD5 hex digest of a file, read in chunks so large files need little memory."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_stream(url: str, offset: int) -> tuple[BinaryIO, int, int | None]:
    """Open ``url`` from byte ``offset``: returns (stream, start, total size or None).

    ``start`` is where the stream really begins: 0 when a server ignores the Range header, in
    which case the caller must start the file over. Tests replace this to simulate cut-offs.
    """
    if urllib.parse.urlparse(url).scheme == "file":
        local = open(urllib.request.url2pathname(urllib.parse.urlparse(url).path), "rb")
        total = os.fstat(local.fileno()).st_size
        start = offset if offset <= total else 0
        local.seek(start)
        return local, start, total
    request = urllib.request.Request(url, headers={"User-Agent": "medtl-helpers"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the .part file already holds every byte
            return io.BytesIO(), offset, offset
        raise
    if offset and response.status == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return response, offset, int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def _fetch_into(url: str, part: Path, progress: bool, chunk_size: int) -> None:
    """Append the rest of ``url`` to ``part``; a stream that stops early raises ConnectionError."""
    offset = part.stat().st_size if part.exists() else 0
    stream, start, total = _open_stream(url, offset)
    with stream:
        try:
            out = open(part, "ab" if start else "wb")
        except OSError as err:
            raise DataError(f"Cannot write {part}: {err}. Check the folder's permissions.") from err
        bar = tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.stem,
            disable=not progress,
        )
        with out, bar:
            for chunk in iter(lambda: stream.read(chunk_size), b""):
                try:
                    out.write(chunk)
                except OSError as err:
                    raise DataError(
                        f"Cannot write {part}: {err}. Free some disk space or point MEDTL_DATA "
                        "at a folder with room, then re-run: the download resumes."
                    ) from err
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size < total:
        # urllib returns a short read rather than raising when a server closes early.
        raise ConnectionError(f"the stream ended after {size} of {total} bytes")


def download_file(
    url: str,
    dest: Path,
    md5: str | None,
    *,
    retries: int = 3,
    progress: bool = True,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` with resume, retries and an MD5 check; returns ``dest``.

    An existing ``dest`` with the right MD5 is returned as it is. ``file://`` URLs are read locally
    and work even with MEDTL_OFFLINE=1; any other URL is refused at once when offline.
    """
    dest = Path(dest)
    if dest.exists():
        if md5 is None:
            return dest
        actual = md5sum(dest)
        if actual == md5:
            return dest
        raise ChecksumError(
            f"{dest} exists but its MD5 is {actual}, expected {md5}: it is corrupt or another "
            f"version. Delete {dest} and re-run to download it again from {url}."
        )
    if urllib.parse.urlparse(url).scheme != "file" and config.offline():
        raise DownloadError(
            f"Cannot download {url}: the network is disabled by MEDTL_OFFLINE=1. Download the file "
            f"on a machine with network access and place it at {dest}, or unset MEDTL_OFFLINE."
        )
    part = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tries = max(retries, 1)
    last_error: BaseException | None = None
    for attempt in range(1, tries + 1):
        try:
            _fetch_into(url, part, progress, chunk_size)
            break
        except urllib.error.HTTPError as err:
            if err.code not in _RETRYABLE_HTTP_CODES:
                raise DownloadError(
                    f"Downloading {url} failed with HTTP {err.code} ({err.reason}). Check the "
                    f"URL, or download the file by hand and place it at {dest}."
                ) from err
            last_error = err
        except _TRANSIENT_ERRORS as err:
            last_error = err
        if attempt < tries:
            time.sleep(_BACKOFF_S * attempt)
    else:
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"Could not download {url} to {dest} after {tries} tries ({last_error}). The "
            f"partial file {part} ({kept} bytes) was kept and the next call resumes from it. To "
            f"download by hand, open the URL in a browser and save the file as {dest}."
        ) from last_error
    if md5 is not None:
        actual = md5sum(part)
        if actual != md5:
            part.unlink()
            raise ChecksumError(
                f"{dest.name} downloaded from {url} has MD5 {actual}, expected {md5}. The "
                f"download was deleted: re-run to fetch it again, and if the MD5 differs again "
                f"check that the URL points at the right file."
            )
    os.replace(part, dest)
    return dest


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
