"""A folder of BVH motion capture -> one `rie-poses` HDF5 file (`rie prepare-data bvh`).

Every `*.bvh` under the folder is one sequence: `DIR/SUBJECT/ACTION.bvh` (deeper
folders become part of the action's name), files directly in DIR belong to the
subject `subject` (default: the folder's own name). Each file is
1. mapped to the 17 Human3.6M joints by its skeleton's documented joint map
   (`bvh_joints.JOINT_MAPS`); files no map fits are refused, one line each;
2. converted to metres (units given, or told from the leg length) and to the
   project's world axes (z up; the file's up axis given or told from the motion);
3. resampled to `fps` (local rotations along the shortest arc, then forward
   kinematics, so bones keep their lengths);
4. placed: the root's mean ground position at the origin, the lowest point of the
   whole skeleton (toes included) over the clip at z = 0;
5. with cameras: projected through them as the ground-truth 2D (source `gt`).
Without cameras the file holds the 3D only (no 2D sources), for training with
virtual cameras. Layout and the joint-map table: docs/hdf5-format.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rie_cli.cameras import Camera, CameraSet, project_to_pixels, world_to_camera
from rie_cli.data import bvh_joints
from rie_cli.data.bvh_reader import (BvhClip, end_site_positions, forward_kinematics, local_transforms, read_bvh,
                                     resample)
from rie_cli.data.plan import (Plan, PrepareSummary, ProgressFn, cameras_entry, check_finite, check_output,
                               resolve_splits, write_plan)
from rie_cli.errors import RieError, choices
from rie_cli.skeleton import H36M_17

DATASET = "bvh"
DEFAULT_FPS = 50.0  # Human3.6M's rate, at which the published models learnt how fast people move
MIN_DEPTH = 0.1  # metres: nearer to a camera than this, or behind it, a joint has no ground-truth 2D


@dataclass
class _FilePlan:
    """What is decided about one file before anything is written."""

    path: Path
    label: str  # the path relative to the folder, for messages and the file's provenance
    subject: str
    action: str
    joint_map: bvh_joints.JointMap
    unit: str
    up: str
    fps: float  # the file's own rate


@dataclass(frozen=True)
class BvhOptions:
    """The choices of `rie prepare-data bvh` beyond the split (docs/hdf5-format.md)."""

    fps: float = DEFAULT_FPS  # the rate of the written file
    units: str = "auto"  # a key of bvh_joints.UNITS, or auto: told from the leg length
    up: str = "auto"  # the files' up axis, y or z, or auto: told from the motion
    subject: str | None = None  # the subject of files directly in the folder (default: its name)
    camera_subject: str | None = None  # whose extrinsics place the cameras (default: see _camera_rigs)
    skip_unmapped: bool = False  # convert the files that map, list the others as notes


def prepare_bvh(
    bvh_dir: str | Path,
    out: str | Path,
    options: BvhOptions = BvhOptions(),
    *,
    cameras: CameraSet | None = None,
    train_subjects: list[str] | None = None,
    test_subjects: list[str] | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> PrepareSummary:
    """Convert every BVH file under `bvh_dir` (module docstring) into the HDF5 file `out`."""
    out = check_output(out, force)
    _check_options(options)
    plans, refused = _plan_files(Path(bvh_dir), options)
    subjects = list(dict.fromkeys(p.subject for p in plans))
    if cameras is None and test_subjects is None:
        test_subjects = []  # 3D only: nothing in it can be evaluated on, every subject trains
    train, test = resolve_splits(DATASET, subjects, train_subjects, test_subjects)
    fps = options.fps
    rigs = _camera_rigs(cameras, options.camera_subject, subjects) if cameras is not None else None
    entry = (cameras_entry(CameraSet(cameras.name, fps, rigs, cameras.intrinsics_only), subjects) | {"fps": fps}
             if rigs is not None else {"fps": fps, "intrinsics": [], "extrinsics": {}})
    by_item = {(p.subject, p.action): p for p in plans}
    return write_plan(out, Plan(
        dataset=DATASET,
        skeleton=H36M_17,
        fps=fps,
        cameras_entry=entry,
        sources=["gt"] if rigs is not None else [],
        train=train,
        test=test,
        source_info={"kind": "bvh", "files": [p.label for p in plans],
                     "joint_maps": {p.label: p.joint_map.name for p in plans},
                     "units": {p.label: p.unit for p in plans}, "up": {p.label: p.up for p in plans},
                     "fps": {p.label: p.fps for p in plans}},
        items=list(by_item),
        load=lambda subject, action: _load(by_item[(subject, action)], fps, rigs and rigs[subject]),
        notes=_notes(plans, fps, refused, _describe_rigs(cameras, options.camera_subject, rigs)),
    ), progress)


def _plan_files(bvh_dir: Path, options: BvhOptions) -> tuple[list[_FilePlan], list[str]]:
    """Every file's plan, and a line for each file that cannot be converted; a RieError
    listing those lines unless `skip_unmapped` (and some file maps)."""
    files = _find_files(bvh_dir)
    plans, refused = [], []
    for path in files:
        label = path.relative_to(bvh_dir).as_posix()
        try:
            plans.append(_plan_file(path, label, _names(path, bvh_dir, options.subject), options))
        except _Unmapped as exc:
            refused.append(f"{label}: {exc}")
        except RieError as exc:  # unreadable: its message names the file
            refused.append(str(exc))
    if refused and (not options.skip_unmapped or not plans):
        raise RieError(f"cannot map {len(refused)} of {len(files)} BVH files to the Human3.6M joints "
                       "(joint maps: docs/hdf5-format.md):\n" + "\n".join(refused))
    return plans, refused


def _load(plan: _FilePlan, fps: float, cameras: tuple[Camera, ...] | None) -> tuple[np.ndarray, dict]:
    """One file as the writer wants it: (N, 17, 3) world metres, and {"gt": (C, N, 17, 2)} pixels with cameras."""
    world = convert_clip(read_bvh(plan.path), plan.joint_map, plan.unit, plan.up, fps)
    check_finite(world, plan.label)
    if cameras is None:
        return world.astype(np.float32), {}
    views = np.stack([_project(world, cam, index, plan.label) for index, cam in enumerate(cameras)])
    check_finite(views, f"{plan.label} (projected 2D)")
    return world.astype(np.float32), {"gt": views.astype(np.float32)}


def convert_clip(clip: BvhClip, joint_map: bvh_joints.JointMap, unit: str, up: str, fps: float) -> np.ndarray:
    """(N, 17, 3) world metres (z up) of one clip at `fps`, placed (module docstring)."""
    translations, rotations = local_transforms(clip)
    if fps != clip.fps:
        translations, rotations = resample(translations, rotations, clip.fps, fps)
    positions, frames = forward_kinematics(clip.parents, translations, rotations)
    metres = bvh_joints.UNITS[unit]
    to_world = bvh_joints.TO_WORLD[up]
    points = bvh_joints.map_points(joint_map, clip.names, positions, frames, metres) @ to_world.T
    skeleton = np.concatenate([positions, end_site_positions(clip, positions, frames)], axis=1) * metres
    lowest = (skeleton @ to_world.T)[..., 2].min()
    shift = np.array([*points[:, 0, :2].mean(axis=0), lowest])
    return points - shift


def _project(world: np.ndarray, camera: Camera, index: int, label: str) -> np.ndarray:
    """(N, 17, 2) pixels of `world` in `camera`; a joint behind the camera (or within
    MIN_DEPTH of it) has no image, and is refused rather than written as nonsense."""
    cam_space = world_to_camera(world, camera)
    depth = cam_space[..., 2].min(axis=1)  # (N,) the nearest joint per frame
    if depth.min() < MIN_DEPTH:
        frame = int(np.argmax(depth < MIN_DEPTH))
        raise RieError(f"{label}: at frame {frame} the body is {depth[frame]:.2f} m in front of camera {index} "
                       f"({camera.id}): the motion leaves the space these cameras surround (leave the file out, "
                       "or give cameras that see all of it)")
    return project_to_pixels(cam_space, camera)


class _Unmapped(Exception):
    """A file that cannot be converted: the message says what is missing."""


def _plan_file(path: Path, label: str, names: tuple[str, str], options: BvhOptions) -> _FilePlan:
    clip = read_bvh(path)
    joint_map, missing = bvh_joints.match_joint_map(clip.names)
    if joint_map is None:
        raise _Unmapped(missing)
    leg = bvh_joints.leg_length(joint_map, clip.names, clip.offsets)
    unit = bvh_joints.detect_units(leg) if options.units == "auto" else options.units
    if unit is None:
        raise _Unmapped(f"cannot tell its units: a leg of {leg:g} file units is an adult's in none of "
                        f"{', '.join(bvh_joints.UNITS)} (give --units)")
    up = options.up
    if up == "auto":
        positions, frames = forward_kinematics(clip.parents, *local_transforms(clip))
        up = bvh_joints.detect_up(bvh_joints.map_points(joint_map, clip.names, positions, frames,
                                                        bvh_joints.UNITS[unit]))
        if up is None:
            raise _Unmapped("cannot tell its up axis: the head is not above the feet along y or z (give --up)")
    return _FilePlan(path, label, *names, joint_map, unit, up, clip.fps)


def _check_options(options: BvhOptions) -> None:
    if not options.fps > 0:
        raise RieError(f"--fps must be positive, got {options.fps:g}")
    if options.units != "auto" and options.units not in bvh_joints.UNITS:
        raise RieError(f"--units must be auto or one of {', '.join(bvh_joints.UNITS)}, got '{options.units}'")
    if options.up != "auto" and options.up not in bvh_joints.UP_AXES:
        raise RieError(f"--up must be auto, y or z, got '{options.up}'")


def _find_files(bvh_dir: Path) -> list[Path]:
    if not bvh_dir.is_dir():
        raise RieError(f"BVH directory not found: {bvh_dir}")
    files = sorted(p for p in bvh_dir.rglob("*") if p.suffix.lower() == ".bvh" and p.is_file())
    if not files:
        raise RieError(f"no .bvh files under {bvh_dir}")
    return files


def _names(path: Path, bvh_dir: Path, subject: str | None) -> tuple[str, str]:
    """(subject, action) from the folder layout (module docstring)."""
    parts = path.relative_to(bvh_dir).with_suffix("").parts
    if len(parts) == 1:
        return subject or bvh_dir.resolve().name, parts[0]
    return parts[0], "/".join(parts[1:])


def _camera_rigs(cameras: CameraSet, camera_subject: str | None, subjects: list[str]) -> dict[str, tuple[Camera, ...]]:
    """subject -> the cameras its 2D is projected through: `camera_subject`'s extrinsics
    for everyone, else each subject's own, else the file's only set."""
    if not all(c.has_intrinsics for c in cameras.intrinsics_only):
        raise RieError(f"the cameras of '{cameras.name}' have no intrinsics (focal length, centre): "
                       "nothing can be projected through them")
    placed = list(cameras.cameras)
    if camera_subject is not None:
        if camera_subject not in cameras.cameras:
            raise RieError(f"--camera-subject {camera_subject}: the cameras of '{cameras.name}' have extrinsics for "
                           f"{choices(placed) or 'no subject'}")
        return {s: cameras.cameras[camera_subject] for s in subjects}
    if all(s in cameras.cameras for s in subjects):
        return {s: cameras.cameras[s] for s in subjects}
    if len(placed) == 1:
        return {s: cameras.cameras[placed[0]] for s in subjects}
    raise RieError(f"the cameras of '{cameras.name}' have extrinsics for {choices(placed) or 'no subject'}: "
                   "choose whose with --camera-subject")


def _describe_rigs(cameras: CameraSet | None, camera_subject: str | None, rigs: dict | None) -> str | None:
    if rigs is None:
        return None
    whose = f"subject {camera_subject}'s placement" if camera_subject else "placement of " + ", ".join(
        dict.fromkeys(next(s for s, c in cameras.cameras.items() if c == rig) for rig in rigs.values()))
    return f"the {len(next(iter(rigs.values())))} cameras of '{cameras.name}' ({whose})"


def _notes(plans: list[_FilePlan], fps: float, refused: list[str], rigs: str | None) -> list[str]:
    def count(values) -> str:
        tally: dict[str, int] = {}
        for v in values:
            tally[v] = tally.get(v, 0) + 1
        return ", ".join(f"{k} ({n} file{'s' if n > 1 else ''})" for k, n in tally.items())

    notes = [f"joint maps: {count(p.joint_map.name for p in plans)}",
             f"units: {count(p.unit for p in plans)}; up axis: {count(p.up for p in plans)}",
             f"resampled to {fps:g} fps from: {count(f'{p.fps:g} fps' for p in plans)}",
             "placed: the root's mean ground position at the origin, the lowest point at z = 0"]
    notes.append(f"gt 2D projected through {rigs}" if rigs else
                 "3D only (no --cameras): no 2D sources, for training with virtual cameras")
    notes += [f"skipped {line}" for line in refused]
    return notes
