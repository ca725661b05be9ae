"""Reading detector outputs (rie_cli.keypoint_formats): every format from small files
written here, layout detection, and the COCO-17 -> Human3.6M-17 mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rie_cli.errors import RieError
from rie_cli.joint_layouts import COCO_17_NAMES, HEAD_RAISE, coco_to_h36m, detect_layout
from rie_cli.keypoint_formats import detect_format, read_keypoints

# A standing person in COCO-17 order, pixels (y down): a hand-made frame whose
# Human3.6M counterpart is known exactly.
COCO_FRAME = np.array([
    [100.0, 40.0],   # nose
    [104.0, 36.0],   # l_eye
    [96.0, 36.0],    # r_eye
    [110.0, 38.0],   # l_ear
    [90.0, 38.0],    # r_ear
    [120.0, 70.0],   # l_shoulder
    [80.0, 70.0],    # r_shoulder
    [126.0, 100.0],  # l_elbow
    [74.0, 100.0],   # r_elbow
    [128.0, 130.0],  # l_wrist
    [72.0, 130.0],   # r_wrist
    [112.0, 140.0],  # l_hip
    [88.0, 140.0],   # r_hip
    [113.0, 190.0],  # l_knee
    [87.0, 190.0],   # r_knee
    [114.0, 240.0],  # l_ankle
    [86.0, 240.0],   # r_ankle
])


def h36m_frame() -> np.ndarray:
    """The same standing person in Human3.6M-17 order (pelvis at the hips' midpoint)."""
    c = COCO_FRAME
    pelvis, thorax = (c[11] + c[12]) / 2, (c[5] + c[6]) / 2
    return np.array([pelvis, c[12], c[14], c[16], c[11], c[13], c[15], (pelvis + thorax) / 2, thorax,
                     c[0], [100.0, 20.0], c[5], c[7], c[9], c[6], c[8], c[10]])


# --- arrays -------------------------------------------------------------------------------

def test_npy_array_is_read_as_pixels_without_scores(tmp_path):
    points = np.tile(h36m_frame(), (5, 1, 1)).astype(np.float32)
    np.save(tmp_path / "kp.npy", points)
    track = read_keypoints(tmp_path / "kp.npy")
    assert track.points.shape == (5, 17, 2) and track.scores is None
    assert track.layout is None  # a bare array does not say its joint order
    np.testing.assert_array_equal(track.points, points)
    assert (track.width, track.height) == (None, None)


def test_npz_with_score_column_size_and_layout(tmp_path):
    points = np.tile(COCO_FRAME, (4, 1, 1))
    scores = np.linspace(0.1, 0.9, 4 * 17).reshape(4, 17, 1)
    np.savez(tmp_path / "kp.npz", keypoints=np.concatenate([points, scores], -1), width=640, height=480,
             layout="coco")
    track = read_keypoints(tmp_path / "kp.npz")
    np.testing.assert_array_equal(track.points, points)
    np.testing.assert_array_equal(track.scores, scores[..., 0])
    assert (track.width, track.height, track.layout) == (640, 480, "coco")


def test_format_names_the_joint_order_of_an_array(tmp_path):
    np.save(tmp_path / "kp.npy", np.tile(COCO_FRAME, (3, 1, 1)))
    assert read_keypoints(tmp_path / "kp.npy", "coco").layout == "coco"
    assert read_keypoints(tmp_path / "kp.npy", "h36m").layout == "h36m"


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 17)), "(frames, joints, 2)"),
    (np.zeros((4, 17, 4)), "(frames, joints, 2)"),
    (np.array([["a", "b"]]), "numeric"),
])
def test_bad_arrays_are_one_line_errors(tmp_path, array, message):
    np.save(tmp_path / "kp.npy", array)
    with pytest.raises(RieError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_keypoints(tmp_path / "kp.npy")


def test_npz_without_keypoints_lists_its_keys(tmp_path):
    np.savez(tmp_path / "kp.npz", poses=np.zeros((2, 17, 2)))
    with pytest.raises(RieError, match="poses"):
        read_keypoints(tmp_path / "kp.npz")


# --- VideoPose3D custom --------------------------------------------------------------------

def _write_vp3d(path, videos: dict, layout_name="coco"):
    metadata = {"layout_name": layout_name, "num_joints": 17,
                "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
                "video_metadata": {name: {"w": w, "h": h} for name, (_, w, h) in videos.items()}}
    positions = {name: {"custom": [array.astype(np.float32)]} for name, (array, _, _) in videos.items()}
    np.savez_compressed(path, positions_2d=positions, metadata=metadata)


def test_vp3d_custom_reads_track_resolution_and_layout(tmp_path):
    array = np.tile(COCO_FRAME, (6, 1, 1))
    _write_vp3d(tmp_path / "data_2d_custom_test.npz", {"clip": (array, 1280, 720)})
    assert detect_format(tmp_path / "data_2d_custom_test.npz") == "vp3d-custom"
    track = read_keypoints(tmp_path / "data_2d_custom_test.npz")
    assert (track.format, track.layout, track.width, track.height) == ("vp3d-custom", "coco", 1280, 720)
    np.testing.assert_allclose(track.points, array)


def test_vp3d_custom_with_several_videos_needs_a_name(tmp_path):
    a, b = np.tile(COCO_FRAME, (3, 1, 1)), np.tile(COCO_FRAME + 5, (4, 1, 1))
    path = tmp_path / "two.npz"
    _write_vp3d(path, {"walk": (a, 1920, 1080), "jump": (b, 640, 480)})
    with pytest.raises(RieError, match="pick one with video_name .*jump, walk"):
        read_keypoints(path)
    track = read_keypoints(path, video_name="jump")
    assert track.num_frames == 4 and (track.width, track.height) == (640, 480)
    with pytest.raises(RieError, match="'run' is not in"):
        read_keypoints(path, video_name="run")


# --- MMPose --------------------------------------------------------------------------------

def _instance(points, score, bbox_score):
    return {"keypoints": points.tolist(), "keypoint_scores": [score] * len(points),
            "bbox": [[0, 0, 10, 10]], "bbox_score": bbox_score}


def test_mmpose_inferencer_list_keeps_the_most_confident_person(tmp_path):
    frames = [
        {"frame_id": 0, "instances": [_instance(COCO_FRAME, 0.9, 0.95)]},
        {"frame_id": 1, "instances": [_instance(COCO_FRAME + 300, 0.8, 0.4), _instance(COCO_FRAME + 1, 0.7, 0.9)]},
        {"frame_id": 2, "instances": []},  # nobody detected
    ]
    (tmp_path / "clip.json").write_text(json.dumps(frames))
    track = read_keypoints(tmp_path / "clip.json")
    assert track.format == "mmpose-json" and track.points.shape == (3, 17, 2)
    np.testing.assert_allclose(track.points[1], COCO_FRAME + 1)  # bbox score 0.9 beats 0.4
    assert np.allclose(track.scores[1], 0.7)
    assert np.isnan(track.points[2]).all()
    assert any("several people" in note for note in track.notes)


def test_mmpose_demo_layout_with_meta_info(tmp_path):
    doc = {"meta_info": {"dataset_name": "coco", "num_keypoints": 17},
           "instance_info": [{"frame_id": i + 1, "instances": [_instance(COCO_FRAME + i, 0.9, 0.9)]}
                             for i in (1, 0)]}  # out of order on purpose
    (tmp_path / "results_clip.json").write_text(json.dumps(doc))
    track = read_keypoints(tmp_path / "results_clip.json", "mmpose-json")
    assert track.layout == "coco"
    np.testing.assert_allclose(track.points[:, 0], [COCO_FRAME[0], COCO_FRAME[0] + 1])  # sorted by frame_id


def test_mmpose_older_flat_keypoints_and_wholebody(tmp_path):
    flat = [{"keypoints": np.concatenate([COCO_FRAME, np.full((17, 1), 0.8)], 1).reshape(-1).tolist()}
            for _ in range(3)]
    (tmp_path / "old.json").write_text(json.dumps(flat))
    track = read_keypoints(tmp_path / "old.json")
    np.testing.assert_allclose(track.points[2], COCO_FRAME)
    np.testing.assert_allclose(track.scores, 0.8)

    body = np.concatenate([COCO_FRAME, np.full((116, 2), 7.0)])  # 133 COCO-WholeBody points
    frames = [{"frame_id": 0, "instances": [_instance(body, 0.9, 0.9)]}]
    (tmp_path / "wb.json").write_text(json.dumps(frames))
    track = read_keypoints(tmp_path / "wb.json")
    assert track.layout == "coco" and track.points.shape == (1, 17, 2)
    np.testing.assert_allclose(track.points[0], COCO_FRAME)


def test_mmpose_unknown_keypoint_count_is_refused(tmp_path):
    frames = [{"frame_id": 0, "instances": [_instance(np.zeros((21, 2)), 0.9, 0.9)]}]
    (tmp_path / "hand.json").write_text(json.dumps(frames))
    with pytest.raises(RieError, match="21 keypoints"):
        read_keypoints(tmp_path / "hand.json")


# --- OpenPose ------------------------------------------------------------------------------

BODY25_FROM_COCO = (0, None, 6, 8, 10, 5, 7, 9, None, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3,
                    None, None, None, None, None, None)


def _body25(coco: np.ndarray, conf: float = 0.9) -> list[float]:
    """A BODY_25 person built from a COCO frame (neck, mid-hip and feet made up)."""
    people = []
    for source in BODY25_FROM_COCO:
        x, y = (coco[source] if source is not None else (50.0, 50.0))
        people += [float(x), float(y), conf]
    return people


def _write_openpose(folder, frames: list[list[list[float]]]):
    folder.mkdir()
    for t, people in enumerate(frames):
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p} for p in people]}
        # Unpadded numbers on purpose: frame 10 must follow frame 9, not frame 1.
        (folder / f"clip_{t}_keypoints.json").write_text(json.dumps(doc))


def test_openpose_body25_folder_becomes_coco17(tmp_path):
    frames = [[_body25(COCO_FRAME + t)] for t in range(12)]
    frames[3] = []  # nobody in frame 3
    frames[4] = [_body25(COCO_FRAME + 4, conf=0.2), _body25(COCO_FRAME + 100, conf=0.9)]
    _write_openpose(tmp_path / "op", frames)
    assert detect_format(tmp_path / "op") == "openpose-dir"
    track = read_keypoints(tmp_path / "op")
    assert (track.format, track.layout) == ("openpose-dir", "coco")
    assert track.points.shape == (12, 17, 2)
    # Frame order follows the frame number, not the name (clip_10 sorts before clip_2).
    np.testing.assert_allclose(track.points[11], COCO_FRAME + 11)
    np.testing.assert_allclose(track.points[10], COCO_FRAME + 10)
    assert np.isnan(track.points[3]).all()
    np.testing.assert_allclose(track.points[4], COCO_FRAME + 100)  # the more confident person
    np.testing.assert_allclose(track.scores[0], 0.9)


def test_openpose_coco18_and_unmappable_mpi(tmp_path):
    coco18_from_coco = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
    person = []
    for source in coco18_from_coco:
        x, y = COCO_FRAME[source] if source is not None else (50.0, 50.0)
        person += [float(x), float(y), 0.8]
    _write_openpose(tmp_path / "c18", [[person]] * 2)
    track = read_keypoints(tmp_path / "c18", "openpose-dir")
    np.testing.assert_allclose(track.points[1], COCO_FRAME)

    _write_openpose(tmp_path / "mpi", [[[1.0, 2.0, 0.9] * 15]])
    with pytest.raises(RieError, match="15 keypoints.*BODY_25 or COCO-18"):
        read_keypoints(tmp_path / "mpi")


def test_one_openpose_file_is_not_a_sequence(tmp_path):
    (tmp_path / "f_keypoints.json").write_text(json.dumps({"version": 1.3, "people": []}))
    with pytest.raises(RieError, match="give the folder"):
        read_keypoints(tmp_path / "f_keypoints.json")


def test_unknown_suffix_and_broken_json(tmp_path):
    (tmp_path / "kp.txt").write_text("1 2 3")
    with pytest.raises(RieError, match="cannot tell the format"):
        read_keypoints(tmp_path / "kp.txt")
    (tmp_path / "kp.json").write_text("[{")
    with pytest.raises(RieError, match="not valid JSON"):
        read_keypoints(tmp_path / "kp.json")
    with pytest.raises(RieError, match="not found"):
        read_keypoints(tmp_path / "missing.npy")


# --- layouts -------------------------------------------------------------------------------

def test_detect_layout_tells_h36m_from_coco():
    assert detect_layout(np.tile(COCO_FRAME, (3, 1, 1))) == "coco"
    assert detect_layout(np.tile(h36m_frame(), (3, 1, 1))) == "h36m"


def test_detect_layout_on_real_motion_capture(bnmocap_dir):
    data = np.load(bnmocap_dir / "data_2d_bnmocap_gt.npz", allow_pickle=True)["positions_2d"].item()
    for camera in range(4):
        assert detect_layout(data["BN2-normal"]["walk 001.1"][camera]) == "h36m"


def test_coco_mapping_on_a_hand_made_frame():
    coco = np.tile(COCO_FRAME, (2, 1, 1))
    filled = np.zeros((2, 17), dtype=bool)
    filled[1, 11] = True  # the left hip of frame 1 was filled in
    h36m, h36m_filled, notes = coco_to_h36m(coco, filled)
    expected = h36m_frame()
    # head: face centre (mean of eyes and ears = (100, 37)) raised along thorax (100, 70) -> face.
    face = COCO_FRAME[1:5].mean(0)
    expected[10] = face + HEAD_RAISE * (face - np.array([100.0, 70.0]))
    np.testing.assert_allclose(h36m[0], expected)
    np.testing.assert_allclose(h36m[0, 0], [100.0, 140.0])  # pelvis = mid-hips
    np.testing.assert_allclose(h36m[0, 8], [100.0, 70.0])  # thorax = mid-shoulders
    np.testing.assert_allclose(h36m[0, 7], [100.0, 105.0])  # spine halfway
    np.testing.assert_allclose(h36m[0, 10], [100.0, 20.5])
    # Human3.6M's right joints are COCO's right joints (image left here).
    np.testing.assert_allclose(h36m[0, [1, 2, 3, 14, 15, 16]], COCO_FRAME[[12, 14, 16, 6, 8, 10]])
    # Filled flags follow every joint built from the filled hip: pelvis, l_hip, spine.
    assert set(np.flatnonzero(h36m_filled[1])) == {0, 4, 7}
    assert not h36m_filled[0].any() and notes == []


def test_coco_mapping_without_ears_eyes_or_nose():
    coco = np.tile(COCO_FRAME, (2, 1, 1))
    no_face = coco.copy()
    no_face[:, 1:5] = np.nan  # eyes and ears never seen: head from the nose
    h36m, _, notes = coco_to_h36m(no_face, np.zeros((2, 17), bool))
    np.testing.assert_allclose(h36m[0, 10], COCO_FRAME[0] + HEAD_RAISE * (COCO_FRAME[0] - [100.0, 70.0]))
    assert any("nose" in n for n in notes)
    no_face[:, 0] = np.nan
    with pytest.raises(RieError, match="no face keypoint"):
        coco_to_h36m(no_face, np.zeros((2, 17), bool))
    no_hip = coco.copy()
    no_hip[:, 12] = np.nan
    with pytest.raises(RieError, match=COCO_17_NAMES[12]):
        coco_to_h36m(no_hip, np.zeros((2, 17), bool))


def test_face_points_seen_later_join_from_their_first_frame():
    """The neck and head come from the face points seen so far (what a stream can know):
    the nose and the left ear, first seen at frames 3 and 5, are used from there on."""
    coco = np.tile(COCO_FRAME, (8, 1, 1))
    filled = np.zeros((8, 17), dtype=bool)
    filled[:3, 0] = filled[:5, 3] = True  # gap-filled backwards: not seen yet
    h36m, h36m_filled, notes = coco_to_h36m(coco, filled)
    thorax = np.array([100.0, 70.0])
    early = COCO_FRAME[[1, 2, 4]].mean(0)  # eyes and the right ear
    later = COCO_FRAME[1:5].mean(0)
    np.testing.assert_allclose(h36m[:3, 9], np.tile(early, (3, 1)))  # neck = face centre before the nose
    np.testing.assert_allclose(h36m[3:, 9], np.tile(COCO_FRAME[0], (5, 1)))
    np.testing.assert_allclose(h36m[:5, 10], np.tile(early + HEAD_RAISE * (early - thorax), (5, 1)))
    np.testing.assert_allclose(h36m[5:, 10], np.tile(later + HEAD_RAISE * (later - thorax), (3, 1)))
    assert not h36m_filled[:, [9, 10]].any()  # only points actually seen are used
    assert any("nose, l_ear first seen after the start" in n for n in notes)
    # Frames before the whole body has been seen take the set of the first complete frame.
    filled[:2, 12] = True
    h36m_late, _, _ = coco_to_h36m(coco, filled)
    np.testing.assert_allclose(h36m_late, h36m)


def test_video_name_only_applies_to_vp3d_custom_files(tmp_path):
    np.save(tmp_path / "kp.npy", np.tile(COCO_FRAME, (3, 1, 1)))
    with pytest.raises(RieError, match="video_name picks a video"):
        read_keypoints(tmp_path / "kp.npy", video_name="clip")
