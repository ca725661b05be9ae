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


def frame_progress(console: Console, *, unit: str = "frames", transient: bool = True,
                   records: bool = False) -> Progress:
    """A progress bar: `description  bar  done/total  <unit>/s  elapsed  ETA <remaining>`.

    Off where stderr is not a terminal (a log file, a pipe, CI): there a transient bar
    draws nothing, but its stop still wrote an empty line, so an error line came after
    a blank one. With `records`, a job there prints a plain line now and then instead
    (`ProgressRecords`): a long export or evaluation is not silent until its end.
    """
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               RateColumn(unit), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    disable = transient and not console.is_terminal
    kind = ProgressRecords if records and disable else Progress
    progress = kind(*columns, console=console, transient=transient, disable=disable)
    if isinstance(progress, ProgressRecords):
        progress.unit = unit
    return progress


class ProgressRecords(Progress):
    """A progress bar that draws nothing and prints one plain line per `step` of the
    work done, at most one per `interval` seconds (jobs shorter than that print none):
    `predicting frames: 40% (19,200/48,000 frames, 1,234 frames/s, 16 s)`."""

    unit = "frames"
    step = 0.1  # share of the total between two lines
    interval = 5.0  # seconds, at least, between two lines

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_record: dict = {}  # task id -> (share step printed, time printed)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_record(task_id)

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_record(task_id)

    def _maybe_record(self, task_id) -> None:
        task = self._tasks.get(task_id)
        if task is None or not task.total or task.start_time is None:
            return
        share = min(task.completed / task.total, 1.0)
        level = int(share / self.step + 1e-9)
        now = self.get_time()
        last_level, last_time = self._last_record.get(task_id, (0, task.start_time))
        if level <= last_level or now - last_time < self.interval:
            return
        self._last_record[task_id] = (level, now)
        elapsed = now - task.start_time
        rate = f", {task.completed / elapsed:,.0f} {self.unit}/s" if elapsed > 0 else ""
        self.console.print(f"{task.description}: {share:.0%} ({task.completed:,.0f}/{task.total:,.0f} {self.unit}"
                           f"{rate}, {elapsed:.0f} s)", highlight=False, markup=False, soft_wrap=True)
