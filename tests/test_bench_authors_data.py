"""benchmarks/authors_code.py: a prepared file written in the authors' .npz layout holds
the same frames, cameras and window counts as the file rie reads (no authors' code needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rie_cli.cameras import camera_set_from_dict, world_to_camera
from rie_cli.data.dataset import PoseDataset
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17, H36M_32_TO_17

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import authors_code  # noqa: E402


@pytest.fixture(scope="module")
def written(demo_h5, tmp_path_factory):
    out = tmp_path_factory.mktemp("authors") / "data"
    names = authors_code.write_authors_data(demo_h5, "noisy", out)
    return out, names


def test_subjects_renamed_and_frames_kept(written, demo_h5):
    out, names = written
    dataset = PoseDataset(demo_h5)
    assert names == {s: f"S{i + 1}" for i, s in enumerate(dataset.subjects())}
    positions = np.load(out / "data_3d_h36m.npz", allow_pickle=True)["positions_3d"].item()
    views = np.load(out / "data_2d_h36m_noisy.npz", allow_pickle=True)
    meta = views["metadata"].item()
    views = views["positions_2d"].item()
    assert meta["num_joints"] == 17
    assert meta["keypoints_symmetry"] == [list(H36M_17.joints_left), list(H36M_17.joints_right)]
    cameras = camera_set_from_dict("x", json.loads((out / "cameras.json").read_text()))
    subject = dataset.test_subjects[0]
    theirs = names[subject]
    for seq in dataset.sequences([subject], "noisy"):
        full = positions[theirs][seq.action]
        assert full.shape == (len(seq), 32, 3)
        other = np.setdiff1d(np.arange(32), H36M_32_TO_17)
        assert not full[:, other].any()
        # Their loader keeps H36M_32_TO_17, then goes to camera space with the subject's
        # extrinsics: the camera-space targets rie trains on.
        camera = cameras.for_subject(theirs)[seq.camera_index]
        cam = world_to_camera(full[:, list(H36M_32_TO_17)], camera)
        np.testing.assert_allclose(cam - cam[:, :1], seq.positions_3d, atol=1e-5)
        assert views[theirs][seq.action][seq.camera_index].shape == (len(seq), 17, 2)


def test_window_counts_match_rie(demo_h5):
    dataset = PoseDataset(demo_h5)
    train = list(dataset.train_subjects)
    frames = sum(len(s) for s in dataset.sequences(train, "noisy"))
    assert authors_code.authors_windows(demo_h5, "noisy", train, None, 1.0) == 2 * frames
    sub = dataset.sequences(train, "noisy", subset=0.5)
    assert abs(authors_code.authors_windows(demo_h5, "noisy", train, None, 0.5) - 2 * sum(map(len, sub))) <= 2 * len(sub)


def test_copy_refuses_a_folder_without_their_code(tmp_path):
    with pytest.raises(RieError, match="run.py"):
        authors_code.authors_copy(tmp_path, tmp_path / "work")
