"""Where the person is: the camera-space root from a trajectory model, and poses that move.

A pose model predicts the body root-relative (joint 0 at the origin); a trajectory
model (`ModelConfig.target == "trajectory"`, docs/training.md) predicts where the
root is in camera space. Together they place the person:

    traj = predict_trajectories(traj_model, [keypoints_2d], skeleton=skel)[0]   # (T, 3)
    absolute = absolute_poses(poses, traj)           # (T, J, 3) camera space, metres
    world = camera_to_world(absolute, camera)        # with the camera's extrinsics

Without extrinsics there is no world frame; `floor_transform` makes one from the
sequence itself (the floor the feet stand on, z up). `place_motion` is how commands
write placed poses: world coordinates with extrinsics, else on that level floor
(FLOOR, the default) or in camera axes (`--no-level`), with the feet locked on
request (`--foot-lock`, `rie_cli.foot_contact`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton

# Spaces a prediction file's poses can be in (the `space` key of prediction files);
# FLOOR: placed without extrinsics and stood upright on the floor the feet show.
CAMERA_RELATIVE, CAMERA, WORLD, FLOOR = "camera-relative", "camera", "world", "floor"


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


@dataclass
class PlacedMotion:
    """Poses at their root, in the space they are written in (`place_motion`)."""

    poses: np.ndarray  # (T, J, 3) float32 in `space`
    space: str  # CAMERA, WORLD or FLOOR
    root: np.ndarray  # (T, 3) float32, camera-space root (moved by a foot lock)
    contacts: np.ndarray | None = None  # (T, F) bool per foot of `skeleton.feet()`, with a foot lock
    floor: "FloorTransform | None" = None  # camera space -> `space`, for WORLD and FLOOR


def place_motion(poses: np.ndarray, root: np.ndarray, skeleton: Skeleton, fps: float, *, camera=None,
                 level: bool = True, foot_lock: bool = False) -> PlacedMotion:
    """Root-relative camera-space poses (T, J, 3) at their camera-space `root` (T, 3), in the
    space they are written in: WORLD with a `camera` that has extrinsics; otherwise FLOOR
    (`level`: upright on the floor the feet show, `floor_transform`) or CAMERA.

    `foot_lock` applies `rie_cli.foot_contact.lock_feet` in that z-up frame (in the
    estimated floor frame for CAMERA, and back) and returns the contacts.
    """
    absolute = absolute_poses(poses, root).astype(np.float64)
    if camera is not None and camera.has_extrinsics:
        frame, space = camera_floor(camera), WORLD
    elif level:
        frame, space = floor_transform(absolute, skeleton), FLOOR
    else:
        frame, space = None, CAMERA
    contacts = None
    if foot_lock:
        from rie_cli.foot_contact import lock_feet

        lock_frame = frame or floor_transform(absolute, skeleton)
        locked = lock_feet(lock_frame.apply(absolute), skeleton, fps)
        absolute, contacts = lock_frame.invert(locked.poses), locked.contacts
    out = frame.apply(absolute) if frame is not None else absolute
    return PlacedMotion(out.astype(np.float32), space, absolute[:, 0].astype(np.float32), contacts, frame)


def lock_sequence(poses: np.ndarray, root: np.ndarray, skeleton: Skeleton, fps: float, camera=None):
    """`--foot-lock` on root-relative camera-space poses (T, J, 3) at their camera-space
    `root` (T, 3): (poses, root, contacts (T, F)) of the locked motion in the same form
    (`rie evaluate --foot-lock`). Locked in the world frame of a `camera` with
    extrinsics, else on the level floor the feet show."""
    placed = place_motion(poses, root, skeleton, fps, camera=camera, foot_lock=True)
    absolute = placed.floor.invert(placed.poses)  # camera space
    return ((absolute - absolute[:, :1]).astype(np.float32), placed.root, placed.contacts)


def settle_motion(poses: np.ndarray, space: str, skeleton: Skeleton, fps: float, *, level: bool = True,
                  foot_lock: bool = False) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Absolute poses (T, J, 3) in `space` (CAMERA, WORLD or FLOOR) as they are written:
    (poses, space, contacts or None). CAMERA poses are stood upright on the floor their
    feet show (FLOOR) where `level`; `foot_lock` keeps planted feet still, in the z-up
    frame (for poses kept in camera axes: in the estimated floor frame, and back)."""
    poses = np.asarray(poses, np.float64)
    frame = floor_transform(poses, skeleton) if space == CAMERA else None
    if frame is not None and level:
        poses, space, frame = frame.apply(poses), FLOOR, None
    contacts = None
    if foot_lock:
        from rie_cli.foot_contact import lock_feet

        locked = lock_feet(poses if frame is None else frame.apply(poses), skeleton, fps)
        poses = locked.poses if frame is None else frame.invert(locked.poses)
        contacts = locked.contacts
    return poses.astype(np.float32), space, contacts


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
    """Absolute camera-space poses (T, J, 3) -> the same poses standing on a floor z = 0
    (float32): `floor_transform(poses, skeleton).apply(poses)`."""
    return floor_transform(poses, skeleton).apply(poses).astype(np.float32)


@dataclass
class FloorTransform:
    """Camera axes -> a level floor frame (metres, z up, x/y on the floor, the feet's
    lowest contact at z = 0): `floor = camera @ rotation.T + offset`, a rigid motion."""

    rotation: np.ndarray  # (3, 3), proper rotation (camera axes -> floor axes)
    offset: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Camera-space points (..., 3) -> floor frame (..., 3), float64."""
        return np.asarray(points, np.float64) @ self.rotation.T + self.offset

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Floor-frame points (..., 3) -> camera space (..., 3), float64."""
        return (np.asarray(points, np.float64) - self.offset) @ self.rotation


def floor_transform(poses: np.ndarray, skeleton: Skeleton) -> FloorTransform:
    """The level floor of absolute camera-space poses (T, J, 3), estimated from their feet.

    In every frame the lower foot (the one carrying the weight) is taken as a floor
    contact, a plane is fitted to those contacts by least squares (its normal the
    direction of least spread), turned to face up (towards the body), and the poses are
    rotated so that this normal is +z and shifted so that the lowest contact is at height 0.
    Directions in which the contacts spread less than `MIN_FLOOR_SPREAD` (RMS) do not
    define the plane: for a person walking a straight line the floor is taken to
    contain that line and otherwise be as level as the camera's up direction allows
    (the camera's up made perpendicular to the line); for one who hardly moves, the
    camera's up itself. A fitted floor leaning more than `MAX_FLOOR_TILT_DEG` from the
    camera's up is not believed either.
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
    rotation = _rotation_to_z(normal) @ UPRIGHT  # (3, 3) camera axes -> floor axes
    height = (contact @ _rotation_to_z(normal).T)[:, 2].min()
    return FloorTransform(rotation, np.array([0.0, 0.0, -height]))


def camera_floor(camera) -> FloorTransform:
    """The world frame of a camera with extrinsics as a `FloorTransform` (world z is up in
    every prepared file, docs/hdf5-format.md): `apply` is `cameras.camera_to_world`."""
    from rie_cli.cameras import camera_to_world

    offset = camera_to_world(np.zeros(3), camera)
    return FloorTransform(camera_to_world(np.eye(3), camera).T - offset[:, None], offset)


# Camera axes (x right, y down, z forward) -> x, z, -y: `upright` as a matrix.
UPRIGHT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


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
