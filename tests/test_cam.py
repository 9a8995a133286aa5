"""Grad-CAM helpers: hooks removed, gradients flowing, shapes, the log-odds target, raw-image
overlays, rank checks, and a randomisation check that fails when randomising changes nothing."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchcam.methods import GradCAM

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.explain.cam import (
    cam_grids,
    class_activation_maps,
    randomization_check,
    randomization_reading,
    randomize_layers,
    rank_correlation,
    target_scores,
    upsample,
)
from medtl_helpers.explain.overlays import outcome_indices, overlay_cam, plot_outcome_grid
from medtl_helpers.explain.randomization_stats import TOLERANCE
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
    with pytest.raises(ValueError, match="Unknown CAM target 7.*class index below 2"):
        class_activation_maps(model, images, target=7)  # only 2 classes
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


def test_rank_correlation_of_a_flat_map_is_nan_and_warns_nothing():
    """An all-zero CAM has no ranking; scipy's ConstantInputWarning must not reach a notebook."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(rank_correlation(torch.zeros(8, 8), torch.rand(8, 8)))
        assert np.isnan(rank_correlation(np.arange(16.0), np.full(16, 0.5)))
        assert np.isnan(rank_correlation([3.0], [1.0]))
        # ties on both sides: centred ranks [-1, -1, .5, 1.5] and [1.5, -1, -1, .5] give
        # -0.25 / sqrt(4.5 * 4.5) = -1/18
        assert rank_correlation([1, 1, 2, 3], [3, 1, 1, 2]) == pytest.approx(-1 / 18)
    with pytest.raises(ValueError, match="maps differ in size: 4 and 5 values"):
        rank_correlation(np.zeros(4), np.zeros(5))


def test_randomize_layers_changes_only_the_named_ones(model):
    randomized = randomize_layers(model, ["fc", "layer4"])
    same = {k: torch.equal(v, randomized.state_dict()[k]) for k, v in model.state_dict().items()}
    # conv and linear weights are redrawn; BatchNorm goes back to weight 1, bias 0
    redrawn = [k for k in same if k.startswith(("fc.", "layer4.")) and k.endswith("conv1.weight")]
    assert redrawn and not any(same[k] for k in redrawn + ["fc.weight"])
    assert all(v for k, v in same.items() if k.startswith(("conv1", "layer1", "layer3")))


def test_randomize_layers_leaves_every_random_state_alone(model, monkeypatch):
    """It seeds only the CPU generator it forks: torch.manual_seed would re-seed CUDA as well."""
    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded.append(seed))
    before = torch.random.get_rng_state()
    randomize_layers(model, ["fc"], seed=5)
    assert seeded == [], "the CUDA generators were re-seeded"
    assert torch.equal(torch.random.get_rng_state(), before)


def test_randomization_cascade_is_nested(model):
    """One draw per seed, extended stage by stage: each step keeps the random weights above it."""
    one, two = randomize_layers(model, ["fc"]), randomize_layers(model, ["fc", "layer4"])
    three = randomize_layers(model, ["fc", "layer4", "layer3"])
    assert torch.equal(one.fc.weight, two.fc.weight)
    assert torch.equal(two.layer4[0].conv1.weight, three.layer4[0].conv1.weight)
    other = randomize_layers(model, ["fc"], seed=1)
    assert not torch.equal(one.fc.weight, other.fc.weight)


def test_randomize_layers_draws_pytorchs_default_not_torchvisions_construction(model):
    """The docstring's numbers: std 1/sqrt(3 fan_in) after the reset, sqrt(2 / fan_out) built."""
    built = model.layer4[1].conv1.weight  # 512 -> 512 channels, 3x3: fan_in = fan_out = 4608
    redrawn = randomize_layers(model, ["layer4"]).layer4[1].conv1.weight
    assert built.std().item() == pytest.approx((2 / 4608) ** 0.5, rel=0.02)
    assert redrawn.std().item() == pytest.approx((1 / (3 * 4608)) ** 0.5, rel=0.02)
    assert redrawn.abs().max().item() <= 1 / 4608**0.5
    assert built.std().item() / redrawn.std().item() == pytest.approx(6**0.5, rel=0.03)


def test_randomize_layers_resets_batchnorm_statistics_too(model):
    """A randomised stage's BatchNorm is a fresh layer's: weight 1, bias 0, mean 0, variance 1."""
    trained = copy.deepcopy(model)
    for module in trained.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.fill_(0.3)
            module.running_var.fill_(2.0)
            module.num_batches_tracked.fill_(5)
    randomized = randomize_layers(trained, ["layer4"])
    for name, module in randomized.named_modules():
        if not isinstance(module, nn.BatchNorm2d):
            continue
        if name.startswith("layer4."):
            assert torch.all(module.running_mean == 0) and torch.all(module.running_var == 1)
            assert module.num_batches_tracked == 0
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
        else:  # the stages below keep the statistics they were trained with
            assert torch.all(module.running_mean == 0.3) and torch.all(module.running_var == 2)


def test_target_scores():
    logits = torch.tensor([[0.5, 2.0], [1.0, -1.0]])
    scores, column = target_scores(logits)
    assert column == 0 and torch.equal(scores, torch.tensor([[1.5], [-2.0]]))
    scores, column = target_scores(logits, 1)
    assert column == 1 and scores is logits
    with pytest.raises(ValueError, match="two-logit head, this one has 3"):
        target_scores(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="Unknown CAM target 'pneumonia'"):
        target_scores(logits, "pneumonia")


def test_log_odds_maps_ignore_what_the_two_head_rows_share(model, images):
    """Adding one vector to both rows of fc (the part cross-entropy never trains) changes the
    PNEUMONIA logit's map but not the log-odds map."""
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        shared = torch.randn(shifted.fc.in_features, generator=torch.Generator().manual_seed(2))
        shifted.fc.weight += shared
        shifted.fc.bias += 1.0
    same = class_activation_maps(model, images), class_activation_maps(shifted, images)
    assert torch.allclose(*same, atol=1e-5)
    logit1 = [class_activation_maps(m, images, target=1) for m in (model, shifted)]
    assert (logit1[0] - logit1[1]).abs().max() > 0.1


def test_cross_entropy_leaves_the_sum_of_the_two_head_rows_untrained():
    """The premise of the log-odds target: with softmax cross-entropy (class weights or not) the
    two logits get opposite gradients, so under AdamW w0 + w1 only shrinks by weight decay."""
    torch.manual_seed(0)
    head, lr, decay, steps = nn.Linear(8, 2), 1e-2, 1e-4, 50
    start_sum, start_diff = head.weight.sum(0).clone(), (head.weight[1] - head.weight[0]).clone()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=decay)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    for _ in range(steps):
        loss = F.cross_entropy(head(x), y, weight=torch.tensor([3.0, 1.0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained_diff = head.weight[1] - head.weight[0]
    assert torch.allclose(head.weight.sum(0), start_sum * (1 - lr * decay) ** steps, atol=1e-6)
    assert (trained_diff - start_diff).abs().max() > 0.1, "the difference did train"


class TinyNet(nn.Module):
    """Two conv stages named like a ResNet's and a two-logit head: fast enough to train here."""

    def __init__(self):
        super().__init__()
        self.layer3 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.layer4 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.layer4(self.layer3(x)).mean(dim=(2, 3)))


def bright_squares(n: int, seed: int):
    """Noisy 24 px images; every second one (label 1) holds a bright 6 px square somewhere."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 24, 24, generator=gen) * 60 + 40
    labels, corners = torch.arange(n) % 2, torch.randint(0, 18, (n, 2), generator=gen)
    for i in labels.nonzero().flatten().tolist():
        row, col = corners[i].tolist()
        images[i, :, row : row + 6, col : col + 6] = 230
    return images.to(torch.uint8), labels, corners


@pytest.fixture(scope="module")
def square_finder():
    torch.manual_seed(0)
    net = TinyNet()
    images, labels, _ = bright_squares(64, seed=0)
    x = to_model_input(images)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        loss = F.cross_entropy(net(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


def test_randomization_check_catches_maps_that_ignore_the_weights(square_finder):
    images, labels, corners = bright_squares(8, seed=1)
    squares, corners = images[labels == 1], corners[labels == 1]
    maps = class_activation_maps(square_finder, squares, "layer4")
    peaks = [divmod(int(m.argmax()), 24) for m in maps]
    inside = [
        r <= pr < r + 6 and c <= pc < c + 6 for (pr, pc), (r, c) in zip(peaks, corners.tolist())
    ]
    assert all(inside), "the trained maps are structured: each peaks on its square"
    rows = randomization_check(square_finder, squares, ("fc", "layer4"), seeds=range(5))
    assert [r["randomized"] for r in rows] == ["nothing (re-run)", "fc", "fc + layer4"]
    assert [r["draws"] for r in rows] == [1, 5, 5]
    assert rows[0]["mean spearman"] == pytest.approx(1.0) and rows[0]["flat maps"] == 0
    assert rows[0]["lowest"] == pytest.approx(1.0) == rows[0]["highest"]
    for r in rows[1:]:
        assert r["lowest"] <= r["lowest draw mean"] <= r["mean spearman"]
        assert r["mean spearman"] <= r["highest draw mean"] <= r["highest"]
    # randomising fc + layer4 must take the maps far from the re-run's 1 (a no-op would keep 1)
    assert rows[2]["mean spearman"] < 0.6, rows[2]
    assert rows[2]["highest"] > rows[2]["lowest"], "a row spans images and draws, not one mean"
    # the draws are different random networks: their means differ
    assert rows[2]["highest draw mean"] > rows[2]["lowest draw mean"]
    # every map of 4 images and 5 random networks is counted, against its own shuffled cells
    assert [r["maps"] + r["flat maps"] for r in rows] == [4, 20, 20]
    assert all(0 <= r[key] <= 1 for r in rows[1:] for key in ("survived", "chance"))
    for r in rows[1:]:
        assert r["gap low"] <= r["survived"] - r["chance"] <= r["gap high"]
    assert np.isnan(rows[0]["gap low"]) and [r["grid"] for r in rows] == ["24x24"] * 3
    for r in rows[1:]:  # no failure; a pass only where the interval excludes a gap of TOLERANCE
        expected = "the check passes here" if r["gap high"] < TOLERANCE else "no failure shown"
        assert expected in randomization_reading(r) and "FAILS" not in randomization_reading(r)
    with pytest.raises(ValueError, match=r"seeds=\[3\]: pass two or more"):
        randomization_check(square_finder, squares, ("fc", "layer4"), seeds=[3])


def test_randomization_check_fails_maps_that_the_random_stage_leaves_alone(square_finder):
    """A stage the maps do not depend on: every random network gives the trained map. Two random
    networks then agree as well, so a random-against-random baseline (chance 100 %) excused it;
    against shuffled cells, which unrelated maps are by construction, it FAILS."""
    net = copy.deepcopy(square_finder)
    net.spare = nn.Linear(2, 2)  # a stage the forward pass never uses
    images, labels, _ = bright_squares(8, seed=1)
    rows = randomization_check(net, images[labels == 1], ("spare",), seeds=range(3))
    assert rows[1]["survived"] == 1.0 and rows[1]["mean spearman"] == pytest.approx(1.0)
    assert rows[1]["chance"] < 0.1 and rows[1]["gap low"] > 0.9
    assert "the check FAILS here" in randomization_reading(rows[1])


def test_class_activation_maps_are_the_upsampled_grids(model, images):
    grids = cam_grids(model, images, "layer4")
    assert grids.shape == (3, 2, 2)  # 48 px / 32, rounded up by the stride-2 stages
    assert torch.equal(class_activation_maps(model, images, "layer4"), upsample(grids, (48, 48)))
    assert class_activation_maps(model, images[:0], "layer4").shape == (0, 48, 48)


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
