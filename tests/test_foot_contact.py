"""Foot contacts and --foot-lock (rie_cli.foot_contact): on a real walk from the shared data,
and on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from rie_cli import foot_contact as fc
from rie_cli import world_metrics as wm
from rie_cli.skeleton import H36M_17

FEET = [3, 6]


@pytest.fixture(scope="module")
def walks(bnmocap_dir):
    """True world poses (T, 17, 3), z up, 50 fps, of the test subject's first walks."""
    data = np.load(bnmocap_dir / "data_3d_bnmocap.npz", allow_pickle=True)["positions_3d"].item()["BN2-normal"]
    return [data[a].astype(np.float64) for a in sorted(data) if a.startswith("walk 001")]


def noisy(poses: np.ndarray, seed: int = 0) -> np.ndarray:
    """Poses with drifting (random-walk) and frame-to-frame noise: feet that slide."""
    rng = np.random.default_rng(seed)
    return poses + 0.3 * np.cumsum(rng.normal(0, 0.004, poses.shape), axis=0) + rng.normal(0, 0.01, poses.shape)


def test_contacts_on_a_real_walk(walks):
    """On motion capture of a walk the detected contacts are the published labels (the
    foot moving under 1 cm per frame at 30 fps) almost everywhere; each foot is planted
    for a good part of the stride, and the feet take turns."""
    for poses in walks:
        contacts = fc.detect_contacts(poses, H36M_17, fps=50)
        labels = wm.foot_steps(poses, FEET) < wm.contact_step(50)
        assert (contacts[1:] == labels).mean() > 0.88  # they differ around heel strike and toe off
        assert ((contacts.mean(axis=0) > 0.25) & (contacts.mean(axis=0) < 0.75)).all()
        assert contacts.any(axis=1).mean() > 0.7  # mostly some foot on the floor
        switches = np.abs(np.diff(contacts.astype(int), axis=0)).sum()
        assert switches >= 4  # steps: contacts begin and end


def test_contacts_of_a_body_standing_still_and_one_in_the_air():
    still = np.zeros((60, 17, 3))
    still[:, :, 2] = np.linspace(0.08, 1.7, 17)
    still[:, FEET, 2] = 0.08
    assert fc.detect_contacts(still, H36M_17, fps=50).all()
    walking_fast = still + (np.arange(60) * 0.05)[:, None, None] * np.array([1.0, 0, 0])  # 2.5 m/s
    assert not fc.detect_contacts(walking_fast, H36M_17, fps=50).any()


def test_foot_lock_keeps_planted_feet_fixed(walks):
    """Sliding, jittering feet: every contact stays within 1 mm of one point on the floor
    level; leg bones keep their lengths; nothing goes under the floor; the foot sliding
    metric falls far below its value without the lock."""
    for seed, poses in enumerate(walks):
        moved = noisy(poses, seed)
        locked = fc.lock_feet(moved, H36M_17, fps=50)
        for i, foot in enumerate(FEET):
            for start, end in fc._runs(locked.contacts[:, i]):
                path = locked.poses[start:end, foot]
                assert np.abs(path - path[0]).max() < 1e-3
                assert np.abs(path[:, 2] - locked.level).max() < 1e-3
        assert locked.poses[:, :, 2].min() > locked.level - 1e-6
        for parent, child in ((1, 2), (2, 3), (4, 5), (5, 6)):  # leg bones: the sequence's median length
            before = np.median(np.linalg.norm(moved[:, child] - moved[:, parent], axis=-1))
            after = np.linalg.norm(locked.poses[:, child] - locked.poses[:, parent], axis=-1)
            np.testing.assert_allclose(after, before, atol=1e-9)
        sliding = wm.sequence_sums(moved, poses, fps=50, skeleton=H36M_17).means()["foot_sliding"]
        locked_sliding = wm.sequence_sums(locked.poses, poses, fps=50, skeleton=H36M_17).means()["foot_sliding"]
        assert locked_sliding < sliding / 4


def test_two_bone_ik_reaches_the_goal_with_the_bones_kept():
    rng = np.random.default_rng(1)
    hip, pole = np.zeros((50, 3)), np.tile([0, 1.0, 0], (50, 1))  # knees bend towards +y
    thigh, shin = 0.45, 0.44
    goal = np.tile([0, 0, -0.85], (50, 1)) + rng.normal(0, 0.1, (50, 3))
    goal *= np.minimum(1.0, 0.85 / np.linalg.norm(goal, axis=-1))[:, None]  # within reach (legs 0.89 m)
    knee, ankle = fc.two_bone_ik(hip, goal, thigh, shin, pole)
    np.testing.assert_allclose(ankle, goal, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(knee - hip, axis=-1), thigh)
    np.testing.assert_allclose(np.linalg.norm(ankle - knee, axis=-1), shin)
    along = goal / np.linalg.norm(goal, axis=-1, keepdims=True)
    side = knee - np.sum(knee * along, -1, keepdims=True) * along  # perpendicular to hip -> goal
    assert (np.sum(side * (pole - np.sum(pole * along, -1, keepdims=True) * along), -1) > 0).all()  # pole side
    far = fc.two_bone_ik(hip, np.tile([0, 0, -2.0], (50, 1)), thigh, shin, pole)[1]  # out of reach: straight leg
    np.testing.assert_allclose(np.linalg.norm(far, axis=-1), thigh + shin, rtol=1e-6)


def test_lock_sequence_round_trips_camera_space(walks, bnmocap_dir):
    """Root-relative camera-space poses at their root, locked in the camera's world frame:
    the result comes back in the same form, with the feet planted in the world."""
    from rie_cli.cameras import load_cameras_file, world_to_camera
    from rie_cli.trajectory import camera_floor, lock_sequence

    cameras = load_cameras_file(bnmocap_dir / "cameras_bnmocap.json")
    camera = cameras.for_subject(next(iter(cameras.cameras)))[0]
    absolute = world_to_camera(noisy(walks[0]), camera)
    poses, root, contacts = lock_sequence(absolute - absolute[:, :1], absolute[:, 0], H36M_17, 50, camera)
    assert poses.shape == absolute.shape and root.shape == (len(absolute), 3) and contacts.shape == (len(absolute), 2)
    assert np.abs(poses[:, 0]).max() < 1e-6
    world = camera_floor(camera).apply(poses + root[:, None])
    start, end = fc._runs(contacts[:, 0])[0]
    assert np.abs(world[start:end, 3] - world[start, 3]).max() < 1e-3
