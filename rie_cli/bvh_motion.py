"""Poses to BVH motion: a skeleton in a rest pose and per-frame joint rotations
(`rie_cli.bvh` writes the file).

    motion = poses_to_motion(poses, H36M_17, space="camera")      # (T, J, 3) metres -> rotations
    write_bvh(Path("clip.bvh"), motion, fps=50, units="cm", up="y")

BVH stores a skeleton (joint offsets in a rest pose) and, per frame, the root's
position and every joint's rotation; the joint positions follow by forward
kinematics. Conventions chosen here (docs/export.md, "BVH"):

- Hierarchy: the skeleton's own joints, depth first in the skeleton's joint order,
  children in index order (Human3.6M-17: Hips, RightUpLeg, RightLeg, RightFoot,
  LeftUpLeg, ..., RightHand; names in `BVH_NAMES`). The root (pelvis) has 6 channels,
  every other joint 3 rotation channels, each leaf an `End Site`.
- Helper joints (default; `helper_joints=False` leaves them out): three bones leave
  the pelvis (hips, spine) and three the thorax (neck, shoulders), but one joint has
  one rotation, and a predicted pose is not rigid there: no rotation points all
  three bones right (on an untrained model's poses the best fit missed them by 9-20
  degrees). So each of those bones hangs from a helper joint of zero offset at the
  pelvis or thorax (`HELPER_NAMES`: RightHipJoint, LeftHipJoint, LowerBack,
  LowerNeck, LeftShoulder, RightShoulder, as CMU's and Mixamo's skeletons have them)
  whose rotation turns that one bone; the pelvis and thorax keep the body's
  orientation. Every bone direction is then exact, and on a rigid body the helpers
  stay at identity. In the file each helper comes just before the joint it carries.
- Axes: internally x = the character's left, y = up, z = forward. `--up y` writes
  that frame (the usual BVH convention); `--up z` writes x = left, y = backward,
  z = up (Blender's own axes). Camera-space input (x right, y down, z away from the
  camera) becomes (x, -y, -z), so a person facing the camera faces forward; world
  input (z up) becomes (x, z, -y).
- Rest pose: a T-pose. Legs straight down, arms straight out sideways, spine and neck
  straight up. The bones that meet at the pelvis (hips, spine) and at the thorax
  (shoulders, neck) keep the sequence's own median arrangement (left/right mirrored
  equal), expressed in the body frames below, so that those joints fit every frame
  with one rotation.
- Offsets: each bone's median length over the sequence, left and right bones set to
  the mean of the two.
- Rotations: the pelvis and thorax take the rotation that best fits their three
  bones' directions (Kabsch; without helper joints it turns the bones themselves); their rest arrangement is the
  median in body frames (x from the right to the left hip or shoulder, y along the
  spine or neck made perpendicular to x, z = x cross y). Every other bone gets the smallest rotation (in its parent's frame)
  that turns its rest direction into its direction in the frame, followed by a twist
  about the bone that puts the next bone's bend where the rest pose expects it
  (elbows bend forward, knees backward, the spine turns with the shoulders). Bones
  without a next bone (shins, forearms, neck) and leaves have no twist beyond the
  smallest rotation; leaves do not rotate.
- Euler angles in degrees, one order per joint chosen away from gimbal lock: the
  middle axis of a limb joint is its bone's axis (twist stays small), that of the
  pelvis and thorax the forward axis (a body rarely rolls 90 degrees sideways). The
  order is written in each joint's CHANNELS line and angles are unwrapped over time.
- Root position: the pelvis position. Root-relative camera-space poses get a fixed
  root, at the height that puts the lowest joint on the floor (y = 0) in the median
  frame; with a `trajectory` (camera-space root per frame) it moves, shifted so that
  it starts above the origin with the same floor rule. World-space poses keep their
  world position.
"""


from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton

SPACES = ("camera", "camera-relative", "world", "floor")  # "floor": z up like world (rie_cli.trajectory.FLOOR)

# BVH joint names per skeleton, in joint order (Mixamo-like, so retargeting tools
# recognise the limbs). A joint's rotation turns the bone(s) that start at it:
# "LeftArm" sits at the shoulder and turns the upper arm.
BVH_NAMES = {
    "h36m17": ("Hips", "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot", "Spine",
               "Chest", "Neck", "Head", "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm",
               "RightHand"),
    "humaneva15": ("Hips", "Chest", "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm",
                   "RightHand", "LeftUpLeg", "LeftLeg", "LeftFoot", "RightUpLeg", "RightLeg", "RightFoot",
                   "Head"),
}

LEFT, UP, FORWARD = np.eye(3)  # internal axes: x left, y up, z forward
# Camera (x right, y down, z away) and world (z up) axes -> internal axes; both rotations.
TO_INTERNAL = {
    "camera": np.diag([1.0, -1.0, -1.0]),
    "world": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
}

# Helper joints (see the module docstring), named after the bone they turn, as CMU's
# and Mixamo's BVH skeletons name theirs; keyed by the name of the joint they carry.
HELPER_NAMES = {"RightUpLeg": "RightHipJoint", "LeftUpLeg": "LeftHipJoint", "Spine": "LowerBack",
                "Chest": "LowerBack", "Neck": "LowerNeck", "Head": "LowerNeck", "LeftArm": "LeftShoulder",
                "RightArm": "RightShoulder"}

TWIST_FALLBACK = 0.1  # weight of the untwisted reference when a limb is nearly straight
END_SITE_LENGTH = 0.3  # end-site offset, as a share of the leaf's parent bone


@dataclass
class Motion:
    """A BVH skeleton and its motion, in internal axes (x left, y up, z forward), metres."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray  # (J, 3) rest offset of each joint from its parent (root: zeros)
    end_sites: dict[int, np.ndarray]  # leaf joint -> (3,) end-site offset
    orders: tuple[str, ...]  # per joint, Euler order in internal axes, e.g. "ZXY"
    root_positions: np.ndarray  # (T, 3)
    rotations: np.ndarray  # (T, J, 3, 3) local rotations (root: global)

    @property
    def num_frames(self) -> int:
        return len(self.root_positions)


# --- rotations -----------------------------------------------------------------------

def _normalize(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: unit axes (..., 3), angles (...) -> rotation matrices (..., 3, 3)."""
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def smallest_rotation(a: np.ndarray, b: np.ndarray, fallback_axis: np.ndarray) -> np.ndarray:
    """The rotation (..., 3, 3) of least angle turning unit vectors a (3,) into b (..., 3).

    For b opposite to a the axis is ambiguous; `fallback_axis` (perpendicular to a) is used.
    """
    cross = np.cross(a, b)  # (..., 3)
    sin = np.linalg.norm(cross, axis=-1)
    cos = b @ a
    axis = np.where(sin[..., None] > 1e-9, cross / np.maximum(sin, 1e-12)[..., None], fallback_axis)
    return _axis_angle(axis, np.arctan2(sin, cos))


def body_frame(joint: np.ndarray, left: np.ndarray, right: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Orientation (T, 3, 3) whose columns are the body's left, up and forward axes:
    left = right -> left child, up = the centre child's direction made perpendicular."""
    x = _normalize(left - right)  # (T, 3)
    u = centre - joint
    y = _normalize(u - np.sum(u * x, -1, keepdims=True) * x)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def best_rotation(rest: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per frame, the rotation (T, 3, 3) that best turns the rest directions (K, 3) into
    the observed ones (T, K, 3), each bone weighing the same (Kabsch / Wahba, SVD).
    Exact where the observed bones keep their rest arrangement; otherwise it spreads the
    misfit over all of them instead of loading it on one."""
    a = _normalize(rest)  # (K, 3)
    b = _normalize(observed)  # (T, K, 3)
    h = np.einsum("ki,tkj->tij", a, b)  # (T, 3, 3) = sum_k a_k b_k^T
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    d = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))  # no reflections
    fix = np.ones(u.shape[:-1])
    fix[..., -1] = d
    return (v * fix[..., None, :]) @ np.swapaxes(u, -1, -2)


def euler_angles(rotations: np.ndarray, order: str) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> angles (..., 3) in radians, R = R_a R_b R_c for
    order "abc" (intrinsic, the BVH reading of a CHANNELS line)."""
    i, j, k = ("XYZ".index(c) for c in order)
    r = rotations
    even = (j - i) % 3 == 1  # XYZ, YZX, ZXY
    s = 1.0 if even else -1.0
    middle = np.arcsin(np.clip(s * r[..., i, k], -1.0, 1.0))
    first = np.arctan2(-s * r[..., j, k], r[..., k, k])
    last = np.arctan2(-s * r[..., i, j], r[..., i, i])
    # Gimbal lock (middle = +-90 deg): first and last turn about the same axis; keep the
    # whole turn in `first` (from the rows that stay well defined) and set `last` = 0.
    locked = np.abs(r[..., i, k]) > 1 - 1e-9
    first_locked = np.arctan2(s * r[..., k, j], r[..., j, j])
    first = np.where(locked, first_locked, first)
    last = np.where(locked, 0.0, last)
    return np.stack([first, middle, last], axis=-1)


# --- skeleton analysis --------------------------------------------------------------

def joint_children(parents: tuple[int, ...]) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    return children


def _frame_children(skeleton: Skeleton, kids: list[int]) -> tuple[int, int, int]:
    """(left, right, centre) children of a joint with several (pelvis, thorax)."""
    left = [c for c in kids if c in skeleton.joints_left]
    right = [c for c in kids if c in skeleton.joints_right]
    centre = [c for c in kids if c not in skeleton.joints_left and c not in skeleton.joints_right]
    if len(left) != 1 or len(right) != 1 or len(centre) != 1:
        raise RieError(f"skeleton {skeleton.name}: a joint with several children needs one left, one right "
                       "and one central child for BVH export")
    return left[0], right[0], centre[0]


def _rest_direction(skeleton: Skeleton, joint: int, child: int) -> np.ndarray:
    """T-pose direction of the bone joint -> child (internal axes)."""
    name = skeleton.joint_names[child] if skeleton.joint_names else ""
    if any(part in name for part in ("elbow", "wrist")):
        return LEFT if child in skeleton.joints_left else -LEFT  # arms out sideways
    if any(part in name for part in ("knee", "foot", "ankle")):
        return -UP  # legs straight down
    return UP  # spine, neck, head


def _bend_direction(rest: np.ndarray) -> np.ndarray:
    """Where the next bone points (perpendicular part) in the rest pose: knees bend
    backward, elbows forward, the spine's next frame turns with it (left axis)."""
    if abs(rest[1]) > 0.5:  # vertical bones: legs and spine
        return -FORWARD if rest[1] < 0 else LEFT
    return FORWARD


def _euler_order(rest: np.ndarray | None) -> str:
    """Middle axis = the bone's axis (twist stays small), or forward for body frames."""
    if rest is None:
        return "YZX"
    middle = "XYZ"[int(np.argmax(np.abs(rest)))]
    return {"X": "ZXY", "Y": "XYZ", "Z": "YZX"}[middle]


def bone_lengths(positions: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Median length of each joint's bone to its parent (J,), left and right made equal."""
    parents = np.array(skeleton.parents)
    lengths = np.zeros(skeleton.num_joints)
    idx = np.flatnonzero(parents >= 0)
    lengths[idx] = np.median(np.linalg.norm(positions[:, idx] - positions[:, parents[idx]], axis=-1), axis=0)
    perm = skeleton.flip_permutation()
    return (lengths + lengths[perm]) / 2


# --- poses -> motion ----------------------------------------------------------------

def to_internal(poses: np.ndarray, space: str) -> np.ndarray:
    """(T, J, 3) poses in camera or world axes -> internal axes (x left, y up, z forward)."""
    if space not in SPACES:
        raise RieError(f"unknown pose space '{space}' (known: {', '.join(SPACES)})")
    rotation = TO_INTERNAL["world" if space in ("world", "floor") else "camera"]
    return np.asarray(poses, dtype=np.float64) @ rotation.T


def poses_to_motion(poses: np.ndarray, skeleton: Skeleton, *, space: str = "camera",
                    trajectory: np.ndarray | None = None, root_relative: bool = True,
                    helper_joints: bool = True) -> Motion:
    """Joint positions (T, J, 3), metres, -> a BVH skeleton and per-frame rotations.

    `space` names the axes of `poses` (and of `trajectory`, the camera-space root per
    frame (T, 3), added when given). The root moves with world poses, with a
    trajectory, or with poses that are not `root_relative`; else it stays fixed (a
    root-relative prediction's small root wobble is not motion). See the module
    docstring for the rest.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.num_joints, 3):
        raise RieError(f"BVH export needs poses of shape (frames, {skeleton.num_joints}, 3), got {poses.shape}")
    if len(poses) == 0 or not np.isfinite(poses).all():
        raise RieError("BVH export needs at least one frame of finite joint positions")
    if trajectory is not None:
        trajectory = np.asarray(trajectory, dtype=np.float64).reshape(len(poses), 3)
        poses = poses + trajectory[:, None, :]
    points = to_internal(poses, space)  # (T, J, 3)
    lengths = bone_lengths(points, skeleton)
    kids = joint_children(skeleton.parents)
    num_frames, num_joints = points.shape[:2]

    offsets = np.zeros((num_joints, 3))
    rotations = np.tile(np.eye(3), (num_frames, num_joints, 1, 1))  # local, (T, J, 3, 3)
    frames = np.tile(np.eye(3), (num_frames, num_joints, 1, 1))  # global orientation per joint
    orders: list[str] = ["YZX"] * num_joints
    end_sites: dict[int, np.ndarray] = {}
    body_frames = _body_frames(points, skeleton, kids, lengths, offsets)
    # child of a pelvis/thorax -> local rotation (T, 3, 3) of its helper joint, and that joint's global frame
    helper_turns = ({c: _helper_rotation(body_frames[j], points, j, c, offsets[c])
                     for j in body_frames for c in kids[j]} if helper_joints else {})
    helper_frames = {c: body_frames[skeleton.parents[c]] @ turn for c, turn in helper_turns.items()}

    for j in range(num_joints):  # parents come before children in every built-in skeleton
        parent = skeleton.parents[j]
        parent_frame = (helper_frames[j] if j in helper_frames else frames[:, parent] if parent >= 0
                        else np.tile(np.eye(3), (num_frames, 1, 1)))
        if len(kids[j]) > 1:
            frames[:, j] = body_frames[j]
        elif len(kids[j]) == 1:
            child = kids[j][0]
            rest = _rest_direction(skeleton, j, child)
            offsets[child] = rest * lengths[child]
            orders[j] = _euler_order(rest)
            frames[:, j] = parent_frame @ _bone_rotation(points, j, child, kids, body_frames, parent_frame, rest)
        else:
            frames[:, j] = parent_frame
            end_sites[j] = _end_site(skeleton, j, offsets[j], lengths[j])
            orders[j] = _euler_order(offsets[j])
        # local = parent^T global: (T, 3, 3)
        rotations[:, j] = np.swapaxes(parent_frame, -1, -2) @ frames[:, j]

    names = BVH_NAMES.get(skeleton.name) or tuple(skeleton.joint_names) or tuple(f"joint{j}" for j in range(num_joints))
    motion = Motion(names=tuple(names), parents=tuple(skeleton.parents), offsets=offsets, end_sites=end_sites,
                    orders=tuple(orders), root_positions=_root_positions(points, space, moving=trajectory is not None or not root_relative),
                    rotations=rotations)
    return _with_helper_joints(motion, helper_turns) if helper_joints else motion


def _body_frames(points: np.ndarray, skeleton: Skeleton, kids: list[list[int]], lengths: np.ndarray,
                 offsets: np.ndarray) -> dict[int, np.ndarray]:
    """Global orientation (T, 3, 3) of each joint with several children (pelvis, thorax),
    fitted to its bones; sets those bones' rest offsets in `offsets` on the way."""
    frames = {}
    for j in (j for j in range(len(kids)) if len(kids[j]) > 1):
        frame = body_frame(points[:, j], *(points[:, c] for c in _frame_children(skeleton, kids[j])))
        _set_frame_offsets(offsets, frame, points, j, kids[j], skeleton, lengths)
        frames[j] = best_rotation(offsets[kids[j]], points[:, kids[j]] - points[:, j:j + 1])
    return frames


def _helper_rotation(frame: np.ndarray, points: np.ndarray, joint: int, child: int, rest: np.ndarray) -> np.ndarray:
    """Local rotation (T, 3, 3) of the helper joint between a body frame and one of its
    children: the smallest turn, in the body frame, from the child's rest offset to the
    bone as it is in the frame. Identity where the body keeps its rest arrangement."""
    bone = _normalize(np.einsum("tji,tj->ti", frame, points[:, child] - points[:, joint]))  # (T, 3), frame axes
    rest = _normalize(rest)
    fallback = _normalize(np.cross(rest, FORWARD if abs(rest[2]) < 0.9 else UP))
    return smallest_rotation(rest, bone, fallback)


def _with_helper_joints(motion: Motion, helper_turns: dict[int, np.ndarray]) -> Motion:
    """`motion` with a zero-offset helper joint between each body frame and each of its
    children: joint J + k carries child c_k (in index order, so the depth-first file order
    keeps the skeleton's joints in their own order, each helper just before its child)."""
    children = sorted(helper_turns)
    parents = list(motion.parents)
    names, orders = list(motion.names), list(motion.orders)
    extra_rotations = []
    for k, c in enumerate(children):
        body = motion.parents[c]
        parents.append(body)
        parents[c] = len(motion.names) + k
        names.append(HELPER_NAMES.get(motion.names[c], f"{motion.names[c]}Root"))
        orders.append(_euler_order(_normalize(motion.offsets[c])))
        extra_rotations.append(helper_turns[c])  # (T, 3, 3), local to the body frame
    # (The children's own local rotations were taken relative to their helpers already.)
    return Motion(names=tuple(names), parents=tuple(parents),
                  offsets=np.concatenate([motion.offsets, np.zeros((len(children), 3))]),
                  end_sites=motion.end_sites, orders=tuple(orders), root_positions=motion.root_positions,
                  rotations=np.concatenate([motion.rotations, np.stack(extra_rotations, axis=1)], axis=1))


def _set_frame_offsets(offsets: np.ndarray, frame: np.ndarray, points: np.ndarray, joint: int, kids: list[int],
                       skeleton: Skeleton, lengths: np.ndarray) -> None:
    """Rest offsets of a body frame's children: the median of each child's direction
    in the frame, mirrored left/right equal, scaled to the median bone length."""
    local = np.einsum("tij,tki->tkj", frame, points[:, kids] - points[:, joint:joint + 1])  # (T, K, 3)
    median = {c: np.median(local[:, n], axis=0) for n, c in enumerate(kids)}
    mirror = np.array([-1.0, 1.0, 1.0])
    left, right, centre = _frame_children(skeleton, kids)
    side = (median[left] + mirror * median[right]) / 2
    directions = {left: side, right: mirror * side, centre: median[centre] * np.array([0.0, 1.0, 1.0])}
    for c, d in directions.items():
        offsets[c] = _normalize(d) * lengths[c]


def _bone_rotation(points, joint, child, kids, body_frames, parent_frame, rest) -> np.ndarray:
    """Local rotation (T, 3, 3) of a one-child joint: smallest rotation rest -> bone,
    in the parent's frame, then a twist that aligns the next bone's bend."""
    to_local = np.swapaxes(parent_frame, -1, -2)  # (T, 3, 3)
    bone = _normalize(np.einsum("tij,tj->ti", to_local, points[:, child] - points[:, joint]))  # (T, 3)
    bend = _bend_direction(rest)
    swing = smallest_rotation(rest, bone, bend)  # (T, 3, 3)
    grandkids = kids[child]
    if len(grandkids) == 1:
        reference = points[:, grandkids[0]] - points[:, child]  # next bone
    elif len(grandkids) > 1:
        reference = body_frames[child][:, :, 0]  # the next body frame's left axis
    else:
        return swing
    reference = _normalize(np.einsum("tij,tj->ti", to_local, reference))
    untwisted = swing @ bend  # (T, 3): where the rest bend goes with no twist, perpendicular to bone
    target = reference - np.sum(reference * bone, -1, keepdims=True) * bone  # perpendicular part
    # Nearly straight limb: the bend plane is noise, lean on the untwisted direction.
    target = target + TWIST_FALLBACK * untwisted
    angle = np.arctan2(np.sum(np.cross(untwisted, target) * bone, -1), np.sum(untwisted * target, -1))
    return _axis_angle(bone, angle) @ swing


def _end_site(skeleton: Skeleton, joint: int, offset: np.ndarray, length: float) -> np.ndarray:
    """End site of a leaf: feet point forward (toes), others continue their bone."""
    name = skeleton.joint_names[joint] if skeleton.joint_names else ""
    if "foot" in name or "ankle" in name:
        return FORWARD * END_SITE_LENGTH * length
    return _normalize(offset) * END_SITE_LENGTH * length


def _root_positions(points: np.ndarray, space: str, moving: bool) -> np.ndarray:
    """(T, 3) root positions: world positions as they are; camera-space ones with the
    lowest joint of the median frame on the floor, starting above the origin, and
    fixed unless `moving`."""
    root = points[:, 0].copy()
    if space in ("world", "floor"):
        return root
    if moving:
        root[:, [0, 2]] -= root[0, [0, 2]]
        root[:, 1] -= np.median(points[..., 1].min(axis=1))
    else:  # root-relative poses: a fixed root
        root[:] = 0.0
        root[:, 1] = -np.median(points[..., 1].min(axis=1) - points[:, 0, 1])
    return root
