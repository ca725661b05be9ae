"""Where the person is: the camera-space root from a trajectory model, and poses that move.

A pose model predicts the body root-relative (joint 0 at the origin); a trajectory
model (`ModelConfig.target == "trajectory"`, docs/training.md) predicts where the
root is in camera space. Together they place the person:

    traj = predict_trajectories(traj_model, [keypoints_2d], skeleton=skel)[0]   # (T, 3)
    absolute = absolute_poses(poses, traj)           # (T, J, 3) camera space, metres
    world = camera_to_world(absolute, camera)        # with the camera's extrinsics

Without extrinsics there is no world frame; `floor_frame` makes one from the
sequence itself (the floor the feet stand on), for drawing.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton

# Spaces a prediction file's poses can be in (the `space` key of prediction files).
CAMERA_RELATIVE, CAMERA, WORLD = "camera-relative", "camera", "world"


def absolute_poses(poses: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
    """Root-relative poses (T, J, 3) placed at the camera-space root `trajectory` (T, 3).

    The pose model says how the body is posed around its root, the trajectory where
    the root is: whatever the pose model put at joint 0 is replaced by the trajectory
    (its root prediction is ~0 by training, and this keeps the root error of the
    absolute poses equal to the trajectory's).
    """
    poses = np.asarray(poses, dtype=np.float64)
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if poses.ndim != 3 or trajectory.shape != (len(poses), 3):
        raise RieError(f"a trajectory (frames, 3) must go with poses (frames, joints, 3); "
                       f"got {trajectory.shape} and {poses.shape}")
    return (poses - poses[:, :1] + trajectory[:, None, :]).astype(np.float32)  # (T, J, 3)


def to_world(absolute: np.ndarray, camera) -> np.ndarray:
    """Absolute camera-space points (..., 3) -> world (..., 3) float32, with `camera`'s extrinsics."""
    from rie_cli.cameras import camera_to_world

    return camera_to_world(absolute, camera).astype(np.float32)


def placed_poses(poses: np.ndarray, trajectory: np.ndarray, camera, skeleton: Skeleton) -> tuple[np.ndarray, str]:
    """Poses (T, J, 3) at their predicted root: (poses, space).

    World coordinates where `camera` has extrinsics (space "world"); otherwise the
    camera-space poses turned upright and stood on the floor their feet show
    (`floor_frame`; space "floor", for drawing only).
    """
    absolute = absolute_poses(poses, trajectory)
    if camera is not None and camera.has_extrinsics:
        return to_world(absolute, camera), WORLD
    return floor_frame(absolute, skeleton), "floor"


def predict_trajectories(model, sequences_2d: list[np.ndarray], *, skeleton: Skeleton, tta: bool = True,
                         batch_size: int = 1024, device="cpu", precision: str = "fp32",
                         progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """The camera-space root (T_i, 3) float32 of every frame of every (T_i, J, 2) sequence.

    The same windows as pose prediction (`rie_cli.inference.predict_many`); with `tta`
    the mirrored window's root, its x negated back, is averaged in.
    """
    from rie_cli.inference import predict_many

    config = getattr(model, "config", None)
    if config is None or config.target != "trajectory":
        raise RieError("predict_trajectories needs a trajectory model (ModelConfig.target 'trajectory')")
    out = predict_many(model, sequences_2d, skeleton=skeleton, tta=tta, batch_size=batch_size, device=device,
                       precision=precision, progress=progress)
    return [o[:, 0] for o in out]  # (T, 1, 3) -> (T, 3)


def root_errors(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-frame distance (T,) between predicted and true roots (T, 3), in their units."""
    return np.linalg.norm(np.asarray(predicted, np.float64) - np.asarray(true, np.float64), axis=-1)


# --- a floor where there are no extrinsics ---------------------------------------------


def upright(camera_points: np.ndarray) -> np.ndarray:
    """Camera axes (x right, y down, z forward) -> x, z, -y: z up, for drawing."""
    p = np.asarray(camera_points, dtype=np.float64)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def floor_frame(poses: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Absolute camera-space poses (T, J, 3) -> the same poses standing on a floor z = 0.

    The floor is estimated from the feet over the whole sequence: in every frame the
    lower foot (the one carrying the weight) is taken as a floor contact, a plane is
    fitted to those contacts by least squares (its normal the direction of least
    spread), turned to face up (towards the body), and the poses are rotated so that
    this normal is +z and shifted so that the lowest contact is at height 0.
    Directions in which the contacts spread less than `MIN_FLOOR_SPREAD` (RMS) do not
    define the plane: for a person walking a straight line the floor is taken to
    contain that line and otherwise be as level as the camera's up direction allows
    (the camera's up made perpendicular to the line); for one who hardly moves, the
    camera's up itself. A fitted floor leaning more than `MAX_FLOOR_TILT_DEG` from the
    camera's up is not believed either. The result is in metres, z up, x/y on the floor.
    """
    points = upright(poses)  # (T, J, 3), z roughly up if the camera is roughly level
    feet = _feet(skeleton)
    foot = points[:, feet]  # (T, F, 3)
    contact = foot[np.arange(len(points)), foot[..., 2].argmin(axis=1)]  # (T, 3): the lower foot
    camera_up = np.array([0.0, 0.0, 1.0])
    normal = _floor_normal(contact, camera_up)
    body_over_feet = (points.mean(axis=1) - contact).mean(axis=0)  # (3,) points away from the floor
    if normal @ body_over_feet < 0:
        normal = -normal
    if normal @ camera_up < np.cos(np.radians(MAX_FLOOR_TILT_DEG)):
        normal = camera_up
    rotation = _rotation_to_z(normal)  # (3, 3)
    out = points @ rotation.T
    out[..., 2] -= (contact @ rotation.T)[:, 2].min()
    return out.astype(np.float32)


MIN_FLOOR_SPREAD = 0.15  # metres (RMS) the foot contacts must spread in two directions to define a plane
MAX_FLOOR_TILT_DEG = 45.0  # a fitted floor leaning more than this from the camera's up is not believed


def _feet(skeleton: Skeleton) -> list[int]:
    """The skeleton's feet (`Skeleton.feet`); every leaf for a skeleton without leg parts."""
    feet = list(skeleton.feet())
    if feet:
        return feet
    children = {p for p in skeleton.parents if p >= 0}
    return [j for j in range(skeleton.num_joints) if j not in children]


def _floor_normal(points: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Unit normal of the plane through `points` (N, 3): least squares in the directions
    the points spread enough to define (`MIN_FLOOR_SPREAD`), `up` in the others."""
    centred = points - points.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)  # principal directions, widest first
    spread = np.zeros(3)
    spread[: len(singular)] = singular / np.sqrt(max(len(points), 1))  # RMS extent along each
    if spread[1] >= MIN_FLOOR_SPREAD:
        return vt[2] / np.linalg.norm(vt[2])  # a plane: its direction of least spread
    normal = up.copy()
    if spread[0] >= MIN_FLOOR_SPREAD:  # a line: the floor contains it
        normal -= (normal @ vt[0]) * vt[0]
    return normal / np.linalg.norm(normal)


def _rotation_to_z(normal: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking the unit vector `normal` to +z (Rodrigues)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(normal, z)
    s, c = np.linalg.norm(axis), float(normal @ z)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx
