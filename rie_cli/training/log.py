"""What a run tells people and programs: the progress bar, one line per epoch, and the logs.

Every epoch the whole history is rewritten from the checkpoint's metrics (a few rows),
so the logs always agree with `last.pt`, also after a kill and a resume:
    log.csv, log.jsonl    one row per epoch (mm, seconds, windows/s)
    curves.png            training curves (matplotlib, Agg backend: no display needed)
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from rie_cli.atomic import atomic_path, write_text_atomic
from rie_cli.progress import frame_progress

COLUMNS = ("epoch", "train_mpjpe", "train_eval_mpjpe", "val_mpjpe", "lr", "bn_momentum",
           "epoch_time_s", "train_time_s", "frames_per_s", "batch_prep_share")
CSV_FILE, JSONL_FILE, CURVES_FILE = "log.csv", "log.jsonl", "curves.png"


def _json_value(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_logs(directory: Path, history: list[dict], error_label: str = "MPJPE (mm)") -> None:
    """The CSV/JSONL logs and the curves; `error_label` names the error axis (a
    trajectory run's "MPJPE" is its root position error)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    write_text_atomic(directory / CSV_FILE, buf.getvalue())
    lines = [json.dumps({k: _json_value(row.get(k)) for k in COLUMNS}) for row in history]
    write_text_atomic(directory / JSONL_FILE, "".join(line + "\n" for line in lines))
    plot_curves(history, directory / CURVES_FILE, error_label)


def plot_curves(history: list[dict], path: Path, error_label: str = "MPJPE (mm)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_err, ax_lr) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    for key, label in (("train_mpjpe", "train"), ("train_eval_mpjpe", "train (eval mode)"),
                       ("val_mpjpe", "validation")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax_err.plot(epochs, [math.nan if v is None else v for v in values], marker=".", label=label)
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel(error_label)
    ax_err.grid(alpha=0.3)
    ax_err.legend()
    ax_lr.plot(epochs, [row["lr"] for row in history], marker=".", color="tab:gray")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_yscale("log")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def format_epoch_line(row: dict, epochs: int, best: bool) -> str:
    def mm(key):
        v = row.get(key)
        return "   -   " if v is None else f"{v:7.2f}"

    return (
        f"epoch {row['epoch']:>3}/{epochs}  train {mm('train_mpjpe')} mm  "
        f"train(eval) {mm('train_eval_mpjpe')} mm  val {mm('val_mpjpe')} mm  "
        f"lr {row['lr']:.3e}  {row['epoch_time_s']:.1f} s  ({row['frames_per_s']:.0f} frames/s)"
        + ("  [green]best[/]" if best else "")
    )


class Reporter:
    """Prints nothing: what processes other than rank 0 use, and what tests may pass."""

    def message(self, text: str) -> None:
        pass

    def start_epoch(self, epoch: int, epochs: int, windows: int) -> None:
        pass

    def advance(self, windows: int) -> None:
        pass

    def start_evaluation(self, windows: int) -> None:
        pass

    def end_epoch(self, row: dict, epochs: int, best: bool) -> None:
        pass


class ConsoleReporter(Reporter):
    """A rich progress bar per epoch (frames/s, ETA) on a stderr console, then one line."""

    def __init__(self, console: Console):
        self.console = console
        self._progress: Progress | None = None
        self._task = None

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def _new_bar(self, description: str, total: int) -> None:
        self._stop()
        self._progress = frame_progress(self.console)
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def start_epoch(self, epoch: int, epochs: int, windows: int) -> None:
        self._new_bar(f"epoch {epoch}/{epochs}", windows)

    def advance(self, windows: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, windows)

    def start_evaluation(self, windows: int) -> None:
        self._new_bar("  evaluating", windows)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def end_epoch(self, row: dict, epochs: int, best: bool) -> None:
        self._stop()
        self.console.print(format_epoch_line(row, epochs, best), highlight=False)
