"""docs/api.md's Python examples run, in order, in one namespace, in a folder holding the
files they name: `ckpt.bin` (small centred model), `causal.bin` (small causal model) and
`clip.npy` (frames of Human3.6M-17 pixels with scores, none missing)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from helpers import save_small_checkpoint
from test_api import _walk

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_docs_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 4
    save_small_checkpoint(tmp_path / "ckpt.bin")
    save_small_checkpoint(tmp_path / "causal.bin", causal=True)
    keypoints = _walk(40)
    scores = np.full((40, 17, 1), 0.9)
    np.save(tmp_path / "clip.npy", np.concatenate((keypoints, scores), -1).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - the documentation's own code
    out = capsys.readouterr().out
    assert "(40, 17, 3)" in out and "0 (17, 3) 0" in out
    assert namespace["poses"].shape == (40, 17, 3)


def _documented(function, name: str) -> str:
    """`name(a, *, b="x", c=None)` as docs/api.md writes a signature: defaults, no annotations."""
    import inspect

    parts, star = [], False
    for p in inspect.signature(function).parameters.values():
        if p.name in ("self", "cls"):
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        default = p.default
        parts.append(p.name if default is p.empty else f"{p.name}={default!r}".replace("'", '"'))
    return f"{name}({', '.join(parts)})"


def test_documented_signatures_are_the_code_s():
    """docs/api.md had `stream` without its `*`, min_score=0.3 for None, no allow_unsafe."""
    from rie_cli.api import Lifter

    text = DOC.read_text()
    for name, function in (("Lifter.from_checkpoint", Lifter.from_checkpoint), ("lift", Lifter.lift),
                           ("lift_many", Lifter.lift_many), ("stream", Lifter.stream)):
        signature = _documented(function, name)
        assert f"`{signature}`" in text, f"docs/api.md does not show {signature}"
