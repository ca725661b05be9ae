"""rie: lift 2D keypoint sequences to 3D human poses with Relative Information Encoding.

A reimplementation of RIE (Shan et al., ACM MM 2021) in plain PyTorch, with a
Typer command line (`rie --help`). The core library lives in the sub-modules;
the CLI in `rie_cli.cli` only parses options and renders results.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from rie_cli import Lifter` without importing torch for every `rie --help`.
    if name == "Lifter":
        from rie_cli.api import Lifter

        return Lifter
    raise AttributeError(f"module 'rie_cli' has no attribute {name!r}")


__all__ = ["Lifter", "__version__"]
