"""The environment report names the hardware, versions, profile and weights a notebook runs with."""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch

import medtl_helpers
from medtl_helpers import config
from medtl_helpers.config import (
    cpu_model,
    device_label,
    environment_report,
    hardware,
    hardware_name,
    on_colab,
)


def test_cpu_hardware_names_the_core_count():
    assert hardware_name("cpu").endswith(f", {os.cpu_count()} cores")
    assert device_label("cpu") == f"cpu ({hardware_name('cpu')})"


def test_cpu_model_comes_from_cpuinfo_or_platform(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    real_path = hardware.Path
    monkeypatch.setattr(hardware, "Path", lambda p: info if p == "/proc/cpuinfo" else real_path(p))
    assert cpu_model() == "AMD EPYC 7B13"
    assert hardware_name("cpu") == f"AMD EPYC 7B13, {os.cpu_count()} cores"
    monkeypatch.setattr(hardware, "Path", lambda p: tmp_path / "missing")
    monkeypatch.setattr(hardware.platform, "processor", lambda: "")
    monkeypatch.setattr(hardware.platform, "machine", lambda: "arm64")
    assert cpu_model() == "arm64"


def test_gpu_hardware_names_the_card_and_its_memory(monkeypatch):
    card = SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30 + 2**20)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: card)
    assert hardware_name(torch.device("cuda")) == "Tesla T4, 15 GiB"
    assert device_label("cuda") == "cuda (Tesla T4, 15 GiB)"


def test_report_lines_follow_the_profile(monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "quick")
    monkeypatch.delitem(__import__("sys").modules, "google.colab", raising=False)
    lines = dict((line[:11].strip(), line[11:]) for line in environment_report().splitlines())
    assert list(lines) == ["device", "versions", "running on", "profile", "weights", "precision"]
    assert lines["device"].startswith(f"{config.get_device().type} (")
    assert f"torch {torch.__version__}" in lines["versions"]
    assert f"medtl_helpers {medtl_helpers.__version__}" in lines["versions"]
    assert lines["profile"] == "quick: 64 px, batch 32, 1 epoch(s), train images 800"
    assert lines["weights"].startswith(config.pretrained_choice(config.get_profile("quick")))
    assert not on_colab() and lines["running on"] != "Colab"
    cpu = config.get_profile("cpu")
    assert "cpu: 128 px, batch 32, 3 epoch(s), train images all" in environment_report(cpu)


def test_the_weights_line_says_whether_the_file_is_there(monkeypatch, tmp_path):
    """'weights imagenet' alone promised a file nobody had checked for."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("MEDTL_PRETRAINED", "imagenet")
    cpu = config.get_profile("cpu")
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"

    def weights_line() -> str:
        lines = dict(
            (line[:11].strip(), line[11:]) for line in environment_report(cpu).splitlines()
        )
        return lines["weights"]

    monkeypatch.delenv("MEDTL_OFFLINE", raising=False)
    line = weights_line()
    assert line.startswith(f"imagenet, files in {expected.parent}")
    assert "resnet18, resnet34, resnet50, resnet101, resnet152 not downloaded yet" in line
    monkeypatch.setenv("MEDTL_OFFLINE", "1")
    line = weights_line()
    assert "resnet152 missing, and MEDTL_OFFLINE=1 forbids" in line
    assert "MEDTL_PRETRAINED=none" in line
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"not the real weights")
    line = weights_line()
    assert "resnet18: STAND-IN files" in line and "resnet34, resnet50" in line
    monkeypatch.setenv("MEDTL_PRETRAINED", "none")
    assert weights_line().startswith("none: random initialisation")


def test_the_report_covers_every_architecture_the_course_builds():
    from medtl_helpers.config.report import COURSE_ARCHS
    from medtl_helpers.models import ARCHS

    assert COURSE_ARCHS == ARCHS
