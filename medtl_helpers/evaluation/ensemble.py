"""Ensembles of saved checkpoints: soft and hard voting over models of different architectures.

Each member is rebuilt from its own checkpoint with `load_checkpoint`, which reads the recorded
architecture, so a ResNet-18 file is never poured into a ResNet-34. Members must agree on what
they expect as input (image size, classes, normalisation), and two members with the same weights
are refused: averaging a model with itself is one model that only looks like an ensemble.

Soft voting averages the members' probabilities of PNEUMONIA. Hard voting lets each member vote
with its own validation threshold and takes the majority; `tie="positive"` (the default) calls a
50/50 split PNEUMONIA, because in screening a missed pneumonia costs more than a second look.
Whether averaging helped is `soft_vote_against_best`; whether the members make different mistakes
at all is measured in `evaluation.diversity`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from medtl_helpers import config
from medtl_helpers.data.records import ImageSet
from medtl_helpers.errors import CheckpointError
from medtl_helpers.metrics import auroc, binary_metrics, choose_threshold, predict_proba
from medtl_helpers.metrics.paired import difference_verdict, paired_difference
from medtl_helpers.models import build_model
from medtl_helpers.training.checkpoints import load_checkpoint

# What a member expects of its input; members that differ here cannot share one batch.
INPUT_KEYS = ("image_size", "classes", "normalisation")
TIES = ("positive", "negative")


def soft_vote(probabilities) -> np.ndarray:
    """Mean probability over members: (members, images) -> (images,)."""
    return np.asarray(probabilities, dtype=np.float64).mean(axis=0)


def vote_share(probabilities, thresholds) -> np.ndarray:
    """Fraction of members voting PNEUMONIA, each member with its own threshold (p >= t)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    limits = np.asarray(thresholds, dtype=np.float64).reshape(-1, 1)
    return (probs >= limits).mean(axis=0)


def majority_cut(tie: str = "positive") -> float:
    """The vote share from which the ensemble says PNEUMONIA (share >= cut).

    A 50/50 split has a share of exactly 0.5: `tie="positive"` cuts at 0.5, so the split counts
    as PNEUMONIA; `tie="negative"` cuts at the next float above 0.5, so it counts as NORMAL.
    """
    if tie not in TIES:
        raise ValueError(f"tie={tie!r}: use 'positive' or 'negative'")
    return 0.5 if tie == "positive" else float(np.nextafter(0.5, 1.0))


def hard_vote(probabilities, thresholds, tie: str = "positive") -> np.ndarray:
    """Majority of the members' thresholded votes, 0/1 per image; `tie` decides a 50/50 split."""
    return (vote_share(probabilities, thresholds) >= majority_cut(tie)).astype(np.int64)


def build_member(arch: str, seed: int, verbose: bool = True, **options) -> nn.Module:
    """`build_model(arch, **options)` from `seed`, with the new head drawn again from `seed` alone.

    `build_model` draws the head after the backbone's random init, at a point of the random
    stream that depends on the depth. Drawn again here, one seed gives the same head to depths
    with as many features (ResNet-18 and 34: 512), so those members differ in the backbone only.
    """
    config.seed_everything(seed)
    model = build_model(arch, verbose=verbose, **options)
    with torch.random.fork_rng(devices=[]):  # the CPU generator only: the model is on the CPU
        torch.default_generator.manual_seed(seed)
        for module in model.fc.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    model.medtl_head_draw = "seed"  # saved_runs.run_settings keys on it: older runs drew it late
    return model


def weights_fingerprint(model: nn.Module) -> str:
    """A hash of every tensor in the state dict: equal fingerprints mean identical models."""
    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


@dataclass
class Member:
    """One model of the ensemble, with the checkpoint metadata it was saved with."""

    name: str
    model: nn.Module
    meta: dict
    path: Path | None = None

    @property
    def threshold(self) -> float:
        """The member's own validation threshold, as its checkpoint recorded it."""
        value = self.meta.get("threshold")
        if value is None:
            raise CheckpointError(
                f"{self.path or self.name} records no decision threshold, so this member cannot "
                "vote (an arbitrary 0.5 would not be the threshold it was validated with). "
                "Checkpoints saved by fit record one; otherwise choose it on validation with "
                "choose_threshold(y_val, p_val) and set member.meta['threshold']."
            )
        return float(value)


class Ensemble:
    """Models that vote together; build it with `Ensemble.from_checkpoints(paths)`."""

    def __init__(self, members: Sequence[Member]):
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = list(members)
        self._check_inputs_agree()
        self._check_not_identical()

    @classmethod
    def from_checkpoints(
        cls,
        paths: Sequence[str | Path],
        names: Sequence[str] | None = None,
        map_location: str | torch.device = "cpu",
    ) -> Ensemble:
        """Rebuild each checkpoint's own architecture and weights, then check they fit together."""
        members = []
        for i, path in enumerate(paths):
            model, meta = load_checkpoint(Path(path), map_location=map_location)
            name = names[i] if names is not None else meta["arch"]
            members.append(Member(name, model.eval(), meta, Path(path)))
        return cls(members)

    def _describe(self, member: Member) -> str:
        return f"{member.name} ({member.path})" if member.path else member.name

    def _check_inputs_agree(self) -> None:
        first = self.members[0]
        for other in self.members[1:]:
            for key in INPUT_KEYS:
                if first.meta.get(key) != other.meta.get(key):
                    raise CheckpointError(
                        f"Cannot ensemble {self._describe(first)} with {self._describe(other)}: "
                        f"{key} is {first.meta.get(key)!r} for the first and "
                        f"{other.meta.get(key)!r} for the second. Members must see the same "
                        "input; use checkpoints trained with the same image size, classes and "
                        "normalisation, or retrain one of them."
                    )

    def _check_not_identical(self) -> None:
        seen: dict[str, Member] = {}
        for member in self.members:
            twin = seen.setdefault(weights_fingerprint(member.model), member)
            if twin is not member:
                raise ValueError(
                    f"{self._describe(twin)} and {self._describe(member)} have identical "
                    "weights. Averaging identical models gives back the same predictions, so "
                    "it is one model, not an ensemble: use another architecture or seed."
                )

    @property
    def image_size(self) -> int:
        return int(self.members[0].meta["image_size"])

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([member.threshold for member in self.members])

    def member_probabilities(self, images: ImageSet | torch.Tensor, batch_size: int = 256):
        """P(PNEUMONIA) of every member: float64 array of shape (members, images)."""
        pixels = images.images if isinstance(images, ImageSet) else images
        return np.stack(
            [
                predict_proba(m.model, pixels, batch_size, image_size=self.image_size)
                for m in self.members
            ]
        )

    def predict_proba(self, images: ImageSet | torch.Tensor) -> np.ndarray:
        """Soft vote: the members' mean probability of PNEUMONIA per image."""
        return soft_vote(self.member_probabilities(images))

    def predict(self, images: ImageSet | torch.Tensor, tie: str = "positive") -> np.ndarray:
        """Hard vote: 0/1 per image, the majority of the members' thresholded votes."""
        return hard_vote(self.member_probabilities(images), self.thresholds, tie)


def _row(name: str, y_val, p_val, y_test, p_test, threshold: float) -> dict:
    test = binary_metrics(y_test, p_test, threshold)
    return {
        "model": name,
        "val AUROC": auroc(y_val, p_val),
        "test AUROC": test["auroc"],
        "threshold": threshold,
        "test accuracy": test["accuracy"],
        "test sensitivity": test["sensitivity"],
        "test specificity": test["specificity"],
        "test balanced acc.": test["balanced_accuracy"],
    }


def member_scores(
    ensemble: Ensemble, val: ImageSet, test: ImageSet, probabilities: tuple | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The members' probabilities on val and on test: computed, or `probabilities` checked.

    Pass `probabilities=(p_val, p_test)` from `member_probabilities` to skip running them again.
    """
    if probabilities is None:
        return ensemble.member_probabilities(val), ensemble.member_probabilities(test)
    p_val, p_test = (np.asarray(p, dtype=np.float64) for p in probabilities)
    members = len(ensemble.members)
    expected = [(members, len(val)), (members, len(test))]
    if [p_val.shape, p_test.shape] != expected:
        raise ValueError(
            f"probabilities must be (p_val, p_test) of shapes {expected[0]} and {expected[1]} "
            f"(members, images), got {p_val.shape} and {p_test.shape}: compute them with "
            "ensemble.member_probabilities(val) and ensemble.member_probabilities(test)."
        )
    return p_val, p_test


def compare_members(
    ensemble: Ensemble,
    val: ImageSet,
    test: ImageSet,
    tie: str = "positive",
    probabilities: tuple | None = None,
) -> pd.DataFrame:
    """One row per member, then the soft and the hard vote, scored on validation and test.

    Members use their own thresholds; the soft vote's threshold is chosen on validation (Youden).
    The hard vote is scored by its vote share, whose AUROC is coarse (members + 1 levels), at a
    threshold of one half, so `tie` decides the 50/50 splits. `probabilities`: see member_scores.
    """
    cut = majority_cut(tie)
    p_val, p_test = member_scores(ensemble, val, test, probabilities)
    y_val, y_test = val.labels.numpy(), test.labels.numpy()
    rows = [
        _row(m.name, y_val, p_val[i], y_test, p_test[i], m.threshold)
        for i, m in enumerate(ensemble.members)
    ]
    soft_val, soft_test = soft_vote(p_val), soft_vote(p_test)
    rows.append(
        _row("soft vote", y_val, soft_val, y_test, soft_test, choose_threshold(y_val, soft_val))
    )
    share_val = vote_share(p_val, ensemble.thresholds)
    share_test = vote_share(p_test, ensemble.thresholds)
    rows.append(_row(f"hard vote (tie={tie})", y_val, share_val, y_test, share_test, cut))
    return pd.DataFrame(rows).set_index("model")


def soft_vote_against_best(
    ensemble: Ensemble,
    val: ImageSet,
    test: ImageSet,
    probabilities: tuple | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[str, pd.DataFrame]:
    """The member with the best validation AUROC, and the soft vote minus it on test, per metric.

    The member is picked on validation, never on test: the member that scores best on test is
    partly the luckiest one there, and beating it would be judged on the set that picked it.
    It keeps its own threshold; the soft vote's is chosen on validation, as in `compare_members`.
    The difference is a paired bootstrap over the test patients (`paired_difference` with
    `groups=test.patients`; over images where the source records no patient ids, and the verdict
    names `test.unit`). Returns the member's name and a table: difference, low, high, verdict.
    """
    p_val, p_test = member_scores(ensemble, val, test, probabilities)
    y_val, y_test = val.labels.numpy(), test.labels.numpy()
    best = int(np.argmax([auroc(y_val, p) for p in p_val]))  # the first one on a tie
    name = ensemble.members[best].name
    soft_threshold = choose_threshold(y_val, soft_vote(p_val))
    result = paired_difference(
        y_test,
        p_test[best],
        soft_vote(p_test),
        ensemble.members[best].threshold,
        soft_threshold,
        n_boot=n_boot,
        seed=seed,
        groups=test.patients,
    )
    rows = {
        metric: [d, low, high, difference_verdict(low, high, "soft vote", name, unit=test.unit)]
        for metric, (d, low, high) in result.items()
    }
    columns = ["soft vote - member", "low", "high", "verdict"]
    return name, pd.DataFrame.from_dict(rows, orient="index", columns=columns)
