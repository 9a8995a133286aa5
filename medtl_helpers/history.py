"""What `fit` records per epoch, and which epoch was best."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    """One row per epoch (stage, losses, val AUROC, lr, seconds, images/s) plus the best epoch."""

    rows: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_auroc: float = -1.0
    threshold: float | None = None

    def add(self, **values: object) -> dict:
        # plain floats, so checkpoints holding the history load with weights_only=True
        plain = {k: float(v) if hasattr(v, "item") else v for k, v in values.items()}
        row = {"epoch": len(self.rows) + 1, **plain}
        self.rows.append(row)
        return row

    def mark_best(self, epoch: int, score: float, threshold: float) -> None:
        self.best_epoch, self.best_auroc = int(epoch), float(score)
        self.threshold = float(threshold)

    def column(self, name: str) -> list:
        return [row[name] for row in self.rows]

    @staticmethod
    def line(row: dict) -> str:
        return (
            f"epoch {row['epoch']:>2} [{row['stage']}]  train loss {row['train_loss']:.4f}  "
            f"val loss {row['val_loss']:.4f}  val AUROC {row['val_auroc']:.4f}  "
            f"{row['seconds']:.1f} s  {row['images_per_s']:.0f} img/s"
        )

    def table(self) -> str:
        return "\n".join(self.line(row) for row in self.rows)

    def state(self) -> dict:
        return {
            "rows": self.rows,
            "best_epoch": self.best_epoch,
            "best_auroc": self.best_auroc,
            "threshold": self.threshold,
        }

    def load_state(self, state: dict) -> None:
        self.rows = [dict(row) for row in state["rows"]]
        self.best_epoch, self.best_auroc = state["best_epoch"], state["best_auroc"]
        self.threshold = state["threshold"]

    def plot(self, title: str = "", axes=None):
        from medtl_helpers.plots import plot_history

        return plot_history(self.rows, title, axes)
