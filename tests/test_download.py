"""Downloads and archive extraction, with no network: file:// URLs and a stream that breaks."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import zipfile
from pathlib import Path

import pytest

from medtl_helpers.data import download
from medtl_helpers.data.download import download_file, md5sum, safe_extract
from medtl_helpers.errors import ChecksumError, DataError, DownloadError, UnsafeArchiveError

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
REMOTE = "https://example.invalid/pneumonia.npz"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(download, "_BACKOFF_S", 0.0)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "remote" / "payload.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


class BreakingStream(io.BytesIO):
    """Serves ``data`` and raises ConnectionResetError once ``fail_after`` bytes have been read."""

    def __init__(self, data: bytes, fail_after: int | None) -> None:
        super().__init__(data)
        self.fail_after = fail_after

    def read(self, size: int | None = -1) -> bytes:
        if self.fail_after is None:
            return super().read(size)
        left = self.fail_after - self.tell()
        if left <= 0:
            raise ConnectionResetError("connection reset by peer")
        return super().read(left if size is None or size < 0 else min(size, left))


def fake_server(monkeypatch, breaks: list[int | None]) -> list[int]:
    """Replace the network: call k breaks after breaks[k] more bytes; returns offsets asked for."""
    offsets: list[int] = []

    def open_stream(url: str, offset: int):
        assert url == REMOTE
        fail = breaks[len(offsets)]
        offsets.append(offset)
        return BreakingStream(PAYLOAD[offset:], fail), offset, len(PAYLOAD)

    monkeypatch.setattr(download, "_open_stream", open_stream)
    monkeypatch.setenv("MEDTL_OFFLINE", "0")
    return offsets


def test_md5sum_matches_hashlib(source):
    assert md5sum(source, chunk_size=1000) == PAYLOAD_MD5


def test_download_from_file_url_with_correct_md5(source, tmp_path):
    dest = tmp_path / "data" / "payload.bin"
    assert download_file(source.as_uri(), dest, PAYLOAD_MD5, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_suffix(".bin.part").exists()


def test_checksum_mismatch_removes_part_and_names_both_md5s(source, tmp_path):
    dest = tmp_path / "payload.bin"
    wrong = "0" * 32
    with pytest.raises(ChecksumError, match="payload.bin") as info:
        download_file(source.as_uri(), dest, wrong, progress=False)
    message = str(info.value)
    assert wrong in message and PAYLOAD_MD5 in message
    assert "re-run" in message and "URL" in message
    assert not dest.exists()
    assert not dest.with_suffix(".bin.part").exists()


def test_existing_file_with_right_md5_is_not_downloaded_again(tmp_path, monkeypatch):
    dest = tmp_path / "payload.bin"
    dest.write_bytes(PAYLOAD)

    def no_network(url, offset):
        raise AssertionError("must not download")

    monkeypatch.setattr(download, "_open_stream", no_network)
    assert download_file(REMOTE, dest, PAYLOAD_MD5, progress=False) == dest


def test_existing_file_with_wrong_md5_is_refused_not_overwritten(source, tmp_path):
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"something else")
    with pytest.raises(ChecksumError, match=r"payload\.bin exists.*Delete"):
        download_file(source.as_uri(), dest, PAYLOAD_MD5, progress=False)
    assert dest.read_bytes() == b"something else"


def test_cut_off_download_keeps_part_and_next_call_resumes(tmp_path, monkeypatch):
    dest = tmp_path / "payload.bin"
    part = tmp_path / "payload.bin.part"
    offsets = fake_server(monkeypatch, breaks=[4000, None])
    with pytest.raises(DownloadError) as info:
        download_file(REMOTE, dest, PAYLOAD_MD5, retries=1, progress=False, chunk_size=1024)
    message = str(info.value)
    assert REMOTE in message and str(dest) in message and "resumes" in message
    assert part.read_bytes() == PAYLOAD[:4000]
    assert not dest.exists()

    download_file(REMOTE, dest, PAYLOAD_MD5, retries=1, progress=False, chunk_size=1024)
    assert offsets == [0, 4000]
    assert md5sum(dest) == PAYLOAD_MD5
    assert not part.exists()


def test_retries_within_one_call_resume_each_time(tmp_path, monkeypatch):
    dest = tmp_path / "payload.bin"
    offsets = fake_server(monkeypatch, breaks=[3000, 3000, None])
    download_file(REMOTE, dest, PAYLOAD_MD5, retries=3, progress=False, chunk_size=512)
    assert offsets == [0, 3000, 6000]
    assert dest.read_bytes() == PAYLOAD


def test_short_stream_without_error_counts_as_cut_off(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_OFFLINE", "0")
    monkeypatch.setattr(
        download, "_open_stream", lambda url, offset: (io.BytesIO(PAYLOAD[:100]), 0, len(PAYLOAD))
    )
    with pytest.raises(DownloadError, match="ended after 100 of 10240 bytes"):
        download_file(REMOTE, tmp_path / "payload.bin", PAYLOAD_MD5, retries=2, progress=False)


def test_file_url_resume_continues_from_partial_file(source, tmp_path):
    dest = tmp_path / "payload.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD[:5000])
    download_file(source.as_uri(), dest, PAYLOAD_MD5, progress=False, chunk_size=700)
    assert dest.read_bytes() == PAYLOAD


def test_offline_refuses_at_once_and_names_destination(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_OFFLINE", "1")

    def no_network(url, offset):
        raise AssertionError("must not open a connection")

    monkeypatch.setattr(download, "_open_stream", no_network)
    dest = tmp_path / "payload.bin"
    with pytest.raises(DownloadError, match="MEDTL_OFFLINE=1") as info:
        download_file(REMOTE, dest, PAYLOAD_MD5, progress=False)
    assert str(dest) in str(info.value)


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


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, status: int, headers: dict[str, str]) -> None:
        super().__init__(data)
        self.status, self.headers = status, headers


def test_http_range_request_and_server_that_ignores_it(monkeypatch):
    sent = []

    def urlopen(request, timeout):
        sent.append(request.get_header("Range"))
        if len(sent) == 1:
            return FakeResponse(PAYLOAD[100:], 206, {"Content-Range": "bytes 100-10239/10240"})
        return FakeResponse(PAYLOAD, 200, {"Content-Length": "10240"})

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    stream, start, total = download._open_stream(REMOTE, 100)
    assert (sent, start, total, stream.read(3)) == (["bytes=100-"], 100, 10240, PAYLOAD[100:103])
    stream, start, total = download._open_stream(REMOTE, 100)
    assert (start, total) == (0, 10240)


def test_server_restarting_from_zero_overwrites_the_partial_file(tmp_path, monkeypatch):
    dest = tmp_path / "payload.bin"
    dest.with_suffix(".bin.part").write_bytes(b"stale bytes from another attempt")
    monkeypatch.setenv("MEDTL_OFFLINE", "0")
    monkeypatch.setattr(
        download, "_open_stream", lambda url, offset: (io.BytesIO(PAYLOAD), 0, len(PAYLOAD))
    )
    download_file(REMOTE, dest, PAYLOAD_MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_http_404_is_not_retried(tmp_path, monkeypatch):
    calls = []

    def not_found(url, offset):
        calls.append(offset)
        raise download.urllib.error.HTTPError(url, 404, "Not Found", None, None)

    monkeypatch.setenv("MEDTL_OFFLINE", "0")
    monkeypatch.setattr(download, "_open_stream", not_found)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(REMOTE, tmp_path / "payload.bin", PAYLOAD_MD5, retries=3, progress=False)
    assert calls == [0]
