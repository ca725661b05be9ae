"""Output where stderr is no terminal (a log file, a pipe, CI): whole lines, and a long
job that says how far it is now and then (issue 20 item 16)."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from rie_cli.progress import ProgressRecords, frame_progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _records(total: int, steps: list[tuple[float, int]]) -> list[str]:
    """Lines a ProgressRecords prints for (seconds later, items done) steps."""
    out = io.StringIO()
    clock = Clock()
    with ProgressRecords(console=Console(file=out, width=60), get_time=clock, disable=True) as bar:
        task = bar.add_task("predicting frames", total=total)
        for seconds, items in steps:
            clock.now += seconds
            bar.advance(task, items)
    return out.getvalue().splitlines()


def test_a_long_job_prints_a_line_per_tenth_at_most_every_five_seconds():
    lines = _records(48_000, [(6.0, 4_800)] * 10)
    assert len(lines) == 10
    assert lines[0] == "predicting frames: 10% (4,800/48,000 frames, 800 frames/s, 6 s)"
    assert lines[-1] == "predicting frames: 100% (48,000/48,000 frames, 800 frames/s, 60 s)"
    # One line wider than the console (60 columns): not wrapped.
    assert all(len(line) > 60 for line in lines[-1:])


def test_a_short_job_prints_nothing_and_fast_steps_are_merged():
    assert _records(1_000, [(0.1, 100)] * 10) == []  # done in a second
    lines = _records(1_000, [(1.0, 50)] * 20)  # 5 % per second: a line every 5 s, at 10 % steps
    assert [line.split(":")[1].split("(")[0].strip() for line in lines] == ["25%", "50%", "75%", "100%"]


def test_records_only_where_the_bar_is_not_drawn():
    piped = Console(file=io.StringIO())
    assert isinstance(frame_progress(piped, records=True), ProgressRecords)
    assert not isinstance(frame_progress(piped), ProgressRecords)  # training: its epoch lines are the records
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert not isinstance(frame_progress(terminal, records=True), ProgressRecords)


def test_epoch_lines_are_not_wrapped_when_stderr_is_piped():
    """The CLI's console (cli/common.py) wrapped a 130-column epoch line at 80 columns, mid-field."""
    code = ("from rie_cli.cli.common import console; from rie_cli.training.log import ConsoleReporter; "
            "ConsoleReporter(console).end_epoch({'epoch': 12, 'train_mpjpe': 41.25, 'train_eval_mpjpe': 38.5, "
            "'val_mpjpe': 52.75, 'lr': 8.1e-4, 'epoch_time_s': 812.4, 'frames_per_s': 20457}, 80, True)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PATH": "", "COLUMNS": "80", **_python_env()})
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) > 80, result.stderr
    assert lines[0].startswith("epoch  12/80") and lines[0].endswith("(20457 frames/s)  best")


def _python_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME", "VIRTUAL_ENV")}
