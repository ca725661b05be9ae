"""The one progress-bar style of every long job: count, frames/s, elapsed, ETA (on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items (frames, windows, sequences) per second of the task so far."""

    def __init__(self, unit: str = "frames"):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        text = f"    - {self.unit}/s" if speed is None else f"{speed:7,.0f} {self.unit}/s"
        return Text(text, style="progress.data.speed")


def frame_progress(console: Console, *, unit: str = "frames", transient: bool = True) -> Progress:
    """A progress bar: `description  bar  done/total  <unit>/s  elapsed  ETA <remaining>`.

    Off where stderr is not a terminal (a log file, a pipe, CI): there a transient bar
    draws nothing, but its stop still wrote an empty line, so an error line came after
    a blank one.
    """
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        RateColumn(unit), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=transient, disable=transient and not console.is_terminal,
    )
