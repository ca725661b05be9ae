"""The Python API (rie_cli.api over rie_cli.loading, rie_cli.lifting, rie_cli.streaming):
Lifter.lift is `rie predict`, the stream is lift frame by frame, the one loading function,
errors as RieError with the CLI's words."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import save_small_checkpoint
from rie_cli import Lifter
from rie_cli.cli import app
from rie_cli.errors import RieError
from test_keypoint_formats import COCO_FRAME, h36m_frame

runner = CliRunner()
SIZE = dict(width=1000, height=800)


def _walk(frames: int, base: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """A 17-joint pixel track that moves: a drift, a sway and a little noise per joint."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    base = (h36m_frame() if base is None else base)[None] * 2 + [300.0, 200.0]  # (1, 17, 2)
    return base + t * [2.0, 0.5] + 4 * np.sin(t / 3 + np.arange(17)[None, :, None]) + rng.normal(0, 1, (frames, 17, 2))


def _run(stream, frames) -> tuple[list[int], np.ndarray]:
    """Push every frame, flush; (frame indices in the order returned, (T, 17, 3) poses)."""
    pairs = []
    for frame in frames:
        pairs.extend(stream.push(frame))
    pairs.extend(stream.flush())
    return [i for i, _ in pairs], np.stack([p for _, p in pairs])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Small centred and causal models (receptive field 9), saved as this project's checkpoints."""
    from rie_cli.model import ModelConfig, build_model
    from rie_cli.model.checkpoint import checkpoint_payload, save_checkpoint

    folder = tmp_path_factory.mktemp("api_ckpt")
    paths = {causal: save_small_checkpoint(folder / f"causal{causal}.pt", seed=3, causal=causal)
             for causal in (False, True)}
    # Trajectory models (VideoPose3D with a root head): RF 27 centred, RF 9 causal.
    for causal, widths in ((False, (3, 3, 3)), (True, (3, 3))):
        torch.manual_seed(5)
        model = build_model(ModelConfig(arch="videopose3d", target="trajectory", filter_widths=widths, channels=32,
                                        causal=causal))
        paths["trajectory", causal] = folder / f"trajectory_causal{causal}.pt"
        save_checkpoint(paths["trajectory", causal], checkpoint_payload(model.eval(), stage=1))
    return paths


# --- lift ---------------------------------------------------------------------------------------

def test_lift_equals_rie_predict(checkpoints, tmp_path):
    points = _walk(30)
    scores = np.full((30, 17), 0.9)
    scores[4:9, 13] = 0.1  # a weak wrist inside the sequence: interpolated
    points[:3, 5] = np.nan  # a knee unseen at the start: held backwards
    keypoints = np.concatenate((points, scores[..., None]), -1).astype(np.float32)
    np.save(tmp_path / "kp.npy", keypoints)
    result = runner.invoke(app, ["predict", "-c", str(checkpoints[False]), "-k", str(tmp_path / "kp.npy"),
                                 "-o", str(tmp_path / "out.npz"), "--width", "1000", "--height", "800"])
    assert result.exit_code == 0, result.stderr

    lifted = Lifter.from_checkpoint(checkpoints[False], device="cpu").lift(keypoints, **SIZE)
    with np.load(tmp_path / "out.npz") as f:
        np.testing.assert_allclose(lifted.poses, f["poses_3d"], atol=1e-6, rtol=0)
        np.testing.assert_array_equal(lifted.filled, f["filled_mask"])
        np.testing.assert_array_equal(lifted.keypoints_2d, f["keypoints_2d"])
        np.testing.assert_array_equal(lifted.keypoints_2d_normalized, f["keypoints_2d_normalized"])
        assert lifted.layout == str(f["layout"]) == "h36m"
    assert lifted.filled.sum() == 5 + 3 and lifted.trajectory is None


def test_lift_maps_coco(checkpoints):
    lifter = Lifter.from_checkpoint(checkpoints[False], device="cpu")
    coco = lifter.lift(_walk(12, COCO_FRAME), **SIZE)
    assert coco.layout == "coco" and coco.poses.shape == (12, 17, 3)
    assert any("geometry" in note for note in coco.notes)


@pytest.mark.parametrize("call, message", [
    (lambda l: l.lift(np.zeros((5, 17, 2)) + 1, width=1000, height=None), "give both width and height"),
    (lambda l: l.lift(_walk(5) / 2000, layout="h36m", **SIZE), "look normalised"),
    (lambda l: l.lift(np.ones((5, 12, 2)), **SIZE), "12 joints per frame"),
    (lambda l: l.lift(_walk(5), layout="mpii", **SIZE), "unknown layout 'mpii'"),
    (lambda l: l.stream(width=0, height=10), "must be positive"),
])
def test_errors_are_the_cli_messages(checkpoints, call, message):
    lifter = Lifter.from_checkpoint(checkpoints[False], device="cpu")
    with pytest.raises(RieError, match=message):
        call(lifter)


def test_loading_errors(tmp_path, checkpoints):
    with pytest.raises(RieError, match="checkpoint not found"):
        Lifter.from_checkpoint(tmp_path / "none.pt")
    with pytest.raises(RieError, match="precision must be one of"):
        Lifter.from_checkpoint(checkpoints[False], precision="fp8")
    with pytest.raises(RieError, match="unknown device"):
        Lifter.from_checkpoint(checkpoints[False], device="tpu")
    with pytest.raises(RieError, match="causalTrue.pt is a pose model, but a trajectory model is needed"):
        Lifter.from_checkpoint(checkpoints[False], trajectory=checkpoints[True])
    with pytest.raises(RieError, match="is a trajectory model .* a pose model is needed"):
        Lifter.from_checkpoint(checkpoints["trajectory", False])


# --- stream == lift -----------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("tta", [True, False])
@pytest.mark.parametrize("frames", [3, 40])  # shorter than the receptive field (9), and longer
def test_stream_equals_lift(checkpoints, causal, tta, frames):
    lifter = Lifter.from_checkpoint(checkpoints[causal], device="cpu", tta=tta)
    keypoints = _walk(frames, seed=frames)
    expected = lifter.lift(keypoints, **SIZE).poses
    stream = lifter.stream(**SIZE)
    order, poses = _run(stream, keypoints)
    assert order == list(range(frames))
    np.testing.assert_allclose(poses, expected, atol=1e-5, rtol=0)
    assert stream.delay == (0 if causal else 4) == lifter.delay


@pytest.mark.parametrize("causal", [False, True])
def test_poses_come_as_soon_as_known(checkpoints, causal):
    stream = Lifter.from_checkpoint(checkpoints[causal], device="cpu").stream(**SIZE)
    returned = [[i for i, _ in stream.push(frame)] for frame in _walk(12)]
    if causal:
        assert returned == [[t] for t in range(12)]
    else:  # frame t once frame t + 4 has arrived; the last four on flush
        assert returned == [[]] * 4 + [[t] for t in range(8)]
        assert [i for i, _ in stream.flush()] == [8, 9, 10, 11]
    assert stream.flush() == []
    with pytest.raises(RieError, match="stream was flushed"):
        stream.push(_walk(1)[0])


@pytest.mark.parametrize("causal", [False, True])
def test_gaps_at_the_start_and_the_end_fill_as_lift_fills_them(checkpoints, causal):
    """Before every joint has been seen the stream holds frames back, then fills them as lift
    does; a gap lasting to the end is held in both. Only these gaps: equal poses and masks."""
    lifter = Lifter.from_checkpoint(checkpoints[causal], device="cpu")
    keypoints = _walk(30)
    keypoints[:6, 3] = np.nan  # the right foot unseen for the first six frames
    keypoints[2:4, 12] = 0.0  # the left elbow lost for two frames before the foot appears
    keypoints[24:, 16] = np.nan  # the right wrist lost until the end
    expected = lifter.lift(keypoints, **SIZE)
    stream = lifter.stream(**SIZE, record=True)
    returned = [[i for i, _ in stream.push(frame)] for frame in keypoints]
    if causal:
        assert returned[:7] == [[]] * 6 + [list(range(7))]  # all seven at once, when the foot is seen
    stream.flush()
    got = stream.result()
    np.testing.assert_allclose(got.poses, expected.poses, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(got.filled, expected.filled)
    np.testing.assert_array_equal(got.keypoints_2d, expected.keypoints_2d)


def test_a_gap_inside_holds_the_last_seen_value(checkpoints):
    """lift interpolates a gap between two seen points (it knows the future); the stream
    holds the last seen point: its poses are lift's of the input filled that way."""
    lifter = Lifter.from_checkpoint(checkpoints[False], device="cpu")
    keypoints = _walk(30)
    keypoints[10:15, 6] = np.nan  # the left foot lost for five frames
    stream = lifter.stream(**SIZE, record=True)
    _run(stream, keypoints)
    held = keypoints.copy()
    held[10:15, 6] = keypoints[9, 6]
    expected = lifter.lift(held, **SIZE)
    got = stream.result()
    np.testing.assert_allclose(got.poses, expected.poses, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(got.filled[10:15, 6], True)
    assert not np.allclose(got.poses, lifter.lift(keypoints, **SIZE).poses, atol=1e-4)


def test_stream_coco_with_scores_and_auto_layout(checkpoints):
    lifter = Lifter.from_checkpoint(checkpoints[True], device="cpu")
    coco = _walk(20, COCO_FRAME)
    scores = np.full((20, 17), 0.9)
    scores[:, 4] = 0.0  # the right ear is never seen: not needed
    keypoints = np.concatenate((coco, scores[..., None]), -1)
    expected = lifter.lift(keypoints, **SIZE)
    stream = lifter.stream(**SIZE, record=True)
    _, poses = _run(stream, keypoints)
    assert stream.layout == "coco"
    np.testing.assert_allclose(poses, expected.poses, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(stream.result().filled, expected.filled)


@pytest.mark.parametrize("causal", [False, True])
def test_stream_coco_face_points_seen_later_agree_with_lift(checkpoints, causal):
    """Regression (issue 20 item 4): a face point first seen after the start (here the nose
    at frame 4 and the left ear at frame 9) built neck/head differently in the stream."""
    lifter = Lifter.from_checkpoint(checkpoints[causal], device="cpu")
    keypoints = _walk(24, COCO_FRAME)
    keypoints[:4, 0] = np.nan
    keypoints[:9, 3] = 0.0
    expected = lifter.lift(keypoints, **SIZE, layout="coco")
    stream = lifter.stream(**SIZE, layout="coco", record=True)
    _, poses = _run(stream, keypoints)
    got = stream.result()
    np.testing.assert_array_equal(got.keypoints_2d, expected.keypoints_2d)
    np.testing.assert_array_equal(got.filled, expected.filled)
    np.testing.assert_allclose(poses, expected.poses, atol=1e-5, rtol=0)


def test_a_joint_never_seen_is_the_lift_error_on_flush(checkpoints):
    stream = Lifter.from_checkpoint(checkpoints[False], device="cpu").stream(**SIZE, layout="h36m")
    keypoints = _walk(6)
    keypoints[:, 12] = 0.0
    assert all(stream.push(frame) == [] for frame in keypoints)  # held back, waiting for the elbow
    with pytest.raises(RieError, match="l_elbow never seen"):
        stream.flush()
    with pytest.raises(RieError, match=r"shape \(17, 2\) or \(17, 3\)"):
        Lifter.from_checkpoint(checkpoints[False], device="cpu").stream(**SIZE).push(np.zeros((16, 2)))


# --- with a trajectory model -------------------------------------------------------------------

@pytest.mark.parametrize("pose_causal, root_causal", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("tta", [True, False])
def test_trajectory_model_adds_the_root(checkpoints, pose_causal, root_causal, tta):
    from rie_cli.api import load_for_inference

    lifter = Lifter.from_checkpoint(checkpoints[pose_causal], trajectory=checkpoints["trajectory", root_causal],
                                    device="cpu", tta=tta)
    keypoints = _walk(30)
    lifted = lifter.lift(keypoints, **SIZE)
    root_model = load_for_inference(checkpoints["trajectory", root_causal], target="trajectory", tta=tta)
    expected_root = root_model.predict([lifted.keypoints_2d_normalized])[0][:, 0]  # (T, 3)
    np.testing.assert_array_equal(lifted.trajectory, expected_root)
    np.testing.assert_allclose(lifted.camera_poses, lifted.poses - lifted.poses[:, :1] + expected_root[:, None],
                               atol=1e-6, rtol=0)
    np.testing.assert_array_equal(lifted.poses, Lifter.from_checkpoint(checkpoints[pose_causal], tta=tta)
                                  .lift(keypoints, **SIZE).poses)
    # The stream: each model with its own window; a frame comes once both know it.
    assert lifter.delay == max(0 if pose_causal else 4, 0 if root_causal else 13)
    stream = lifter.stream(**SIZE, record=True)
    order, poses = _run(stream, keypoints)
    assert order == list(range(30))
    np.testing.assert_allclose(poses, lifted.camera_poses, atol=1e-5, rtol=0)
    np.testing.assert_allclose(stream.result().trajectory, lifted.trajectory, atol=1e-5, rtol=0)


# --- rie predict --stream and the one loading path ---------------------------------------------

def test_predict_stream_writes_the_same_file_and_reports_latency(checkpoints, tmp_path):
    np.save(tmp_path / "kp.npy", _walk(25).astype(np.float32))
    common = ["predict", "-c", str(checkpoints[True]), "-k", str(tmp_path / "kp.npy"), "--width", "1000",
              "--height", "800"]
    assert runner.invoke(app, common + ["-o", str(tmp_path / "whole.npz")]).exit_code == 0
    result = runner.invoke(app, common + ["-o", str(tmp_path / "stream.npz"), "--stream"])
    assert result.exit_code == 0, result.stderr
    assert "latency" in result.stderr and "p99" in result.stderr and "frames/s" in result.stderr
    with np.load(tmp_path / "whole.npz") as whole, np.load(tmp_path / "stream.npz") as streamed:
        assert sorted(whole.files) == sorted(streamed.files)
        for key in whole.files:
            if whole[key].dtype.kind == "f":
                np.testing.assert_allclose(streamed[key], whole[key], atol=1e-5, rtol=0)
            else:
                np.testing.assert_array_equal(streamed[key], whole[key])


def test_commands_load_through_load_for_inference(checkpoints, monkeypatch, tmp_path):
    """evaluate, export, render and predict reach the model through load_for_inference
    (defined in rie_cli.loading, re-exported by rie_cli.api: both names are watched)."""
    import rie_cli.api as api
    import rie_cli.loading as loading
    from rie_cli.evaluation import evaluate_checkpoint
    from rie_cli.export import export_model

    calls = []
    original = loading.load_for_inference
    assert api.load_for_inference is original  # one function, two names

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(api, "load_for_inference", spy)
    monkeypatch.setattr(loading, "load_for_inference", spy)
    np.save(tmp_path / "kp.npy", _walk(12).astype(np.float32))
    assert runner.invoke(app, ["predict", "-c", str(checkpoints[False]), "-k", str(tmp_path / "kp.npy"),
                               "-o", str(tmp_path / "o.npz"), "--width", "10", "--height", "8"]).exit_code == 1
    assert calls == []  # refused before loading: the keypoints reach far outside a 10 x 8 image
    Lifter.from_checkpoint(checkpoints[False], device="cpu", tta=False)
    assert calls[-1]["tta"] is False
    export_model(checkpoints[False], tmp_path / "m.pt2", "pt2", tta=False)
    assert calls[-1]["device"] == "cpu" and calls[-1]["tta"] is False
    with pytest.raises(RieError):
        evaluate_checkpoint(checkpoints[False], tmp_path / "absent.h5", "gt")
    assert len(calls) == 2  # the data is checked before the model is loaded
