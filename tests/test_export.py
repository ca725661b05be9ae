"""`rie export predictions`: the exported poses are the ones `rie evaluate` scores."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.export import export_predictions
from rie_cli.predictions import read_dataset_predictions

ACTIONS = ["wave"]  # an action prefix: two short demo actions, four cameras each, keep this fast


@pytest.fixture(scope="module")
def exported(demo_h5, small_checkpoint, tmp_path_factory):
    """The same selection exported as .npz, .csv and .json (camera space)."""
    folder = tmp_path_factory.mktemp("exported")
    for suffix in ("npz", "csv", "json"):
        export_predictions(small_checkpoint, demo_h5, "noisy", folder / f"pred.{suffix}", actions=ACTIONS)
    return folder


def _flat(nested: dict) -> dict:
    return {(s, a, c): pose for s, acts in nested.items() for a, cams in acts.items()
            for c, pose in enumerate(cams) if pose is not None}


def test_npz_equals_what_evaluate_scores(exported, demo_h5, small_checkpoint):
    from rie_cli.data.dataset import PoseDataset
    from rie_cli.api import load_for_inference
    from rie_cli.evaluation import evaluate_checkpoint, evaluate_predictions

    nested, metadata = read_dataset_predictions(exported / "pred.npz")
    assert metadata["space"] == "camera-relative" and metadata["tta"] is True and metadata["keypoints"] == "noisy"
    dataset = PoseDataset(demo_h5)
    sequences = dataset.sequences(["BN2-normal"], "noisy", actions=ACTIONS)
    flat = _flat(nested)
    assert len(flat) == len(sequences) == 8

    direct = load_for_inference(small_checkpoint).predict([s.keypoints_2d for s in sequences])
    for seq, pose in zip(sequences, direct):
        exported_pose = flat[(seq.subject, seq.action, seq.camera_index)]
        assert exported_pose.dtype == np.float32 and exported_pose.shape == seq.positions_3d.shape
        np.testing.assert_array_equal(exported_pose, pose)

    # The scores of the exported poses are the scores `rie evaluate` reports.
    scored = evaluate_checkpoint(small_checkpoint, demo_h5, "noisy", actions=ACTIONS)
    rescored = evaluate_predictions(sequences, [flat[(s.subject, s.action, s.camera_index)] for s in sequences])
    assert rescored.to_json()["actions"] == scored.to_json()["actions"]
    assert rescored.average.mpjpe == scored.average.mpjpe


def test_npz_follows_videopose3d_nesting(exported):
    with np.load(exported / "pred.npz", allow_pickle=True) as f:
        predictions = f["predictions"].item()
        assert isinstance(predictions, dict)
    with np.load(exported / "pred.npz") as f:  # metadata needs no unpickling
        metadata = json.loads(str(f["metadata"]))
    assert metadata["format"] == "rie-predictions" and metadata["units"] == "m"
    assert list(predictions) == ["BN2-normal"]
    cams = predictions["BN2-normal"]["wave-right-hand 001"]
    assert isinstance(cams, list) and len(cams) == 4
    assert all(c.ndim == 3 and c.shape[1:] == (17, 3) for c in cams)


def test_csv_and_json_hold_the_same_poses(exported):
    flat = _flat(read_dataset_predictions(exported / "pred.npz")[0])
    with open(exported / "pred.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header[:4] == ["subject", "action", "camera", "frame"]
    assert header[4:7] == ["hip_x", "hip_y", "hip_z"] and header[-1] == "r_wrist_z" and len(header) == 4 + 51
    assert len(rows) - 1 == sum(len(p) for p in flat.values())
    subject, action, camera, frame = rows[10][:4]
    np.testing.assert_allclose(np.array(rows[10][4:], float).reshape(17, 3),
                               flat[(subject, action, int(camera))][int(frame)], atol=1e-6)

    doc = json.loads((exported / "pred.json").read_text())
    assert doc["metadata"]["space"] == "camera-relative"
    assert len(doc["sequences"]) == len(flat)
    for entry in doc["sequences"]:
        pose = flat[(entry["subject"], entry["action"], entry["camera"])]
        assert entry["frames"] == len(pose)
        np.testing.assert_allclose(np.array(entry["poses"]), pose, atol=1e-6)


def test_world_space_adds_trajectory_and_undoes_camera(exported, demo_h5, small_checkpoint, tmp_path):
    from rie_cli.cameras import world_to_camera
    from rie_cli.data.dataset import PoseDataset

    export_predictions(small_checkpoint, demo_h5, "noisy", tmp_path / "world.npz", actions=["wave-left"], world=True)
    world, metadata = read_dataset_predictions(tmp_path / "world.npz")
    camera_space = _flat(read_dataset_predictions(exported / "pred.npz")[0])
    assert metadata["space"] == "world"
    dataset = PoseDataset(demo_h5)
    truth = dataset.world_positions("BN2-normal", "wave-left-hand 001")  # (N, 17, 3)
    for cam_index, pose in enumerate(world["BN2-normal"]["wave-left-hand 001"]):
        cam = dataset.cameras.for_subject("BN2-normal")[cam_index]
        # Back in this camera's frame, minus the true root: the camera-space export again.
        back = world_to_camera(pose, cam) - world_to_camera(truth[:, :1], cam)
        np.testing.assert_allclose(back, camera_space[("BN2-normal", "wave-left-hand 001", cam_index)], atol=1e-4)


def test_cli_writes_predictions_and_reports(demo_h5, small_checkpoint, tmp_path):
    out = tmp_path / "cli.npz"
    result = CliRunner().invoke(app, ["export", "predictions", "-c", str(small_checkpoint), "-d", str(demo_h5),
                                      "-k", "gt", "--actions", "wave-right", "--no-tta", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 sequences" in result.stderr and "camera-relative space" in result.stderr
    assert "keypoints gt" in result.stderr  # the 2D source it predicted from
    nested, metadata = read_dataset_predictions(out)
    assert metadata["tta"] is False and len(_flat(nested)) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "pred.txt"], "written as .npz, .csv or .json"),
        (["--subjects", "S11", "--out", "pred.npz"], "unknown subject(s) S11"),
        (["-k", "cpn", "--out", "pred.npz"], "keypoint source 'cpn'"),
    ],
)
def test_cli_errors_are_one_line(demo_h5, small_checkpoint, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["export", "predictions", "-c", str(small_checkpoint), "-d", str(demo_h5),
                                      "-k", "gt", *args])
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
