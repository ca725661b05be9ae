"""`rie predict` (rie_cli.predict, rie_cli.lifting): gap filling, image size, the output file, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rie_cli.cameras import normalize_screen_coordinates
from rie_cli.cli import app
from rie_cli.errors import RieError
from rie_cli.keypoint_formats import KeypointTrack
from rie_cli.lifting import fill_gaps, image_size, prepare_keypoints, valid_mask
from test_keypoint_formats import COCO_FRAME, h36m_frame

runner = CliRunner()


def _walk(frames: int) -> np.ndarray:
    """A Human3.6M-17 pixel track that moves: every joint drifts linearly and sways."""
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    base = h36m_frame()[None] * 2 + [300.0, 200.0]  # (1, 17, 2)
    return base + t * [3.0, 0.5] + 4 * np.sin(t / 3 + np.arange(17)[None, :, None])


# --- gap filling ---------------------------------------------------------------------------

def test_fill_gaps_interpolates_inside_and_holds_the_edges():
    points = _walk(10)
    damaged = points.copy()
    damaged[3:6, 5] = np.nan  # a gap inside: linear between frames 2 and 6
    damaged[:2, 2] = 0.0  # undetected at the start: held from frame 2
    damaged[8:, 13] = np.nan  # lost at the end: held from frame 7
    valid = valid_mask(damaged, None, 0.3)
    filled, mask, never = fill_gaps(damaged, valid)
    assert never == []
    for t in (3, 4, 5):
        w = (t - 2) / 4
        np.testing.assert_allclose(filled[t, 5], (1 - w) * points[2, 5] + w * points[6, 5])
    np.testing.assert_allclose(filled[:2, 2], np.repeat(points[2:3, 2], 2, 0))
    np.testing.assert_allclose(filled[8:, 13], np.repeat(points[7:8, 13], 2, 0))
    np.testing.assert_array_equal(filled[valid], points[valid])  # seen points untouched
    expected = np.zeros((10, 17), bool)
    expected[3:6, 5] = expected[:2, 2] = expected[8:, 13] = True
    np.testing.assert_array_equal(mask, expected)


def test_low_scores_are_filled_and_the_share_is_reported():
    points = _walk(20)
    scores = np.full((20, 17), 0.9)
    scores[5:9, 16] = 0.1  # four low-confidence wrist points
    points[10, 3] = np.nan  # one missing foot point
    track = KeypointTrack(points, scores, "h36m", "h36m")
    prepared = prepare_keypoints(track, "auto", min_score=0.3)
    assert prepared.filled.sum() == 5
    assert prepared.filled_share == pytest.approx(5 / (20 * 17))
    assert np.isfinite(prepared.pixels).all() and prepared.pixels.dtype == np.float32
    # With a lower threshold the wrist counts as seen.
    assert prepare_keypoints(track, "auto", min_score=0.05).filled.sum() == 1


def test_a_joint_never_seen_is_an_error():
    points = _walk(8)
    points[:, 12] = 0.0  # the left elbow is never detected
    with pytest.raises(RieError, match="l_elbow never seen"):
        prepare_keypoints(KeypointTrack(points, None, "h36m", "h36m"))


def test_coco_track_is_filled_then_mapped():
    coco = np.tile(COCO_FRAME, (6, 1, 1))
    scores = np.full((6, 17), 0.9)
    scores[:, 3] = 0.0  # the left ear is never seen (a side view): not needed
    scores[2, 11] = 0.1  # one left-hip point is weak
    prepared = prepare_keypoints(KeypointTrack(coco, scores, "coco", "mmpose-json"))
    assert prepared.layout == "coco"
    np.testing.assert_allclose(prepared.pixels[:, 0], np.tile([100.0, 140.0], (6, 1)))  # pelvis
    assert set(np.flatnonzero(prepared.filled[2])) == {0, 4, 7}  # pelvis, l_hip, spine
    assert prepared.filled.sum() == 3
    scores[:, 15] = 0.0  # but a never-seen ankle is
    with pytest.raises(RieError, match="l_ankle"):
        prepare_keypoints(KeypointTrack(coco, scores, "coco", "mmpose-json"))


def test_layout_is_worked_out_when_the_file_does_not_say():
    prepared = prepare_keypoints(KeypointTrack(np.tile(COCO_FRAME, (3, 1, 1)), None, None, "array"))
    assert prepared.layout == "coco" and any("geometry" in n for n in prepared.notes)


# --- image size ----------------------------------------------------------------------------

def test_image_size_from_options_file_or_error():
    with_size = KeypointTrack(_walk(2), None, "h36m", "vp3d-custom", width=1280, height=720)
    without = KeypointTrack(_walk(2), None, "h36m", "mmpose-json")
    assert image_size(with_size, None, None)[:2] == (1280, 720)
    w, h, notes = image_size(with_size, 640, 480)
    assert (w, h) == (640, 480) and "1280 x 720" in notes[0]
    with pytest.raises(RieError, match="give width and height"):
        image_size(without, None, None)
    with pytest.raises(RieError, match="give both width and height"):
        image_size(without, 640, None)


# --- the command ---------------------------------------------------------------------------

def test_cli_writes_plain_arrays(small_checkpoint, tmp_path):
    points = _walk(12)
    points[4:6, 9] = np.nan
    np.save(tmp_path / "kp.npy", points.astype(np.float32))
    out = tmp_path / "out" / "pred.npz"
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "--keypoints", str(tmp_path / "kp.npy"),
                                 "--out", str(out), "--width", "1000", "--height", "800", "-b", "6"])
    assert result.exit_code == 0, result.stderr
    assert "wrote" in result.stderr and "filled" in result.stderr
    with np.load(out, allow_pickle=False) as f:  # no pickle needed for anything inside
        assert f["poses_3d"].shape == (12, 17, 3) and f["poses_3d"].dtype == np.float32
        np.testing.assert_allclose(f["keypoints_2d"][:4], points[:4], rtol=1e-6)
        np.testing.assert_array_equal(f["keypoints_2d_normalized"],
                                      normalize_screen_coordinates(f["keypoints_2d"], 1000, 800))
        assert f["filled_mask"].sum() == 2 and f["filled_mask"][4:6, 9].all()
        assert (int(f["width"]), int(f["height"]), str(f["layout"]), bool(f["tta"])) == (1000, 800, "h36m", True)
        assert str(f["checkpoint"]) == str(small_checkpoint) and float(f["min_score"]) == 0.3
    assert [p.name for p in out.parent.iterdir()] == ["pred.npz"]  # no temporary file left


def test_cli_prediction_equals_predict_sequence(small_checkpoint, tmp_path):
    from rie_cli.inference import predict_sequence
    from rie_cli.model.checkpoint import load_checkpoint
    from rie_cli.skeleton import H36M_17

    np.save(tmp_path / "kp.npy", _walk(7).astype(np.float32))
    out = tmp_path / "pred.npz"
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "-k", str(tmp_path / "kp.npy"),
                                 "-o", str(out), "--width", "900", "--height", "900", "--no-tta"])
    assert result.exit_code == 0, result.stderr
    model = load_checkpoint(small_checkpoint).model
    with np.load(out) as f:
        expected = predict_sequence(model, f["keypoints_2d_normalized"], skeleton=H36M_17, tta=False)
        np.testing.assert_allclose(f["poses_3d"], expected, atol=1e-6)
        assert not bool(f["tta"])


def test_cli_missing_image_size_is_one_line_and_keeps_old_output(small_checkpoint, tmp_path):
    np.save(tmp_path / "kp.npy", _walk(5).astype(np.float32))
    out = tmp_path / "pred.npz"
    out.write_bytes(b"previous result")
    # Even with --force, a failed run leaves the old output as it was.
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "-k", str(tmp_path / "kp.npy"),
                                 "-o", str(out), "--force"])
    assert result.exit_code == 1
    assert "--width and --height" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert out.read_bytes() == b"previous result"


@pytest.mark.parametrize("args, message", [
    (["--format", "bvh"], "unknown keypoint format"),
    (["--layout", "mpii"], "unknown layout"),
    (["--render", "x.avi"], ".gif or .mp4"),
])
def test_cli_bad_options_are_one_line(small_checkpoint, tmp_path, args, message):
    np.save(tmp_path / "kp.npy", _walk(5).astype(np.float32))
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "-k", str(tmp_path / "kp.npy"),
                                 "-o", str(tmp_path / "p.npz"), "--width", "10", "--height", "10", *args])
    assert result.exit_code == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_refuses_normalised_coordinates(small_checkpoint, tmp_path):
    np.save(tmp_path / "kp.npy", (_walk(5) / 1000).astype(np.float32))
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "-k", str(tmp_path / "kp.npy"),
                                 "-o", str(tmp_path / "p.npz"), "--width", "1000", "--height", "1000",
                                 "--layout", "h36m"])
    assert result.exit_code == 1 and "look normalised" in result.stderr


def test_cli_mmpose_coco_with_render(small_checkpoint, tmp_path):
    frames = [{"frame_id": t, "instances": [{"keypoints": (COCO_FRAME * 2 + [t * 5, 0]).tolist(),
                                             "keypoint_scores": [0.9] * 17, "bbox_score": 0.9}]}
              for t in range(4)]
    frames[2]["instances"] = []  # a frame without a detection is filled
    (tmp_path / "clip.json").write_text(json.dumps(frames))
    out, gif = tmp_path / "pred.npz", tmp_path / "clip.gif"
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "-k", str(tmp_path / "clip.json"),
                                 "-o", str(out), "--width", "640", "--height", "480", "--render", str(gif),
                                 "--fps", "25"])
    assert result.exit_code == 0, result.stderr
    with np.load(out) as f:
        assert str(f["format"]) == "mmpose-json" and str(f["layout"]) == "coco"
        assert f["filled_mask"][2].all() and f["filled_mask"].sum() == 17
        # The pelvis (mid-hips, (200 + 5 t, 280)) of the empty frame 2, halfway from frame 1 to 3.
        np.testing.assert_allclose(f["keypoints_2d"][2, 0], [210.0, 280.0])
    assert gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
