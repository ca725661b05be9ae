"""Writing outputs so that nothing half-written ever sits under the final name.

Every file rie writes (HDF5, checkpoints, predictions, renders, exported models, logs)
goes through `atomic_path`: the writer fills a temporary file beside the target (same
folder, so the rename is atomic; same suffix, so format-sniffing writers such as
matplotlib and ffmpeg still work), which is renamed over the target only once it is
complete. On any error, Ctrl-C included, the temporary file is removed and an existing
target stays as it was.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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
