"""BVH export: the written file, read back by an independent reader (tests/bvh_reader.py),
rebuilds the joints it was made from."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from bvh_reader import forward_kinematics, parse_bvh
from rie_cli.bvh import poses_to_motion, write_bvh
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17, HUMANEVA_15

# The documented joint names (docs/export.md), in each skeleton's joint order.
H36M_NAMES = ["Hips", "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot", "Spine", "Chest",
              "Neck", "Head", "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm", "RightHand"]
HUMANEVA_NAMES = ["Hips", "Chest", "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm", "RightHand",
                  "LeftUpLeg", "LeftLeg", "LeftFoot", "RightUpLeg", "RightLeg", "RightFoot", "Head"]
SKELETON_NAMES = {"h36m17": H36M_NAMES, "humaneva15": HUMANEVA_NAMES}
# The files' depth-first order, helper joints (zero offset) before the bones leaving pelvis and thorax.
H36M_FILE = ["Hips", "RightHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "LeftHipJoint", "LeftUpLeg", "LeftLeg",
             "LeftFoot", "LowerBack", "Spine", "Chest", "LowerNeck", "Neck", "Head", "LeftShoulder", "LeftArm",
             "LeftForeArm", "LeftHand", "RightShoulder", "RightArm", "RightForeArm", "RightHand"]
HUMANEVA_FILE = ["Hips", "LowerBack", "Chest", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "RightShoulder",
                 "RightArm", "RightForeArm", "RightHand", "LowerNeck", "Head", "LeftHipJoint", "LeftUpLeg", "LeftLeg",
                 "LeftFoot", "RightHipJoint", "RightUpLeg", "RightLeg", "RightFoot"]
HELPERS = {"RightHipJoint", "LeftHipJoint", "LowerBack", "LowerNeck", "LeftShoulder", "RightShoulder"}

# File axes -> input axes, as documented: camera input (x right, y down, z away) is
# written as (x, -y, -z) with --up y, and as (x, z, -y) with --up z.
FILE_TO_CAMERA = {"y": np.diag([1.0, -1.0, -1.0]), "z": np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])}


def _rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(T,) angles about a fixed unit axis -> (T, 3, 3), written out (not the library's)."""
    x, y, z = axis
    c, s, t = np.cos(angle), np.sin(angle), 1 - np.cos(angle)
    return np.moveaxis(np.array([
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]), (0, 1), (-2, -1))


def _rest_offsets(skeleton, rng) -> np.ndarray:
    """A left/right symmetric skeleton (camera axes, y down), bones 5-45 cm."""
    offsets = np.zeros((skeleton.num_joints, 3))
    perm = skeleton.flip_permutation()
    for j in range(1, skeleton.num_joints):
        if j in skeleton.joints_right:
            continue
        d = rng.normal(size=3)
        d *= rng.uniform(0.05, 0.45) / np.linalg.norm(d)
        if j in skeleton.joints_left:
            offsets[j] = d
            offsets[perm[j]] = d * np.array([-1.0, 1.0, 1.0])
        else:
            offsets[j] = d * np.array([0.0, 1.0, 1.0])  # central joints on the mid-plane
    return offsets


def synthetic_motion(skeleton, frames: int = 120, seed: int = 0) -> np.ndarray:
    """Forward kinematics of smooth random rotations: constant bone lengths and rigid
    pelvis/thorax arrangements, camera space, metres, root at the origin."""
    rng = np.random.default_rng(seed)
    offsets = _rest_offsets(skeleton, rng)
    t = np.linspace(0, 1, frames)
    positions = np.zeros((frames, skeleton.num_joints, 3))
    globals_ = np.zeros((frames, skeleton.num_joints, 3, 3))
    for j, parent in enumerate(skeleton.parents):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        amplitude = 2 * np.pi if parent < 0 else rng.uniform(0.3, 1.4)  # the root turns all the way round
        local = _rotation(axis, amplitude * np.sin(2 * np.pi * t * rng.uniform(0.5, 2) + rng.uniform(0, 6)))
        if parent < 0:
            globals_[:, j] = local
        else:
            globals_[:, j] = globals_[:, parent] @ local
            positions[:, j] = positions[:, parent] + np.einsum("tij,j->ti", globals_[:, parent], offsets[j])
    return positions


def skeleton_points(bvh, skeleton) -> np.ndarray:
    """Forward kinematics of a parsed file, (T, J, 3) in the file's axes and units, the
    skeleton's joints picked by their documented names, in the skeleton's order."""
    points = forward_kinematics(bvh)  # (T, joints in the file, 3) in file order
    return points[:, [bvh.names.index(name) for name in SKELETON_NAMES[skeleton.name]]]


def _read_positions(path, skeleton, up="y", scale=1.0) -> np.ndarray:
    """Joint positions (T, J, 3) of a BVH file in camera axes and metres, skeleton order."""
    return skeleton_points(parse_bvh(path), skeleton) / scale @ FILE_TO_CAMERA[up].T


def _bone_angles(a: np.ndarray, b: np.ndarray, skeleton) -> np.ndarray:
    """Angle in degrees between each bone of two pose sequences, (T, J-1)."""
    parents = np.array(skeleton.parents)
    idx = np.flatnonzero(parents >= 0)
    u, v = a[:, idx] - a[:, parents[idx]], b[:, idx] - b[:, parents[idx]]
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.mark.parametrize("up,units", [("y", "m"), ("z", "cm")])
def test_synthetic_h36m_round_trip_within_1mm(tmp_path, up, units):
    poses = synthetic_motion(H36M_17)
    out = write_bvh(tmp_path / "s.bvh", poses_to_motion(poses, H36M_17, space="camera"), fps=50, units=units, up=up)
    bvh = parse_bvh(out)
    assert bvh.names == H36M_FILE
    assert len(bvh.motion) == len(poses) and bvh.frame_time == pytest.approx(0.02)
    assert bvh.joints[0].channels[:3] == ["Xposition", "Yposition", "Zposition"]
    assert all(len(j.channels) == 3 for j in bvh.joints[1:])
    leaves = {j.name for j in bvh.joints if j.end_site is not None}
    assert leaves == {"RightFoot", "LeftFoot", "Head", "LeftHand", "RightHand"}
    back = _read_positions(out, H36M_17, up, 100.0 if units == "cm" else 1.0)
    # A root-relative input gets a fixed root: compare root-relative positions.
    error = np.linalg.norm((back - back[:, :1]) - (poses - poses[:, :1]), axis=-1)
    assert error.max() < 1e-3, f"max {error.max() * 1000:.3f} mm"


def test_synthetic_humaneva_round_trip_and_file_order(tmp_path):
    poses = synthetic_motion(HUMANEVA_15, seed=3)
    out = write_bvh(tmp_path / "he.bvh", poses_to_motion(poses, HUMANEVA_15), fps=60)
    assert parse_bvh(out).names == HUMANEVA_FILE
    back = _read_positions(out, HUMANEVA_15)
    error = np.linalg.norm((back - back[:, :1]) - (poses - poses[:, :1]), axis=-1)
    assert error.max() < 1e-3


@pytest.mark.parametrize("skeleton", [H36M_17, HUMANEVA_15], ids=lambda s: s.name)
def test_without_helper_joints_the_file_holds_the_skeleton_alone(tmp_path, skeleton):
    """--no-helper-joints: exactly the skeleton's joints, depth first in its order; a rigid
    body (the synthetic motion) still comes back within 1 mm."""
    poses = synthetic_motion(skeleton, seed=8)
    out = write_bvh(tmp_path / "plain.bvh", poses_to_motion(poses, skeleton, helper_joints=False), fps=50)
    bvh = parse_bvh(out)
    assert set(bvh.names) == set(SKELETON_NAMES[skeleton.name]) and len(bvh.names) == skeleton.num_joints
    assert [n for n in (H36M_FILE if skeleton is H36M_17 else HUMANEVA_FILE) if n not in HELPERS] == bvh.names
    back = _read_positions(out, skeleton)
    assert np.abs((back - back[:, :1]) - (poses - poses[:, :1])).max() < 1e-3


def test_helper_joints_make_every_bone_exact_on_non_rigid_poses(tmp_path):
    """Poses with no rigid pelvis or thorax at all (independent random joints, as an
    untrained model predicts): with helper joints every bone direction comes back exact;
    without, the bones leaving pelvis and thorax share one rotation and miss."""
    poses = np.random.default_rng(9).normal(0.0, 0.3, (80, 17, 3))
    angles = {}
    for helpers in (True, False):
        out = write_bvh(tmp_path / f"h{helpers}.bvh", poses_to_motion(poses, H36M_17, helper_joints=helpers), fps=50)
        angles[helpers] = _bone_angles(_read_positions(out, H36M_17), poses, H36M_17)  # (T, 16)
    assert angles[True].max() < 1e-3
    assert angles[False].mean() > 2.0  # what the helpers are for
    # Without helpers only the six bones that leave pelvis and thorax miss.
    exact = [j - 1 for j in range(1, 17) if H36M_17.parents[j] not in (0, 8)]
    assert angles[False][:, exact].max() < 1e-3


def test_helper_joints_stay_at_rest_on_a_rigid_body(tmp_path):
    """On rigid motion the helpers have nothing to correct: their rotations stay zero."""
    poses = synthetic_motion(H36M_17, seed=10)
    bvh = parse_bvh(write_bvh(tmp_path / "rigid.bvh", poses_to_motion(poses, H36M_17), fps=50))
    column = 6
    for joint in bvh.joints[1:]:
        if joint.name in HELPERS:
            assert np.abs(bvh.motion[:, column:column + 3]).max() < 1e-3, joint.name
            assert not np.any(joint.offset)
        column += 3


def test_angles_are_unwrapped(tmp_path):
    """A body turning twice about the vertical: the angles run on past 180 degrees
    instead of jumping by 360."""
    frames = 200
    poses = synthetic_motion(H36M_17, frames=frames)
    yaw = _rotation(np.array([0.0, 1.0, 0.0]), np.linspace(0, 4 * np.pi, frames))  # (T, 3, 3) about camera y
    poses = np.einsum("tij,tkj->tki", yaw, poses)
    out = write_bvh(tmp_path / "s.bvh", poses_to_motion(poses, H36M_17), fps=50)
    angles = parse_bvh(out).motion[:, 3:]
    assert np.abs(np.diff(angles, axis=0)).max() < 90
    assert np.ptp(angles[:, :3], axis=0).max() > 600  # two turns, unwrapped


def test_trajectory_moves_the_root(tmp_path):
    poses = synthetic_motion(H36M_17, frames=60, seed=1)
    trajectory = np.stack([np.linspace(-1, 1, 60), 0.1 * np.sin(np.arange(60) / 5), np.linspace(4, 6, 60)], -1)
    motion = poses_to_motion(poses, H36M_17, space="camera", trajectory=trajectory)
    back = _read_positions(write_bvh(tmp_path / "t.bvh", motion, fps=50), H36M_17)
    absolute = poses + trajectory[:, None]
    error = np.linalg.norm((back - back[:1, :1]) - (absolute - absolute[:1, :1]), axis=-1)
    assert error.max() < 1e-3


def test_world_space_kept_with_up_z(tmp_path):
    """World input (z up) written with --up z keeps its coordinates, root position included."""
    world = synthetic_motion(H36M_17, frames=40, seed=2) @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T
    world = world + np.array([0.5, -2.0, 0.9])
    out = write_bvh(tmp_path / "w.bvh", poses_to_motion(world, H36M_17, space="world"), fps=50, up="z")
    points = skeleton_points(parse_bvh(out), H36M_17)
    assert np.abs(points - world).max() < 1e-3


def test_fixed_root_puts_the_feet_on_the_floor(tmp_path):
    poses = synthetic_motion(H36M_17, frames=30, seed=4)
    out = write_bvh(tmp_path / "f.bvh", poses_to_motion(poses, H36M_17), fps=50)
    points = forward_kinematics(parse_bvh(out))  # file axes, y up
    assert np.median(points[..., 1].min(axis=1)) == pytest.approx(0.0, abs=1e-6)
    assert np.ptp(points[:, 0], axis=0).max() < 1e-9  # the root does not move


def test_rest_pose_is_a_t_pose(tmp_path):
    poses = synthetic_motion(H36M_17, frames=10, seed=5)
    bvh = parse_bvh(write_bvh(tmp_path / "r.bvh", poses_to_motion(poses, H36M_17), fps=50))
    offsets = {j.name: j.offset / np.linalg.norm(j.offset) for j in bvh.joints[1:] if j.name not in HELPERS}
    np.testing.assert_allclose(offsets["LeftForeArm"], [1, 0, 0], atol=1e-9)  # arms out to the left (+x)
    np.testing.assert_allclose(offsets["RightHand"], [-1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(offsets["LeftLeg"], [0, -1, 0], atol=1e-9)  # legs down
    np.testing.assert_allclose(offsets["Chest"], [0, 1, 0], atol=1e-9)  # spine up
    # left and right bones equal
    names = {j.name: j.offset for j in bvh.joints}
    assert np.linalg.norm(names["LeftArm"]) == pytest.approx(np.linalg.norm(names["RightArm"]))


def test_real_motion_bone_directions(demo_dir, tmp_path):
    """Real mocap (the demo data's 3D, world space): bone lengths vary per frame, so
    positions cannot match exactly, but every bone direction does (helper joints carry
    the non-rigid pelvis and thorax); without helpers they still agree within 1 degree
    on average."""
    with np.load(demo_dir / "data_3d_bnmocap.npz", allow_pickle=True) as f:
        data = f["positions_3d"].item()
    subject = sorted(data)[0]
    action = sorted(data[subject])[0]
    world = np.asarray(data[subject][action][:500], dtype=np.float64)
    out = write_bvh(tmp_path / "real.bvh", poses_to_motion(world, H36M_17, space="world"), fps=50, up="z")
    back = skeleton_points(parse_bvh(out), H36M_17)
    angles = _bone_angles(back, world, H36M_17)
    error = np.linalg.norm(back - world, axis=-1)
    print(f"real motion: position error mean {error.mean() * 1000:.1f} mm, max {error.max() * 1000:.1f} mm; "
          f"bone direction mean {angles.mean():.2f} deg, max {angles.max():.2f} deg")
    assert angles.max() < 0.01  # 6-decimal text
    assert error.mean() < 0.02
    plain = write_bvh(tmp_path / "plain.bvh", poses_to_motion(world, H36M_17, space="world", helper_joints=False),
                      fps=50, up="z")
    assert _bone_angles(skeleton_points(parse_bvh(plain), H36M_17), world, H36M_17).mean() < 1.0


def test_bad_input_is_a_rie_error(tmp_path):
    with pytest.raises(RieError, match="shape"):
        poses_to_motion(np.zeros((5, 16, 3)), H36M_17)
    with pytest.raises(RieError, match="finite"):
        poses_to_motion(np.full((5, 17, 3), np.nan), H36M_17)
    motion = poses_to_motion(synthetic_motion(H36M_17, frames=3), H36M_17)
    with pytest.raises(RieError, match="units"):
        write_bvh(tmp_path / "x.bvh", motion, fps=50, units="mm")
    with pytest.raises(RieError, match="up axis"):
        write_bvh(tmp_path / "x.bvh", motion, fps=50, up="x")
    assert not (tmp_path / "x.bvh").exists()


@pytest.mark.skipif(importlib.util.find_spec("bvhio") is None, reason="needs bvhio (the 'test' extra)")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_second_reader_bvhio(tmp_path):
    import bvhio

    poses = synthetic_motion(H36M_17, frames=50, seed=6)
    out = write_bvh(tmp_path / "b.bvh", poses_to_motion(poses, H36M_17), fps=25, units="cm")
    container = bvhio.readAsBvh(str(out))
    assert container.FrameCount == 50
    assert container.FrameTime == pytest.approx(0.04)
    assert [joint.Name for joint, _, _ in container.Root.layout()] == H36M_FILE
    # bvhio's own forward kinematics agrees with the input (cm, file axes -> camera metres).
    root = bvhio.readAsHierarchy(str(out))
    joints = [joint for joint, _, _ in root.layout()]
    for frame in (0, 17, 49):
        root.loadPose(frame)
        points = np.array([list(j.PositionWorld) for j in joints]) / 100 @ FILE_TO_CAMERA["y"].T
        points = points[[H36M_FILE.index(name) for name in H36M_NAMES]]
        rel = points - points[:1]
        np.testing.assert_allclose(rel, poses[frame] - poses[frame, :1], atol=1e-3)
