"""Skeletons: joint parents, left/right symmetry and the RIE body-part grouping.

One `Skeleton` object serves flip augmentation (left/right swap), plotting (parents,
colours by side) and the model (which joints feed which part encoder). The part
names are the authors' module suffixes (their checkpoints use them); note that their
"L"/"R" names follow the opposite convention from VideoPose3D's left/right joint
lists (docs/method.md §2.2), which is why `BodyPart.name` is kept apart from any notion
of side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rie_cli.errors import RieError


@dataclass(frozen=True)
class BodyPart:
    name: str  # the authors' module suffix: Torso, LArm, RArm, LLeg, RLeg
    joints: tuple[int, ...]  # joint indices, ascending


@dataclass(frozen=True)
class Skeleton:
    name: str
    parents: tuple[int, ...]
    joints_left: tuple[int, ...]
    joints_right: tuple[int, ...]
    # Parts in the authors' order (Torso, LArm, RArm, LLeg, RLeg): this order fixes the
    # module order in checkpoints and the concatenation order in the fusion module.
    parts: tuple[BodyPart, ...]
    joint_names: tuple[str, ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    def flip_permutation(self) -> np.ndarray:
        """Index array that swaps every left joint with its right counterpart."""
        perm = np.arange(self.num_joints)
        perm[list(self.joints_left)] = self.joints_right
        perm[list(self.joints_right)] = self.joints_left
        return perm

    def feet(self) -> tuple[int, ...]:
        """The ends of the legs: joints of the leg parts (LLeg, RLeg) that have no children.

        From the parts, not from the joint tree: HumanEva-15's head is a leaf as close to
        the root as an ankle (head -> thorax -> pelvis)."""
        children = {p for p in self.parents if p >= 0}
        legs = {j for part in self.parts if part.name.endswith("Leg") for j in part.joints}
        return tuple(j for j in range(self.num_joints) if j in legs and j not in children)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "parents": list(self.parents),
            "joints_left": list(self.joints_left),
            "joints_right": list(self.joints_right),
            "parts": {p.name: list(p.joints) for p in self.parts},
            "joint_names": list(self.joint_names),
        }


H36M_17 = Skeleton(
    name="h36m17",
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    joints_left=(4, 5, 6, 11, 12, 13),
    joints_right=(1, 2, 3, 14, 15, 16),
    parts=(
        BodyPart("Torso", (0, 7, 8, 9, 10)),
        BodyPart("LArm", (14, 15, 16)),
        BodyPart("RArm", (11, 12, 13)),
        BodyPart("LLeg", (1, 2, 3)),
        BodyPart("RLeg", (4, 5, 6)),
    ),
    joint_names=(
        "hip", "r_hip", "r_knee", "r_foot", "l_hip", "l_knee", "l_foot", "spine",
        "thorax", "neck_nose", "head", "l_shoulder", "l_elbow", "l_wrist",
        "r_shoulder", "r_elbow", "r_wrist",
    ),
)

# HumanEva-I, 15 joints. The authors released no grouping for it; this one follows
# docs/method.md §2.2 and keeps their naming convention ("L" parts hold the joints that
# VideoPose3D lists as right).
HUMANEVA_15 = Skeleton(
    name="humaneva15",
    parents=(-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1),
    joints_left=(2, 3, 4, 8, 9, 10),
    joints_right=(5, 6, 7, 11, 12, 13),
    parts=(
        BodyPart("Torso", (0, 1, 14)),
        BodyPart("LArm", (5, 6, 7)),
        BodyPart("RArm", (2, 3, 4)),
        BodyPart("LLeg", (11, 12, 13)),
        BodyPart("RLeg", (8, 9, 10)),
    ),
    joint_names=(
        "pelvis", "thorax", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder",
        "r_elbow", "r_wrist", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee",
        "r_ankle", "head",
    ),
)

SKELETONS = {s.name: s for s in (H36M_17, HUMANEVA_15)}

# Human3.6M's original 32-joint files keep these 17 joints (VideoPose3D's reduction).
H36M_32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)


def skeleton_for_joints(num_joints: int) -> Skeleton:
    """The built-in skeleton with this many joints (17: Human3.6M, 15: HumanEva-I)."""
    for skel in SKELETONS.values():
        if skel.num_joints == num_joints:
            return skel
    raise RieError(f"no built-in skeleton has {num_joints} joints (known: 17 Human3.6M, 15 HumanEva-I)")


def skeleton_from_dict(d: dict) -> Skeleton:
    """Rebuild a skeleton stored by `Skeleton.to_dict` (in HDF5 files and checkpoints)."""
    parts = tuple(BodyPart(name, tuple(int(j) for j in joints)) for name, joints in d["parts"].items())
    return Skeleton(
        name=str(d["name"]),
        parents=tuple(int(p) for p in d["parents"]),
        joints_left=tuple(int(j) for j in d["joints_left"]),
        joints_right=tuple(int(j) for j in d["joints_right"]),
        parts=parts,
        joint_names=tuple(str(n) for n in d.get("joint_names", ())),
    )
