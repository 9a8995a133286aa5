"""Grad-CAM helpers: hooks removed, gradients flowing, shapes, raw-image overlays, rank checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchcam.methods import GradCAM

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.explain.cam import (
    class_activation_maps,
    randomization_check,
    randomize_layers,
    rank_correlation,
)
from medtl_helpers.explain.overlays import outcome_indices, overlay_cam, plot_outcome_grid
from medtl_helpers.models import build_model
from medtl_helpers.models.freezing import freeze


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("resnet18", pretrained="none", verbose=False)


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return (torch.rand(3, 1, 48, 48) * 255).to(torch.uint8)


def hooks_left(module: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in module.modules()
    )


def test_maps_have_the_image_size_and_range(model, images):
    for method in ("gradcam", "gradcam++", "layercam"):
        maps = class_activation_maps(model, images, "layer4", method)
        assert maps.shape == (3, 48, 48)
        assert maps.min() >= 0 and maps.max() <= 1
    # a larger model input, maps still at the stored images' size
    assert class_activation_maps(model, images, image_size=64).shape == (3, 48, 48)


def test_hooks_are_removed_even_after_an_error(model, images):
    assert hooks_left(model) == 0
    class_activation_maps(model, images)
    assert hooks_left(model) == 0
    with pytest.raises(IndexError):
        class_activation_maps(model, images, class_idx=7)  # only 2 classes
    assert hooks_left(model) == 0


def test_gradients_flow_even_through_a_frozen_model(model, images):
    frozen = build_model("resnet18", pretrained="none", verbose=False)
    frozen.load_state_dict(model.state_dict())
    freeze(frozen, ["stem", "layer1", "layer2", "layer3", "layer4", "head"])
    maps = class_activation_maps(frozen, images)
    assert (maps.flatten(1).amax(1) > 0).all(), "each map must have signal"
    assert all(p.grad is None for p in frozen.parameters()), "no .grad left on the weights"


def test_model_modes_are_restored(model, images):
    model.train()
    class_activation_maps(model, images)
    assert all(m.training for m in model.modules())
    model.eval()


def test_no_grad_gets_a_clear_error(model, images):
    with torch.no_grad(), pytest.raises(RuntimeError, match=r"needs gradients.*no_grad"):
        class_activation_maps(model, images)
    # raw torchcam under no_grad fails too: there is no graph to differentiate
    with GradCAM(model, "layer4") as extractor, torch.no_grad():
        scores = model.eval()(to_model_input(images))
        with pytest.raises(RuntimeError):
            extractor(class_idx=1, scores=scores)


def test_unknown_layer_names_the_stages(model, images):
    with pytest.raises(ValueError, match=r"'layer5' is not a module.*layer4.*fc"):
        class_activation_maps(model, images, layer="layer5")


def test_rank_correlation():
    cam = torch.rand(16, 16)
    assert rank_correlation(cam, cam) == pytest.approx(1.0)
    assert rank_correlation(cam, -cam) == pytest.approx(-1.0)
    assert rank_correlation(cam, cam**3 + 5) == pytest.approx(1.0)  # ranks, not values
    assert rank_correlation([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # scipy
    assert np.isnan(rank_correlation(np.zeros(4), np.arange(4)))


def test_randomize_layers_changes_only_the_named_ones(model):
    randomized = randomize_layers(model, ["fc", "layer4"])
    same = {k: torch.equal(v, randomized.state_dict()[k]) for k, v in model.state_dict().items()}
    # conv and linear weights are redrawn; BatchNorm goes back to weight 1, bias 0
    redrawn = [k for k in same if k.startswith(("fc.", "layer4.")) and k.endswith("conv1.weight")]
    assert redrawn and not any(same[k] for k in redrawn + ["fc.weight"])
    assert all(v for k, v in same.items() if k.startswith(("conv1", "layer1", "layer3")))


def test_randomization_check_rows(model, images):
    rows = randomization_check(model, images, cascade=("fc", "layer4"))
    assert [r["randomized"] for r in rows] == ["fc", "fc + layer4"]
    assert all(-1 <= r["mean spearman"] <= 1 for r in rows)


def test_overlay_uses_the_raw_image(images):
    grey = images[0, 0].numpy()
    flat = overlay_cam(images[0], torch.zeros(48, 48))
    assert flat.shape == (48, 48, 3) and flat.dtype == np.uint8
    assert (flat == grey[..., None]).all(), "where the map is 0 the X-ray shows unchanged"
    hot = overlay_cam(images[0], torch.ones(48, 48))
    assert not (hot == grey[..., None]).all()
    with pytest.raises(TypeError, match="uint8 X-ray.*normalised"):
        overlay_cam(to_model_input(images[:1])[0], torch.zeros(48, 48))


def test_outcome_groups_and_an_empty_row():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.6, 0.8, 0.1, 0.2])
    groups = outcome_indices(y, p, 0.5)
    assert groups == {"true positive": [0, 1], "false positive": [2], "false negative": [4]}
    groups["false positive"] = []
    images = torch.zeros(5, 1, 8, 8, dtype=torch.uint8)
    fig = plot_outcome_grid(images, torch.rand(5, 8, 8), groups, probs=p)
    assert "no false positives" in " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
