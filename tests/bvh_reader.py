"""An independent BVH reader for the tests: parse the text, compose the rotations.

Written from the BVH format description only (no code shared with rie_cli.bvh): each
joint's transform is translate(OFFSET [+ position channels]) x R(ch1) R(ch2) R(ch3)
in the order the CHANNELS line lists them; a joint's world transform is its parent's
times its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str]
    end_site: np.ndarray | None = None


@dataclass
class BvhFile:
    joints: list[BvhJoint] = field(default_factory=list)
    frame_time: float = 0.0
    motion: np.ndarray | None = None  # (frames, channels)

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]


def parse_bvh(path: Path) -> BvhFile:
    tokens = Path(path).read_text().split()
    bvh = BvhFile()
    stack: list[int] = []
    pos = 0
    pending: BvhJoint | None = None
    in_end_site = False
    assert tokens[0] == "HIERARCHY"
    pos = 1
    while tokens[pos] != "MOTION":
        tok = tokens[pos]
        if tok in ("ROOT", "JOINT"):
            pending = BvhJoint(tokens[pos + 1], stack[-1] if stack else -1, np.zeros(3), [])
            pos += 2
        elif tok == "End":
            assert tokens[pos + 1] == "Site"
            in_end_site = True
            pos += 2
        elif tok == "{":
            if pending is not None:
                bvh.joints.append(pending)
                stack.append(len(bvh.joints) - 1)
                pending = None
            elif in_end_site:
                stack.append(-2)
            pos += 1
        elif tok == "}":
            top = stack.pop()
            if top == -2:
                in_end_site = False
            pos += 1
        elif tok == "OFFSET":
            value = np.array([float(t) for t in tokens[pos + 1:pos + 4]])
            if in_end_site:
                bvh.joints[stack[-2]].end_site = value
            else:
                bvh.joints[stack[-1]].offset = value
            pos += 4
        elif tok == "CHANNELS":
            n = int(tokens[pos + 1])
            bvh.joints[stack[-1]].channels = tokens[pos + 2:pos + 2 + n]
            pos += 2 + n
        else:
            raise ValueError(f"unexpected token {tok!r}")
    assert tokens[pos + 1] == "Frames:" and tokens[pos + 3] == "Frame" and tokens[pos + 4] == "Time:"
    frames = int(tokens[pos + 2])
    bvh.frame_time = float(tokens[pos + 5])
    values = np.array([float(t) for t in tokens[pos + 6:]])
    bvh.motion = values.reshape(frames, -1)
    return bvh


def _rot(axis: str, degrees: np.ndarray) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    if axis == "X":
        m = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "Y":
        m = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        m = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.moveaxis(np.array(m), (0, 1), (-2, -1))  # (T, 3, 3)


def forward_kinematics(bvh: BvhFile) -> np.ndarray:
    """World positions (frames, joints, 3) of every joint, in the file's joint order."""
    frames = len(bvh.motion)
    positions = np.zeros((frames, len(bvh.joints), 3))
    rotations = np.zeros((frames, len(bvh.joints), 3, 3))
    column = 0
    for j, joint in enumerate(bvh.joints):
        local_pos = np.tile(joint.offset, (frames, 1))
        local_rot = np.tile(np.eye(3), (frames, 1, 1))
        for channel in joint.channels:
            value = bvh.motion[:, column]
            column += 1
            if channel.endswith("position"):
                local_pos = local_pos + np.outer(value, np.eye(3)["XYZ".index(channel[0])])
            else:
                local_rot = local_rot @ _rot(channel[0], value)
        if joint.parent < 0:
            positions[:, j], rotations[:, j] = local_pos, local_rot
        else:
            parent_rot = rotations[:, joint.parent]
            positions[:, j] = positions[:, joint.parent] + np.einsum("tij,tj->ti", parent_rot, local_pos)
            rotations[:, j] = parent_rot @ local_rot
    assert column == bvh.motion.shape[1]
    return positions
