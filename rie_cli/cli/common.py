"""What every command shares: the stderr console, the error edge, option parsing helpers.

Progress, messages and tables for people go to stderr (`console`), so that machine
output (`--json -`) on stdout stays clean. A `RieError` raised anywhere in the core
becomes one red line and exit code 1 (`cli_errors`); usage errors stay Typer's exit 2.
"""

from __future__ import annotations

import functools
from typing import Annotated, Callable

import typer
from rich.console import Console
from rich.text import Text

from rie_cli.errors import RieError

console = Console(stderr=True)
stdout_console = Console()

# The `--force` option of every command that writes files; the command passes each of
# its outputs to `rie_cli.atomic.check_writable(path, force)` before starting its work.
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace output files that already exist (refused otherwise).")
]


def fail(message: str, code: int = 1) -> None:
    """Print one red error line on stderr and exit with `code`."""
    # Text, not markup: a message may hold square brackets (file names, shapes).
    console.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def cli_errors(func: Callable) -> Callable:
    """Turn the core library's user-facing errors into one line and exit 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RieError as exc:
            fail(str(exc))
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
