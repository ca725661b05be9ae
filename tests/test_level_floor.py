"""A level floor for placed poses without extrinsics (issue 19: the sinking BVH), and the
--foot-lock / --no-level options of the commands that write placed poses."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from bvh_reader import forward_kinematics, parse_bvh
from rie_cli.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def walk_toward_camera(demo_h5):
    """Camera-space poses (T, 17, 3) of a real walk seen by the tilted camera it walks
    towards most (its depth falls the most), and its camera-space root (T, 3)."""
    from rie_cli.data.dataset import PoseDataset
    from rie_cli.trajectory import absolute_poses

    sequences = PoseDataset(demo_h5).sequences(["BN2-normal"], "gt", actions=["walk 001.1"])
    seq = max(sequences, key=lambda s: s.trajectory[0, 2] - s.trajectory[-1, 2])
    assert seq.trajectory[0, 2] - seq.trajectory[-1, 2] > 1.0  # metres towards the camera
    return absolute_poses(seq.positions_3d, seq.trajectory), seq.trajectory


def _lowest_joint_heights(path) -> np.ndarray:
    """(T,) height (file y, metres) of the lowest joint in every frame of a BVH file."""
    return forward_kinematics(parse_bvh(path))[..., 1].min(axis=1)


def test_bvh_of_a_walk_toward_the_camera_stays_on_the_floor(walk_toward_camera, tmp_path):
    """`rie predict --trajectory --bvh` without cameras wrote the camera's downward tilt as
    a slope (the body sank while walking closer); levelled, the lowest joint stays within
    5 cm of the floor over the whole clip. --no-level keeps the camera's axes (and the slope)."""
    poses, root = walk_toward_camera
    clip = tmp_path / "clip.npz"  # what `rie predict --trajectory --no-level` writes
    np.savez(clip, poses_3d=poses, trajectory=root, fps=np.array(50.0), space=np.array("camera"))
    result = runner.invoke(app, ["export", "bvh", "-p", str(clip), "--out", str(tmp_path / "level.bvh")])
    assert result.exit_code == 0, result.stderr
    assert "floor axes" in " ".join(result.stderr.split())
    level = _lowest_joint_heights(tmp_path / "level.bvh")
    assert np.abs(level).max() < 0.05
    result = runner.invoke(app, ["export", "bvh", "-p", str(clip), "--out", str(tmp_path / "camera.bvh"),
                                 "--no-level"])
    assert result.exit_code == 0, result.stderr
    tilted = _lowest_joint_heights(tmp_path / "camera.bvh")
    assert np.ptp(tilted) > 0.15  # the slope the issue reported


def test_place_motion_levels_and_locks(walk_toward_camera):
    """The placing behind predict / export / render: FLOOR space by default (camera
    space with level=False, the round trip exact); with foot_lock the contacts come
    back and no joint is under the floor."""
    from rie_cli.skeleton import H36M_17
    from rie_cli.trajectory import CAMERA, FLOOR, place_motion

    poses, root = walk_toward_camera
    relative = poses - poses[:, :1]
    floor = place_motion(relative, root, H36M_17, 50.0)
    assert floor.space == FLOOR and floor.contacts is None
    np.testing.assert_allclose(floor.floor.invert(floor.poses), poses, atol=1e-5)
    assert floor.poses[:, [3, 6], 2].min(axis=1).max() < 0.05  # the lower foot on the floor in every frame
    camera = place_motion(relative, root, H36M_17, 50.0, level=False)
    assert camera.space == CAMERA
    np.testing.assert_allclose(camera.poses, poses, atol=1e-6)
    locked = place_motion(relative, root, H36M_17, 50.0, foot_lock=True)
    assert locked.contacts.shape == (len(poses), 2) and locked.contacts.any(axis=0).all()
    feet = locked.poses[:, [3, 6], 2]
    assert locked.poses[..., 2].min() >= feet[locked.contacts].min() - 1e-4  # nothing under the planted feet' floor


def test_foot_lock_needs_a_trajectory(tmp_path, small_checkpoint):
    np.save(tmp_path / "kp.npy", np.random.default_rng(0).uniform(100, 500, (12, 17, 2)).astype(np.float32))
    result = runner.invoke(app, ["predict", "-c", str(small_checkpoint), "-k", str(tmp_path / "kp.npy"), "--width",
                                 "640", "--height", "480", "--out", str(tmp_path / "o.npz"), "--foot-lock"])
    assert result.exit_code == 1 and "--foot-lock needs --trajectory" in result.stderr
    assert not (tmp_path / "o.npz").exists()
    np.savez(tmp_path / "rel.npz", poses_3d=np.zeros((5, 17, 3), np.float32), space=np.array("camera-relative"))
    result = runner.invoke(app, ["export", "bvh", "-p", str(tmp_path / "rel.npz"), "--out", str(tmp_path / "r.bvh"),
                                 "--foot-lock"])
    assert result.exit_code == 1 and "--foot-lock needs poses placed" in result.stderr
