"""Atomic writes: the target is the old file or the complete new one, and no temporary is left."""

from __future__ import annotations

import errno
import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from medtl_helpers import atomic
from medtl_helpers.atomic import atomic_path, write_json, write_text
from medtl_helpers.errors import WriteError


def test_write_json_creates_folders_and_round_trips(tmp_path):
    target = tmp_path / "deep" / "run" / "report.json"
    assert write_json(target, {"auroc": 0.91, "n": 3}) == target
    assert json.loads(target.read_text()) == {"auroc": 0.91, "n": 3}
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "best.pt"
    target.write_text("old weights")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as partial:
            assert partial.parent == target.parent and partial != target
            partial.write_text("half of the new")
            raise KeyboardInterrupt  # Ctrl-C in the middle of the write
    assert target.read_text() == "old weights"
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_write_json_refuses_what_json_cannot_hold_and_keeps_the_old_file(tmp_path):
    target = write_json(tmp_path / "settings.json", {"epochs": 3})
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(target, {"epochs": object()})
    assert json.loads(target.read_text()) == {"epochs": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_each_write_has_its_own_temporary_and_fsyncs_before_the_rename(tmp_path, monkeypatch):
    import os

    from medtl_helpers import atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        atomic.os, "replace", lambda a, b: events.append(("replace", Path(a))) or real_replace(a, b)
    )
    target = tmp_path / "timings.md"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("one")
        second.write_text("two")
    assert events[0] == "fsync" and events[1] == ("replace", second)
    assert events[2] == "fsync" and events[3] == ("replace", first)
    assert target.read_text() == "one" and [p.name for p in tmp_path.iterdir()] == ["timings.md"]


def test_write_text_is_atomic_too(tmp_path):
    target = write_text(tmp_path / "curve.csv", "init,fraction\nrandom,0.1\n")
    assert target.read_text() == "init,fraction\nrandom,0.1\n"


# A failed write: a full disk, a used-up quota, a read-only folder, a file-size limit. Each is a
# WriteError naming the file, the cause and the fix; the old file stays and no temporary is left.


def refuse(code: int):
    """A stand-in for os.replace or tempfile.mkstemp that fails as the disk would."""

    def refused(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return refused


@pytest.mark.parametrize(
    ("code", "cause", "fix"),
    [
        (errno.ENOSPC, "No space left on device", "Free some space on that disk"),
        (errno.EDQUOT, "Disk quota exceeded", "Your disk quota is used up"),
        (errno.EROFS, "Read-only file system", "That file system is mounted read-only"),
        (errno.EACCES, "Permission denied", "You may not write in"),
        (errno.EFBIG, "File too large", "raise the limit, or write to another folder"),
    ],
)
def test_a_refused_rename_names_the_file_the_cause_and_the_fix(
    tmp_path, monkeypatch, code, cause, fix
):
    target = write_text(tmp_path / "report.md", "old report")
    monkeypatch.setattr(atomic.os, "replace", refuse(code))
    with pytest.raises(WriteError) as raised:
        write_text(target, "new report")
    message = str(raised.value)
    assert message.startswith(f"Could not write {target}: {cause}. report.md is unchanged")
    assert fix in message and raised.value.path == target and raised.value.errno == code
    assert target.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_folder_that_refuses_the_temporary_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse(errno.EROFS))
    target = tmp_path / "runs" / "report.json"
    with pytest.raises(WriteError, match="Read-only file system. Nothing was written there."):
        write_json(target, {"auroc": 0.9})
    assert not target.exists()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root writes into a chmod 0o555 folder anyway (the refusals are simulated above)",
)
def test_a_read_only_folder_is_a_write_error(tmp_path):
    target = write_text(tmp_path / "locked" / "timings.md", "old table")
    target.parent.chmod(0o555)
    try:
        with pytest.raises(WriteError, match=r"timings.md: Permission denied\. .*unchanged"):
            write_text(target, "new table")
    finally:
        target.parent.chmod(0o755)
    assert target.read_text() == "old table"
    assert [p.name for p in target.parent.iterdir()] == ["timings.md"]


@contextmanager
def file_size_limit(limit: int):
    """Files of this process may not grow past `limit` bytes; SIGXFSZ is ignored, so a write
    past it fails with EFBIG ("File too large") instead of killing the process."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_torch_saving_by_path_past_a_limit_is_a_write_error_too(tmp_path):
    """torch's own writer hides the disk's error ("unexpected pos"); it is still a WriteError."""
    torch = pytest.importorskip("torch")
    target = tmp_path / "features.pt"
    with file_size_limit(100_000), pytest.raises(WriteError) as raised:
        with atomic_path(target) as partial:
            torch.save(torch.zeros(100_000), partial)
    assert str(raised.value).startswith(f"Could not write {target}: torch could not write it (")
    assert "a full disk, a quota or a file-size limit" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_a_runtime_error_that_is_no_failed_write_is_left_alone(tmp_path):
    with pytest.raises(RuntimeError, match="^boom$"), atomic_path(tmp_path / "x.pt"):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writers_name_their_setting_in_the_interface_in_use(tmp_path, monkeypatch):
    from medtl_helpers.course.grade_report import write_reports
    from medtl_helpers.course.runner import NotebookRun, write_timings
    from medtl_helpers.errors import command_line
    from medtl_helpers.evaluation.report import write_report

    monkeypatch.setattr(atomic.os, "replace", refuse(errno.ENOSPC))
    with pytest.raises(WriteError, match="or give write_report another path"):
        write_report(tmp_path / "test.json", {"auroc": 0.9, "ci95": {}})
    with command_line(), pytest.raises(WriteError, match="or give --json another path"):
        write_report(tmp_path / "test.json", {"auroc": 0.9, "ci95": {}})
    with command_line(), pytest.raises(WriteError) as raised:
        write_reports(tmp_path / "grades", [], [], {}, "60 s per answer")
    assert f"{tmp_path / 'grades' / 'gradebook.csv'}: No space left" in str(raised.value)
    assert str(raised.value).endswith("or choose another --out folder.")
    runs = [NotebookRun("00_setup", 1.0, "quick", "synthetic")]
    with command_line(), pytest.raises(WriteError) as raised:
        write_timings(tmp_path / "timings.md", runs, ["00_setup"])
    assert f"{tmp_path / 'timings.md'}: No space left" in str(raised.value)
    assert str(raised.value).endswith("or choose another --out folder.")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["grades"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask_like_a_plain_open(tmp_path, mask, mode):
    """Caches, checkpoints and grades are shared on lab servers: not mkstemp's 0600 for all."""
    import torch

    old = os.umask(mask)
    try:
        text = write_text(tmp_path / "grades.csv", "a,b\n")
        with atomic.atomic_file(tmp_path / "best.pt") as file:
            torch.save({"w": torch.zeros(2)}, file)
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert (plain.stat().st_mode & 0o777) == mode
    assert (text.stat().st_mode & 0o777) == mode
    assert ((tmp_path / "best.pt").stat().st_mode & 0o777) == mode
    assert atomic._umask() == old
