"""Measuring a shift before adapting to it: a domain classifier, and the head's log-odds.

A domain classifier answers "can the source model's own features tell the two sites apart?":
logistic regression on frozen features, source images labelled 0 and target images 1, scored by
cross-validated AUROC with whole patients in one fold. 0.5 means the features cannot tell the
sites apart; near 1 means every image gives its site away. It says nothing about whether the
*pneumonia* decision suffers: that needs target labels.

The same classifier's error ε gives the proxy A-distance of Ben-David et al. (NIPS 19, 2007; 2010),
2(1 − 2ε): 0 when the sites cannot be told apart (ε = 0.5), 2 when every image can (ε = 0).
Ganin et al. (2016) report it before and after DANN (`adaptation.dann`), with a linear SVM where
this uses the logistic regression above.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from medtl_helpers.metrics import auroc, bootstrap_ci
from medtl_helpers.models import model_device, split_backbone_head


def domain_predictions(
    source_features: np.ndarray,
    target_features: np.ndarray,
    source_patients: list[str],
    target_patients: list[str],
    folds: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Site labels (source 0, target 1) and cross-validated P(target) of a logistic regression.

    Folds keep each patient's images together and both sites in every fold, so an image is
    never scored by a classifier that saw its patient.
    """
    x = np.concatenate([source_features, target_features])
    y = np.r_[np.zeros(len(source_features)), np.ones(len(target_features))].astype(int)
    groups = site_groups(source_patients, target_patients)
    if len(groups) != len(x):
        raise ValueError(f"{len(x)} feature rows but {len(groups)} patient ids")
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(1):  # small problems: more BLAS threads only wait for each other
        p = cross_val_predict(classifier, x, y, groups=groups, cv=cv, method="predict_proba")
    return y, p[:, 1]


def site_groups(source_patients: list[str], target_patients: list[str]) -> list[str]:
    """One id per image of both sites, "source:<patient>" then "target:<patient>": a patient
    id that happens to occur at both sites still names two children."""
    return [f"source:{p}" for p in source_patients] + [f"target:{p}" for p in target_patients]


def domain_auroc(
    source_features: np.ndarray,
    target_features: np.ndarray,
    source_patients: list[str],
    target_patients: list[str],
    folds: int = 5,
    seed: int = 0,
) -> float:
    """Cross-validated AUROC of a logistic regression telling target (1) from source (0).

    The predictions are `domain_predictions`' (patient-grouped folds).
    """
    args = (source_features, target_features, source_patients, target_patients, folds, seed)
    return auroc(*domain_predictions(*args))


def domain_auroc_interval(
    source_features: np.ndarray,
    target_features: np.ndarray,
    source_patients: list[str],
    target_patients: list[str],
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(AUROC, low, high) of `domain_auroc`'s classifier, with a 95% interval that resamples
    whole patients of both sites."""
    args = (source_features, target_features, source_patients, target_patients)
    y, p = domain_predictions(*args, seed=seed)
    groups = site_groups(source_patients, target_patients)
    low, high = bootstrap_ci(y, p, 0.5, n_boot=n_boot, seed=seed, groups=groups)["auroc"]
    return auroc(y, p), low, high


def proxy_a_distance(error: float) -> float:
    """2(1 − 2ε), the proxy A-distance of Ben-David et al. (2007, 2010) for a domain error ε.

    0 at ε = 0.5 (the sites cannot be told apart), 2 at ε = 0 (every image gives its site
    away); an ε above 0.5 is a classifier worse than chance on held-out images, noise around 0.
    """
    if not 0.0 <= error <= 1.0:
        raise ValueError(f"a domain classifier's error lies in [0, 1], got {error}")
    return 2.0 * (1.0 - 2.0 * error)


def domain_separation(
    source_features: np.ndarray,
    target_features: np.ndarray,
    source_patients: list[str],
    target_patients: list[str],
    folds: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """How well the features tell the sites apart: domain AUROC, error ε and proxy A-distance.

    ε is the balanced error, the mean of the two sites' error rates, with an image called target
    when P(target) exceeds the target's share of the images (where a calibrated classifier's
    balanced error is lowest). With samples of equal size, as in Ben-David et al., it is the
    plain error; with unequal ones it does not reward calling every image the larger site.
    """
    args = (source_features, target_features, source_patients, target_patients, folds, seed)
    y, p = domain_predictions(*args)
    called = p > y.mean()
    error = 0.5 * (float(called[y == 0].mean()) + float((~called[y == 1]).mean()))
    return {
        "domain_auroc": auroc(y, p),
        "domain_error": error,
        "proxy_a_distance": proxy_a_distance(error),
    }


def logit_shift(model: nn.Module, source_features, target_features) -> dict[str, float]:
    """How the source head's log-odds move at the target: the change of their mean and sd.

    A shift of the mean moves the images' log-odds the same way on average; only images near
    the threshold cross it (the operating point breaks while the ranking, and so AUROC, may
    survive). The mean says nothing about whether every image moved alike. CORAL aligns only
    the spread.
    """
    head = split_backbone_head(model)[1]
    device = model_device(head)
    odds = {}
    with torch.no_grad():
        for name, feats in (("source", source_features), ("target", target_features)):
            logits = head(torch.as_tensor(np.asarray(feats), dtype=torch.float32, device=device))
            odds[name] = (logits[:, 1] - logits[:, 0]).float().cpu().numpy()
    return {
        "mean_change": float(odds["target"].mean() - odds["source"].mean()),
        "sd_ratio": float(odds["target"].std() / odds["source"].std()),
    }
