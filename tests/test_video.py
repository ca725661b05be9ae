"""From a video to 2D keypoints: the BlazePose mapping, the real MediaPipe detector on the
lab clip of ../shared/data/video, rotation, and the detector interface."""

from __future__ import annotations

import socket
import subprocess
import sys

import imageio_ffmpeg
import numpy as np
import pytest

from rie_cli.errors import RieError
from rie_cli.joint_layouts import COCO_17_NAMES
from rie_cli.lifting import prepare_keypoints
from rie_cli.keypoint_tracks import KeypointTrack
from rie_cli.skeleton import H36M_17
from rie_cli.video.detector import DETECTORS, VideoDetections, create_detector, detect_video, person_jumps
from rie_cli.video.mediapipe_pose import BLAZEPOSE_33_NAMES, BLAZEPOSE_TO_COCO, blazepose_to_coco

LAB_FRAMES = 30  # half a second of the 60 fps lab clip: enough to judge, short enough for CI
H36M = {name: j for j, name in enumerate(H36M_17.joint_names)}
COCO = {name: j for j, name in enumerate(COCO_17_NAMES)}
BLAZE = {name: j for j, name in enumerate(BLAZEPOSE_33_NAMES)}


# --- the mapping (no detector needed) ---------------------------------------------------

def test_blazepose_to_coco_takes_the_same_named_points():
    """Each COCO-17 joint comes from the BlazePose point of the same name and side
    (COCO's l_/r_ are BlazePose's left_/right_: the person's own sides in both)."""
    for coco_index, blaze_index in enumerate(BLAZEPOSE_TO_COCO):
        coco_name = COCO_17_NAMES[coco_index]
        expected = coco_name.replace("l_", "left_").replace("r_", "right_")
        assert BLAZEPOSE_33_NAMES[blaze_index] == expected
    assert len(BLAZEPOSE_33_NAMES) == 33 and len(set(BLAZEPOSE_TO_COCO)) == 17


def test_blazepose_to_h36m_derived_joints_and_sides():
    """BlazePose-33 -> COCO-17 -> Human3.6M-17 (rie_cli.joint_layouts.coco_to_h36m): the
    limbs are the same-named points, pelvis/thorax the mid-points, spine between them,
    neck/nose the nose, head above the face centre; left stays left."""
    rng = np.random.default_rng(0)
    blaze = rng.uniform(100, 900, size=(4, 33, 2))  # every point distinct
    points, scores = blazepose_to_coco(blaze, np.ones((4, 33)))
    prepared = prepare_keypoints(KeypointTrack(points, scores, "coco", "video", 1000, 1000), "auto", 0.3)
    h36m = prepared.pixels.astype(np.float64)  # (4, 17, 2)
    for side, short in (("left", "l"), ("right", "r")):
        for limb, h36m_name in (("shoulder", "shoulder"), ("elbow", "elbow"), ("wrist", "wrist"), ("hip", "hip"),
                                ("knee", "knee"), ("ankle", "foot")):
            np.testing.assert_allclose(h36m[:, H36M[f"{short}_{h36m_name}"]], blaze[:, BLAZE[f"{side}_{limb}"]],
                                       atol=1e-3)
    pelvis = blaze[:, [BLAZE["left_hip"], BLAZE["right_hip"]]].mean(1)
    thorax = blaze[:, [BLAZE["left_shoulder"], BLAZE["right_shoulder"]]].mean(1)
    np.testing.assert_allclose(h36m[:, H36M["hip"]], pelvis, atol=1e-3)
    np.testing.assert_allclose(h36m[:, H36M["thorax"]], thorax, atol=1e-3)
    np.testing.assert_allclose(h36m[:, H36M["spine"]], (pelvis + thorax) / 2, atol=1e-3)
    np.testing.assert_allclose(h36m[:, H36M["neck_nose"]], blaze[:, BLAZE["nose"]], atol=1e-3)
    face = blaze[:, [BLAZE[n] for n in ("left_eye", "right_eye", "left_ear", "right_ear")]].mean(1)
    head_direction = np.einsum("td,td->t", h36m[:, H36M["head"]] - face, face - thorax)
    assert (head_direction > 0).all()  # the head lies beyond the face, away from the thorax


def test_unknown_detector_is_one_line():
    with pytest.raises(RieError, match="unknown detector 'openpose'"):
        create_detector("openpose")
    assert "mediapipe" in DETECTORS


def test_missing_mediapipe_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import fails as if not installed
    with pytest.raises(RieError, match=r'pip install -e "\.\[video\]"'):
        create_detector("mediapipe")


class _FixedDetector:
    """A stand-in detector: the interface is all `detect_video` needs."""

    name, layout = "fixed", "coco"

    def __init__(self, missing=()):
        self.calls, self.missing = 0, set(missing)

    def detect(self, frame):
        index, self.calls = self.calls, self.calls + 1
        if index in self.missing:
            return np.full((17, 2), np.nan, np.float32), np.zeros(17, np.float32)
        h, w = frame.shape[:2]
        body = np.stack([np.arange(17) * 0.5, np.arange(17) * 1.0], axis=-1)  # a person ~19 px tall
        return (body + (w / 4 + index, h / 4)).astype(np.float32), np.ones(17, np.float32)

    def close(self):
        pass


def _small_clip(path, frames=8, size=(48, 32), fps=24):
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, macro_block_size=1)
    writer.send(None)
    for _ in range(frames):
        writer.send(np.zeros((size[1], size[0], 3), np.uint8))
    writer.close()
    return path


def test_detect_video_streams_frames_through_any_detector(tmp_path):
    clip = _small_clip(tmp_path / "clip.mp4")
    detector = _FixedDetector(missing={2, 3})
    seen = []
    detections = detect_video(clip, detector, max_frames=6, on_start=seen.append)
    track = detections.track
    assert detector.calls == 6 and track.points.shape == (6, 17, 2) and track.scores.shape == (6, 17)
    assert (track.width, track.height, track.fps, track.layout) == (48, 32, 24.0, "coco")
    assert seen[0].fps == 24.0 and detections.person_share == pytest.approx(4 / 6)
    assert np.isnan(track.points[2:4]).all() and track.points[5, 0, 0] == 12 + 5
    assert any("no person found in 2 of 6 frames" in note for note in track.notes)
    assert not any("jumps" in note for note in track.notes)
    with pytest.raises(RieError, match="found no person in any frame"):
        detect_video(clip, _FixedDetector(missing=range(8)))


def test_person_jumps_finds_a_switch_to_someone_else():
    t = np.arange(12, dtype=float)[:, None, None]
    body = np.random.default_rng(1).uniform(0, 100, size=(1, 17, 2))  # about 140 px across
    points = body + t * [4.0, 0.0]  # walking 4 px a frame
    points[7:] += [600.0, 50.0]  # from frame 7 on, another person far away
    points[3] = np.nan  # a frame without anyone is skipped, not a jump
    assert person_jumps(points) == [7]
    assert person_jumps(points[:7]) == []


# --- the real detector on the real lab clip -----------------------------------------------

@pytest.fixture(scope="module")
def lab_clip(video_dir):
    return video_dir / "lab_single_cam01.mp4"


@pytest.fixture(scope="module")
def lab_detections(lab_clip) -> VideoDetections:
    """MediaPipe on the first frames of the lab clip, with every socket refused: the
    detector must not reach the network (its weights are in the wheel)."""
    pytest.importorskip("mediapipe", reason='the optional "video" extra (pip install -e ".[video]")')

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during detection")

    patch = pytest.MonkeyPatch()
    patch.setattr(socket.socket, "connect", refuse)
    patch.setattr(socket, "create_connection", refuse)
    try:
        detector = create_detector("mediapipe")
        try:
            return detect_video(lab_clip, detector, max_frames=LAB_FRAMES)
        finally:
            detector.close()
    finally:
        patch.undo()


def test_lab_clip_person_found_inside_the_image(lab_detections):
    track = lab_detections.track
    assert (track.width, track.height, lab_detections.fps) == (1080, 1920, 60.0)  # portrait, as stored
    assert track.num_frames == LAB_FRAMES and lab_detections.person_share >= 0.95
    seen = lab_detections.person_frames
    points = track.points[seen]
    assert (points[..., 0] >= 0).all() and (points[..., 0] < 1080).all()
    assert (points[..., 1] >= 0).all() and (points[..., 1] < 1920).all()
    assert np.median(track.scores[seen]) > 0.9  # visibility of a person in full view


def test_lab_clip_bones_stable_and_sides_not_swapped(lab_detections):
    """The man faces the camera all clip long: his left shoulder and hip are on the
    image's right. Thighs, shoulders and hips keep their length from frame to frame
    (a jump would be a limb flipping or the bystander taken for him)."""
    p = lab_detections.track.points[lab_detections.person_frames]  # (N, 17, 2) COCO
    for left, right in (("l_shoulder", "r_shoulder"), ("l_hip", "r_hip"), ("l_knee", "r_knee")):
        assert (p[:, COCO[left], 0] > p[:, COCO[right], 0]).mean() >= 0.95
    assert person_jumps(lab_detections.track.points) == []
    for a, b in (("l_hip", "l_knee"), ("r_hip", "r_knee"), ("l_shoulder", "r_shoulder"), ("l_hip", "r_hip")):
        length = np.linalg.norm(p[:, COCO[a]] - p[:, COCO[b]], axis=-1)
        assert length.std() / length.mean() < 0.12, (a, b)
        assert np.abs(np.diff(length)).max() / length.mean() < 0.2, (a, b)


def test_mapped_left_wrist_is_mediapipes_left_wrist(lab_clip, lab_detections):
    """MediaPipe run directly (same settings) on the same frames: our COCO left wrist is
    its LEFT_WRIST landmark, in pixels."""
    mediapipe = pytest.importorskip("mediapipe")
    from rie_cli.video.reader import VideoReader

    pose_module = mediapipe.solutions.pose
    pose = pose_module.Pose(static_image_mode=False, model_complexity=1, enable_segmentation=False)
    try:
        for t, frame in enumerate(VideoReader(lab_clip, max_frames=3)):
            wrist = pose.process(frame).pose_landmarks.landmark[pose_module.PoseLandmark.LEFT_WRIST]
            ours = lab_detections.track.points[t, COCO["l_wrist"]]
            np.testing.assert_allclose(ours, (wrist.x * 1080, wrist.y * 1920), atol=1e-3)
    finally:
        pose.close()


def test_rotated_phone_clip_gives_upright_keypoints(lab_clip, lab_detections, tmp_path):
    """The lab clip stored as a phone stores it (landscape pixels + a -90 degree display
    rotation): the reader turns it back, so the keypoints match the portrait clip's."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    landscape, rotated = tmp_path / "landscape.mp4", tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(lab_clip), "-frames:v", "6",
                    "-vf", "transpose=2", "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(landscape)],
                   check=True)
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-display_rotation", "-90", "-i", str(landscape),
                    "-c", "copy", str(rotated)], check=True)
    detector = create_detector("mediapipe")
    try:
        turned = detect_video(rotated, detector)
    finally:
        detector.close()
    assert (turned.info.width, turned.info.height, turned.info.rotation) == (1080, 1920, 270)
    difference = np.abs(turned.track.points - lab_detections.track.points[:6])
    assert np.median(difference) < 5.0  # pixels: re-encoding moves the detections a little, never the body
