"""BVH skeletons -> the 17 Human3.6M joints: the documented joint maps, units and up axis.

The Human3.6M-17 joints are not all joints of a mocap skeleton: the pelvis, spine,
thorax, nose and head sit differently in each. So every skeleton convention has one
written-down map (`JOINT_MAPS`, the table in docs/hdf5-format.md "From BVH mocap"),
and a file is mapped by the first convention whose joint names it has, never by
guessing joint by joint. A point of the map is
- `At(joint)`: that joint's position;
- `Between(a, b, w)`: the point a + w (b - a) (the pelvis: the middle of the hips);
- `Fixed(joint, offset)`: a point fixed in the joint's frame, `offset` in metres along
  the joint's local axes (the nose and the top of the head, which no skeleton has).

The Bandai Namco map reproduces the shared `bnmocap` data (built from the same
capture) to 0.01 mm; its fixed offsets were measured from it. The CMU maps carry the
same head geometry over into CMU's local axes (x left, y up, z forward at rest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rie_cli.skeleton import H36M_17


@dataclass(frozen=True)
class At:
    joint: str


@dataclass(frozen=True)
class Between:
    a: str
    b: str
    weight: float = 0.5


@dataclass(frozen=True)
class Fixed:
    joint: str
    offset: tuple[float, float, float]  # metres, in the joint's local axes


Point = At | Between | Fixed


@dataclass(frozen=True)
class JointMap:
    name: str
    about: str
    points: tuple[Point, ...]  # one per Human3.6M-17 joint, in H36M_17's order

    @property
    def required(self) -> tuple[str, ...]:
        """Every joint name the map reads, in first-use order."""
        names: list[str] = []
        for p in self.points:
            for n in ((p.joint,) if isinstance(p, (At, Fixed)) else (p.a, p.b)):
                if n not in names:
                    names.append(n)
        return tuple(names)


def _limbs(hip, knee, ankle, shoulder, elbow, wrist) -> dict[int, Point]:
    """Hips, knees, ankles, shoulders, elbows and wrists: joints of every skeleton.
    Arguments are (right, left) name pairs."""
    return {1: At(hip[0]), 2: At(knee[0]), 3: At(ankle[0]), 4: At(hip[1]), 5: At(knee[1]), 6: At(ankle[1]),
            11: At(shoulder[1]), 12: At(elbow[1]), 13: At(wrist[1]),
            14: At(shoulder[0]), 15: At(elbow[0]), 16: At(wrist[0])}


def _joint_map(name: str, about: str, limbs: dict[int, Point], centre: dict[int, Point]) -> JointMap:
    points = limbs | centre
    return JointMap(name, about, tuple(points[j] for j in range(H36M_17.num_joints)))


# The head of the Bandai Namco skeleton as measured (the nose 4.9 cm above the head
# joint and 5.7 cm in front of it, the top 13.1 cm above), in CMU's axes (y up, z forward).
_CMU_NOSE = (0.0, 0.0492, 0.0567)
# CMU's upper neck starts below the shoulder line; 30 % of the way up to the head
# joint puts the thorax about 5 cm above it, as in the bnmocap data.
_CMU_THORAX = 0.3
_CMU_HEAD_TOP = (0.0, 0.1314, 0.0068)

JOINT_MAPS: tuple[JointMap, ...] = (
    _joint_map(
        "bandai-namco", "Bandai Namco Research Motion Dataset (joint_Root, Hips, UpperLeg_L, ...)",
        _limbs(("UpperLeg_R", "UpperLeg_L"), ("LowerLeg_R", "LowerLeg_L"), ("Foot_R", "Foot_L"),
               ("UpperArm_R", "UpperArm_L"), ("LowerArm_R", "LowerArm_L"), ("Hand_R", "Hand_L")),
        {0: Between("UpperLeg_L", "UpperLeg_R"),
         # Bones run along local x; the offsets are those of the shared bnmocap data.
         7: Fixed("Spine", (0.03670, -0.00166, 0.0)),
         8: Fixed("Neck", (0.02129, 0.0, 0.0)),
         9: Fixed("Head", (0.04920, 0.05666, 0.00375)),
         10: Fixed("Head", (0.13137, 0.00679, 0.00199))}),
    _joint_map(
        "cmu-motionbuilder", "CMU mocap, MotionBuilder-friendly BVH (LHipJoint, LeftUpLeg, LeftLeg, ...)",
        _limbs(("RightUpLeg", "LeftUpLeg"), ("RightLeg", "LeftLeg"), ("RightFoot", "LeftFoot"),
               ("RightArm", "LeftArm"), ("RightForeArm", "LeftForeArm"), ("RightHand", "LeftHand")),
        {0: Between("LeftUpLeg", "RightUpLeg"), 7: At("Spine"), 8: Between("Neck1", "Head", _CMU_THORAX),
         9: Fixed("Head", _CMU_NOSE), 10: Fixed("Head", _CMU_HEAD_TOP)}),
    _joint_map(
        "cmu-3dsmax", "CMU mocap, 3ds Max-friendly BVH (LHipJoint, LeftHip, LeftKnee, LeftAnkle, ...)",
        _limbs(("RightHip", "LeftHip"), ("RightKnee", "LeftKnee"), ("RightAnkle", "LeftAnkle"),
               ("RightShoulder", "LeftShoulder"), ("RightElbow", "LeftElbow"), ("RightWrist", "LeftWrist")),
        {0: Between("LeftHip", "RightHip"), 7: At("Chest"), 8: Between("Neck", "Head", _CMU_THORAX),
         9: Fixed("Head", _CMU_NOSE), 10: Fixed("Head", _CMU_HEAD_TOP)}),
    _joint_map(
        "mixamo", "Mixamo (mixamorig:Hips, Spine1, Spine2, LeftUpLeg, ...; the prefix is ignored)",
        _limbs(("RightUpLeg", "LeftUpLeg"), ("RightLeg", "LeftLeg"), ("RightFoot", "LeftFoot"),
               ("RightArm", "LeftArm"), ("RightForeArm", "LeftForeArm"), ("RightHand", "LeftHand")),
        {0: Between("LeftUpLeg", "RightUpLeg"), 7: At("Spine1"), 8: At("Neck"),
         9: Fixed("Head", _CMU_NOSE), 10: At("HeadTop_End")}),
    _joint_map(
        "rie", "BVH written by rie (rie export bvh, rie predict --bvh): the Human3.6M joints themselves",
        _limbs(("RightUpLeg", "LeftUpLeg"), ("RightLeg", "LeftLeg"), ("RightFoot", "LeftFoot"),
               ("RightArm", "LeftArm"), ("RightForeArm", "LeftForeArm"), ("RightHand", "LeftHand")),
        {0: At("Hips"), 7: At("Spine"), 8: At("Chest"), 9: At("Neck"), 10: At("Head")}),
)

# Lengths in metres of one unit of the file, tried in this order by `detect_units`.
# `cmu`: the CMU database's ASF/BVH unit, 1/0.45 inch.
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254, "cmu": 0.0254 / 0.45}
# Hip to knee plus knee to ankle, in metres, of a body the units are checked against:
# these ranges tell the units above apart (no two overlap once scaled).
LEG_LENGTH_RANGE = (0.55, 1.2)
UP_AXES = ("y", "z")
# File axes with the given up axis -> the project's world axes (z up; docs/method.md §4).
# y up: (x, y, z) -> (x, -z, y), the inverse of what rie_cli/bvh.py writes for world poses.
TO_WORLD = {"y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), "z": np.eye(3)}


def plain_name(name: str) -> str:
    """A joint name without a namespace prefix ('mixamorig:Hips' -> 'Hips')."""
    return name.rsplit(":", 1)[-1]


def match_joint_map(names: tuple[str, ...]) -> tuple[JointMap | None, str]:
    """The first joint map whose names the skeleton has, or None and what is missing
    (for the closest map: the one missing the fewest names)."""
    present = {plain_name(n) for n in names}
    best: tuple[int, JointMap] | None = None
    for joint_map in JOINT_MAPS:
        missing = [n for n in joint_map.required if n not in present]
        if not missing:
            return joint_map, ""
        if best is None or len(missing) < best[0]:
            best = (len(missing), joint_map)
    closest = best[1]
    missing = [n for n in closest.required if n not in present]
    return None, f"no joint map fits (closest: {closest.name}, missing {', '.join(missing)})"


def map_points(joint_map: JointMap, names: tuple[str, ...], positions: np.ndarray, frames: np.ndarray,
               metres_per_unit: float) -> np.ndarray:
    """(T, 17, 3) Human3.6M joints in metres (file axes) from world joint positions
    (T, J, 3, file units) and world joint rotations (T, J, 3, 3) of the BVH skeleton."""
    index = {plain_name(n): i for i, n in enumerate(names)}
    out = []
    for point in joint_map.points:
        if isinstance(point, At):
            out.append(positions[:, index[point.joint]] * metres_per_unit)
        elif isinstance(point, Between):
            a, b = positions[:, index[point.a]], positions[:, index[point.b]]
            out.append((a + point.weight * (b - a)) * metres_per_unit)
        else:
            j = index[point.joint]
            out.append(positions[:, j] * metres_per_unit + frames[:, j] @ np.asarray(point.offset))
    return np.stack(out, axis=1)


def leg_length(joint_map: JointMap, names: tuple[str, ...], offsets: np.ndarray) -> float:
    """Mean of the left and right hip-to-ankle bone lengths, in file units, from the
    skeleton's OFFSETs (the same in every frame)."""
    index = {plain_name(n): i for i, n in enumerate(names)}
    lengths = []
    for knee, ankle in ((2, 3), (5, 6)):  # the knee's and the ankle's offsets are the two leg bones
        for point in (joint_map.points[knee], joint_map.points[ankle]):
            lengths.append(float(np.linalg.norm(offsets[index[point.joint]])))
    return sum(lengths) / 2


def detect_units(length: float) -> str | None:
    """The unit in which a leg of `length` file units is an adult's (LEG_LENGTH_RANGE), or None."""
    low, high = LEG_LENGTH_RANGE
    for unit, metres in UNITS.items():
        if low <= length * metres <= high:
            return unit
    return None


def detect_up(points: np.ndarray) -> str | None:
    """'y' or 'z': the file axis along which the head is above the ankles (mean over
    the frames of (T, 17, 3) mapped joints), or None when that is no positive y or z."""
    direction = (points[:, 10] - (points[:, 3] + points[:, 6]) / 2).mean(axis=0)
    axis = int(np.argmax(np.abs(direction)))
    if direction[axis] <= 0 or axis == 0:
        return None
    return "xyz"[axis]
