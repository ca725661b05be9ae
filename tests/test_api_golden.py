"""The API on real sequences with the golden checkpoints: `Lifter.lift` equals `rie predict`,
and the stream equals `lift` (centred receptive fields 27 and 243, flip TTA on).

The sequences are ground-truth 2D pixels of the held-out bnmocap subject: a short one
(every window of RF 243 reaches past both ends) and a long one (windows inside it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rie_cli.cli import app

runner = CliRunner()
SUBJECT = "BN2-normal"
SHORT, LONG = "walk 010.4", "wave-right-hand 004"  # 46 and 357 frames


@pytest.fixture(scope="module")
def sequences(bnmocap_dir):
    """action -> ((T, 17, 2) float32 pixels of camera 1, width, height)."""
    with np.load(bnmocap_dir / "data_2d_bnmocap_gt.npz", allow_pickle=True) as f:
        poses_2d = f["positions_2d"].item()[SUBJECT]
    camera = json.loads((bnmocap_dir / "cameras_bnmocap.json").read_text())["bnmocap"]["intrinsics"][1]
    return {a: (np.asarray(poses_2d[a][1], dtype=np.float32), camera["res_w"], camera["res_h"]) for a in (SHORT, LONG)}


@pytest.fixture(scope="module", params=["ckpt_s3_arc333_lfd256.bin", "ckpt_gt256.bin"])  # RF 27, RF 243
def lifter(request, golden_dir):
    from rie_cli import Lifter

    return Lifter.from_checkpoint(golden_dir / request.param, device="cpu", tta=True)


def test_lift_equals_rie_predict(lifter, sequences, tmp_path):
    pixels, width, height = sequences[SHORT]
    np.save(tmp_path / "kp.npy", pixels)
    result = runner.invoke(app, ["predict", "-c", str(lifter.inference.checkpoint), "-k", str(tmp_path / "kp.npy"),
                                 "-o", str(tmp_path / "out.npz"), "--width", str(width), "--height", str(height)])
    assert result.exit_code == 0, result.stderr
    lifted = lifter.lift(pixels, width=width, height=height)
    with np.load(tmp_path / "out.npz") as f:
        np.testing.assert_allclose(lifted.poses, f["poses_3d"], atol=1e-6, rtol=0)
        np.testing.assert_array_equal(lifted.keypoints_2d_normalized, f["keypoints_2d_normalized"])


@pytest.mark.parametrize("action", [SHORT, LONG])
def test_stream_equals_lift(lifter, sequences, action):
    pixels, width, height = sequences[action]
    if action == LONG and lifter.receptive_field > 27:
        pixels = pixels[:120]  # RF 243: every frame is a full-size window either way; keep the test short
    expected = lifter.lift(pixels, width=width, height=height).poses
    stream = lifter.stream(width=width, height=height)
    pairs = [pair for frame in pixels for pair in stream.push(frame)] + stream.flush()
    assert [i for i, _ in pairs] == list(range(len(pixels)))
    assert not lifter.causal and lifter.delay == lifter.receptive_field // 2
    np.testing.assert_allclose(np.stack([p for _, p in pairs]), expected, atol=1e-5, rtol=0)
