"""The operating-point explorer of notebooks 04 and 08: sliders for the threshold and the
prevalence (and, in 08, a choice of model) over a model's scores, showing what
`metrics.operating_point` computes. The widget only wires those functions to the controls.

Where no front end draws widgets (nbval, `make course`, the website, a viewer of the saved
notebook), `show_explorer` has already printed the table at the default settings, so the numbers
are tested and kept; in JupyterLab, Jupyter Notebook and Colab the controls appear under it. The
controls are ipywidgets' core ones (a slider, a dropdown, an output area), which Colab's front end
draws with the ipywidgets 7 it preinstalls as well as with 8.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from medtl_helpers.metrics.operating_point import operating_point, operating_table

SHOWN = ("set", "tn", "fp", "fn", "tp", "sensitivity", "specificity", "ppv", "npv")
TABLE_CLASS = "medtl-operating-point"  # the browser test finds the live table by this class


@dataclass
class Scores:
    """One model's scores on one or more labelled sets, the threshold it uses by default, and the
    thresholds marked on its ROC curve (name -> threshold)."""

    sets: dict[str, tuple[ArrayLike, ArrayLike]]
    threshold: float
    marks: dict[str, float] = field(default_factory=dict)


def explorer_table(scores: Scores, threshold: float, prevalence: float) -> pd.DataFrame:
    """The explorer's table: `operating_table` of every set at `threshold`, PPV and NPV at
    `prevalence`, in the columns the explorer shows."""
    return operating_table(scores.sets, threshold, prevalence)[list(SHOWN)]


def table_text(scores: Scores, threshold: float, prevalence: float, name: str = "") -> str:
    """The table as text, under a line that says the settings it was computed at."""
    model = f"{name}, " if name else ""
    head = f"{model}threshold {threshold:.3f}, PPV and NPV at a prevalence of {prevalence:.2f}:"
    table = explorer_table(scores, threshold, prevalence)
    return head + "\n" + table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def table_html(scores: Scores, threshold: float, prevalence: float) -> str:
    """The table as HTML with class TABLE_CLASS, under a caption that says its settings; each
    cell's `data-column` names its column."""
    table = explorer_table(scores, threshold, prevalence)
    head = "".join(f"<th>{c}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f'<td data-column="{c}">{_cell(v)}</td>' for c, v in row.items()) + "</tr>"
        for _, row in table.iterrows()
    )
    caption = f"threshold {threshold:.3f}, PPV and NPV at a prevalence of {prevalence:.2f}"
    return f'<table class="{TABLE_CLASS}"><caption>{caption}</caption><tr>{head}</tr>{rows}</table>'


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "undefined" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def roc_figure(scores: Scores, threshold: float, ax=None):
    """Each set's ROC curve with its point at `threshold` (a filled circle) and the marked
    thresholds (open symbols) on the first set's curve; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, (y, p) in scores.sets.items():
        fpr, tpr, _ = roc_curve(np.asarray(y), np.asarray(p, dtype=float))
        (line,) = ax.plot(fpr, tpr, label=name)
        point = operating_point(y, p, threshold)
        ax.plot(point["fpr"], point["sensitivity"], "o", color=line.get_color(), markersize=8)
    first_y, first_p = next(iter(scores.sets.values()))
    for (label, value), symbol in zip(scores.marks.items(), ("s", "^", "D", "v")):
        point = operating_point(first_y, first_p, value)
        ax.plot(point["fpr"], point["sensitivity"], symbol, mfc="none", color="black",
                label=f"{label} ({value:.3f})")  # fmt: skip
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    ax.set(xlabel="1 − specificity (false-positive rate)", ylabel="sensitivity",
           title=f"threshold {threshold:.3f}", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))  # fmt: skip
    ax.legend(loc="lower right", fontsize=8)
    return ax


def show_explorer(choices: Mapping[str, Scores] | Scores, prevalence: float, describe: str = ""):
    """Print the table at the default settings, then show the controls where a front end can.

    `choices` is one `Scores`, or several by name (08: the source model, AdaBN, ...), the first
    being the default. `prevalence` is the prevalence slider's starting value. Returns the
    `Explorer` (None when ipywidgets cannot be imported, which is said).
    """
    choices = {"": choices} if isinstance(choices, Scores) else dict(choices)
    name, first = next(iter(choices.items()))
    print(describe or "The table at the default settings (move the controls below to change them):")
    print(table_text(first, first.threshold, prevalence, name))
    try:
        from medtl_helpers.evaluation.explorer_widget import Explorer
    except ImportError as err:
        print(f"(no controls: {err}; pip install ipywidgets to move them)")
        return None
    explorer = Explorer(choices, prevalence)
    explorer.show()
    return explorer
