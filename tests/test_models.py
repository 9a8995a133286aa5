"""Residual blocks, build_model (parameter counts, heads, weights), layer groups, backbone split."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch
import torchvision
from torch import nn

from medtl_helpers import config
from medtl_helpers.errors import WeightsUnavailableError
from medtl_helpers.models import (
    ARCHS,
    BasicBlock,
    Bottleneck,
    build_model,
    group_of,
    split_backbone_head,
    weights_file,
)

PUBLISHED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise_bn_statistics(module: nn.Module) -> None:
    """Fresh BN layers hold mean 0 / var 1, which would hide a wrongly loaded buffer."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_counts_match_torchvision_and_published_table(arch):
    # On the meta device parameters have shapes but no storage or init: counting is instant.
    with torch.device("meta"):
        ours = build_model(arch, pretrained="none", verbose=False)
        ours.fc = nn.Linear(ours.fc.in_features, 1000)  # the ImageNet head the table counts
        reference = torchvision.models.get_model(arch, weights=None)
    assert n_params(ours) == n_params(reference) == PUBLISHED_PARAMS[arch]


@pytest.mark.parametrize(("arch", "features"), [("resnet18", 512), ("resnet50", 2048)])
def test_two_class_linear_head(arch, features):
    model = build_model(arch, pretrained="none", verbose=False)
    assert isinstance(model.fc, nn.Linear)
    assert n_params(model.fc) == features * 2 + 2
    assert n_params(model) == PUBLISHED_PARAMS[arch] - (features * 1000 + 1000) + features * 2 + 2


def test_mlp_head_has_no_batchnorm_and_handles_a_batch_of_one():
    model = build_model("resnet18", head="mlp", dropout=0.3, pretrained="none", verbose=False)
    kinds = [type(m) for m in model.fc]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert model.fc[2].p == 0.3
    model.train()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2)
    assert model.medtl_head == "mlp"


def test_linear_head_with_dropout():
    model = build_model("resnet18", dropout=0.2, pretrained="none", verbose=False)
    assert isinstance(model.fc[0], nn.Dropout) and isinstance(model.fc[1], nn.Linear)


def test_random_init_is_announced_and_recorded(capsys):
    model = build_model("resnet34", pretrained="none")
    assert "resnet34: random initialisation" in capsys.readouterr().out
    assert (model.medtl_arch, model.medtl_head, model.medtl_weights) == (
        "resnet34",
        "linear",
        "random",
    )


def test_quick_profile_defaults_to_random_init(monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "quick")
    assert build_model(verbose=False).medtl_weights == "random"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50, resnet101, resnet152"):
        build_model("resnet20", pretrained="none")
    with pytest.raises(ValueError, match="linear, mlp"):
        build_model(head="bn", pretrained="none")
    with pytest.raises(ValueError, match="'imagenet' or 'none'"):
        build_model(pretrained="yes")


def test_missing_weights_offline_name_file_path_and_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert weights_file("resnet18") == expected
    with pytest.raises(WeightsUnavailableError, match="MEDTL_OFFLINE=1") as info:
        build_model("resnet18", pretrained="imagenet", verbose=False)
    message = str(info.value)
    for part in (
        "resnet18-f37072fd.pth",
        str(expected),
        "TORCH_HOME",
        str(tmp_path),
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "MEDTL_PRETRAINED=none",
    ):
        assert part in message


def test_relative_torch_home_is_named_with_the_folder_it_is_read_from(tmp_path, monkeypatch):
    # a notebook runs in notebooks/, so TORCH_HOME=runs/x set in the repository misses the file
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", "runs/torch-home")
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("resnet18", pretrained="imagenet", verbose=False)
    message = str(info.value)
    expected = tmp_path / "runs" / "torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert f"expected at:   {expected}" in message
    assert f"a relative path read from the current folder {tmp_path}" in message


def test_failed_download_is_an_error_not_random_weights(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise URLError("Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("MEDTL_OFFLINE", "0")
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", no_network)
    with pytest.raises(WeightsUnavailableError, match="download failed.*name resolution"):
        build_model("resnet50", pretrained="imagenet", verbose=False)


def test_corrupt_cached_weights_say_delete_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = weights_file("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a download")
    with pytest.raises(WeightsUnavailableError, match="delete it") as info:
        build_model("resnet18", pretrained="imagenet", verbose=False)
    assert str(path) in str(info.value)


def test_cached_weights_file_is_loaded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = torchvision.models.resnet18(weights=None)
    randomise_bn_statistics(source)
    path = weights_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)

    model = build_model("resnet18", pretrained="imagenet")
    assert "ImageNet weights" in capsys.readouterr().out
    assert model.medtl_weights == "imagenet"
    loaded = model.state_dict()
    for key, tensor in source.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], tensor), key
    assert loaded["fc.weight"].shape == (2, 512)


@pytest.mark.parametrize(
    ("block", "x_shape", "out_shape", "projects"),
    [
        (BasicBlock(64, 64), (2, 64, 16, 16), (2, 64, 16, 16), False),
        (BasicBlock(64, 128, stride=2), (2, 64, 16, 16), (2, 128, 8, 8), True),
        (BasicBlock(64, 128), (2, 64, 16, 16), (2, 128, 16, 16), True),
        (Bottleneck(256, 64), (2, 256, 16, 16), (2, 256, 16, 16), False),
        (Bottleneck(64, 64), (2, 64, 16, 16), (2, 256, 16, 16), True),
        (Bottleneck(256, 128, stride=2), (2, 256, 16, 16), (2, 512, 8, 8), True),
    ],
)
def test_block_shapes_and_shortcuts(block, x_shape, out_shape, projects):
    assert block(torch.randn(x_shape)).shape == out_shape
    assert (block.downsample is not None) == projects
    if projects:
        conv, bn = block.downsample
        stride = x_shape[-1] // out_shape[-1]
        assert conv.kernel_size == (1, 1) and conv.stride == (stride, stride)
        assert isinstance(bn, nn.BatchNorm2d)


@pytest.mark.parametrize(
    ("arch", "stage", "ours"),
    [
        ("resnet18", "layer1", BasicBlock(64, 64)),
        ("resnet18", "layer2", BasicBlock(64, 128, stride=2)),
        ("resnet50", "layer1", Bottleneck(64, 64)),
        ("resnet50", "layer3", Bottleneck(512, 256, stride=2)),
    ],
)
def test_blocks_match_torchvision_with_the_same_weights(arch, stage, ours):
    reference = getattr(torchvision.models.get_model(arch, weights=None), stage)[0]
    randomise_bn_statistics(reference)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, reference.conv1.in_channels, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("conv1.weight", "stem"),
        ("bn1.bias", "stem"),
        ("bn1.running_mean", "stem"),
        ("maxpool", "stem"),
        ("layer1.0.conv1.weight", "layer1"),
        ("layer2.1.bn2.weight", "layer2"),
        ("layer3.0.conv1.weight", "layer3"),
        ("layer3.0.downsample.0.weight", "layer3"),
        ("layer4.2.conv3.weight", "layer4"),
        ("layer4", "layer4"),
        ("fc.weight", "head"),
        ("fc.0.weight", "head"),
        ("fc.3.bias", "head"),
        ("module.layer2.0.conv1.weight", "layer2"),
        ("_orig_mod.conv1.weight", "stem"),
    ],
)
def test_group_of_uses_the_name_prefix(name, group):
    assert group_of(name) == group


def test_group_of_rejects_foreign_names():
    with pytest.raises(ValueError, match="stem, layer1"):
        group_of("classifier.weight")
    with pytest.raises(ValueError):
        group_of("conv1x.weight")


@pytest.mark.parametrize(("arch", "features"), [("resnet18", 512), ("resnet50", 2048)])
def test_backbone_then_head_equals_the_model(arch, features):
    model = build_model(arch, pretrained="none", verbose=False).eval()
    backbone, head = split_backbone_head(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = backbone(x)
        assert feats.shape == (2, features)
        torch.testing.assert_close(head(feats), model(x))
        assert backbone(x[:1]).shape == (1, features)
    assert head is model.fc and backbone[0] is model.conv1


def test_stand_in_weights_load_through_the_weights_path_and_say_they_are_not_imagenet(
    standin_weights, capsys
):
    from medtl_helpers.models import weights_file

    model = build_model("resnet18")  # the quick profile, with MEDTL_PRETRAINED=imagenet
    printed = capsys.readouterr().out
    assert model.medtl_weights == "imagenet"
    assert "STAND-IN weights file" in printed and "NOT torchvision's ImageNet weights" in printed
    assert "resnet18-f37072fd.pth" in printed and "does not start with f37072fd" in printed
    saved = torch.load(weights_file("resnet18"), weights_only=True)
    assert torch.equal(model.conv1.weight, saved["conv1.weight"])
    config.seed_everything(0)  # as the notebooks seed their random initialisation
    random_init = build_model("resnet18", pretrained="none", verbose=False)
    assert not torch.equal(model.conv1.weight, random_init.conv1.weight)  # the branch shows


def test_a_file_whose_hash_matches_its_name_is_called_imagenet(tmp_path):
    import hashlib

    from medtl_helpers.config.weights import describe_weights_file

    body = tmp_path / "body.pth"
    body.write_bytes(b"weights")
    prefix = hashlib.sha256(b"weights").hexdigest()[:8]
    named = body.rename(tmp_path / f"resnet18-{prefix}.pth")
    assert describe_weights_file(named).startswith("ImageNet weights (IMAGENET1K_V1) from")


def test_missing_weights_on_the_command_line_name_the_flag(tmp_path, monkeypatch):
    from medtl_helpers.errors import command_line

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with command_line(), pytest.raises(WeightsUnavailableError) as info:
        build_model("resnet18", pretrained="imagenet", verbose=False)
    assert "--pretrained none" in str(info.value) and "MEDTL_PRETRAINED" not in str(info.value)
