"""Progress bars that still say something in a saved notebook.

In JupyterLab or Colab, `tqdm.auto` draws a widget. A widget's live state is not saved with the
notebook, so an executed copy read without widgets (on GitHub, nbviewer or the course website)
shows training frozen at "0/138". A headless run (`make course`, `make test`, the grader) has
nobody watching the bar move, so there every bar writes one plain line when it ends instead:

    train 1/3: 100%|██████████| 138/138 [00:12<00:00, 11.2it/s]

Environment variable:
    MEDTL_PROGRESS    auto | text (default: auto = tqdm.auto, a widget in Jupyter; text = one final
                      line per bar, set by the course runner, tools/run_tests.sh and the grader)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm import auto, std

PROGRESS_MODES = ("auto", "text")


class _Nowhere:
    """Where a text bar draws while it runs: nothing is shown until it ends."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = encoding  # tqdm draws with █ where the real output takes unicode

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class FinalLine(std.tqdm):
    """A tqdm bar that prints only its final state, once, when it closes (even with leave=False).

    A loop that stops early (an exception, a `break`) prints where it stopped, such as 12/138.
    """

    def __init__(self, *args, file=None, **kwargs) -> None:
        self.final_file = file or sys.stdout
        # smoothing=0: the rate on the final line is the average over the whole loop
        kwargs["smoothing"] = 0
        super().__init__(*args, file=_Nowhere(getattr(self.final_file, "encoding", None)), **kwargs)

    def close(self) -> None:
        if not self.disable:
            print(self, file=self.final_file, flush=True)
        super().close()


def progress_mode() -> str:
    """MEDTL_PROGRESS: "auto" (also when unset) or "text"; any other value is a mistake."""
    mode = os.environ.get("MEDTL_PROGRESS", "").strip().lower() or "auto"
    if mode not in PROGRESS_MODES:
        raise ValueError(
            f"MEDTL_PROGRESS={mode!r} is not one of {', '.join(PROGRESS_MODES)}: "
            "set MEDTL_PROGRESS=text for one line per progress bar, or unset it for tqdm's bars."
        )
    return mode


def progress_bar(iterable: Iterable | None = None, **tqdm_kwargs) -> std.tqdm:
    """`tqdm(iterable, **tqdm_kwargs)`: tqdm.auto's bar, or its last line (MEDTL_PROGRESS=text)."""
    bar = FinalLine if progress_mode() == "text" else auto.tqdm
    return bar(iterable, **tqdm_kwargs)
