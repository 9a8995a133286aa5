"""The explorer's controls (ipywidgets): a threshold slider, a prevalence slider and, with several
models, a dropdown; every change redraws the table and the ROC figure of `evaluation.explorer`.
Only core widgets, which ipywidgets 7 (Colab's) and 8 both provide."""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import HTML, display

from medtl_helpers.evaluation.explorer import Scores, roc_figure, table_html


class ControlsBox(widgets.VBox):
    """A VBox whose text form, what a page without widgets shows (the website, nbconvert), says
    what it is instead of listing its children."""

    def __repr__(self) -> str:
        return "(the explorer's controls: run the notebook in JupyterLab or Colab to move them)"


class Explorer:
    """The controls and what they show; `update()` redraws, `show()` displays them."""

    def __init__(self, choices: Mapping[str, Scores], prevalence: float):
        self.choices = dict(choices)
        first = next(iter(self.choices.values()))
        style = {"description_width": "90px"}
        layout = widgets.Layout(width="460px")
        self.threshold = widgets.FloatSlider(
            value=first.threshold, min=0.0, max=1.0, step=0.001, readout_format=".3f",
            description="threshold", continuous_update=False, style=style, layout=layout,
        )  # fmt: skip
        self.prevalence = widgets.FloatSlider(
            value=prevalence, min=0.01, max=0.99, step=0.01, readout_format=".2f",
            description="prevalence", continuous_update=False, style=style, layout=layout,
        )  # fmt: skip
        self.model = widgets.Dropdown(
            options=list(self.choices), description="model", style=style, layout=layout
        )
        self.output = widgets.Output()
        self.threshold.observe(self.update, names="value")
        self.prevalence.observe(self.update, names="value")
        self.model.observe(self._new_model, names="value")
        controls = [self.model] if len(self.choices) > 1 else []
        self.box = ControlsBox([*controls, self.threshold, self.prevalence, self.output])

    @property
    def scores(self) -> Scores:
        return self.choices[self.model.value]

    def _new_model(self, _change=None) -> None:
        """A new model starts at its own threshold (which redraws), and redraws if unchanged."""
        if self.threshold.value != self.scores.threshold:
            self.threshold.value = self.scores.threshold
        else:
            self.update()

    def update(self, _change=None) -> None:
        with self.output:
            self.output.clear_output(wait=True)
            display(HTML(table_html(self.scores, self.threshold.value, self.prevalence.value)))
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
            roc_figure(self.scores, self.threshold.value, ax=ax)
            display(fig)
            plt.close(fig)

    def show(self) -> None:
        self.update()
        display(self.box)
