"""Frozen backbone features for scikit-learn: eval mode, no autograd, batch dimension kept."""

from __future__ import annotations

import numpy as np
import torch

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.models import build_model, split_backbone_head
from medtl_helpers.training import features as features_module
from medtl_helpers.training.features import backbone_features


def images(n: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(n))


def test_features_match_the_backbone_in_eval_mode():
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False).train()
    x = images(5)
    features = backbone_features(model, x, image_size=32, batch_size=2)
    assert features.shape == (5, 512) and features.dtype == np.float32
    backbone, _ = split_backbone_head(model)
    model.eval()
    with torch.no_grad():
        expected = backbone(to_model_input(x, 32)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_batch_of_one_keeps_its_batch_dimension():
    model = build_model("resnet18", pretrained="none", verbose=False)
    assert backbone_features(model, images(1), image_size=32).shape == (1, 512)


def test_running_statistics_and_modes_are_untouched():
    model = build_model("resnet18", pretrained="none", verbose=False).train()
    model.layer1[0].bn1.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    backbone_features(model, images(4), image_size=32)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and model.layer2.training and not model.layer1[0].bn1.training


def test_no_autograd_graph():
    model = build_model("resnet18", pretrained="none", verbose=False)
    calls = []
    model.layer4.register_forward_hook(lambda m, i, out: calls.append(out.requires_grad))
    backbone_features(model, images(2), image_size=32)
    assert calls == [False]


def test_extract_features_in_mixed_precision_only_when_asked():
    from types import SimpleNamespace

    from medtl_helpers.data.records import ImageSet
    from medtl_helpers.training.features import extract_features

    torch.manual_seed(0)
    backbone, _ = split_backbone_head(build_model("resnet18", pretrained="none", verbose=False))
    x = images(3).to(torch.uint8)
    data = ImageSet(x, torch.tensor([0, 1, 1]), ["a", "b", "c"], "t")
    trainer = SimpleNamespace(  # a trainer that autocasts to bf16, as fit does on an A100
        device=torch.device("cpu"),
        image_size=32,
        memory=torch.contiguous_format,
        progress=False,
        eval_batch_size=2,
        autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    )
    backbone.eval()
    with torch.no_grad():
        exact = backbone(to_model_input(x, 32))
    fp32 = extract_features(backbone, data, trainer, mixed_precision=False)
    mixed = extract_features(backbone, data, trainer)
    assert fp32.dtype == mixed.dtype == torch.float32 and fp32.shape == (3, 512)
    torch.testing.assert_close(fp32, exact)
    assert not torch.equal(mixed, exact)  # bf16 keeps 8 bits of mantissa
    torch.testing.assert_close(mixed, exact, rtol=0.05, atol=0.05)


def test_the_docstring_does_not_call_the_probe_features_the_same_as_fits():
    doc = " ".join(features_module.__doc__.split())
    assert "gives the same features" not in doc  # fit's cached ones use mixed precision
    assert "in fp32" in doc and "`fit`'s cached training features use the run's mixed" in doc
