"""BVH motion files, for Blender, Maya, MotionBuilder, Unity and game engines: writing them,
and `rie export bvh`.

    motion = poses_to_motion(poses, H36M_17, space="camera")      # (T, J, 3) metres -> rotations
    write_bvh(Path("clip.bvh"), motion, fps=50, units="cm", up="y")

How poses become a skeleton and rotations (hierarchy, helper joints, axes, rest pose,
Euler orders, root position) is `rie_cli.bvh_motion` (its docstring lists the
conventions; docs/export.md, "BVH"); `poses_to_motion` and `Motion` are re-exported
here. This module writes the text: the HIERARCHY in depth-first order, then one line
of channels per frame in the chosen units and up axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rie_cli.atomic import atomic_path
from rie_cli.bvh_motion import Motion, euler_angles, joint_children, poses_to_motion
from rie_cli.errors import RieError

__all__ = ["Motion", "poses_to_motion", "write_bvh", "bvh_text", "check_bvh_output", "export_bvh"]

UNITS = {"m": 1.0, "cm": 100.0}
UP_AXES = ("y", "z")

# Internal axes -> the written file's axes, and what each internal axis letter becomes.
TO_OUTPUT = {"y": np.eye(3), "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])}
AXIS_LETTERS = {"y": "XYZ", "z": "XZY"}


# --- writing ------------------------------------------------------------------------

def _depth_first(parents: tuple[int, ...]) -> list[int]:
    kids = joint_children(parents)
    order: list[int] = []
    stack = [j for j, p in enumerate(parents) if p < 0][::-1]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(kids[j]))
    return order


def check_bvh_output(out: Path, units: str = "m", up: str = "y") -> None:
    """The checks of a BVH output that need no poses, so that commands make them first."""
    if Path(out).suffix.lower() != ".bvh":
        raise RieError(f"cannot write '{Path(out).name}': a BVH file must end in .bvh")
    if units not in UNITS:
        raise RieError(f"unknown units '{units}' (choose {' or '.join(UNITS)})")
    if up not in UP_AXES:
        raise RieError(f"unknown up axis '{up}' (choose {' or '.join(UP_AXES)})")


def bvh_text(motion: Motion, *, fps: float, units: str = "m", up: str = "y") -> str:
    """The BVH file for `motion`: hierarchy, then one line of channels per frame."""
    check_bvh_output(Path("motion.bvh"), units, up)
    if not fps > 0:
        raise RieError(f"the frame rate must be positive, got {fps}")
    scale, change, letters = UNITS[units], TO_OUTPUT[up], AXIS_LETTERS[up]
    orders = ["".join(letters["XYZ".index(c)] for c in order) for order in motion.orders]
    order = _depth_first(motion.parents)
    kids = joint_children(motion.parents)
    lines = ["HIERARCHY"]
    _hierarchy(lines, motion, order[0], kids, orders, change * scale, 0)

    columns = [motion.root_positions @ change.T * scale]  # (T, 3)
    rotations = change @ motion.rotations @ change.T  # (T, J, 3, 3) in the written axes
    for j in order:
        angles = np.unwrap(euler_angles(rotations[:, j], orders[j]), axis=0)  # (T, 3)
        columns.append(np.degrees(angles))
    values = np.concatenate(columns, axis=1)  # (T, 6 + 3 (J - 1))
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def _hierarchy(lines: list[str], motion: Motion, j: int, kids, orders, change: np.ndarray, depth: int) -> None:
    indent = "\t" * depth
    root = motion.parents[j] < 0
    lines.append(f"{indent}{'ROOT' if root else 'JOINT'} {motion.names[j]}")
    lines.append(f"{indent}{{")
    lines.append(f"{indent}\tOFFSET {_xyz(change @ motion.offsets[j])}")
    rotation = " ".join(f"{axis}rotation" for axis in orders[j])
    channels = f"6 Xposition Yposition Zposition {rotation}" if root else f"3 {rotation}"
    lines.append(f"{indent}\tCHANNELS {channels}")
    for child in kids[j]:
        _hierarchy(lines, motion, child, kids, orders, change, depth + 1)
    if j in motion.end_sites:
        lines += [f"{indent}\tEnd Site", f"{indent}\t{{",
                  f"{indent}\t\tOFFSET {_xyz(change @ motion.end_sites[j])}", f"{indent}\t}}"]
    lines.append(f"{indent}}}")


def _xyz(v: np.ndarray) -> str:
    return " ".join(f"{x + 0.0:.6f}" for x in v)


def write_bvh(path: Path, motion: Motion, *, fps: float, units: str = "m", up: str = "y") -> Path:
    """Write `motion` as a BVH file at `path`, atomically."""
    text = bvh_text(motion, fps=fps, units=units, up=up)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return path


# --- rie export bvh -----------------------------------------------------------------

@dataclass
class BvhExport:
    """What `export_bvh` wrote."""

    path: Path
    label: str
    frames: int
    fps: float
    joints: int
    root: str  # "moving" or "fixed"
    smoothing: str
    notes: list[str]
    space: str = "camera"  # of the poses converted: camera(-relative), world or floor (levelled)
    contacts: int | None = None  # with foot_lock: frames with a planted foot


def export_bvh(predictions: Path, out: Path, *, subject: str | None = None, action: str | None = None,
               camera: int | None = None, units: str = "m", up: str = "y", fps: float | None = None,
               smoothing=None, helper_joints: bool = True, level: bool = True,
               foot_lock: bool = False) -> BvhExport:
    """`rie export bvh`: one sequence of a predictions .npz as a BVH file (the command
    has checked with `check_writable` that it may write `out`).

    `fps` overrides the file's frame rate (a file without one gets 50 and a note);
    `smoothing` (a `rie_cli.smoothing.Smoothing`) filters the joint positions and the
    trajectory before conversion. Poses placed at a root (a trajectory) in camera axes
    are stood upright on the floor their feet show (`level`; `rie_cli.trajectory.settle_motion`),
    and `foot_lock` keeps their planted feet still.
    """
    from rie_cli.predictions import read_sequence
    from rie_cli.smoothing import Smoothing

    out = Path(out)
    check_bvh_output(out, units, up)
    sequence = read_sequence(predictions, subject, action, camera)
    notes = []
    if fps is None:
        fps = sequence.fps
        if fps is None:
            fps = 50.0
            notes.append("the file records no frame rate: wrote 50 fps (set it with --fps)")
    smoothing = smoothing or Smoothing()
    poses = smoothing.apply(sequence.poses, fps)
    trajectory = sequence.trajectory
    if trajectory is not None:
        trajectory = smoothing.apply(trajectory, fps)
    space, root_relative, contacts = sequence.space, sequence.root_relative, None
    if trajectory is not None:  # root-relative camera-space poses + their root: absolute ones
        poses, trajectory, space, root_relative = poses - poses[:, :1] + trajectory[:, None], None, "camera", False
    if not root_relative:
        from rie_cli.trajectory import settle_motion

        poses, space, contacts = settle_motion(poses, space, sequence.skeleton, fps, level=level,
                                               foot_lock=foot_lock)
    elif foot_lock:
        raise RieError(f"{sequence.label} holds root-relative poses without a trajectory: --foot-lock needs poses "
                       "placed in the world (rie predict / rie export predictions with --trajectory)")
    motion = poses_to_motion(poses, sequence.skeleton, space=space, root_relative=root_relative,
                             helper_joints=helper_joints)
    write_bvh(out, motion, fps=fps, units=units, up=up)
    moving = np.ptp(motion.root_positions, axis=0).max() > 1e-9
    return BvhExport(path=out, label=sequence.label, frames=motion.num_frames, fps=float(fps),
                     joints=len(motion.names), root="moving" if moving else "fixed",
                     smoothing=smoothing.describe(fps), notes=notes, space=space,
                     contacts=None if contacts is None else int(contacts.any(axis=1).sum()))
