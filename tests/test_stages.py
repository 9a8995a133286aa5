"""Training stages: discriminative learning rates, per-stage optimizers, and their schedulers."""

from __future__ import annotations

import json

import pytest
import torch

from medtl_helpers import config
from medtl_helpers.data.augment import BatchAugment
from medtl_helpers.data.split import split_by_patient
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.models import GROUPS, build_model
from medtl_helpers.training import BatchTrainer, fit, read_checkpoint
from medtl_helpers.training.stages import (
    Stage,
    discriminative_lrs,
    make_optimizer,
    make_scheduler,
    progressive_stages,
    warmup_steps,
)

# The tiny split below is too small to choose a model with; fit says so, and that is fine here.
pytestmark = pytest.mark.filterwarnings("ignore:The validation split holds only")


@pytest.fixture
def resnet18():
    torch.manual_seed(0)
    return build_model("resnet18", pretrained="none", verbose=False)


def lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    return {group["name"]: group["lr"] for group in optimizer.param_groups}


def run_schedule(stage: Stage, steps_per_epoch: int, steps: int) -> list[float]:
    """The learning rate used at each of `steps` batches, on a one-parameter optimizer."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=stage.lr)
    scheduler = make_scheduler(optimizer, stage, steps_per_epoch)
    used = []
    for _ in range(steps):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return used


def test_discriminative_lrs_halve_per_group_from_the_head():
    assert discriminative_lrs(1e-3, 0.5) == {
        "head": 1e-3,
        "layer4": 5e-4,
        "layer3": 2.5e-4,
        "layer2": 1.25e-4,
        "layer1": 6.25e-5,
        "stem": 1e-3 * 0.5**5,
    }


def test_progressive_stages():
    head, top, full = progressive_stages((1, 2, 3), lr=1e-3)
    assert [s.name for s in (head, top, full)] == ["head", "top", "all"]
    assert [s.epochs for s in (head, top, full)] == [1, 2, 3]
    assert [s.freeze for s in (head, top, full)] == ["all", ["stem", "layer1", "layer2"], "none"]
    assert [s.lr for s in (head, top, full)] == [1e-3, 5e-4, 2.5e-4]
    assert head.group_lr == {}
    assert top.group_lr == discriminative_lrs(5e-4, 0.5)
    assert full.group_lr == discriminative_lrs(2.5e-4, 0.5)
    assert full.group_lr["stem"] == 2.5e-4 * 0.5**5


def test_progressive_stages_with_explicit_rates(resnet18):
    """Staging alone (notebook 05): the same rate for every stage and every group."""
    stages = progressive_stages((1, 1, 1), lr=1e-3, decay=1.0, stage_lrs=(1e-3, 1e-3, 1e-3))
    assert [s.lr for s in stages] == [1e-3, 1e-3, 1e-3]
    assert [s.freeze for s in stages] == ["all", ["stem", "layer1", "layer2"], "none"]
    optimizer = make_optimizer(resnet18, stages[2])
    assert set(lrs(optimizer)) == {"stem", "layer1", "layer2", "layer3", "layer4", "head"}
    assert set(lrs(optimizer).values()) == {1e-3}
    custom = progressive_stages((1, 1, 1), lr=1e-3, stage_lrs=(1e-2, 1e-3, 1e-4))
    assert [s.lr for s in custom] == [1e-2, 1e-3, 1e-4]
    assert custom[1].group_lr == discriminative_lrs(1e-3, 0.5)


def test_head_stage_optimizes_only_the_head(resnet18):
    optimizer = make_optimizer(resnet18, Stage("head", freeze="all", lr=1e-3))
    assert lrs(optimizer) == {"head": 1e-3}
    in_optimizer = {id(p) for p in optimizer.param_groups[0]["params"]}
    assert in_optimizer == {id(p) for p in resnet18.fc.parameters()}
    assert [n for n, p in resnet18.named_parameters() if p.requires_grad] == [
        "fc.weight",
        "fc.bias",
    ]


def test_group_lr_applied_per_group(resnet18):
    top = progressive_stages((1, 1, 1), lr=1e-3)[1]
    optimizer = make_optimizer(resnet18, top)
    assert lrs(optimizer) == {"layer3": 1.25e-4, "layer4": 2.5e-4, "head": 5e-4}
    assert all(group["weight_decay"] == top.weight_decay for group in optimizer.param_groups)
    assert not resnet18.layer2[0].conv1.weight.requires_grad
    assert resnet18.layer3[0].conv1.weight.requires_grad

    full = Stage("all", freeze="none", lr=1e-3, group_lr={"stem": 1e-5})
    assert lrs(make_optimizer(resnet18, full)) == {
        "stem": 1e-5,
        **{group: 1e-3 for group in GROUPS[1:]},
    }


def test_stage_freezing_everything_is_refused(resnet18):
    with pytest.raises(ValueError, match="no trainable parameter"):
        make_optimizer(resnet18, Stage("frozen", freeze=list(GROUPS)))


def test_cosine_warms_up_then_decays_to_two_percent():
    stage = Stage(epochs=2, lr=1e-2, schedule="cosine")
    used = run_schedule(stage, steps_per_epoch=50, steps=100)
    warmup = 5  # 5% of 100 steps
    assert used[0] == pytest.approx(1e-2 / warmup)
    assert used[:warmup] == sorted(used[:warmup]) and used[warmup - 1] == pytest.approx(1e-2)
    decay = used[warmup - 1 :]
    assert all(later <= earlier for earlier, later in zip(decay, decay[1:]))
    assert 0.4e-2 < used[50] < 0.6e-2  # about halfway down the cosine
    assert used[-1] == pytest.approx(0.02 * 1e-2, rel=0.05)
    after_end = run_schedule(stage, steps_per_epoch=50, steps=130)[100:]
    assert after_end == pytest.approx([0.02 * 1e-2] * 30)


@pytest.mark.parametrize("epochs, steps", [(1, 6), (1, 37), (1, 39), (1, 40), (2, 50), (4, 62)])
def test_warmup_steps_are_the_steps_below_the_peak(epochs, steps):
    """Notebook 05 prints these counts: a stage of fewer than 40 steps has no warm-up."""
    stage = Stage(epochs=epochs, lr=1e-2)
    used = run_schedule(stage, steps, epochs * steps)
    peak = used.index(max(used))
    assert warmup_steps(stage, steps) == peak
    assert all(lr < 1e-2 for lr in used[:peak]) and used[peak] == pytest.approx(1e-2)
    assert warmup_steps(stage, steps) == (0 if epochs * steps < 40 else epochs * steps // 20 - 1)
    assert warmup_steps(Stage(epochs=epochs, schedule="constant"), steps) == 0


def test_constant_schedule_keeps_lr():
    assert run_schedule(Stage(epochs=2, lr=3e-4, schedule="constant"), 10, 20) == [3e-4] * 20


def test_unknown_schedule_is_refused():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(ValueError, match="Unknown schedule 'step'"):
        make_scheduler(optimizer, Stage(schedule="step"), 10)


def test_old_scheduler_does_not_move_new_optimizer(resnet18):
    """The course's pitfall: a scheduler moves only the optimizer it was built for."""
    head_stage, top_stage, _ = progressive_stages((1, 1, 1), lr=1e-3)
    optimizer_a = make_optimizer(resnet18, head_stage)
    scheduler_a = make_scheduler(optimizer_a, head_stage, steps_per_epoch=20)
    optimizer_b = make_optimizer(resnet18, top_stage)
    start_a, start_b = lrs(optimizer_a), lrs(optimizer_b)

    for _ in range(15):
        optimizer_a.step()
        scheduler_a.step()
    assert lrs(optimizer_b) == start_b
    assert lrs(optimizer_a)["head"] < start_a["head"]

    scheduler_b = make_scheduler(optimizer_b, top_stage, steps_per_epoch=20)
    for _ in range(15):
        optimizer_b.step()
        scheduler_b.step()
    moved = lrs(optimizer_b)
    assert all(moved[group] < start_b[group] for group in start_b)


def test_stage_as_dict_round_trip():
    stage = Stage("top", 2, ("stem", "layer1"), 5e-4, {"head": 1e-3}, schedule="constant")
    data = stage.as_dict()
    assert data["freeze"] == ["stem", "layer1"]
    assert data == json.loads(json.dumps(data))
    rebuilt = Stage(**json.loads(json.dumps(data)))
    assert rebuilt.as_dict() == data
    assert rebuilt == Stage("top", 2, ["stem", "layer1"], 5e-4, {"head": 1e-3}, schedule="constant")
    assert Stage(freeze="partial").as_dict()["freeze"] == "partial"


@pytest.fixture(scope="module")
def tiny():
    return split_by_patient(make_synthetic(160, size=32, seed=3), 0.25, seed=0)


def fit_tiny(tiny, stages, **options):
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False)
    profile = config.get_profile("quick")
    fit(model, *tiny, stages=stages, profile=profile, batch_size=32, progress=False, **options)


def batchnorm_means(state: dict, group_prefix: str) -> torch.Tensor:
    return torch.cat([v for k, v in state.items() if k.startswith(group_prefix) and "mean" in k])


def test_frozen_groups_keep_their_batchnorm_statistics_until_they_train(tiny, tmp_path):
    """Notebook 05: the staged runs keep stem to layer2 at source statistics for two stages."""
    torch.manual_seed(0)
    source = build_model("resnet18", pretrained="none", verbose=False).state_dict()
    head, top, full = progressive_stages((1, 1, 1))
    for stages, unchanged, changed in (
        ([head], ["bn1", "layer1", "layer2", "layer3", "layer4"], []),
        ([head, top], ["bn1", "layer1", "layer2"], ["layer3", "layer4"]),
        ([full], [], ["bn1", "layer1", "layer2", "layer3", "layer4"]),
    ):
        out = tmp_path / str(len(stages)) / stages[0].name
        fit_tiny(tiny, stages, out_dir=out, patience=9)
        last = read_checkpoint(out / "last.pt")["state_dict"]
        for group in unchanged:
            assert torch.equal(batchnorm_means(last, group), batchnorm_means(source, group)), group
        for group in changed:
            assert not torch.equal(batchnorm_means(last, group), batchnorm_means(source, group))


CUT = BatchTrainer.batches


def batch_orders(tiny, stages, monkeypatch, **options) -> list[torch.Tensor]:
    orders = []

    def recorded(self, n):
        orders.append(torch.cat(CUT(self, n)))
        return orders[-1].split(self.global_batch)

    monkeypatch.setattr(BatchTrainer, "batches", recorded)
    fit_tiny(tiny, stages, patience=9, **options)
    return orders


def test_augmentation_with_its_own_generator_keeps_the_batch_order_of_every_arm(tiny, monkeypatch):
    """Notebook 05 gives each run's augmentation its own generator, so all arms see the same
    batches in the same order; by default the order and the augmentation share one generator,
    and a head stage, which draws no augmentation, shifts the order of every later epoch."""
    head, _, full = progressive_stages((1, 1, 1))
    staged, one_shot = [head, full], [Stage("one-shot", 2, "none")]
    shared = [batch_orders(tiny, plan, monkeypatch) for plan in (staged, one_shot)]
    assert torch.equal(shared[0][0], shared[1][0])
    assert not torch.equal(shared[0][1], shared[1][1])
    own = [
        batch_orders(
            tiny,
            plan,
            monkeypatch,
            augment=BatchAugment(generator=torch.Generator().manual_seed(1)),
        )
        for plan in (staged, one_shot)
    ]
    assert all(torch.equal(a, b) for a, b in zip(*own, strict=True)) and len(own[0]) == 2
