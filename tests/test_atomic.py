"""Atomic writes: the target is the old file or the complete new one, and no temporary is left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtl_helpers.atomic import atomic_path, write_json, write_text


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
