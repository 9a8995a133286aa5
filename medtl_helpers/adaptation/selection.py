"""Choosing steps, λ and learning rates without the test labels: a small labelled validation set.

Every adaptation here has knobs (how many steps, how strong a penalty or an alignment term, a
learning rate). Choosing them on the test labels would report the best of many tries as if it
were one, so they are chosen on validation images kept apart from the test ones.

What is scored depends on the caller. Notebook 08 scores the balanced validation loss, not the
validation AUROC: with a dozen validation images a good model ranks them all correctly, so AUROC
sits at 1.0 for every candidate and cannot choose, while the loss still sees probabilities that
moved the wrong way (a NORMAL image pushed towards PNEUMONIA). Notebook 09 scores the query error
(1 − accuracy) over validation episodes (`few_shot_choice.few_shot_error`); for a learner whose
weights may favour a label order, the error of the mean of each episode and its swapped twin.
`BestOnValidation` keeps the weights of the best step, `choose_setting` the best setting; both
prefer the earlier step and the first setting on a tie.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from numpy.typing import ArrayLike
from torch import nn

from medtl_helpers.metrics import auroc, labels_and_probabilities


def balanced_log_loss(y: ArrayLike, p: ArrayLike) -> float:
    """Cross-entropy of P(PNEUMONIA) with each class weighted equally, as in training."""
    y, p = labels_and_probabilities(y, p)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    losses = -np.where(y == 1, np.log(p), np.log(1 - p))
    present = [label for label in (0, 1) if (y == label).any()]
    return float(np.mean([losses[y == label].mean() for label in present]))


def validation_scores(y: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """The loss that chooses (val_loss) and the AUROC that is shown (val_auroc)."""
    return {"val_loss": balanced_log_loss(y, p), "val_auroc": auroc(y, p)}


class BestOnValidation:
    """The weights at the step with the lowest validation loss so far, and the curve of scores.

    Offer step 0 (the unadapted model) first: if no later step beats it, adapting is not worth
    it on this evidence, and the unadapted weights are what `restore` gives back.
    """

    def __init__(self) -> None:
        self.curve: list[dict[str, float]] = []
        self.loss = math.inf
        self.step: int | None = None
        self._state: dict | None = None

    def offer(self, step: int, model: nn.Module, val_loss: float, **extra: float) -> bool:
        """Record the step; keep a copy of the weights when its loss beats every earlier one."""
        self.curve.append({"step": step, "val_loss": val_loss, **extra})
        if val_loss < self.loss:
            self.loss, self.step = val_loss, step
            self._state = copy.deepcopy(model.state_dict())
            return True
        return False

    def restore(self, model: nn.Module) -> nn.Module:
        if self._state is None:
            raise RuntimeError("BestOnValidation.restore: offer at least one step first")
        model.load_state_dict(self._state)
        return model


def choose_setting(val_losses: dict) -> object:
    """The key with the lowest score (a validation loss or error); the first listed wins a tie.

    List the settings from the least to the most adaptation, ordered by how far a setting lets
    the model move from the source, so that a tie keeps the more constrained one: Deep CORAL's λ
    from 0 up (λ = 0 is the control), but L2-SP's α from the largest down (a smaller α is a
    weaker pull back to the source, so more movement).
    """
    if not val_losses:
        raise ValueError("choose_setting got no settings to choose from")
    best = min(val_losses.values())
    return next(key for key, loss in val_losses.items() if loss == best)
