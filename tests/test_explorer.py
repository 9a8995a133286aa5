"""evaluation.explorer and explorer_widget: the explorer shows what operating_point computes, prints
its table where no front end draws widgets, and its controls redraw what they change."""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pytest

from medtl_helpers.evaluation import explorer_widget
from medtl_helpers.evaluation.explorer import (
    SHOWN,
    TABLE_CLASS,
    Scores,
    explorer_table,
    roc_figure,
    show_explorer,
    table_html,
    table_text,
)
from medtl_helpers.metrics.operating_point import operating_point

matplotlib.use("Agg")
rng = np.random.default_rng(0)
Y_VAL, Y_TEST = rng.integers(0, 2, 80), rng.integers(0, 2, 60)
P_VAL = np.clip(0.5 * Y_VAL + rng.uniform(0, 0.6, 80), 0, 1)
P_TEST = np.clip(0.4 * Y_TEST + rng.uniform(0, 0.6, 60), 0, 1)
MODEL = Scores({"validation": (Y_VAL, P_VAL), "test": (Y_TEST, P_TEST)}, 0.42, {"Youden's J": 0.5})


def test_the_table_is_operating_point_for_every_set():
    table = explorer_table(MODEL, 0.42, 0.05)
    assert list(table.columns) == list(SHOWN) and list(table["set"]) == ["validation", "test"]
    for (_, row), (y, p) in zip(table.iterrows(), MODEL.sets.values()):
        point = operating_point(y, p, 0.42, prevalence=0.05)
        assert row["sensitivity"] == point["sensitivity"] and row["ppv"] == point["ppv"]
        assert row["tp"] == point["tp"] and row["fp"] == point["fp"]


def test_the_text_says_its_settings_and_the_html_names_its_columns():
    text = table_text(MODEL, 0.42, 0.05, "source model")
    assert text.splitlines()[0] == (
        "source model, threshold 0.420, PPV and NPV at a prevalence of 0.05:"
    )
    test_row = explorer_table(MODEL, 0.42, 0.05).iloc[1]
    assert f"{test_row['specificity']:.3f}" in text.splitlines()[3]
    html = table_html(MODEL, 0.42, 0.05)
    assert f'<table class="{TABLE_CLASS}"><caption>threshold 0.420, PPV and NPV at a ' in html
    cells = re.findall(r'data-column="sensitivity">([^<]*)<', html)
    assert cells == [f"{operating_point(y, p, 0.42)['sensitivity']:.3f}" for y, p in
                     MODEL.sets.values()]  # fmt: skip


def test_the_figure_marks_each_point_on_its_curve():
    ax = roc_figure(MODEL, 0.42)
    points = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines
              if line.get_marker() == "o"]  # fmt: skip
    expected = [operating_point(y, p, 0.42) for y, p in MODEL.sets.values()]
    assert points == [(e["fpr"], e["sensitivity"]) for e in expected]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["validation", "test", "Youden's J (0.500)"]


def test_show_explorer_prints_the_default_table_and_returns_the_controls(capsys):
    explorer = show_explorer(MODEL, 0.05)
    printed = capsys.readouterr().out
    assert table_text(MODEL, 0.42, 0.05) in printed
    assert isinstance(explorer, explorer_widget.Explorer)
    assert explorer.threshold.value == pytest.approx(0.42)
    assert explorer.prevalence.value == pytest.approx(0.05)
    assert explorer.model not in explorer.box.children  # one model: no dropdown
    assert repr(explorer.box).startswith("(the explorer's controls: run the notebook")


def test_the_controls_redraw_with_their_values_and_a_model_brings_its_threshold(monkeypatch):
    shown = []
    monkeypatch.setattr(explorer_widget, "table_html", lambda s, t, p: shown.append((s, t, p)))
    adabn = Scores({"new site": (Y_TEST, P_TEST)}, 0.6)
    explorer = explorer_widget.Explorer({"source model": MODEL, "AdaBN": adabn}, 0.3)
    assert explorer.model in explorer.box.children
    explorer.threshold.value = 0.25
    explorer.prevalence.value = 0.1
    explorer.model.value = "AdaBN"
    assert [(s is adabn, t, p) for s, t, p in shown] == [
        (False, 0.25, 0.3),
        (False, 0.25, 0.1),
        (True, 0.6, 0.1),
    ]
