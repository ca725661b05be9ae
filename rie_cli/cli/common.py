"""What every command shares: the stderr console, the error edge, option parsing helpers.

Progress, messages and tables for people go to stderr (`console`), so that machine
output (`--json -`) on stdout stays clean. A `RieError` raised anywhere in the core
becomes one red line and exit code 1 (`cli_errors`); usage errors stay Typer's exit 2.
"""

from __future__ import annotations

import functools
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.text import Text

from rie_cli.errors import RieError

console = Console(stderr=True)
# Where stderr is no terminal (a log file, a pipe, CI), a printed line is one record:
# Rich would wrap it at 80 columns, mid-field (epoch lines, wrote lines).
console.soft_wrap = not console.is_terminal
stdout_console = Console()

# --- option names: one meaning per short option, one spelling per idea -------------------
# The table docs/architecture.md ("Option names") shows; tests/test_cli_options.py walks
# every command and fails on a short option used for another long name, or on a
# command declaring an old spelling. A command takes its names from here:
# `typer.Option(*names("--subjects"), help=...)`.
SHORT_OPTIONS: dict[str, tuple[str, ...]] = {
    "-a": ("--actions", "--action"),      # which actions (prefixes), or the one action
    "-b": ("--batch-size",),              # windows per batch / forward pass
    "-c": ("--checkpoint",),              # a model checkpoint to read
    "-d": ("--data",),                    # a prepared HDF5 file (rie prepare-data)
    "-e": ("--epochs",),
    "-f": ("--format",),                  # a file format (predict's input, export model's output)
    "-k": ("--keypoints",),               # the 2D keypoints: a source in --data, or predict's file
    "-o": ("--out", "--checkpoint-dir"),  # where the command writes: its file (train: its run directory)
    "-p": ("--predictions",),             # a predictions file to read
    "-r": ("--resume",),
    "-s": ("--subjects", "--subject"),    # which subjects, or the one subject
    "-t": ("--trajectory",),              # a trajectory model checkpoint
}

# Old spellings still accepted, shown nowhere: option name -> the one spelling now.
# Applied to every command through the root context's `token_normalize_func`.
HIDDEN_ALIASES: dict[str, str] = {
    "--output": "--out",                   # rie render before the names were unified
    "--subjects-train": "--train-subjects",  # rie train (the authors' spelling, docs/method.md)
    "--subjects-test": "--test-subjects",
}


def names(long: str) -> tuple[str, ...]:
    """`long` and its short form from SHORT_OPTIONS, e.g. '--data' -> ('--data', '-d')."""
    shorts = [short for short, longs in SHORT_OPTIONS.items() if long in longs]
    return (long, *shorts)


def normalize_option(name: str) -> str:
    """Click's `token_normalize_func`: an old spelling to the current one (Click passes
    option names without their dashes)."""
    return HIDDEN_ALIASES.get(f"--{name}", f"--{name}")[2:] if len(name) > 1 else name


# The `--force` option of every command that writes files; the command passes each of
# its outputs to `rie_cli.atomic.check_writable(path, force)` before starting its work.
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace output files that already exist (refused otherwise).")
]

# Options of every command that runs a model (evaluate, predict, render, export).
DeviceOption = Annotated[str, typer.Option(
    "--device", help="Where the model runs: cpu, cuda, cuda:N, mps or auto (CUDA when available).")]
TtaOption = Annotated[bool, typer.Option(
    "--tta/--no-tta", help="Flip test-time augmentation: average each window's prediction with its mirrored "
    "window's, mirrored back (--no-tta: half the compute).")]
AllowUnsafeLoadOption = Annotated[bool, typer.Option(
    "--allow-unsafe-load", help="Load checkpoints that safe loading refuses, with full unpickling, which can "
    "run code from the file: only for files you trust.")]


# The API argument an error names -> the option that sets it, where the two differ
# beyond '_' -> '-' (RieError.arguments).
ARGUMENT_OPTIONS = {"fmt": "--format", "allow_unsafe": "--allow-unsafe-load"}


def option_for_argument(name: str) -> str:
    """'min_score' -> '--min-score': how the CLI spells an API argument a RieError names."""
    return ARGUMENT_OPTIONS.get(name, "--" + name.replace("_", "-"))


def fail(message: str, code: int = 1) -> None:
    """Print one red error line on stderr and exit with `code`."""
    # Text, not markup: a message may hold square brackets (file names, shapes). One
    # line, even where a library's message (h5py, torch) brought several.
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    console.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def cli_errors(func: Callable) -> Callable:
    """Turn the core library's user-facing errors into one line and exit 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RieError as exc:
            fail(exc.render(option_for_argument))
        except KeyboardInterrupt:
            fail("interrupted", code=130)

    return wrapper


def split_list(value: str | None) -> list[str] | None:
    """'S1,S5 , S6' -> ['S1', 'S5', 'S6']; None or '' -> None."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def parse_filter_widths(value: str) -> tuple[int, ...]:
    """'3,3,3' -> (3, 3, 3); every width must be a positive odd integer."""
    try:
        widths = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise RieError(f"filter widths must be comma-separated integers, got '{value}'") from None
    if not widths or any(w < 1 or w % 2 == 0 for w in widths):
        raise RieError(f"filter widths must be positive odd integers, got '{value}'")
    return widths


# --- temporal smoothing options (the same five on every command that outputs poses) ---

SmoothOption = Annotated[str, typer.Option(
    "--smooth", help="Temporal smoothing of the predicted poses: none, savgol (zero-lag, offline) or oneeuro "
    "(causal). Defaults and measured effect: docs/predict.md.")]
SmoothWindowOption = Annotated[Optional[int], typer.Option(
    "--smooth-window", help="savgol: window in frames, odd (default 9).")]
SmoothOrderOption = Annotated[Optional[int], typer.Option(
    "--smooth-order", help="savgol: polynomial degree (default 2).")]
SmoothMinCutoffOption = Annotated[Optional[float], typer.Option(
    "--smooth-min-cutoff", help="oneeuro: cutoff frequency at rest, Hz (default 1.5).")]
SmoothBetaOption = Annotated[Optional[float], typer.Option(
    "--smooth-beta", help="oneeuro: cutoff increase per m/s of joint speed (default 10).")]


def make_smoothing(method: str, window: int | None = None, order: int | None = None,
                   min_cutoff: float | None = None, beta: float | None = None):
    """The `--smooth*` options as a `Smoothing`; a parameter of another method is an error."""
    from rie_cli.smoothing import METHODS, Smoothing

    if method not in METHODS:
        raise RieError(f"--smooth must be one of {', '.join(METHODS)}, got '{method}'")
    given = {"savgol": {"window": window, "order": order}, "oneeuro": {"min_cutoff": min_cutoff, "beta": beta}}
    for other, params in given.items():
        stray = [name for name, value in params.items() if value is not None]
        if other != method and stray:
            flags = ", ".join(f"--smooth-{name.replace('_', '-')}" for name in stray)
            raise RieError(f"{flags} applies to --smooth {other}, not --smooth {method}")
    return Smoothing(method, given.get(method, {}))


# --- BVH options (rie export bvh, rie predict --bvh) ---

UnitsOption = Annotated[str, typer.Option("--units", help="BVH length unit: m or cm.")]
UpOption = Annotated[str, typer.Option(
    "--up", help="BVH up axis: y (the BVH convention: Blender's importer defaults, Unity, Maya) or z (Blender's "
    "own axes: import with Up Z, Forward Y).")]
# --- world motion (rie_cli.foot_contact, rie_cli.trajectory.floor_transform) ---

FootLockOption = Annotated[bool, typer.Option(
    "--foot-lock", help="With a trajectory: keep planted feet still (contacts from the feet's speed and height; the "
    "root follows the planted feet, two-bone IK bends the legs, nothing goes under the floor); contacts are stored. "
    "docs/predict.md, Feet that stay planted.")]
LevelOption = Annotated[bool, typer.Option(
    "--level/--no-level", help="Poses placed by a trajectory model without camera extrinsics: stand them upright on "
    "the floor their feet show (default; space 'floor', z up), or keep the camera's axes (--no-level).")]

HelperJointsOption = Annotated[bool, typer.Option(
    "--helper-joints/--no-helper-joints", help="BVH: a zero-offset joint before each bone that leaves the pelvis "
    "or thorax, so every bone points exactly as predicted (default); without, the file has only the skeleton's "
    "joints and those six bones share their joint's best-fit rotation.")]
