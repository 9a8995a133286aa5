"""Few-shot settings and methods chosen on a validation site (notebook 09), never on the test sites.

Every choice here scores its candidates by the query error (1 − accuracy) over the same
validation episodes (`few_shot_error`) and keeps the lowest, the first listed winning a tie
(`selection.choose_setting`): the learning rates of the methods that take gradient steps,
logistic regression's C (`logistic_regression`), and which method of a group stands for it in a
comparison. Notebook 09 chooses Reptile's rate, its control's rate and the representatives of
section 8's comparison with the literature by the **twin mean** (`twin=True`): each episode's
accuracy averaged with that of its swapped twin, so that the label order a start's weights favour
does not pick the winner; the prototypes and logistic regression, which read only the support
set, score the same either way. A pair chosen this way is then tested on episodes that chose
nothing; a pair chosen by its test means would be tested on the rows that flattered it (the
winner's curse).
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import partial

import torch
from sklearn.linear_model import LogisticRegression

from medtl_helpers.adaptation.episodes import Episode, FeaturePool
from medtl_helpers.adaptation.few_shot import Method, score_method, score_twins
from medtl_helpers.adaptation.selection import choose_setting


def logistic_regression(
    support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, c: float = 1.0
) -> torch.Tensor:
    """A few-shot method: scikit-learn's logistic regression with an L2 penalty, fit on the support.

    `c` is scikit-learn's C, the inverse of the penalty's strength; 1 is its default, not a tuned
    value. How strong a given C is depends on the features' scale: dividing the features by s
    gives the same fit as keeping them and dividing C by s² (the weights grow by s to compensate,
    and the penalty on them by s²). Notebook 09 divides its features by `SCALE`, so it chooses C
    on the validation site (`logistic_with_c`, `choose_on_validation`), as it does the learning
    rates.
    """
    model = LogisticRegression(C=c, max_iter=1000).fit(support.numpy(), labels.numpy())
    return torch.as_tensor(model.predict_proba(query.numpy()), dtype=torch.float32)


def logistic_with_c(c: float) -> Method:
    """`logistic_regression` with its C fixed, as a few-shot method(support, labels, query)."""
    return partial(logistic_regression, c=c)


def few_shot_error(
    method: Method, pool: FeaturePool, episodes: list[Episode], twin: bool = False
) -> float:
    """1 − the mean query accuracy of a few-shot method over validation `episodes` of `pool`.

    With `twin`, each episode's accuracy is the mean of it and its swapped twin (`score_twins`).
    That mean does not depend on which label order the method's weights favour (a meta-trained
    start's lean): a learner and its mirror image, the same weights with the two labels' outputs
    exchanged, get the same error. It removes the sign of a lean, not every effect of it; for a
    method that ignores the support set it is exactly 0.5.
    """
    return 1 - (score_twins if twin else score_method)(method, pool, episodes)["accuracy"]


def choose_on_validation(
    candidates: dict[Hashable, Method],
    pool: FeaturePool,
    episodes: list[Episode],
    twin: bool = False,
) -> tuple[Hashable, dict[Hashable, float]]:
    """(the chosen key, every candidate's error): the lowest `few_shot_error`, first on a tie.

    The keys are settings (a C, a learning rate) or method names. List settings from the least
    to the most adaptation (C from small to large), so that a tie keeps the more constrained one.
    """
    errors = {
        key: few_shot_error(method, pool, episodes, twin) for key, method in candidates.items()
    }
    return choose_setting(errors), errors
