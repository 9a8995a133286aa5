"""Download one file with pooch: MD5 check, retries, a progress bar, and errors that say the fix.

pooch writes each try into a temporary file in the destination's own folder, checks its MD5, and
only then moves it onto ``dest`` (a rename within one folder), so a cut-off or corrupt download
never sits where a loader would trust it; a failed try leaves no file behind. ``file://`` URLs
are copied from disk, which lets tests and offline classroom mirrors take the same path as a real
download. With MEDTL_OFFLINE=1 any other URL is refused before pooch is called.
"""

from __future__ import annotations

import shutil
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pooch

# pooch downloads over HTTP with requests (one of its own dependencies) and lets its errors through.
from requests.exceptions import RequestException

from medtl_helpers import config
from medtl_helpers.errors import ChecksumError, DataError, DownloadError, in_terms

_TIMEOUT_S = 60

Downloader = Callable[[str, str, pooch.Pooch], None]


def md5sum(path: Path | str) -> str:
    """MD5 hex digest of a file: the checksum MedMNIST publishes (pooch reads it in chunks)."""
    return pooch.file_hash(str(path), alg="md5")


def _local_copy(source: Path, dest: Path) -> Downloader:
    """A pooch downloader for a ``file://`` URL: copy ``source`` into pooch's temporary file."""

    def copy(url: str, output_file: str, pooch_instance: pooch.Pooch) -> None:
        try:
            shutil.copyfile(source, output_file)
        except OSError as err:
            # Not retried: a missing or unreadable local file will not fix itself.
            raise DownloadError(
                f"Cannot copy {source} (from {url}) to {dest}: {err}. Check the path of the "
                f"local copy, or place the file at {dest} by hand."
            ) from err

    return copy


def _downloader(url: str, dest: Path, progress: bool) -> Downloader:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return _local_copy(Path(urllib.request.url2pathname(parsed.path)), dest)
    if parsed.scheme in ("http", "https"):
        return pooch.HTTPDownloader(progressbar=progress, timeout=_TIMEOUT_S)
    raise DownloadError(
        f"Cannot download {url}: only http://, https:// and file:// URLs are supported. Download "
        f"it by hand and place it at {dest}."
    )


def _check_existing(url: str, dest: Path, md5: str | None) -> Path:
    """An existing ``dest`` is kept when its MD5 is right and refused, never replaced, when not."""
    if md5 is None:
        return dest
    actual = md5sum(dest)
    if actual != md5:
        raise ChecksumError(
            f"{dest} exists but its MD5 is {actual}, expected {md5}: it is corrupt or another "
            f"version. Delete {dest} and re-run to download it again from {url}."
        )
    return dest


def download_file(
    url: str, dest: Path, md5: str | None, *, tries: int = 3, progress: bool = True
) -> Path:
    """Download ``url`` to ``dest`` with pooch, checking its MD5; returns ``dest``.

    An existing ``dest`` with the right MD5 is returned as it is, and one with another MD5 raises
    ChecksumError. pooch makes up to ``tries`` attempts (a failed connection or a wrong MD5 is
    tried again) and moves the file onto ``dest`` only once its MD5 matches. ``file://`` URLs
    work even with MEDTL_OFFLINE=1; any other URL is then refused at once.
    """
    dest = Path(dest)
    if dest.exists():
        return _check_existing(url, dest, md5)
    if urllib.parse.urlparse(url).scheme != "file" and config.offline():
        raise DownloadError(
            f"{dest.name} is missing and MEDTL_OFFLINE=1 forbids downloading it from {url}. On a "
            f"machine with network access, open that URL in a browser and save the file, then "
            f"copy it to {dest}; or unset MEDTL_OFFLINE to download it here."
        )
    tries = max(tries, 1)
    fetcher = pooch.create(
        path=dest.parent,
        base_url="",
        registry={dest.name: None if md5 is None else f"md5:{md5}"},
        urls={dest.name: url},
        retry_if_failed=tries - 1,
    )
    try:
        fetcher.fetch(dest.name, downloader=_downloader(url, dest, progress))
    except RequestException as err:
        raise DownloadError(
            f"Could not download {url} to {dest} after {tries} tries ({err}). Check the network "
            f"connection and re-run, or download by hand: open the URL in a browser, save the "
            f"file as {dest}, and re-run to check its MD5."
        ) from err
    except ValueError as err:
        # With the registry and downloader set above, pooch's only ValueError is its hash check.
        raise ChecksumError(
            f"{dest.name} downloaded from {url} failed its MD5 check in each of {tries} tries, so "
            f"nothing was saved at {dest}. {err} Re-run to fetch it again; if the MD5 differs "
            "again, check that the URL points at the right file."
        ) from err
    except OSError as err:
        elsewhere = in_terms(
            "set MEDTL_DATA to another folder with room", "give --out another folder with room"
        )
        raise DataError(
            f"Cannot write {dest}: {err}. Free some disk space or {elsewhere}, then re-run."
        ) from err
    return dest
