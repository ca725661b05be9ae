"""The `rie` command line: one module per command, each a thin layer over the core.

A command declares its options, calls one core function, and renders the result. The
application lives in `rie_cli.cli.root`; this package stays light so that `rie
--version` answers without importing torch (measured: docs/architecture.md).
"""

from __future__ import annotations

import sys


def main() -> None:
    """The `rie` entry point (pyproject.toml) and `python -m rie_cli`."""
    if sys.argv[1:] == ["--version"]:
        # The same line as the root command's --version option, without importing the
        # commands (and torch) first: ~5 s saved on a loaded 2-core machine.
        from rie_cli import __version__

        print(f"rie {__version__}")
        return
    from rie_cli.cli.root import app

    app()


def __getattr__(name: str):
    # `from rie_cli.cli import app` (tests, embedding) still works, imported on first use.
    if name == "app":
        from rie_cli.cli.root import app

        return app
    raise AttributeError(f"module 'rie_cli.cli' has no attribute {name!r}")
