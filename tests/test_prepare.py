"""`prepare_vp3d` / `prepare_h36m_cdf`: layout, exact 2D, joint reduction, splits, atomic writes.

Besides the shared bnmocap data, the converters are checked on data generated here
(random poses projected through the built-in cameras), which nobody has seen before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from rie_cli.cameras import builtin_cameras, camera_set_from_dict, load_cameras_file, project_to_pixels, world_to_camera
from rie_cli.data import h5format
from rie_cli.data.prepare import prepare_h36m_cdf, prepare_vp3d
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17, H36M_32_TO_17, HUMANEVA_15

# --- generated data (also used by test_prepare_cli.py) ------------------------------------


def random_poses(rng, num_frames: int, num_joints: int) -> np.ndarray:
    """(N, J, 3) float32 world metres: a body-sized point cloud drifting inside a
    Human3.6M-like capture volume (z up, about 1 m above the floor)."""
    root = np.cumsum(rng.normal(0, 0.01, (num_frames, 3)), axis=0) + [rng.uniform(-1, 1), rng.uniform(-1, 1), 0.9]
    offsets = rng.uniform(-0.5, 0.5, (num_frames, num_joints, 3)) * [0.6, 0.6, 1.6]
    poses = root[:, None] + offsets
    poses[:, 0] = root
    return poses.astype(np.float32)


def project_views(poses: np.ndarray, cameras) -> list[np.ndarray]:
    """One (N, J, 2) float32 pixel array per camera."""
    return [project_to_pixels(world_to_camera(poses, cam), cam).astype(np.float32) for cam in cameras]


def save_npz_dataset(data_dir, stem: str, positions_3d: dict, positions_2d: dict, num_joints: int,
                     symmetry=((1, 2), (3, 4))) -> None:
    """Write data_3d_<stem>.npz and data_2d_<stem>_gt.npz in VideoPose3D's layout."""
    data_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(data_dir / f"data_3d_{stem}.npz", positions_3d=positions_3d)
    metadata = {"layout_name": stem, "num_joints": num_joints, "keypoints_symmetry": [list(s) for s in symmetry]}
    np.savez_compressed(data_dir / f"data_2d_{stem}_gt.npz", positions_2d=positions_2d, metadata=metadata)


def make_h36m_like(data_dir, seed: int = 0, joints_3d: int = 17, extra_2d_frames: int = 0) -> dict:
    """A small Human3.6M-layout dataset (S1, S5, S9; two actions each) projected through the
    built-in Human3.6M cameras. Returns the 17-joint world poses by (subject, action)."""
    rng = np.random.default_rng(seed)
    cameras = builtin_cameras("h36m")
    positions_3d, positions_2d, truth = {}, {}, {}
    for subject in ("S1", "S5", "S9"):
        positions_3d[subject], positions_2d[subject] = {}, {}
        for action, n in (("Walking 1", 40), ("Photo", 25)):
            poses = random_poses(rng, n + extra_2d_frames, joints_3d)
            poses17 = poses[:, list(H36M_32_TO_17)] if joints_3d == 32 else poses
            positions_3d[subject][action] = poses[:n]
            positions_2d[subject][action] = project_views(poses17, cameras.for_subject(subject))
            truth[subject, action] = poses17[:n]
    save_npz_dataset(data_dir, "h36m", positions_3d, positions_2d, 17,
                     symmetry=(H36M_17.joints_left, H36M_17.joints_right))
    return truth


def max_projection_error(h5_path, source: str = "gt") -> tuple[float, int]:
    """Largest |stored 2D - projection of the stored 3D through the stored cameras| (px),
    and the number of frames per source."""
    worst, frames = 0.0, 0
    with h5py.File(h5_path, "r") as f:
        meta = h5format.read_root_attributes(f)
        cameras = camera_set_from_dict(meta.dataset, h5format.read_cameras_entry(f))
        for subject, _action, group in h5format.iter_action_groups(f):
            world = group[h5format.POSITIONS_3D][()]  # (N, J, 3)
            stored = group[h5format.KEYPOINTS_2D][source][()]  # (C, N, J, 2)
            frames += len(world)
            for view, cam in zip(stored, cameras.for_subject(subject), strict=True):
                worst = max(worst, float(np.abs(project_views(world, [cam])[0] - view).max()))
    return worst, frames


# --- the shared bnmocap data ---------------------------------------------------------------


def test_bnmocap_gt_is_the_projection_of_the_3d(bnmocap_h5):
    worst, frames = max_projection_error(bnmocap_h5, "gt")
    assert frames == 69_179
    assert worst < 0.01
    with h5py.File(bnmocap_h5, "r") as f:
        meta = h5format.read_root_attributes(f)
        assert meta.keypoint_sources == ["gt", "noisy"]
        for _s, _a, group in h5format.iter_action_groups(f):
            n = len(group[h5format.POSITIONS_3D])
            assert group[h5format.KEYPOINTS_2D]["noisy"].shape == (4, n, 17, 2)


def test_bnmocap_noisy_differs_from_gt(bnmocap_h5):
    with h5py.File(bnmocap_h5, "r") as f:
        group = f[h5format.action_path("BN2-normal", "walk 001.1")]
        gt, noisy = group["keypoints_2d/gt"][()], group["keypoints_2d/noisy"][()]
    error = np.linalg.norm(gt - noisy, axis=-1).mean()
    assert 1.0 < error < 50.0  # detector-like noise of a few pixels, not another sequence


# --- generated data -----------------------------------------------------------------------


def test_generated_h36m_layout_and_exact_2d(tmp_path):
    truth = make_h36m_like(tmp_path / "in", seed=1)
    out = tmp_path / "h36m.h5"
    calls = []
    summary = prepare_vp3d("h36m", tmp_path / "in", out, builtin_cameras("h36m"),
                           progress=lambda done, total, label: calls.append((done, total)))
    assert calls[-1] == (6, 6)
    assert [s.subject for s in summary.subjects] == ["S1", "S5", "S9"]
    assert [s.split for s in summary.subjects] == ["train", "train", "test"]
    assert summary.total_frames == 3 * 65 and summary.total_actions == 6 and summary.sources == ["gt"]

    worst, _ = max_projection_error(out)
    assert worst < 0.01
    with h5py.File(out, "r") as f:
        a = f.attrs
        assert a["format"] == "rie-poses" and a["format_version"] == 1 and a["dataset"] == "h36m"
        assert a["num_joints"] == 17 and a["fps"] == 50
        assert list(a["parents"]) == list(H36M_17.parents)
        assert list(a["joints_left"]) == list(H36M_17.joints_left)
        assert json.loads(a["units"])["positions_3d"] == "metres, world frame"
        assert json.loads(a["train_subjects"]) == ["S1", "S5"] and json.loads(a["test_subjects"]) == ["S9"]
        source = json.loads(a["source"])
        assert source["kind"] == "vp3d-npz" and source["files"] == ["data_3d_h36m.npz", "data_2d_h36m_gt.npz"]
        group = f[h5format.action_path("S5", "Walking 1")]
        assert group.attrs["name"] == "Walking 1"
        pos, kp = group["positions_3d"], group["keypoints_2d/gt"]
        assert pos.dtype == np.float32 and pos.shape == (40, 17, 3) and pos.chunks == (40, 17, 3)
        assert kp.dtype == np.float32 and kp.shape == (4, 40, 17, 2) and kp.chunks == (1, 40, 17, 2)
        assert pos.compression == "gzip" and pos.shuffle
        np.testing.assert_array_equal(pos[()], truth["S5", "Walking 1"])
        # The stored cameras rebuild the built-in ones (translation mm -> m and back).
        stored = camera_set_from_dict("h36m", h5format.read_cameras_entry(f))
        for cam, ref in zip(stored.for_subject("S9"), builtin_cameras("h36m").for_subject("S9")):
            np.testing.assert_allclose(cam.translation, ref.translation, rtol=1e-12)
            assert cam.orientation == ref.orientation and cam.focal_length == ref.focal_length


def test_32_joints_are_reduced_to_17(tmp_path):
    truth = make_h36m_like(tmp_path / "in", seed=2, joints_3d=32)
    out = tmp_path / "h36m.h5"
    summary = prepare_vp3d("h36m", tmp_path / "in", out, builtin_cameras("h36m"))
    assert summary.num_joints == 17 and any("32 to 17" in n for n in summary.notes)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f[h5format.action_path("S1", "Photo")]["positions_3d"][()], truth["S1", "Photo"])
    assert max_projection_error(out)[0] < 0.01


def test_longer_2d_is_cut_to_the_3d(tmp_path):
    make_h36m_like(tmp_path / "in", seed=3, extra_2d_frames=7)
    out = tmp_path / "h36m.h5"
    prepare_vp3d("h36m", tmp_path / "in", out, builtin_cameras("h36m"))
    with h5py.File(out, "r") as f:
        assert f[h5format.action_path("S9", "Photo")]["keypoints_2d/gt"].shape == (4, 25, 17, 2)
    assert max_projection_error(out)[0] < 0.01


def test_humaneva_15_joints(tmp_path):
    rng = np.random.default_rng(4)
    cameras = builtin_cameras("humaneva")
    positions_3d, positions_2d = {}, {}
    for subject in ("Train/S1", "Train/S2", "Validate/S3"):
        positions_3d[subject] = {"Walking 1 chunk0": random_poses(rng, 30, 15)}
        # The published HumanEva-I cameras have no intrinsics: 2D as a detector would give it.
        positions_2d[subject] = {"Walking 1 chunk0": [rng.uniform(0, 480, (33, 15, 2)).astype(np.float32)
                                                      for _ in range(3)]}
    save_npz_dataset(tmp_path / "in", "humaneva15", positions_3d, positions_2d, 15,
                     symmetry=(HUMANEVA_15.joints_left, HUMANEVA_15.joints_right))
    out = tmp_path / "he.h5"
    summary = prepare_vp3d("humaneva", tmp_path / "in", out, cameras)
    assert summary.fps == 60 and summary.num_joints == 15
    with h5py.File(out, "r") as f:
        meta = h5format.read_root_attributes(f)
        assert meta.skeleton == HUMANEVA_15
        assert meta.train_subjects == ["Train/S1", "Train/S2"] and meta.test_subjects == ["Validate/S3"]
        # "/" in a subject name is escaped in the key, the real name is the attribute.
        assert "Train%2FS1" in f["subjects"] and f["subjects/Train%2FS1"].attrs["name"] == "Train/S1"
        # Extrinsics are stored under the dataset's own subject names.
        assert set(h5format.read_cameras_entry(f)["extrinsics"]) == {"Train/S1", "Train/S2", "Validate/S3"}
        stored = f[h5format.action_path("Validate/S3", "Walking 1 chunk0")]["keypoints_2d/gt"][()]
    np.testing.assert_array_equal(stored, np.stack(positions_2d["Validate/S3"]["Walking 1 chunk0"])[:, :30])


def test_generic_dataset_uses_metadata_symmetry_and_given_split(tmp_path):
    rng = np.random.default_rng(5)
    cameras = builtin_cameras("h36m")
    cams = cameras.for_subject("S1")
    positions_3d = {s: {"jump 1": random_poses(rng, 12, 5)} for s in ("A", "B", "C")}
    positions_2d = {s: {"jump 1": project_views(positions_3d[s]["jump 1"], cams)} for s in positions_3d}
    save_npz_dataset(tmp_path / "in", "toy", positions_3d, positions_2d, 5, symmetry=((1, 2), (3, 4)))
    one_camera_set = camera_set_from_dict("toy", {"fps": 25, "intrinsics": [c.to_dict() for c in cams],
                                                  "extrinsics": {s: [c.to_dict() for c in cams] for s in "ABC"}})
    with pytest.raises(RieError, match="--test-subjects"):
        prepare_vp3d("toy", tmp_path / "in", tmp_path / "toy.h5", one_camera_set)
    summary = prepare_vp3d("toy", tmp_path / "in", tmp_path / "toy.h5", one_camera_set, test_subjects=["C"])
    assert [s.split for s in summary.subjects] == ["train", "train", "test"]
    with h5py.File(tmp_path / "toy.h5", "r") as f:
        meta = h5format.read_root_attributes(f)
        assert meta.fps == 25 and meta.skeleton.joints_left == (1, 2) and meta.skeleton.parents == (-1,) * 5
    assert max_projection_error(tmp_path / "toy.h5")[0] < 0.01


def test_interrupted_run_leaves_no_file(tmp_path):
    make_h36m_like(tmp_path / "in", seed=6)
    out = tmp_path / "out" / "h36m.h5"

    def interrupt(done, total, label):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_vp3d("h36m", tmp_path / "in", out, builtin_cameras("h36m"), progress=interrupt)
    assert list(out.parent.iterdir()) == []


def test_force_replaces_and_refusal_keeps_existing(tmp_path):
    make_h36m_like(tmp_path / "in", seed=7)
    out = tmp_path / "h36m.h5"
    out.write_bytes(b"keep me")
    with pytest.raises(RieError, match="exists"):
        prepare_vp3d("h36m", tmp_path / "in", out, builtin_cameras("h36m"))
    assert out.read_bytes() == b"keep me"
    prepare_vp3d("h36m", tmp_path / "in", out, builtin_cameras("h36m"), force=True)
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "rie-poses"


def test_encode_decode_key_round_trip():
    for name in ("Train/S1", "a%2Fb", "100% / done", "Walking 1"):
        key = h5format.encode_key(name)
        assert "/" not in key and h5format.decode_key(key) == name
    assert h5format.encode_key("a%2Fb") != h5format.encode_key("a/b")


# --- Human3.6M CDF files ------------------------------------------------------------------


def write_pose_cdf(path, poses_mm: np.ndarray) -> None:
    """A D3_Positions-style CDF file: variable 'Pose' (1, N, 96), millimetres."""
    from cdflib.cdfwrite import CDF

    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(poses_mm)
    writer = CDF(str(path), delete=True)
    writer.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_FLOAT, "Num_Elements": 1, "Rec_Vary": True,
                      "Dim_Sizes": [n, 96]}, var_data=poses_mm.reshape(1, n, 96).astype(np.float32))
    writer.close()


def test_h36m_cdf_files(tmp_path):
    pytest.importorskip("cdflib")
    rng = np.random.default_rng(8)
    poses = {}
    for subject, file_action, n in (("S1", "Walking 1", 30), ("S1", "TakingPhoto", 20), ("S9", "WalkingDog 1", 25),
                                    ("S11", "Directions", 10), ("S11", "Eating", 15)):
        p = random_poses(rng, n, 32) * 1000.0  # mm
        write_pose_cdf(tmp_path / "cdf" / subject / "MyPoseFeatures" / "D3_Positions" / f"{file_action}.cdf", p)
        poses[subject, file_action] = p
    out = tmp_path / "h36m.h5"
    summary = prepare_h36m_cdf(tmp_path / "cdf", out)
    assert {s.subject: s.frames for s in summary.subjects} == {"S1": 50, "S9": 25, "S11": 15}
    assert any("S11 'Directions'" in n for n in summary.notes)
    with h5py.File(out, "r") as f:
        meta = h5format.read_root_attributes(f)
        assert meta.keypoint_sources == ["gt"] and meta.test_subjects == ["S9", "S11"]
        assert json.loads(f.attrs["source"])["kind"] == "h36m-cdf"
        names = {(s, a) for s, a, _ in h5format.iter_action_groups(f)}
        assert names == {("S1", "Walking 1"), ("S1", "Photo"), ("S9", "WalkDog 1"), ("S11", "Eating")}
        stored = f[h5format.action_path("S1", "Photo")]["positions_3d"][()]
        expected = poses["S1", "TakingPhoto"].astype(np.float32)[:, list(H36M_32_TO_17)] / 1000.0
        np.testing.assert_allclose(stored, expected, atol=1e-6)
    assert max_projection_error(out)[0] < 0.01


def test_cdf_errors(tmp_path, monkeypatch):
    pytest.importorskip("cdflib")
    with pytest.raises(RieError, match="no Human3.6M CDF files"):
        prepare_h36m_cdf(tmp_path, tmp_path / "x.h5")
    bad = tmp_path / "cdf" / "S1" / "MyPoseFeatures" / "D3_Positions" / "Walking.cdf"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a cdf file at all")
    with pytest.raises(RieError, match="cannot read CDF file"):
        prepare_h36m_cdf(tmp_path / "cdf", tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
    monkeypatch.setitem(__import__("sys").modules, "cdflib", None)  # as if not installed
    with pytest.raises(RieError, match="needs cdflib"):
        prepare_h36m_cdf(tmp_path / "cdf", tmp_path / "x.h5")


# --- the shipped demo data ------------------------------------------------------------------


def test_demo_data_prepares_and_is_exact(demo_h5, demo_dir):
    worst, frames = max_projection_error(demo_h5)
    assert worst < 0.01
    assert 5_000 <= frames <= 15_000
    with h5py.File(demo_h5, "r") as f:
        meta = h5format.read_root_attributes(f)
        subjects = {s for s, _, _ in h5format.iter_action_groups(f)}
    assert subjects == {"BN2-active", "BN2-feminine", "BN2-normal"}
    assert meta.keypoint_sources == ["gt", "noisy"]
    assert load_cameras_file(demo_dir / "cameras_bnmocap.json").cameras.keys() == subjects
    size = sum(p.stat().st_size for p in demo_dir.iterdir())
    assert size < 10 * 2**20
    assert "CC BY-NC 4.0" in (demo_dir / "README.md").read_text()


def test_demo_data_is_a_real_subset_regenerated_byte_for_byte(bnmocap_dir, demo_dir, tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_demo_data.py"
    subprocess.run([sys.executable, str(script), "--source", str(bnmocap_dir), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("data_3d_bnmocap.npz", "data_2d_bnmocap_gt.npz", "data_2d_bnmocap_noisy.npz", "cameras_bnmocap.json"):
        assert (tmp_path / name).read_bytes() == (demo_dir / name).read_bytes(), name
    full = np.load(bnmocap_dir / "data_2d_bnmocap_noisy.npz", allow_pickle=True)["positions_2d"].item()
    demo = np.load(demo_dir / "data_2d_bnmocap_noisy.npz", allow_pickle=True)["positions_2d"].item()
    for subject, actions in demo.items():
        assert {a.split(" ")[0] for a in actions} >= {"walk", "run"}
        for action, views in actions.items():
            for view, original in zip(views, full[subject][action], strict=True):
                np.testing.assert_array_equal(view, original)
