"""scripts/demo.sh, the README's main job, runs only commands and options the CLI accepts.

The real job trains for minutes, too long for the suite; here `rie` on the PATH is a
stand-in that records each command line instead of running it, and the test parses
them with the real CLI's parser (an unknown option, a bad value or a missing argument
fails as it would). So a renamed or removed option breaks this test, not the README's first
command in a user's hands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Appends its arguments to $RIE_DEMO_LOG as one JSON line (the test parses them after).
SHIM = """\
import json, os, sys
with open(os.environ["RIE_DEMO_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def _parse(args: list[str]) -> None:
    """Parse `rie ARGS` with the real click command tree (raises click's usage errors)."""
    import typer.main

    from rie_cli.cli import app

    command, name, rest = typer.main.get_command(app), "rie", list(args)
    while hasattr(command, "commands"):  # the root group, then `export`'s subcommands
        name, rest = rest[0], rest[1:]
        command = command.commands[name]
    command.make_context(name, rest)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_demo_commands_parse(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "shim.py").write_text(SHIM)
    rie = bin_dir / "rie"
    rie.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{bin_dir / "shim.py"}" "$@"\n')
    rie.chmod(0o755)
    log = tmp_path / "commands.jsonl"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RIE_DEMO_LOG=str(log),
               RIE_DEMO_DIR=str(tmp_path / "demo"), PYTHONPATH=str(REPO))
    done = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    commands = [json.loads(line) for line in log.read_text().splitlines()]
    for command in commands:
        _parse(command)
    assert [c[0] for c in commands] == ["prepare-data", "train", "train", "train", "evaluate", "render"]
    stages = [c[c.index("--stage") + 1] for c in commands if c[0] == "train"]
    assert stages == ["1", "2", "3"]
    # Each stage starts from a checkpoint the one before it wrote; evaluation and rendering
    # read stage 3's (best.pt exists only where stage 3 evaluates every epoch).
    s1, s2, s3 = commands[1:4]
    assert _option(s2, "--init").startswith(_option(s1, "--checkpoint-dir") + "/")
    assert _option(s3, "--init").startswith(_option(s2, "--checkpoint-dir") + "/")
    for command in commands[4:]:
        checkpoint = _option(command, "--checkpoint")
        assert checkpoint.startswith(_option(s3, "--checkpoint-dir") + "/")
        assert not (checkpoint.endswith("best.pt") and "--no-eval" in s3)


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]
