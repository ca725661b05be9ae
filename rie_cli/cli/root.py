"""The `rie` Typer application: the root command and the registration of every command
module (each exposes `register(app)`). Importing this imports every command, and with
them torch: `rie_cli.cli.main` imports it only when a command runs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from rie_cli import __version__
from rie_cli.cli.common import normalize_option

app = typer.Typer(
    name="rie",
    help="Lift 2D keypoint sequences to 3D human poses with RIE (Relative Information Encoding).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    # normalize_option: the old spellings of rie_cli/cli/common.py's HIDDEN_ALIASES, for every command.
    context_settings={"help_option_names": ["-h", "--help"], "token_normalize_func": normalize_option},
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"rie {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Lift 2D keypoint sequences to 3D human poses with RIE (Relative Information Encoding)."""


def _register() -> None:
    # One line per command module; each module exposes `register(app)`.
    from rie_cli.cli import prepare_data, train, evaluate, render, export, predict

    for module in (prepare_data, train, evaluate, render, export, predict):
        module.register(app)


_register()
