"""Several people per frame (rie_cli.tracking, rie_cli.detector_json, Lifter.lift_tracks,
LiftStream with people): files built from two real motion-capture sequences give one
track per person, with the file's ids or the tracker's, and lifting a batch of people
equals lifting each alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import save_small_checkpoint
from rie_cli import Lifter
from rie_cli.detector_json import OPENPOSE_TO_COCO
from rie_cli.errors import RieError
from rie_cli.keypoint_formats import read_detections, read_keypoints
from rie_cli.tracking import person_tracks, select_people

FRAMES = 60
SIZE = dict(width=1000, height=1000)


@pytest.fixture(scope="module")
def two_people(bnmocap_dir) -> np.ndarray:
    """(2, FRAMES, 17, 2) pixels: two real sequences (Human3.6M-17, camera 0), the second
    one moved 350 px to the right so that the two never overlap."""
    data = np.load(bnmocap_dir / "data_2d_bnmocap_gt.npz", allow_pickle=True)["positions_2d"].item()
    a = data["BN2-normal"]["walk 001.1"][0][:FRAMES]
    b = data["BN2-active"]["walk 001.1"][0][:FRAMES] + [350.0, 0.0]
    return np.stack([a, b]).astype(np.float64)


def crossing(people: np.ndarray) -> np.ndarray:
    """The second person walks through the first: from 300 px left of it to 300 px right."""
    out = people.copy()
    out[1] = people[1] - [350.0, 0.0] + np.linspace(-300, 300, FRAMES)[:, None, None] * [1.0, 0.0]
    return out


def _scores(points: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.6, 1.0, points.shape[:-1])


def write_mmpose(path, people: np.ndarray, track_ids=None, present=None, seed=0):
    """The MMPose demo layout, the people of each frame in a shuffled order."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(people.shape[1]):
        instances = []
        for p in rng.permutation(len(people)):
            if present is not None and not present[p, t]:
                continue
            instance = {"keypoints": people[p, t].tolist(), "keypoint_scores": _scores(people[p, t], t).tolist(),
                        "bbox_score": 0.9 - 0.1 * p}
            if track_ids is not None:
                instance["track_id"] = track_ids[p]
            instances.append(instance)
        frames.append({"frame_id": t, "instances": instances})
    path.write_text(json.dumps({"meta_info": {"dataset_name": "h36m"}, "instance_info": frames}))
    return path


def write_coco_results(path, people: np.ndarray, track_ids, present=None):
    entries = []
    for t in range(people.shape[1]):
        for p in (1, 0):
            if present is None or present[p, t]:
                xyv = np.concatenate([people[p, t], np.full((17, 1), 2.0)], -1)
                entries.append({"image_id": 100 + t, "category_id": 1, "keypoints": xyv.reshape(-1).tolist(),
                                "score": 0.8, "track_id": track_ids[p]})
    path.write_text(json.dumps(entries))
    return path


def write_openpose(folder, people: np.ndarray):
    """BODY_25 frames: each person's 17 joints in the slots that become COCO-17's."""
    folder.mkdir()
    _, to_coco = OPENPOSE_TO_COCO[25]
    for t in range(people.shape[1]):
        persons = []
        for p in (0, 1):  # equal confidences: new tracks are numbered in the file's order
            body = np.zeros((25, 3))
            body[list(to_coco), :2] = people[p, t]
            body[list(to_coco), 2] = 0.9
            persons.append({"person_id": [-1], "pose_keypoints_2d": body.reshape(-1).tolist()})
        (folder / f"clip_{t:012d}_keypoints.json").write_text(json.dumps({"people": persons}))
    return folder


# --- one track per person -------------------------------------------------------------------------

def test_track_ids_of_the_file_keep_identities_where_people_cross(tmp_path, two_people):
    people = crossing(two_people)
    detections = read_detections(write_mmpose(tmp_path / "mm.json", people, track_ids=[7, 3]))
    tracks = person_tracks(detections)
    assert [t.person for t in tracks] == [3, 7] and all(t.first_frame == 0 for t in tracks)
    np.testing.assert_array_equal(tracks[0].points, people[1])  # no identity switch, frame by frame
    np.testing.assert_array_equal(tracks[1].points, people[0])
    assert tracks[0].layout == "h36m" and tracks[0].scores.shape == (FRAMES, 17)


def test_coco_results_with_track_ids_and_a_person_who_comes_later(tmp_path, two_people):
    present = np.ones((2, FRAMES), bool)
    present[1, :10] = False  # the second person enters at frame 10
    present[1, 30:33] = False  # and is lost for three frames
    detections = read_detections(write_coco_results(tmp_path / "res.json", two_people, [1, 2], present))
    assert detections.format == "coco-json" and detections.num_frames == FRAMES
    first, second = person_tracks(detections)
    assert (first.person, second.person, second.first_frame, second.num_frames) == (1, 2, 10, FRAMES - 10)
    np.testing.assert_array_equal(first.points, two_people[0])
    np.testing.assert_array_equal(second.points[:20], two_people[1, 10:30])
    assert np.isnan(second.points[20:23]).all()  # the lost frames are missing points, filled when lifted
    # Without --person, one person as before: the most confident in each frame.
    assert read_keypoints(tmp_path / "res.json").num_frames == FRAMES


def test_tracker_without_ids_on_people_who_stay_apart(tmp_path, two_people):
    present = np.ones((2, FRAMES), bool)
    present[0, 20:26] = False  # six frames without the first person: within the tracker's gap
    detections = read_detections(write_mmpose(tmp_path / "mm.json", two_people, present=present, seed=4))
    tracks = person_tracks(detections)
    assert len(tracks) == 2
    # Labels by first appearance, the more confident first (person 0's bbox score is higher).
    np.testing.assert_array_equal(tracks[0].points[:20], two_people[0, :20])
    np.testing.assert_array_equal(tracks[0].points[26:], two_people[0, 26:])
    np.testing.assert_array_equal(tracks[1].points, two_people[1])
    # OpenPose without person ids: the same two tracks, in COCO-17 after conversion.
    tracks = person_tracks(read_detections(write_openpose(tmp_path / "op", two_people)))
    assert len(tracks) == 2 and tracks[0].layout == "coco"
    np.testing.assert_allclose(tracks[0].points, two_people[0])
    np.testing.assert_allclose(tracks[1].points, two_people[1])


def test_tracker_on_keypoints_without_scores(tmp_path, two_people):
    frames = [{"frame_id": t, "instances": [{"keypoints": two_people[p, t].tolist()} for p in (1, 0)]}
              for t in range(FRAMES)]
    (tmp_path / "plain.json").write_text(json.dumps(frames))
    tracks = person_tracks(read_detections(tmp_path / "plain.json"))
    assert len(tracks) == 2 and tracks[0].scores is None
    np.testing.assert_array_equal(tracks[0].points, two_people[1])  # the file's first person is found first


def test_a_long_gap_starts_a_new_track(tmp_path, two_people):
    present = np.ones((2, FRAMES), bool)
    present[1, 20:40] = False  # 20 frames: longer than the tracker keeps a track
    tracks = person_tracks(read_detections(write_mmpose(tmp_path / "mm.json", two_people, present=present)))
    assert [(t.person, t.first_frame, t.num_frames) for t in tracks] == [(0, 0, FRAMES), (1, 0, 20), (2, 40, 20)]


def test_select_people_and_its_errors(tmp_path, two_people):
    detections = read_detections(write_mmpose(tmp_path / "mm.json", two_people, track_ids=[4, 9]))
    assert [t.person for t in select_people(detections, "all")] == [4, 9]
    assert [t.person for t in select_people(detections, "9")] == [9]
    assert select_people(detections, None)[0].person is None  # the most confident per frame
    with pytest.raises(RieError, match=r"no person 5 in the file \(people: 4, 9\)"):
        select_people(detections, 5)
    with pytest.raises(RieError, match="number or 'all'"):
        select_people(detections, "everyone")
    mixed = write_mmpose(tmp_path / "mixed.json", two_people, track_ids=[1, None])
    with pytest.raises(RieError, match="some people have a track id and others not"):
        person_tracks(read_detections(mixed))


# --- lifting a batch of people ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_small_checkpoint(tmp_path_factory.mktemp("people") / "causal.pt", seed=3, causal=True)


def test_lift_tracks_equals_each_person_alone(checkpoint, tmp_path, two_people):
    present = np.ones((2, FRAMES), bool)
    present[1, :10] = False
    tracks = person_tracks(read_detections(write_mmpose(tmp_path / "mm.json", two_people, [0, 1], present)))
    lifter = Lifter.from_checkpoint(checkpoint, device="cpu")
    together = lifter.lift_tracks(tracks, **SIZE, batch_size=7)  # batches mix the two people's windows
    for track, result in zip(tracks, together):
        alone = lifter.lift_track(track, **SIZE)
        assert result.poses.shape == (track.num_frames, 17, 3)
        np.testing.assert_allclose(result.poses, alone.poses, atol=1e-6, rtol=0)
    many = lifter.lift_many([two_people[0], two_people[1, 10:]], **SIZE)
    np.testing.assert_allclose(many[1].poses, together[1].poses, atol=1e-6, rtol=0)


def test_stream_of_several_people_equals_one_stream_each(checkpoint, two_people):
    lifter = Lifter.from_checkpoint(checkpoint, device="cpu")
    people = np.concatenate([two_people, _scores(two_people, 1)[..., None]], -1)  # (2, T, 17, 3)
    people[1, 15:18] = np.nan  # the second person is lost for three frames
    stream = lifter.stream(**SIZE, people=2, record=True)
    frames = []
    for t in range(FRAMES):
        frames.extend(stream.push(people[:, t]))
    frames.extend(stream.flush())
    assert [i for i, _ in frames] == list(range(FRAMES)) and frames[0][1].shape == (2, 17, 3)
    for p, recorded in enumerate(stream.result()):
        alone = lifter.stream(**SIZE, record=True)
        for t in range(FRAMES):
            alone.push(people[p, t])
        alone.flush()
        expected = alone.result()
        np.testing.assert_allclose(np.stack([f[1][p] for f in frames]), expected.poses, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(recorded.filled, expected.filled)
    with pytest.raises(RieError, match=r"must have shape \(2, 17, 2\)"):
        lifter.stream(**SIZE, people=2).push(people[0, 0])


def test_posetrack_style_images_give_the_frames_and_the_size(tmp_path, two_people):
    images = [{"id": f"img{t}", "frame_id": t, "width": 1280, "height": 720} for t in (2, 0, 1)]
    annotations = [{"image_id": f"img{t}", "keypoints": np.concatenate([two_people[0, t], np.ones((17, 1))], -1)
                    .reshape(-1).tolist(), "track_id": 5} for t in (1, 2)]
    path = tmp_path / "posetrack.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    detections = read_detections(path)
    assert (detections.format, detections.width, detections.height, detections.num_frames) == \
        ("coco-json", 1280, 720, 3)
    (track,) = person_tracks(detections)
    assert (track.person, track.first_frame, track.layout) == (5, 1, "coco")
    np.testing.assert_array_equal(track.points, two_people[0, 1:3])
    annotations[0]["image_id"] = "elsewhere"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    with pytest.raises(RieError, match="not in 'images'"):
        read_detections(path)


# --- rie predict --person ---------------------------------------------------------------------------

def test_predict_person_all_writes_one_sequence_and_one_bvh_per_person(checkpoint, tmp_path, two_people):
    from typer.testing import CliRunner

    from rie_cli.cli import app
    from rie_cli.predictions import read_sequence

    present = np.ones((2, FRAMES), bool)
    present[1, :10] = False  # person 9 enters at frame 10
    keypoints = write_mmpose(tmp_path / "mm.json", two_people, [4, 9], present)
    common = ["predict", "--checkpoint", str(checkpoint), "--keypoints", str(keypoints), "--width", "1000",
              "--height", "1000"]
    runner = CliRunner()
    result = runner.invoke(app, common + ["--out", str(tmp_path / "all.npz"), "--person", "all",
                                          "--bvh", str(tmp_path / "clip_{person}.bvh")])
    assert result.exit_code == 0, result.output
    assert "people" in result.output and "clip_9.bvh" in result.output
    expected = Lifter.from_checkpoint(checkpoint, device="cpu").lift_tracks(
        person_tracks(read_detections(keypoints)), **SIZE)
    with np.load(tmp_path / "all.npz") as f:
        assert f["poses_3d"].shape == (2, FRAMES, 17, 3) and list(f["people"]) == [4, 9]
        np.testing.assert_array_equal(f["present"], present)
        np.testing.assert_allclose(f["poses_3d"][0], expected[0].poses, atol=1e-6, rtol=0)
        np.testing.assert_allclose(f["poses_3d"][1, 10:], expected[1].poses, atol=1e-6, rtol=0)
        assert np.isnan(f["poses_3d"][1, :10]).all() and not f["filled_mask"][1, :10].any()
    for label, frames in ((4, FRAMES), (9, FRAMES - 10)):
        text = (tmp_path / f"clip_{label}.bvh").read_text()
        assert f"Frames: {frames}" in text
    with pytest.raises(RieError, match="holds 2 people"):
        read_sequence(tmp_path / "all.npz")

    # One person by its number: the usual one-person file, with its number and first frame.
    result = runner.invoke(app, common + ["--out", str(tmp_path / "nine.npz"), "--person", "9"])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "nine.npz") as f:
        np.testing.assert_allclose(f["poses_3d"], expected[1].poses, atol=1e-6, rtol=0)
        assert (int(f["person"]), int(f["first_frame"])) == (9, 10)

    # Several people need {person} in the BVH name; a render draws one person.
    for extra, message in ((["--bvh", str(tmp_path / "one.bvh")], "put {person} in its name"),
                           (["--render", str(tmp_path / "all.gif")], "--render draws one person")):
        result = runner.invoke(app, common + ["--out", str(tmp_path / "again.npz"), "--person", "all"] + extra)
        assert result.exit_code == 1 and message in result.output, result.output
        assert not (tmp_path / "again.npz").exists()
    # An existing per-person file is refused before any work, replaced with --force.
    result = runner.invoke(app, common + ["--out", str(tmp_path / "again.npz"), "--person", "all",
                                          "--bvh", str(tmp_path / "clip_{person}.bvh")])
    assert result.exit_code == 1 and "clip_4.bvh exists" in result.output, result.output


def test_stream_of_several_people_with_a_trajectory_model(checkpoint, tmp_path, two_people):
    """Each person's root comes from the trajectory model's own window, as for one person alone."""
    import torch

    from rie_cli.model import ModelConfig, build_model
    from rie_cli.model.checkpoint import checkpoint_payload, save_checkpoint

    torch.manual_seed(5)
    root_model = build_model(ModelConfig(arch="videopose3d", target="trajectory", filter_widths=(3, 3), channels=32,
                                         causal=True))
    save_checkpoint(tmp_path / "root.pt", checkpoint_payload(root_model.eval(), stage=1))
    lifter = Lifter.from_checkpoint(checkpoint, device="cpu", trajectory=tmp_path / "root.pt")
    stream = lifter.stream(**SIZE, people=2, record=True)
    for t in range(20):
        stream.push(two_people[:, t])
    stream.flush()
    for p, recorded in enumerate(stream.result()):
        expected = lifter.lift(two_people[p, :20], **SIZE)
        np.testing.assert_allclose(recorded.trajectory, expected.trajectory, atol=1e-5, rtol=0)
        np.testing.assert_allclose(recorded.poses, expected.poses, atol=1e-5, rtol=0)
