"""VideoPose3D-style `.npz` files (or Human3.6M CDF files) -> one `rie-poses` HDF5 file.

`prepare_dataset` is `rie prepare-data`: it picks the cameras and the converter
(`prepare_h36m_cdf` or `prepare_vp3d`; `prepare_bvh.prepare_bvh` for BVH mocap) from
the options. Each converter builds a `plan.Plan` and hands it to `plan.write_plan`
(the one writer: atomic, one sequence at a time; layout docs/hdf5-format.md).

Every problem a user can cause (missing files or keys, subjects or actions missing
from a 2D source, wrong joint counts, NaN/inf, 2D shorter than 3D, broken files)
is a `RieError` naming the file and the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rie_cli.cameras import (Camera, CameraSet, builtin_cameras, load_cameras_file, project_to_pixels,
                             world_to_camera)
from rie_cli.data import cdf
from rie_cli.data.plan import (Plan, PrepareSummary, ProgressFn, cameras_entry, check_finite, check_output,
                               iter_summary_rows, resolve_splits, subject_cameras, write_plan)
from rie_cli.data.prepare_bvh import DATASET as BVH_DATASET
from rie_cli.data.prepare_bvh import BvhOptions, prepare_bvh
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17, H36M_32_TO_17, HUMANEVA_15, Skeleton

__all__ = ["BvhOptions", "PrepareSummary", "dataset_cameras", "iter_summary_rows", "prepare_dataset",
           "prepare_h36m_cdf", "prepare_vp3d"]


# --- public entry points -------------------------------------------------------------

def prepare_dataset(
    dataset: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    from_cdf: str | Path | None = None,
    keypoints: list[str] | None = None,
    cameras: CameraSet | str | Path | None = None,
    train_subjects: list[str] | None = None,
    test_subjects: list[str] | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
    project: bool = False,
    bvh_dir: str | Path | None = None,
    bvh: BvhOptions | None = None,
) -> PrepareSummary:
    """`rie prepare-data`: the original Human3.6M CDF files (`from_cdf`, h36m only) or a
    dataset's VideoPose3D .npz files (`data_dir`), with `cameras` (a `CameraSet`, a
    cameras file, or None: the built-in cameras of h36m and humaneva). `project`: the
    .npz dataset's 2D is not read but projected from its 3D through `cameras` ("gt").
    Dataset `bvh`: the BVH files under `bvh_dir` (`prepare_bvh.prepare_bvh`; cameras optional)."""
    if dataset == BVH_DATASET or bvh_dir is not None:
        others = {"--data-dir": data_dir, "--from-cdf": from_cdf, "--keypoints": keypoints, "--project": project}
        return _prepare_bvh_dataset(dataset, bvh_dir, out, [flag for flag, value in others.items() if value],
                                    bvh or BvhOptions(), cameras=cameras, train_subjects=train_subjects,
                                    test_subjects=test_subjects, force=force, progress=progress)
    if bvh is not None:
        raise RieError("the BVH options (--fps, --units, --up, --subject, --camera-subject, --skip-unmapped) "
                       "are for dataset bvh")
    camera_set = cameras if isinstance(cameras, CameraSet) else dataset_cameras(dataset, cameras)
    if from_cdf is not None:
        if dataset != "h36m":
            raise RieError("--from-cdf reads the original Human3.6M files: use it with dataset h36m")
        if data_dir is not None:
            raise RieError("give either --data-dir or --from-cdf, not both")
        if project:
            raise RieError("--project is for --data-dir: --from-cdf always projects the 2D through the cameras")
        return prepare_h36m_cdf(from_cdf, out, cameras=camera_set, train_subjects=train_subjects,
                                test_subjects=test_subjects, force=force, progress=progress)
    if data_dir is None:
        raise RieError("--data-dir is required (or --from-cdf for the original Human3.6M files)")
    return prepare_vp3d(dataset, data_dir, out, camera_set, keypoints=keypoints, train_subjects=train_subjects,
                        test_subjects=test_subjects, force=force, progress=progress, project=project)


def dataset_cameras(dataset: str, cameras: str | Path | None, entry: str | None = None) -> CameraSet | None:
    """The cameras of a dataset: a cameras file's where given (its entry `entry`, else the
    one named like the dataset, else its only one), else the built-in ones (h36m,
    humaneva); other datasets need a file, except BVH mocap (None: 3D only)."""
    if cameras is not None:
        return load_cameras_file(cameras, entry or dataset)
    if entry is not None:
        raise RieError("--cameras-entry picks an entry of the --cameras file: give --cameras too")
    if dataset == BVH_DATASET:
        return None
    if dataset in ("h36m", "humaneva"):
        return builtin_cameras(dataset)
    raise RieError(f"dataset '{dataset}' has no built-in cameras: give --cameras FILE.json")


def _prepare_bvh_dataset(dataset: str, bvh_dir, out, other_inputs: list[str], options: BvhOptions, *,
                         cameras, **kwargs) -> PrepareSummary:
    """Dataset `bvh`: the option checks, then `prepare_bvh`."""
    if dataset != BVH_DATASET:
        raise RieError(f"--bvh-dir reads BVH files: use it with dataset {BVH_DATASET}")
    if bvh_dir is None:
        raise RieError(f"dataset {BVH_DATASET} reads a folder of BVH files: give --bvh-dir DIR")
    if other_inputs:
        raise RieError(f"{other_inputs[0]} is not for BVH input (--bvh-dir)")
    camera_set = cameras if isinstance(cameras, CameraSet) or cameras is None else dataset_cameras(dataset, cameras)
    return prepare_bvh(bvh_dir, out, options, cameras=camera_set, **kwargs)


def prepare_vp3d(
    name: str,
    data_dir: str | Path,
    out: str | Path,
    cameras: CameraSet,
    keypoints: list[str] | None = None,
    train_subjects: list[str] | None = None,
    test_subjects: list[str] | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
    three_d_file: str | Path | None = None,
    project: bool = False,
) -> PrepareSummary:
    """Convert `data_3d_<name>.npz` and its `data_2d_<name>_<source>.npz` files
    (HumanEva-I: `..._humaneva15...`) in `data_dir` into one HDF5 file `out`.

    `keypoints` picks the 2D sources (default: every 2D file of the dataset found).
    With `project`, no 2D file is read: the one source "gt" is the 3D projected through
    `cameras` (which then need intrinsics, and extrinsics for every subject), e.g. to
    test a model in cameras the dataset was not recorded with (docs/training.md).
    """
    out = check_output(out, force)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise RieError(f"data directory not found: {data_dir}")
    stem = "humaneva15" if name == "humaneva" else name
    path_3d = Path(three_d_file) if three_d_file is not None else data_dir / f"data_3d_{stem}.npz"
    if project and keypoints not in (None, ["gt"]):
        raise RieError("--project writes one 2D source, gt (the projected 3D): leave --keypoints out")
    paths_2d = {} if project else _find_2d_files(data_dir, stem, keypoints)
    files = _read_vp3d_files(name, path_3d, paths_2d, len(cameras.intrinsics_only))

    subjects = list(files.positions_3d)
    train, test = resolve_splits(name, subjects, train_subjects, test_subjects)
    entry = cameras_entry(cameras, subjects)
    items = [(s, a) for s in subjects for a in files.positions_3d[s]]
    files.check_complete(items)  # fail before writing anything when a sequence is missing
    load = files.load
    if project:
        _check_projectable(cameras, subjects)

        def load(subject: str, action: str):
            pos = files.load(subject, action)[0]
            return pos, {"gt": _projected_views(pos, subject_cameras(cameras, subject), f"{subject} '{action}'")}

    plan = Plan(
        dataset=name,
        skeleton=_skeleton_for(files.num_joints, files.metadata),
        fps=cameras.fps,
        cameras_entry=entry,
        sources=["gt"] if project else list(files.paths_2d),
        train=train,
        test=test,
        source_info={"kind": "vp3d-npz", "files": [path_3d.name] + [p.name for p in files.paths_2d.values()]},
        items=items,
        load=load,
    )
    if files.reduce_32:
        plan.notes.append("3D reduced from 32 to 17 joints")
    if project:
        count = len(cameras.intrinsics_only)
        plan.notes.append(f"gt 2D projected through the cameras file's {count} camera{'s' if count != 1 else ''}")
    return write_plan(out, plan, progress)


def _check_projectable(cameras: CameraSet, subjects: list[str]) -> None:
    """RieError unless every subject has cameras with intrinsics and extrinsics."""
    for subject in subjects:
        if not all(c.has_extrinsics and c.has_intrinsics for c in subject_cameras(cameras, subject)):
            raise RieError(f"no camera extrinsics for subject {subject}: cannot project its ground-truth 2D "
                           "(the cameras file needs intrinsics and, per subject, extrinsics)")


def _projected_views(pos: np.ndarray, cameras: tuple[Camera, ...], label: str) -> np.ndarray:
    """World 3D (N, J, 3) seen by each camera: (C, N, J, 2) float32 pixels, distortion included."""
    views = np.stack([project_to_pixels(world_to_camera(pos, cam), cam) for cam in cameras]).astype(np.float32)
    check_finite(views, f"{label} (projected 2D)")
    return views


@dataclass
class _Vp3dFiles:
    """The arrays of a dataset's VideoPose3D .npz files, read and checked as a whole;
    `load` checks and returns one sequence at a time, as the writer asks for it."""

    path_3d: Path
    paths_2d: dict[str, Path]  # source -> file
    positions_3d: dict  # subject -> action -> (N, J3, 3) world
    inputs_2d: dict  # source -> subject -> action -> [(N', J, 2) pixels per camera]
    metadata: dict  # source -> the 2D file's metadata
    joints_3d: int  # J3: the 3D's joint count (32 for a full Human3.6M file)
    num_joints: int  # J: what the prepared file holds
    reduce_32: bool  # Human3.6M 32 -> 17 joints
    num_cameras: int  # views per sequence: the cameras file's

    def check_complete(self, items: list[tuple[str, str]]) -> None:
        """Every (subject, action) of the 3D is in every 2D source."""
        for source, path in self.paths_2d.items():
            for subject, action in items:
                if subject not in self.inputs_2d[source]:
                    raise RieError(f"subject {subject} is missing from {path.name}")
                if action not in self.inputs_2d[source][subject]:
                    raise RieError(f"action '{action}' of subject {subject} is missing from {path.name}")

    def load(self, subject: str, action: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """((N, J, 3) world positions, {source: (C, N, J, 2) pixels}) of one sequence."""
        where = f"{subject} '{action}'"
        pos = _check_array(self.positions_3d[subject][action], (self.joints_3d, 3), f"{self.path_3d.name}, {where}")
        if self.reduce_32:
            pos = pos[:, H36M_32_TO_17]  # (N, 17, 3)
        n = len(pos)
        keypoints_2d = {}
        for source, path in self.paths_2d.items():
            views = self.inputs_2d[source][subject][action]
            if len(views) != self.num_cameras:
                raise RieError(f"{path.name}, {where}: {len(views)} camera views, the cameras file has "
                               f"{self.num_cameras}")
            cut = []
            for cam_index, view in enumerate(views):
                label = f"{path.name}, {where}, camera {cam_index}"
                view = _check_array(view, (self.num_joints, 2), label, finite=False)
                if len(view) < n:
                    raise RieError(f"{label}: the 2D has {len(view)} frames, shorter than the 3D's {n}")
                view = view[:n]  # longer 2D is cut to the 3D's length (docs/method.md §4)
                check_finite(view, label)
                cut.append(view)
            keypoints_2d[source] = np.stack(cut)  # (C, N, J, 2)
        return pos, keypoints_2d


def _read_vp3d_files(name: str, path_3d: Path, paths_2d: dict[str, Path], num_cameras: int) -> _Vp3dFiles:
    """Read the 3D file and the 2D files; check that their joint counts agree with each other
    and with the dataset."""
    positions_3d = _subject_action_dict(_load_npz(path_3d, ("positions_3d",))["positions_3d"], path_3d, "positions_3d")
    inputs_2d: dict[str, dict] = {}
    metadata: dict[str, dict] = {}
    for source, path in paths_2d.items():
        arrays = _load_npz(path, ("positions_2d", "metadata"))
        inputs_2d[source] = _subject_action_dict(arrays["positions_2d"], path, "positions_2d")
        metadata[source] = _metadata_dict(arrays["metadata"], path)

    joints_3d = _joint_count_3d(positions_3d, path_3d)
    reduce_32 = name == "h36m" and joints_3d == 32
    num_joints = 17 if reduce_32 else joints_3d
    expected = {"h36m": 17, "humaneva": 15}.get(name)
    if expected is not None and num_joints != expected:
        raise RieError(f"{path_3d.name} has {joints_3d} joints; {name} needs {expected}"
                       + (" (or 32, reduced to 17)" if name == "h36m" else ""))
    for source, meta in metadata.items():
        declared = meta.get("num_joints")
        if declared is not None and int(declared) != num_joints:
            raise RieError(f"{paths_2d[source].name} declares {declared} joints, the 3D has {num_joints}")
    return _Vp3dFiles(path_3d, paths_2d, positions_3d, inputs_2d, metadata, joints_3d, num_joints, reduce_32,
                      num_cameras)


def prepare_h36m_cdf(
    cdf_dir: str | Path,
    out: str | Path,
    cameras: CameraSet | None = None,
    train_subjects: list[str] | None = None,
    test_subjects: list[str] | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> PrepareSummary:
    """Convert Human3.6M's `S*/MyPoseFeatures/D3_Positions/*.cdf` files: the 3D reduced to
    17 joints, and ground-truth 2D ("gt") projected through each camera, distortion included."""
    out = check_output(out, force)
    cameras = cameras or builtin_cameras("h36m")
    files, notes = cdf.find_h36m_cdf_files(Path(cdf_dir))
    subjects = list(files)
    _check_projectable(cameras, subjects)
    train, test = resolve_splits("h36m", subjects, train_subjects, test_subjects)

    def load(subject: str, action: str):
        path = files[subject][action]
        pos = cdf.read_h36m_pose(path)[:, H36M_32_TO_17]  # (N, 17, 3) float64
        check_finite(pos, f"{path}")
        return pos.astype(np.float32), {"gt": _projected_views(pos, subject_cameras(cameras, subject), f"{path}")}

    plan = Plan(
        dataset="h36m",
        skeleton=H36M_17,
        fps=cameras.fps,
        cameras_entry=cameras_entry(cameras, subjects),
        sources=["gt"],
        train=train,
        test=test,
        source_info={"kind": "h36m-cdf",
                     "files": [str(p.relative_to(cdf_dir)) for s in files.values() for p in s.values()]},
        items=[(s, a) for s in subjects for a in files[s]],
        load=load,
        notes=notes + ["3D reduced from 32 to 17 joints; gt 2D projected through the cameras"],
    )
    return write_plan(out, plan, progress)


# --- reading and checking the inputs -------------------------------------------------

def _find_2d_files(data_dir: Path, stem: str, keypoints: list[str] | None) -> dict[str, Path]:
    prefix = f"data_2d_{stem}_"
    if keypoints:
        paths = {k: data_dir / f"{prefix}{k}.npz" for k in keypoints}
        for path in paths.values():
            if not path.exists():
                raise RieError(f"2D keypoints file not found: {path}")
        return paths
    found = {p.name[len(prefix):-len(".npz")]: p for p in sorted(data_dir.glob(f"{prefix}*.npz"))}
    if not found:
        raise RieError(f"no 2D keypoints files ({prefix}<source>.npz) in {data_dir}")
    return found


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict:
    """The named entries of a VideoPose3D .npz file (pickled dicts: allow_pickle is needed,
    so only open files you trust)."""
    if not path.exists():
        raise RieError(f"file not found: {path}")
    try:
        with np.load(path, allow_pickle=True) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise RieError(f"{path.name} has no '{missing[0]}' (it has: {', '.join(archive.files) or 'nothing'})")
            return {k: archive[k] for k in keys}
    except RieError:
        raise
    except AttributeError:  # np.load returned a plain array (a .npy or pickle), not an archive
        raise RieError(f"{path.name} is not an .npz archive") from None
    except Exception as exc:  # noqa: BLE001 - a broken zip/pickle raises many exception types
        raise RieError(f"cannot read {path} (unreadable or truncated .npz): {type(exc).__name__}: {exc}") from None


def _subject_action_dict(value: np.ndarray, path: Path, key: str) -> dict:
    d = value.item() if isinstance(value, np.ndarray) and value.dtype == object and value.shape == () else value
    if not isinstance(d, dict) or not d or not all(isinstance(v, dict) for v in d.values()):
        raise RieError(f"'{key}' in {path.name} is not a subject -> action dictionary")
    if not any(d.values()):
        raise RieError(f"'{key}' in {path.name} holds no sequences")
    return d


def _metadata_dict(value: np.ndarray, path: Path) -> dict:
    d = value.item() if isinstance(value, np.ndarray) and value.dtype == object and value.shape == () else value
    if not isinstance(d, dict):
        raise RieError(f"'metadata' in {path.name} is not a dictionary")
    return d


def _joint_count_3d(positions_3d: dict, path: Path) -> int:
    counts = set()
    for subject, actions in positions_3d.items():
        for action, arr in actions.items():
            shape = np.shape(arr)
            if len(shape) != 3 or shape[2] != 3:
                raise RieError(f"{path.name}, {subject} '{action}': shape {shape}, expected (N, J, 3)")
            counts.add(shape[1])
    if len(counts) != 1:
        raise RieError(f"{path.name} mixes joint counts {sorted(counts)}")
    return counts.pop()


def _check_array(arr, tail: tuple[int, int], label: str, finite: bool = True) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.shape[1:] != tail:
        raise RieError(f"{label}: shape {arr.shape}, expected (N, {tail[0]}, {tail[1]}) (wrong joint count?)")
    if len(arr) == 0:
        raise RieError(f"{label}: no frames")
    if not np.issubdtype(arr.dtype, np.number):
        raise RieError(f"{label}: values are {arr.dtype}, not numbers")
    if finite:
        check_finite(arr, label)
    return arr


def _skeleton_for(num_joints: int, metadata: dict[str, dict]) -> Skeleton:
    if num_joints == 17:
        return H36M_17
    if num_joints == 15:
        return HUMANEVA_15
    # Any other layout: the 2D files' symmetry gives left/right (for flip augmentation);
    # bones are unknown, so every joint is stored as a root (parent -1).
    symmetry = next((m["keypoints_symmetry"] for m in metadata.values() if "keypoints_symmetry" in m), None)
    if symmetry is None or len(symmetry) != 2:
        raise RieError(f"{num_joints} joints is no built-in skeleton and the 2D metadata has no keypoints_symmetry")
    left, right = (tuple(int(j) for j in side) for side in symmetry)
    if len(left) != len(right) or any(not 0 <= j < num_joints for j in left + right):
        raise RieError(f"keypoints_symmetry {symmetry} does not fit {num_joints} joints")
    return Skeleton(name=f"generic{num_joints}", parents=(-1,) * num_joints,
                    joints_left=left, joints_right=right, parts=())


