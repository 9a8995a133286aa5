"""Checkpoints: metadata round trip, atomic writes, and a clear error for every kind of bad file."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch
import torchvision

import medtl_helpers
from medtl_helpers.data.augment import IMAGENET_MEAN, IMAGENET_STD
from medtl_helpers.errors import CheckpointError, WriteError
from medtl_helpers.models import build_model
from medtl_helpers.training.checkpoints import (
    checkpoint_meta,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)

META_ARGS = {
    "image_size": 32,
    "data_source": "synthetic",
    "profile": "quick",
    "seed": 7,
    "threshold": 0.42,
}


def fresh(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18", pretrained="none", verbose=False, **kwargs)


def trained_looking() -> torch.nn.Module:
    """A random model whose BatchNorm running statistics have moved, as after training."""
    model = fresh()
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32) * 3 + 1)
    return model.eval()


def save(model: torch.nn.Module, path: Path, **extra) -> Path:
    return save_checkpoint(path, model, checkpoint_meta(model, **META_ARGS, **extra))


def outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(123)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, 32, 32))


def plain_values(value: object) -> bool:
    """True when `value` is built only from exact str/int/float/bool/None, lists and dicts."""
    if isinstance(value, dict):
        return all(type(k) is str and plain_values(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain_values(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


@pytest.fixture(scope="module")
def resnet18() -> torch.nn.Module:
    """Shared by the tests below, which only read it."""
    return trained_looking()


@pytest.fixture(scope="module")
def resnet18_file(resnet18, tmp_path_factory) -> Path:
    return save(resnet18, tmp_path_factory.mktemp("ckpt") / "best.pt")


def test_meta_holds_only_plain_python_values(resnet18):
    # torch.__version__ is a TorchVersion (a str subclass) that weights_only=True refuses to
    # unpickle: stored as is, it makes every checkpoint unloadable.
    meta = checkpoint_meta(resnet18, **META_ARGS)
    assert plain_values(meta), meta["versions"]


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_round_trip_rebuilds_same_model_and_meta(tmp_path, head, resnet18):
    model = resnet18 if head == "linear" else fresh(head=head)
    path = save(model, tmp_path / "best.pt", epoch=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]

    loaded, meta = load_checkpoint(path)
    assert loaded.medtl_arch == "resnet18" and loaded.medtl_head == head
    assert isinstance(loaded.fc, torch.nn.Sequential) == (head == "mlp")
    assert torch.equal(outputs(loaded), outputs(model))

    assert meta["arch"] == "resnet18"
    assert meta["head"] == head
    assert meta["weights"] == "random"
    assert meta["classes"] == ["NORMAL", "PNEUMONIA"]
    assert meta["image_size"] == 32
    assert meta["normalisation"] == {
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "channels": 3,
    }
    assert meta["threshold"] == 0.42
    assert meta["data_source"] == "synthetic"
    assert meta["profile"] == "quick"
    assert meta["seed"] == 7
    assert meta["epoch"] == 3
    assert meta["versions"] == {
        "torch": str(torch.__version__),
        "torchvision": torchvision.__version__,
        "medtl_helpers": medtl_helpers.__version__,
    }


def test_head_dropout_survives_round_trip(tmp_path):
    # A linear head with dropout is Sequential(Dropout, Linear): its keys are fc.1.*, not fc.*,
    # so the rebuild must know the dropout to produce the same module layout.
    model = fresh(head="linear", dropout=0.2)
    loaded, _ = load_checkpoint(save(model, tmp_path / "best.pt"))
    assert loaded.medtl_dropout == 0.2
    assert torch.equal(outputs(loaded), outputs(model))


def test_training_state_is_kept(tmp_path, resnet18):
    model = resnet18
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    meta = checkpoint_meta(model, **META_ARGS)
    path = save_checkpoint(
        tmp_path / "last.pt", model, meta, {"epoch": 2, "opt": optimizer.state_dict()}
    )
    training = read_checkpoint(path)["training"]
    assert training["epoch"] == 2
    assert training["opt"]["param_groups"][0]["lr"] == 1e-3


def test_crash_during_save_keeps_previous_file(tmp_path, monkeypatch, resnet18):
    path = save(resnet18, tmp_path / "best.pt", epoch=1)
    good = path.read_bytes()
    real_save = torch.save

    def save_half_then_crash(obj, file, *args, **kwargs):
        whole = io.BytesIO()
        real_save(obj, whole, *args, **kwargs)
        file.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save(resnet18, path, epoch=2)
    monkeypatch.undo()

    assert path.read_bytes() == good
    loaded, meta = load_checkpoint(path)
    assert meta["epoch"] == 1
    assert torch.equal(outputs(loaded), outputs(resnet18))


def test_a_file_size_limit_keeps_the_previous_checkpoint_and_says_why(tmp_path, resnet18):
    from test_atomic import file_size_limit

    path = save(resnet18, tmp_path / "last.pt", epoch=1)  # about 45 MB
    good = path.read_bytes()
    with file_size_limit(1_000_000), pytest.raises(WriteError) as raised:
        save(resnet18, path, epoch=2)
    message = str(raised.value)
    assert message.startswith(f"Could not write {path}: File too large. last.pt is unchanged")
    assert "raise the limit, or write to another folder" in message
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    loaded, meta = load_checkpoint(path)
    assert meta["epoch"] == 1 and torch.equal(outputs(loaded), outputs(resnet18))


def test_other_architecture_is_refused(resnet18_file):
    with pytest.raises(CheckpointError) as excinfo:
        load_checkpoint(resnet18_file, arch="resnet50")
    assert "resnet18" in str(excinfo.value) and "resnet50" in str(excinfo.value)

    resnet50 = build_model("resnet50", pretrained="none", verbose=False)
    payload = read_checkpoint(resnet18_file)
    with pytest.raises(CheckpointError, match="trained as resnet18, but this model is resnet50"):
        load_weights(resnet50, payload, resnet18_file)


def test_truncated_file_is_refused(resnet18_file, tmp_path):
    data = resnet18_file.read_bytes()
    truncated = tmp_path / "half.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as excinfo:
        load_checkpoint(truncated)
    assert str(truncated) in str(excinfo.value)


def leave_mark(path: str) -> str:
    Path(path).write_text("code from a checkpoint ran")
    return path


class Booby:
    """Unpickling this calls leave_mark: the kind of code a malicious checkpoint can hide."""

    def __init__(self, mark: Path) -> None:
        self.mark = str(mark)

    def __reduce__(self):
        return leave_mark, (self.mark,)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickled_objects_are_refused_without_running_them(tmp_path, writer):
    mark = tmp_path / "mark.txt"
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save({"meta": {}, "state_dict": {}, "evil": Booby(mark)}, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(Booby(mark), handle)

    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(path)
    assert not mark.exists()

    # Control: an unrestricted load does run the hidden code, so the check above can fail.
    if writer == "torch.save":
        torch.load(path, weights_only=False)
        assert mark.exists()


def test_bare_state_dict_is_not_a_checkpoint(tmp_path, resnet18):
    path = tmp_path / "weights.pt"
    torch.save(resnet18.state_dict(), path)
    with pytest.raises(CheckpointError, match="not a medtl checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at") as excinfo:
        load_checkpoint(tmp_path / "nowhere" / "best.pt")
    assert str(tmp_path / "nowhere" / "best.pt") in str(excinfo.value)


def test_wrong_head_shape_does_not_fit(tmp_path):
    three_classes = fresh()
    three_classes.fc = torch.nn.Linear(512, 3)  # a model changed by hand after build_model
    path = save(three_classes, tmp_path / "best.pt")  # meta records the two course classes
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(path)
