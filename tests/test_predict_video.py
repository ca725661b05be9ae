"""`rie predict --video` and `Lifter.lift_video`: the real detector on the lab clip, lifted
and written as .npz, BVH and MP4; the same numbers from the saved detections; option errors."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from bvh_reader import parse_bvh
from rie_cli.cli import app
from rie_cli.render import BLANK_BACKGROUND
from rie_cli.video.reader import VideoReader

runner = CliRunner()
FRAMES = 12  # the first fifth of a second of the 60 fps lab clip


@pytest.fixture(scope="module")
def lab_clip(video_dir):
    return video_dir / "lab_single_cam01.mp4"


@pytest.fixture(scope="module")
def video_run(lab_clip, small_checkpoint, tmp_path_factory):
    """`rie predict --video` with every output, then `--keypoints` on the saved detections."""
    pytest.importorskip("mediapipe", reason='the optional "video" extra (pip install -e ".[video]")')
    tmp = tmp_path_factory.mktemp("predict_video")
    common = ["predict", "-c", str(small_checkpoint), "-b", "64"]
    from_video = runner.invoke(app, [*common, "--video", str(lab_clip), "--max-frames", str(FRAMES),
                                     "-o", str(tmp / "video.npz"), "--bvh", str(tmp / "video.bvh"),
                                     "--render", str(tmp / "video.mp4"), "--save-keypoints", str(tmp / "kp.npz")])
    assert from_video.exit_code == 0, from_video.stderr
    from_file = runner.invoke(app, [*common, "-k", str(tmp / "kp.npz"), "-o", str(tmp / "file.npz"),
                                    "--bvh", str(tmp / "file.bvh")])
    assert from_file.exit_code == 0, from_file.stderr
    return tmp, from_video.stderr


def test_outputs_from_a_video_open(video_run, lab_clip):
    tmp, stderr = video_run
    assert "person found" in stderr and "mediapipe" in stderr and "wrote" in stderr
    with np.load(tmp / "video.npz") as f:
        assert f["poses_3d"].shape == (FRAMES, 17, 3) and np.isfinite(f["poses_3d"]).all()
        assert float(f["fps"]) == 60.0 and (int(f["width"]), int(f["height"])) == (1080, 1920)
        assert str(f["video"]) == str(lab_clip) and str(f["detector"]) == "mediapipe"
    with np.load(tmp / "kp.npz") as f:  # the saved detections: COCO-17 pixels + scores
        assert f["keypoints"].shape == (FRAMES, 17, 3) and str(f["layout"]) == "coco" and float(f["fps"]) == 60.0
    bvh = parse_bvh(tmp / "video.bvh")
    assert bvh.motion.shape[0] == FRAMES and bvh.frame_time == pytest.approx(1 / 60, abs=1e-6)


def test_render_shows_the_video_frames_at_its_fps(video_run):
    with VideoReader(video_run[0] / "video.mp4") as movie:
        assert movie.info.fps == 60.0
        frames = [frame.copy() for frame in movie]
    assert len(frames) == FRAMES
    panel = frames[0][30:-10, 10:frames[0].shape[1] // 2 - 10].astype(float)  # the input panel
    blank = np.abs(panel - np.array(BLANK_BACKGROUND) * 255).max(-1) < 8
    assert blank.mean() < 0.3 and panel.std() > 20  # the lab's pixels, not an empty image


def test_saved_detections_lift_to_the_same_poses(video_run):
    """Detect once, lift many times: `--keypoints` on `--save-keypoints`'s file gives the
    poses and the BVH motion of `--video` (the fps comes from the file too)."""
    tmp, _ = video_run
    with np.load(tmp / "video.npz") as a, np.load(tmp / "file.npz") as b:
        np.testing.assert_allclose(a["poses_3d"], b["poses_3d"], atol=1e-6, rtol=0)
        np.testing.assert_allclose(a["keypoints_2d"], b["keypoints_2d"], atol=1e-6, rtol=0)
        assert float(b["fps"]) == 60.0
    motion_video, motion_file = parse_bvh(tmp / "video.bvh"), parse_bvh(tmp / "file.bvh")
    np.testing.assert_allclose(motion_video.motion, motion_file.motion, atol=1e-6, rtol=0)
    assert motion_file.frame_time == motion_video.frame_time


def test_lift_video_is_predict_video(video_run, lab_clip, small_checkpoint):
    from rie_cli import Lifter

    result = Lifter.from_checkpoint(small_checkpoint, device="cpu").lift_video(lab_clip, max_frames=FRAMES)
    with np.load(video_run[0] / "video.npz") as f:
        np.testing.assert_allclose(result.poses, f["poses_3d"], atol=1e-6, rtol=0)
    assert result.detections.fps == 60.0 and result.detections.person_share >= 0.95
    assert (result.width, result.height) == (1080, 1920)


@pytest.mark.parametrize("args, message", [
    (["--max-frames", "5"], "--max-frames works with --video only"),
    (["--save-keypoints", "kp.npz"], "--save-keypoints works with --video only"),
    (["--video", "clip.mp4", "--width", "640"], "--width does not apply to --video"),
    (["--video", "clip.mp4", "-k", "kp.npz"], "--keypoints does not apply to --video"),
    (["--video", "clip.mp4", "--layout", "coco"], "--layout does not apply to --video"),
    (["--video", "clip.mp4", "--person", "all"], "--person does not apply to --video"),
    (["--video", "clip.mp4", "--save-keypoints", "kp.json"], "use an .npz file"),
    (["--video", "missing.mp4"], "video not found"),
    ([], "give the 2D input"),
])
def test_video_option_errors_are_one_line(args, message, small_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"")
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "-o", "out.npz", *args])
    assert result.exit_code == 1 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_existing_saved_keypoints_are_refused_before_detecting(small_checkpoint, tmp_path):
    (tmp_path / "kp.npz").write_bytes(b"keep")
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "--video", str(tmp_path / "clip.mp4"),
                                 "-o", str(tmp_path / "out.npz"), "--save-keypoints", str(tmp_path / "kp.npz")])
    assert result.exit_code == 1 and "use --force" in result.stderr
    assert (tmp_path / "kp.npz").read_bytes() == b"keep"


def test_a_bad_checkpoint_stops_the_detection_with_one_line(lab_clip, tmp_path):
    """The model loads in another thread while the detector runs: its error still ends the
    command as one line (at the next frame, not after the whole video)."""
    pytest.importorskip("mediapipe", reason="the optional 'video' extra (pip install 'rie[video]')")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["predict", "-c", str(bad), "--video", str(lab_clip), "-o", str(tmp_path / "o.npz")])
    assert result.exit_code == 1 and "bad.pt" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.npz").exists()
