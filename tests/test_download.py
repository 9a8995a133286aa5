"""Downloads through pooch and archive extraction, with no network: file:// URLs, and a fake
requests.get that fails, cuts off or succeeds on cue."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import requests

from medtl_helpers.data.download import download_file, md5sum
from medtl_helpers.data.extract import safe_extract
from medtl_helpers.errors import ChecksumError, DataError, DownloadError, UnsafeArchiveError

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
REMOTE = "https://example.invalid/pneumonia.npz"


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """pooch waits between tries with time.sleep: record the waits instead of waiting."""
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "remote" / "payload.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


class FakeResponse:
    """What requests.get gives pooch: ``data`` in chunks, and maybe a dropped connection."""

    def __init__(self, data: bytes, status: int = 200, fail_after: int | None = None) -> None:
        self.data, self.status_code, self.fail_after = data, status, fail_after
        self.headers = {"content-length": str(len(data))}
        self.on_chunk = lambda: None

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"{self.status_code} Client Error for url", response=self)

    def iter_content(self, chunk_size: int):
        for start in range(0, len(self.data), chunk_size):
            if self.fail_after is not None and start >= self.fail_after:
                raise requests.ConnectionError("connection reset by peer")
            self.on_chunk()
            yield self.data[start : start + chunk_size]


def fake_server(monkeypatch, responses: list[FakeResponse | Exception]) -> list[str]:
    """Replace the network: call k of requests.get answers responses[k]; returns the URLs asked."""
    asked: list[str] = []

    def get(url: str, timeout: float, **kwargs) -> FakeResponse:
        answer = responses[len(asked)]
        asked.append(url)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(requests, "get", get)
    monkeypatch.setenv("MEDTL_OFFLINE", "0")
    return asked


def test_md5sum_matches_hashlib(source, tmp_path):
    assert md5sum(source) == PAYLOAD_MD5
    large = tmp_path / "large.bin"  # more than one of pooch's 64 KiB chunks
    large.write_bytes(PAYLOAD * 20)
    assert md5sum(str(large)) == hashlib.md5(PAYLOAD * 20).hexdigest()


def test_download_from_file_url_with_correct_md5_works_offline(source, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_OFFLINE", "1")
    dest = tmp_path / "data" / "payload.bin"
    assert download_file(source.as_uri(), dest, PAYLOAD_MD5, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["payload.bin"]


def test_corrupt_download_is_retried_then_deleted_and_names_both_md5s(tmp_path, sleeps):
    corrupt = tmp_path / "mirror" / "payload.bin"
    corrupt.parent.mkdir()
    corrupt.write_bytes(PAYLOAD[:-1] + b"!")
    dest = tmp_path / "data" / "payload.bin"
    with pytest.raises(ChecksumError, match="payload.bin") as info:
        download_file(corrupt.as_uri(), dest, PAYLOAD_MD5, tries=3, progress=False)
    message = str(info.value)
    assert PAYLOAD_MD5 in message and md5sum(corrupt) in message
    assert "3 tries" in message and "re-run" in message.lower() and "URL" in message
    assert len(sleeps) == 2  # three tries, two waits between them
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # pooch's temporary file is gone too


def test_existing_file_with_right_md5_is_not_downloaded_again(tmp_path, monkeypatch):
    dest = tmp_path / "payload.bin"
    dest.write_bytes(PAYLOAD)
    asked = fake_server(monkeypatch, [])
    assert download_file(REMOTE, dest, PAYLOAD_MD5, progress=False) == dest
    assert asked == []


def test_existing_file_with_wrong_md5_is_refused_not_overwritten(source, tmp_path):
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"something else")
    with pytest.raises(ChecksumError, match=r"payload\.bin exists.*Delete") as info:
        download_file(source.as_uri(), dest, PAYLOAD_MD5, progress=False)
    assert md5sum(dest) in str(info.value) and PAYLOAD_MD5 in str(info.value)
    assert dest.read_bytes() == b"something else"


def test_failed_try_is_retried_and_the_file_appears_only_when_complete(tmp_path, monkeypatch):
    dest = tmp_path / "payload.bin"
    seen_during_transfer = []
    complete = FakeResponse(PAYLOAD)
    complete.on_chunk = lambda: seen_during_transfer.append(
        (dest.exists(), sorted(p.name for p in tmp_path.iterdir()))
    )
    asked = fake_server(
        monkeypatch,
        [requests.ConnectionError("DNS failure"), FakeResponse(PAYLOAD, fail_after=4096), complete],
    )
    assert download_file(REMOTE, dest, PAYLOAD_MD5, tries=3, progress=False) == dest
    assert asked == [REMOTE] * 3
    assert dest.read_bytes() == PAYLOAD
    # While bytes arrive, dest does not exist: they go to one temporary file in the same folder,
    # which is then renamed onto dest.
    assert seen_during_transfer
    assert all(not exists and len(names) == 1 for exists, names in seen_during_transfer)
    assert [p.name for p in tmp_path.iterdir()] == ["payload.bin"]


def test_short_download_is_caught_by_the_md5_check(tmp_path, monkeypatch):
    short = FakeResponse(PAYLOAD[:100])
    short.headers["content-length"] = str(len(PAYLOAD))  # the server promised more than it sent
    fake_server(monkeypatch, [short])
    dest = tmp_path / "payload.bin"
    with pytest.raises(ChecksumError, match=PAYLOAD_MD5):
        download_file(REMOTE, dest, PAYLOAD_MD5, tries=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_failing_every_try_names_url_destination_and_fix(tmp_path, monkeypatch, sleeps):
    dest = tmp_path / "data" / "payload.bin"
    asked = fake_server(monkeypatch, [FakeResponse(b"", status=503)] * 2)
    with pytest.raises(DownloadError) as info:
        download_file(REMOTE, dest, PAYLOAD_MD5, tries=2, progress=False)
    message = str(info.value)
    assert REMOTE in message and str(dest) in message and "after 2 tries" in message
    assert "503" in message and "by hand" in message and "browser" in message
    assert isinstance(info.value.__cause__, requests.HTTPError)
    assert (asked, len(sleeps)) == ([REMOTE, REMOTE], 1)
    assert list(dest.parent.iterdir()) == []


def test_missing_local_file_fails_at_once_naming_both_paths(tmp_path, sleeps):
    missing = tmp_path / "mirror" / "pneumoniamnist_64.npz"
    dest = tmp_path / "data" / "pneumoniamnist_64.npz"
    with pytest.raises(DownloadError) as info:
        download_file(missing.as_uri(), dest, PAYLOAD_MD5, progress=False)
    message = str(info.value)
    assert str(missing) in message and str(dest) in message and "by hand" in message
    assert sleeps == []  # not retried: a missing local file will not appear by itself
    assert not dest.exists()


def test_unsupported_url_scheme_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_OFFLINE", "0")
    dest = tmp_path / "payload.bin"
    with pytest.raises(DownloadError, match=r"only http://, https:// and file://") as info:
        download_file("ftp://example.invalid/payload.bin", dest, PAYLOAD_MD5, progress=False)
    assert str(dest) in str(info.value)


def test_offline_refuses_at_once_and_says_how_to_get_the_file(tmp_path, monkeypatch):
    asked = fake_server(monkeypatch, [])
    monkeypatch.setenv("MEDTL_OFFLINE", "1")
    dest = tmp_path / "payload.bin"
    with pytest.raises(DownloadError, match="MEDTL_OFFLINE=1") as info:
        download_file(REMOTE, dest, PAYLOAD_MD5, progress=False)
    message = str(info.value)
    assert "payload.bin is missing" in message
    assert REMOTE in message and str(dest) in message and "browser" in message
    assert asked == []
    assert list(tmp_path.iterdir()) == []


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            if info.isfile():
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def test_zip_with_parent_path_is_refused_and_nothing_written(tmp_path):
    archive = make_zip(tmp_path / "bad.zip", {"ok/a.txt": b"fine", "../evil.txt": b"pwned"})
    target = tmp_path / "out" / "inner"
    with pytest.raises(UnsafeArchiveError, match=r"bad\.zip.*\.\./evil\.txt"):
        safe_extract(archive, target)
    assert not target.exists()
    assert not (tmp_path / "out" / "evil.txt").exists()


def test_tar_with_absolute_path_is_refused(tmp_path):
    archive = make_tar(tmp_path / "abs.tar.gz", [tarfile.TarInfo("/tmp/medtl-evil.txt")])
    with pytest.raises(UnsafeArchiveError, match="medtl-evil.txt"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_with_escaping_symlink_is_refused(tmp_path):
    link = tarfile.TarInfo("data/escape")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../outside"
    archive = make_tar(tmp_path / "link.tgz", [tarfile.TarInfo("data/a.txt"), link])
    with pytest.raises(UnsafeArchiveError, match=r"data/escape.*\.\./\.\./outside"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_normal_archives_extract_every_file(tmp_path):
    zipped = make_zip(tmp_path / "good.zip", {"x/a.txt": b"A", "x/b/c.txt": b"C"})
    written = safe_extract(zipped, tmp_path / "z")
    assert sorted(p.relative_to((tmp_path / "z").resolve()).as_posix() for p in written) == [
        "x/a.txt",
        "x/b/c.txt",
    ]
    assert (tmp_path / "z" / "x" / "b" / "c.txt").read_bytes() == b"C"

    link = tarfile.TarInfo("d/alias")
    link.type = tarfile.SYMTYPE
    link.linkname = "a.txt"
    tarred = make_tar(tmp_path / "good.tar.gz", [tarfile.TarInfo("d/a.txt"), link], data=b"T")
    safe_extract(tarred, tmp_path / "t")
    assert (tmp_path / "t" / "d" / "alias").read_bytes() == b"T"


def test_corrupt_and_unknown_archives_raise_data_error(tmp_path):
    corrupt = tmp_path / "broken.zip"
    corrupt.write_bytes(b"this is not a zip file at all")
    with pytest.raises(DataError, match=r"broken\.zip is corrupt"):
        safe_extract(corrupt, tmp_path / "out")
    noise = random.Random(0).randbytes(50_000)
    truncated = make_tar(tmp_path / "cut.tar.gz", [tarfile.TarInfo("a.bin")], data=noise)
    truncated.write_bytes(truncated.read_bytes()[:20_000])
    with pytest.raises(DataError, match=r"cut\.tar\.gz is corrupt"):
        safe_extract(truncated, tmp_path / "out")
    unknown = tmp_path / "data.rar"
    unknown.write_bytes(b"Rar!")
    with pytest.raises(DataError, match="not a supported archive"):
        safe_extract(unknown, tmp_path / "out")
