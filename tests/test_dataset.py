"""The data layer over a prepared file: selection, normalisation, camera-space targets."""

import h5py
import numpy as np
import pytest

from rie_cli.cameras import normalize_screen_coordinates, world_to_camera
from rie_cli.data.dataset import PoseDataset, action_class
from rie_cli.errors import RieError


def test_dataset_attributes_and_split(bnmocap_h5):
    ds = PoseDataset(bnmocap_h5)
    assert ds.name == "bnmocap"
    assert ds.num_joints == 17 and ds.fps == 50
    assert set(ds.keypoint_sources) == {"gt", "noisy"}
    assert ds.train_subjects == ["BN2-active", "BN2-feminine"]
    assert ds.test_subjects == ["BN2-normal"]
    assert sorted(ds.subjects()) == ["BN2-active", "BN2-feminine", "BN2-normal"]


def test_sequences_are_normalised_and_root_relative(bnmocap_h5):
    ds = PoseDataset(bnmocap_h5)
    seqs = ds.sequences(["BN2-normal"], "gt", actions=["walk"])
    assert seqs and all(s.action_class.startswith("walk") for s in seqs)
    assert len(seqs) % 4 == 0 and {s.camera_index for s in seqs} == {0, 1, 2, 3}
    s = seqs[5]
    world = ds.world_positions(s.subject, s.action)
    pixels = ds.keypoints_pixels(s.subject, s.action, "gt")[s.camera_index]
    np.testing.assert_allclose(s.keypoints_2d, normalize_screen_coordinates(pixels, s.camera.res_w, s.camera.res_h), atol=1e-6)
    cam = world_to_camera(world, s.camera)
    np.testing.assert_allclose(s.positions_3d[:, 0], 0)
    np.testing.assert_allclose(s.positions_3d + s.trajectory[:, None], cam, atol=1e-5)
    assert s.keypoints_2d.dtype == np.float32 and s.positions_3d.dtype == np.float32


def test_action_prefix_filter_and_classes(bnmocap_h5):
    ds = PoseDataset(bnmocap_h5)
    waves = ds.select_actions("BN2-normal", ["wave"])
    assert waves and all(a.startswith("wave") for a in waves)
    assert action_class("walk-turn-left 001.2") == "walk-turn-left"
    with pytest.raises(RieError, match="holds no sequences"):
        ds.sequences(["BN2-normal"], "gt", actions=["no-such-action"])


def test_subset_and_downsample_deterministic(bnmocap_h5):
    ds = PoseDataset(bnmocap_h5)
    full = ds.sequences(["BN2-normal"], "gt", actions=["run"], cameras=[0])
    half = ds.sequences(["BN2-normal"], "gt", actions=["run"], cameras=[0], subset=0.5, downsample=2)
    again = ds.sequences(["BN2-normal"], "gt", actions=["run"], cameras=[0], subset=0.5, downsample=2)
    for f, h, a in zip(full, half, again):
        np.testing.assert_array_equal(h.keypoints_2d, a.keypoints_2d)
        assert abs(len(h) - len(f) // 4) <= 2
        # The subset is a strided contiguous slice of the full sequence.
        start = np.flatnonzero((f.keypoints_2d == h.keypoints_2d[0]).all(axis=(1, 2)))[0]
        np.testing.assert_array_equal(f.keypoints_2d[start : start + 2 * len(h) : 2], h.keypoints_2d)
    ds2 = ds.sequences(["BN2-normal"], "gt", actions=["run"], cameras=[0], downsample=3)
    np.testing.assert_array_equal(ds2[0].keypoints_2d, full[0].keypoints_2d[::3])


def test_errors(bnmocap_h5, tmp_path):
    ds = PoseDataset(bnmocap_h5)
    with pytest.raises(RieError, match="keypoint source 'cpn'"):
        ds.sequences(["BN2-normal"], "cpn")
    with pytest.raises(RieError, match="subject 'S9'"):
        ds.sequences(["S9"], "gt")
    with pytest.raises(RieError, match="no subjects"):
        ds.sequences([], "gt")
    with pytest.raises(RieError, match="not found"):
        PoseDataset(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(RieError, match="not a prepared rie file"):
        PoseDataset(other)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(RieError, match="cannot read"):
        PoseDataset(junk)
