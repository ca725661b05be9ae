"""rie_cli.predictions: the two kinds of prediction file (many sequences, one clip), read back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rie_cli.errors import RieError
from rie_cli.predictions import (
    read_clip_prediction,
    read_dataset_predictions,
    read_sequence_poses,
    write_clip_prediction,
    write_dataset_predictions,
)
from rie_cli.skeleton import H36M_17


def _poses(frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(frames, 17, 3)).astype(np.float32)


def test_dataset_predictions_round_trip(tmp_path):
    sequences = [SimpleNamespace(subject="S9", action="Walk 1", camera_index=2),
                 SimpleNamespace(subject="S9", action="Walk 1", camera_index=0)]
    poses = [_poses(5, 0), _poses(5, 1)]
    out = write_dataset_predictions(tmp_path / "p.npz", sequences, poses, {"space": "camera"}, H36M_17)
    nested, metadata = read_dataset_predictions(out)
    assert metadata == {"space": "camera"}
    cams = nested["S9"]["Walk 1"]
    assert cams[1] is None and len(cams) == 3
    np.testing.assert_array_equal(cams[2], poses[0])
    np.testing.assert_array_equal(read_sequence_poses(out, "S9", "Walk 1", 0), poses[1])
    with pytest.raises(RieError, match="no prediction for S9 / Walk 1 camera 1"):
        read_sequence_poses(out, "S9", "Walk 1", 1)


def test_clip_prediction_round_trip_with_the_agreed_optional_keys(tmp_path):
    poses = _poses(7, 2)
    trajectory = np.random.default_rng(3).normal(size=(7, 3)).astype(np.float32)
    out = write_clip_prediction(tmp_path / "clip.npz", poses,
                                {"trajectory": trajectory, "space": "camera", "fps": 25.0})
    arrays = read_clip_prediction(out)
    np.testing.assert_array_equal(arrays["poses_3d"], poses)
    np.testing.assert_array_equal(arrays["trajectory"], trajectory)
    assert str(arrays["space"]) == "camera" and float(arrays["fps"]) == 25.0
    # A clip holds one sequence: whatever is asked, its poses, root-relative again
    # (a "camera"-space clip is placed at its trajectory).
    np.testing.assert_allclose(read_sequence_poses(out, "any", "thing", 0), poses - trajectory[:, None], atol=1e-6)
    with pytest.raises(RieError, match="no 'poses_3d'"):
        read_clip_prediction(_other(tmp_path))


def _other(tmp_path):
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    return tmp_path / "other.npz"


def test_reading_errors_are_one_line(tmp_path):
    with pytest.raises(RieError, match="not found"):
        read_sequence_poses(tmp_path / "absent.npz", "S1", "x", 0)
    with pytest.raises(RieError, match="holds no 'predictions'"):
        read_sequence_poses(_other(tmp_path), "S1", "x", 0)
    with pytest.raises(RieError, match="must be an .npz"):
        read_sequence_poses(tmp_path / "p.csv", "S1", "x", 0)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(RieError, match="cannot read predictions file"):
        read_dataset_predictions(tmp_path / "broken.npz")
