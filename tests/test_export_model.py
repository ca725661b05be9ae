"""`rie export model`: .pt2 and ONNX exports over whole sequences, checked against
eager inference and the golden outputs of the authors' model code."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.errors import RieError
from rie_cli.export import export_model, run_onnx, sequence_lifter
from rie_cli.skeleton import H36M_17

GOLDEN = "s3_arc333_lfd256"  # receptive field 27: the fastest golden model
TOLERANCE = 1e-4


def _small_model(causal: bool = False):
    from rie_cli.model import ModelConfig, build_model

    torch.manual_seed(2)
    return build_model(ModelConfig(filter_widths=(3, 3), channels=16, latent=16, fc_width=32, fusion=True,
                                   causal=causal)).eval()


# Shorter and longer than the receptive field (9), centred and causal windows.
@pytest.mark.parametrize("causal, frames", [(False, 4), (True, 23)])
def test_sequence_lifter_equals_eager_inference(causal, frames):
    from rie_cli.inference import predict_sequence

    model = _small_model(causal)
    x = np.random.default_rng(frames).uniform(-1, 1, size=(2, frames, 17, 2)).astype(np.float32)
    for tta in (False, True):
        with torch.no_grad():
            out = sequence_lifter(model, H36M_17, tta)(torch.from_numpy(x)).numpy()  # (2, T, 17, 3)
        for b in range(2):
            expected = predict_sequence(model, x[b], skeleton=H36M_17, tta=tta)
            np.testing.assert_allclose(out[b], expected, atol=1e-6)


def test_pt2_of_golden_checkpoint_reproduces_golden_outputs(golden_dir, tmp_path):
    out = tmp_path / "rie.pt2"
    result = export_model(golden_dir / f"ckpt_{GOLDEN}.bin", out, "pt2", tta=True)
    assert result.max_abs_diff <= TOLERANCE and result.receptive_field == 27
    golden = np.load(golden_dir / f"io_{GOLDEN}.npz")
    program = torch.export.load(str(out)).module()
    with torch.no_grad():
        seq = program(torch.from_numpy(golden["x_long"])).numpy()  # (3, 31, 17, 3): every frame, flip TTA
        window = program(torch.from_numpy(golden["x_rf"])).numpy()  # one receptive field
    np.testing.assert_allclose(seq, golden["seq_out_tta"], atol=TOLERANCE)
    np.testing.assert_allclose(window[:, 13:14], golden["out_rf_tta"], atol=TOLERANCE)  # its centre frame
    _run_docs_pt2_snippet(tmp_path)


def _run_docs_pt2_snippet(folder):
    """docs/export.md's snippet that loads `rie.pt2` reaches NumPy (it lacked torch.no_grad)."""
    import os
    import re
    import textwrap
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text()
    blocks = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "rie.pt2" in b]
    assert len(blocks) == 1
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        exec(compile(blocks[0], "docs/export.md", "exec"), namespace)  # noqa: S102 - the documentation's own code
    finally:
        os.chdir(cwd)
    assert namespace["poses"].shape == (1, 100, 17, 3)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs the 'export' extra")
def test_onnx_of_golden_checkpoint_reproduces_golden_outputs(golden_dir, tmp_path):
    out = tmp_path / "rie.onnx"
    result = CliRunner().invoke(app, ["export", "model", "-c", str(golden_dir / f"ckpt_{GOLDEN}.bin"),
                                      "--format", "onnx", "--no-tta", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "largest difference to the eager model" in result.stderr
    golden = np.load(golden_dir / f"io_{GOLDEN}.npz")
    np.testing.assert_allclose(run_onnx(out, golden["x_long"]), golden["seq_out"], atol=TOLERANCE)
    np.testing.assert_allclose(run_onnx(out, golden["x_rf"])[:, 13:14], golden["out_rf"], atol=TOLERANCE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rie.onnx"]  # one file, no leftovers


def test_failed_check_removes_the_file_and_keeps_an_older_one(small_checkpoint, tmp_path):
    out = tmp_path / "rie.pt2"
    out.write_bytes(b"previous export")
    with pytest.raises(RieError, match="differs from the eager one"):
        export_model(small_checkpoint, out, "pt2", tolerance=-1.0)  # no difference passes a negative bound
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rie.pt2"]


@pytest.mark.parametrize(
    "fmt, name, message",
    [
        ("tflite", "m.tflite", "unknown export format 'tflite'"),
        ("onnx", "m.pt2", "written to a .onnx file"),
        ("pt2", "m.onnx", "written to a .pt2 file"),
    ],
)
def test_cli_errors_are_one_line(small_checkpoint, tmp_path, fmt, name, message):
    result = CliRunner().invoke(app, ["export", "model", "-c", str(small_checkpoint), "--format", fmt,
                                      "--out", str(tmp_path / name)])
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_packages_are_named(small_checkpoint, tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    with pytest.raises(RieError, match=r"needs onnxruntime .*pip install -e \"\.\[export\]\""):
        export_model(small_checkpoint, tmp_path / "m.onnx", "onnx")


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs the 'export' extra")
def test_onnx_external_weights_take_the_final_name(small_checkpoint, tmp_path, monkeypatch):
    # A model past ONNX's 2 GB limit keeps its weights in `<name>.onnx.data`; written to a
    # temporary name and renamed, the .onnx pointed at `.rie.<hex>.partial.onnx.data`.
    import shutil

    from rie_cli import export

    monkeypatch.setattr(export, "ONNX_EXTERNAL_DATA_BYTES", 0)
    out = tmp_path / "rie.onnx"
    export_model(small_checkpoint, out, "onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rie.onnx", "rie.onnx.data"]
    assert (tmp_path / "rie.onnx.data").stat().st_size > 10_000  # the weights
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("rie.onnx", "rie.onnx.data"):
        shutil.move(tmp_path / name, moved / name)
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, 12, 17, 2)).astype(np.float32)
    assert run_onnx(moved / "rie.onnx", x).shape == (1, 12, 17, 3)
    # Replaced by a one-file export: the old weights file goes too.
    (moved / "rie.onnx").unlink()
    shutil.move(moved / "rie.onnx.data", tmp_path / "rie.onnx.data")
    monkeypatch.setattr(export, "ONNX_EXTERNAL_DATA_BYTES", 1_800_000_000)
    export_model(small_checkpoint, out, "onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "rie.onnx"]
