"""Writing outputs: never over an existing file unasked, never half-written.

Two rules hold for every file a command writes (HDF5, checkpoints, predictions,
renders, exported models, evaluation reports, logs):

1. **Nothing is overwritten without `--force`.** Before doing any work, a command
   passes each output it will write to `check_writable(path, force)`: an existing file
   is refused with one line naming `--force` (exit 1, the file untouched). A command
   that writes files has a `--force` option (`rie_cli.cli.common.ForceOption`) and
   calls this function; new outputs must too. Writing to stdout (`--json -`) is exempt.
   Training's checkpoint directory follows the same rule as a whole
   (`rie_cli.training.state.check_run_directory`).
2. **Writes are atomic.** Every write goes through `atomic_path`: the writer fills a
   temporary file beside the target (same folder, so the rename is atomic; same
   suffix, so format-sniffing writers such as matplotlib and ffmpeg still work), which
   is renamed over the target only once it is complete. On any error, Ctrl-C
   included, the temporary file is removed and an existing target stays as it was;
   so `--force` replaces a file in one step, never leaving it half-written.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rie_cli.errors import RieError


def check_writable(path: str | Path, force: bool) -> Path:
    """The one check of every output a command writes (rule 1 above); returns `path`.

    Call it before the work that produces the output, so that a refusal costs nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise RieError(f"output {path} is a directory; give a file name")
    if path.exists() and not force:
        raise RieError(f"output {path} exists; use --force to replace it")
    return path


def check_directory(path: str | Path) -> Path:
    """An output directory (training's --checkpoint-dir): refused with one line where it,
    or a folder it would be created in, is a file. Call it before any work."""
    path = Path(path)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                what = "is a file" if existing == path else f"is inside {existing}, a file"
                raise RieError(f"output directory {path} {what}; give a directory")
            break
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
