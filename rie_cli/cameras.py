"""Camera models: the cameras-file schema, world<->camera transforms, projection.

Conventions (docs/method.md §4, VideoPose3D): the orientation quaternion (w, x, y, z)
rotates camera coordinates into world coordinates and the translation is the camera
centre in world coordinates (millimetres in the files, metres here), so
`X_cam = q^-1 * (X_world - t)`. Projection uses the pinhole model with three radial
and two tangential distortion coefficients in VideoPose3D's formulation.
All maths here is NumPy in float64 (a 0.01 px check depends on it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from rie_cli.errors import RieError


@dataclass(frozen=True)
class Camera:
    id: str
    res_w: int
    res_h: int
    azimuth: float = 0.0  # only a viewing angle for plots
    focal_length: tuple[float, float] | None = None  # pixels
    center: tuple[float, float] | None = None  # pixels
    radial_distortion: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tangential_distortion: tuple[float, float] = (0.0, 0.0)
    orientation: tuple[float, float, float, float] | None = None  # w, x, y, z; camera -> world
    translation: tuple[float, float, float] | None = None  # metres, camera centre in world

    @property
    def has_intrinsics(self) -> bool:
        return self.focal_length is not None and self.center is not None

    @property
    def has_extrinsics(self) -> bool:
        return self.orientation is not None and self.translation is not None

    def to_dict(self) -> dict:
        d = {"id": self.id, "res_w": self.res_w, "res_h": self.res_h, "azimuth": self.azimuth}
        if self.has_intrinsics:  # all four or none, as the cameras-file schema wants
            d["radial_distortion"] = list(self.radial_distortion)
            d["tangential_distortion"] = list(self.tangential_distortion)
            d["focal_length"] = list(self.focal_length)
            d["center"] = list(self.center)
        if self.has_extrinsics:
            d["orientation"] = list(self.orientation)
            d["translation"] = [t * 1000.0 for t in self.translation]  # back to the file's mm
        return d


@dataclass(frozen=True)
class CameraSet:
    """The cameras of one dataset: shared intrinsics, per-subject extrinsics."""

    name: str
    fps: float
    cameras: dict[str, tuple[Camera, ...]]  # subject -> one Camera per view
    intrinsics_only: tuple[Camera, ...]  # the views without extrinsics (any subject)

    def for_subject(self, subject: str) -> tuple[Camera, ...]:
        """The subject's cameras; intrinsics only where the file has no extrinsics for it."""
        return self.cameras.get(subject, self.intrinsics_only)


def _camera_from_json(intr: dict, extr: dict | None) -> Camera:
    def tup(key, d):
        v = d.get(key)
        return None if v is None else tuple(float(x) for x in v)

    try:
        extr = extr or {}
        translation = tup("translation", extr)
        return Camera(
            id=str(intr.get("id", "")),
            res_w=int(intr["res_w"]),
            res_h=int(intr["res_h"]),
            azimuth=float(intr.get("azimuth", 0.0)),
            focal_length=tup("focal_length", intr),
            center=tup("center", intr),
            radial_distortion=tup("radial_distortion", intr) or (0.0, 0.0, 0.0),
            tangential_distortion=tup("tangential_distortion", intr) or (0.0, 0.0),
            orientation=tup("orientation", extr),
            translation=None if translation is None else tuple(t / 1000.0 for t in translation),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RieError(f"camera entry is malformed ({exc!r}): {intr}") from None


def camera_set_from_dict(name: str, d: dict) -> CameraSet:
    """Build a CameraSet from one dataset's entry of a cameras file
    (`{"fps": .., "intrinsics": [..], "extrinsics": {subject: [..]}}`)."""
    if not isinstance(d, dict) or "intrinsics" not in d:
        raise RieError(f"cameras for '{name}' need an 'intrinsics' list")
    intrinsics = d["intrinsics"]
    per_subject = {}
    for subject, extrs in (d.get("extrinsics") or {}).items():
        if not any(extrs):  # e.g. Human3.6M S2-S4: no published extrinsics
            continue
        if len(extrs) != len(intrinsics):
            raise RieError(f"subject {subject} has {len(extrs)} extrinsics for {len(intrinsics)} cameras")
        per_subject[subject] = tuple(_camera_from_json(i, e) for i, e in zip(intrinsics, extrs))
    return CameraSet(
        name=name,
        fps=float(d.get("fps", 50)),
        cameras=per_subject,
        intrinsics_only=tuple(_camera_from_json(i, None) for i in intrinsics),
    )


# --- the cameras-file schema ---------------------------------------------------------
# Fields of one camera in "intrinsics" and of one view in a subject's "extrinsics", with
# how many numbers each holds. The four intrinsic fields come together or not at all:
# HumanEva-I's published cameras have none (its 2D comes from a detector, nothing is
# projected), while a camera with only some of them is a mistake the maths would
# otherwise hide (missing distortion read as zero, a missing centre as no intrinsics).
INTRINSIC_FIELDS = {"focal_length": 2, "center": 2, "radial_distortion": 3, "tangential_distortion": 2}
EXTRINSIC_FIELDS = {"orientation": 4, "translation": 3}
CAMERA_FIELDS = ("id", "res_w", "res_h", "azimuth", *INTRINSIC_FIELDS)
ENTRY_FIELDS = ("fps", "intrinsics", "extrinsics")
# Published quaternions are float32-rounded (norm 1 within ~1e-7); anything further off
# is not a rotation, and `qrot` would scale the points as well as turn them.
UNIT_QUATERNION_TOLERANCE = 1e-3


def check_cameras_entry(entry, where: str) -> None:
    """Check one dataset's entry of a cameras file against the whole schema
    (docs/hdf5-format.md, `/cameras`): every required field present, no unknown field,
    every value of the right kind, count and range, all numbers finite.

    The first problem is a RieError of one line that starts with `where` (the file) and
    names the camera (its id), the subject for extrinsics, and the field, e.g.
    "cameras.json: camera 54138969: 'focal_length' missing (...)".
    """
    if not isinstance(entry, dict):
        raise RieError(f"{where}: a dataset's cameras must be an object with {_names(ENTRY_FIELDS)}, "
                       f"got {_show(entry)}")
    _check_known(entry, ENTRY_FIELDS, where)
    if "fps" in entry:
        _check_positive(entry["fps"], "fps", where)
    intrinsics = entry.get("intrinsics")
    if intrinsics is None:
        raise RieError(f"{where}: 'intrinsics' missing (one entry per camera)")
    if not isinstance(intrinsics, list) or not intrinsics:
        raise RieError(f"{where}: 'intrinsics' must be a non-empty list, one entry per camera; got {_show(intrinsics)}")
    labels = [_check_camera(camera, index, where) for index, camera in enumerate(intrinsics)]
    extrinsics = entry.get("extrinsics") or {}
    if not isinstance(extrinsics, dict):
        raise RieError(f"{where}: 'extrinsics' must map each subject to a list, got {_show(extrinsics)}")
    for subject, views in extrinsics.items():
        _check_extrinsics(views, subject, labels, where)


def _check_camera(camera, index: int, where: str) -> str:
    """One entry of "intrinsics"; returns how messages name it ("camera 54138969")."""
    if not isinstance(camera, dict):
        raise RieError(f"{where}: camera {index} (counting from 0) must be an object, got {_show(camera)}")
    cid = camera.get("id")
    named = (isinstance(cid, str) and cid != "") or (isinstance(cid, int) and not isinstance(cid, bool))
    label = f"camera {cid}" if named else f"camera {index} (counting from 0)"
    at = f"{where}: {label}"
    if "id" not in camera:
        raise RieError(f"{at}: 'id' missing")
    if not named:
        raise RieError(f"{at}: 'id' must be a non-empty string or a whole number, got {_show(cid)}")
    _check_known(camera, CAMERA_FIELDS, at)
    for key in ("res_w", "res_h"):
        if key not in camera:
            raise RieError(f"{at}: '{key}' missing (the image size in pixels)")
        value = camera[key]
        if not _is_number(value) or not math.isfinite(value) or value != int(value) or value <= 0:
            raise RieError(f"{at}: '{key}' must be a positive whole number of pixels, got {_show(value)}")
    if "azimuth" in camera:
        _check_numbers(camera["azimuth"], None, "azimuth", at)
    given = [key for key in INTRINSIC_FIELDS if key in camera]
    if given and len(given) < len(INTRINSIC_FIELDS):
        missing = next(key for key in INTRINSIC_FIELDS if key not in camera)
        raise RieError(f"{at}: '{missing}' missing (a camera has all of {_names(INTRINSIC_FIELDS)}, "
                       "or none of them)")
    for key in given:
        _check_numbers(camera[key], INTRINSIC_FIELDS[key], key, at)
    if given and min(camera["focal_length"]) <= 0:
        raise RieError(f"{at}: 'focal_length' must be positive (pixels), got {_show(camera['focal_length'])}")
    return label


def _check_extrinsics(views, subject: str, labels: list[str], where: str) -> None:
    """One subject's "extrinsics": no entry filled (none published, as for Human3.6M
    S2-S4), or one complete view per camera, in the order of "intrinsics"."""
    if not isinstance(views, list):
        raise RieError(f"{where}: the extrinsics of {subject} must be a list, one entry per camera; "
                       f"got {_show(views)}")
    if not any(views):
        return
    if len(views) != len(labels):
        raise RieError(f"{where}: subject {subject} has {len(views)} extrinsics for {len(labels)} cameras")
    for view, label in zip(views, labels):
        at = f"{where}: {label} of {subject}"
        if not isinstance(view, dict):
            raise RieError(f"{at}: the extrinsics must be an object with {_names(EXTRINSIC_FIELDS)}, got {_show(view)}")
        _check_known(view, EXTRINSIC_FIELDS, at)
        for key, count in EXTRINSIC_FIELDS.items():
            if key not in view:
                raise RieError(f"{at}: '{key}' missing (a subject's extrinsics give {_names(EXTRINSIC_FIELDS)} "
                               "for every camera, or are left empty)")
            _check_numbers(view[key], count, key, at)
        norm = math.sqrt(sum(q * q for q in view["orientation"]))
        if abs(norm - 1.0) > UNIT_QUATERNION_TOLERANCE:
            raise RieError(f"{at}: 'orientation' must be a unit quaternion (w, x, y, z), its norm is {norm:.6g}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_numbers(value, count: int | None, key: str, at: str) -> None:
    """`value` is `count` finite numbers in a list (one number where `count` is None)."""
    kind = "a number" if count is None else f"a list of {count} numbers"
    items = [value] if count is None else value
    if not isinstance(items, list) or (count is not None and len(items) != count) \
            or not all(_is_number(v) for v in items):
        raise RieError(f"{at}: '{key}' must be {kind}, got {_show(value)}")
    if not all(math.isfinite(v) for v in items):
        raise RieError(f"{at}: '{key}' must be finite, got {_show(value)}")


def _check_positive(value, key: str, at: str) -> None:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise RieError(f"{at}: '{key}' must be a positive number, got {_show(value)}")


def _check_known(d: dict, known, at: str) -> None:
    """A misspelt field would otherwise be ignored and its value silently replaced by a default."""
    for key in d:
        if key not in known:
            raise RieError(f"{at}: unknown field '{key}' (known: {', '.join(known)})")


def _names(fields) -> str:
    names = [f"'{f}'" for f in fields]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _show(value, limit: int = 40) -> str:
    """A value as the file wrote it, cut short so that the message stays one line."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_cameras_file(path: str | Path, dataset: str | None = None) -> CameraSet:
    """Read a cameras JSON file (schema: docs/hdf5-format.md, `/cameras`). With several
    datasets in the file, `dataset` picks one; with one, it is taken. The entry is checked
    against the whole schema first (`check_cameras_entry`)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RieError(f"cameras file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise RieError(f"cannot read cameras file {path}: {exc}") from None
    if not isinstance(doc, dict) or not doc:
        raise RieError(f"cameras file {path} holds no datasets")
    if dataset is None or dataset not in doc:
        if len(doc) != 1:
            raise RieError(f"cameras file {path} holds {sorted(doc)}; cannot tell which is '{dataset}'")
        dataset = next(iter(doc))
    check_cameras_entry(doc[dataset], str(path) if len(doc) == 1 else f"{path} ({dataset})")
    return camera_set_from_dict(dataset, doc[dataset])


def builtin_cameras(dataset: str) -> CameraSet:
    """The package's own copy of the published Human3.6M ('h36m') and HumanEva-I
    ('humaneva') cameras."""
    text = resources.files("rie_cli").joinpath("resources/cameras.json").read_text()
    doc = json.loads(text)
    if dataset not in doc:
        raise RieError(f"no built-in cameras for '{dataset}' (built in: {', '.join(doc)})")
    check_cameras_entry(doc[dataset], f"built-in cameras ({dataset})")
    return camera_set_from_dict(dataset, doc[dataset])


# --- quaternion maths -------------------------------------------------------------

def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4) given as (w, x, y, z)."""
    q = np.broadcast_to(q, v.shape[:-1] + (4,))
    qvec = q[..., 1:]
    uv = np.cross(qvec, v)
    uuv = np.cross(qvec, uv)
    return v + 2.0 * (q[..., :1] * uv + uuv)


def qinverse(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (its conjugate)."""
    return np.concatenate([q[..., :1], -q[..., 1:]], axis=-1)


def world_to_camera(x: np.ndarray, camera: Camera) -> np.ndarray:
    """World points (..., 3) in metres -> camera coordinates (..., 3) in metres."""
    if not camera.has_extrinsics:
        raise RieError(f"camera {camera.id} has no extrinsics")
    q = np.asarray(camera.orientation, dtype=np.float64)
    t = np.asarray(camera.translation, dtype=np.float64)
    return qrot(qinverse(q), np.asarray(x, dtype=np.float64) - t)


def camera_to_world(x: np.ndarray, camera: Camera) -> np.ndarray:
    """Camera coordinates (..., 3) in metres -> world points (..., 3) in metres."""
    if not camera.has_extrinsics:
        raise RieError(f"camera {camera.id} has no extrinsics")
    q = np.asarray(camera.orientation, dtype=np.float64)
    t = np.asarray(camera.translation, dtype=np.float64)
    return qrot(q, np.asarray(x, dtype=np.float64)) + t


def poses_to_world(poses: np.ndarray, camera: Camera, trajectory: np.ndarray | None) -> np.ndarray:
    """Root-relative camera-space poses (T, J, 3) -> world poses (T, J, 3), metres.

    With the camera-space root `trajectory` (T, 3) the root is put back and the camera
    transform inverted (the authors' rendering). Without it, only the camera's rotation
    is undone and the feet are put on the floor (minimum height 0), as VideoPose3D does
    when it has no ground truth. A camera without extrinsics gets an upright view
    built from the camera axes (x right, y down, z forward -> x, z, -y).
    """
    poses = np.asarray(poses, dtype=np.float64)
    if trajectory is not None:
        poses = poses + np.asarray(trajectory, dtype=np.float64)[:, None, :]  # (T, J, 3)
    if camera.has_extrinsics:
        if trajectory is not None:
            return camera_to_world(poses, camera).astype(np.float32)
        rotation_only = Camera(id=camera.id, res_w=camera.res_w, res_h=camera.res_h,
                               orientation=camera.orientation, translation=(0.0, 0.0, 0.0))
        world = camera_to_world(poses, rotation_only)
    else:
        world = np.stack([poses[..., 0], poses[..., 2], -poses[..., 1]], axis=-1)
    world[..., 2] -= world[..., 2].min()
    return world.astype(np.float32)


def project_to_pixels(x_cam: np.ndarray, camera: Camera) -> np.ndarray:
    """Project camera-space points (..., 3) to pixels (..., 2), with lens distortion.

    VideoPose3D's model: with (x, y) = (X/Z, Y/Z) and r^2 = x^2 + y^2,
    radial = 1 + k1 r^2 + k2 r^4 + k3 r^6, tan = p1 x + p2 y, and
    x_d = (x, y) * (radial + tan) + (p1, p2) * r^2; pixels = f * x_d + c.
    (This is VideoPose3D's `project_to_2d`; the bnmocap 2D files were made with it.)
    """
    if not camera.has_intrinsics:
        raise RieError(f"camera {camera.id} has no focal length/centre: cannot project")
    x_cam = np.asarray(x_cam, dtype=np.float64)
    xy = x_cam[..., :2] / x_cam[..., 2:3]
    r2 = np.sum(xy**2, axis=-1, keepdims=True)
    k = np.asarray(camera.radial_distortion, dtype=np.float64)
    p = np.asarray(camera.tangential_distortion, dtype=np.float64)
    radial = 1.0 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = np.sum(p * xy, axis=-1, keepdims=True)
    distorted = xy * (radial + tan) + p * r2
    return np.asarray(camera.focal_length) * distorted + np.asarray(camera.center)


def normalize_screen_coordinates(x: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels -> [-1, 1] across the width, aspect ratio kept (docs/method.md §1).

    Float input keeps its dtype; integer pixels give float64.
    """
    x = _floating(x)
    return x / w * 2 - np.array([1, h / w], dtype=x.dtype)


def image_coordinates(x: np.ndarray, w: int, h: int) -> np.ndarray:
    """Inverse of `normalize_screen_coordinates`."""
    x = _floating(x)
    return (x + np.array([1, h / w], dtype=x.dtype)) * w / 2


def _floating(x) -> np.ndarray:
    """`x` as a float array: integer pixel arrays would truncate the offset h / w to 0 or 1."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def select_camera(path: Path, camera: str | None, subject: str | None) -> Camera:
    """One camera of a cameras file (schema: docs/hdf5-format.md): by index or id, with the
    extrinsics of `subject` (needed only where the file has them for several subjects)."""
    cameras = load_cameras_file(path)
    subjects = list(cameras.cameras)
    if subject is not None and subject not in subjects:
        raise RieError(f"{Path(path).name} has no extrinsics for subject '{subject}' "
                       f"(it has: {', '.join(subjects) or 'none'})")
    if subject is None and len(subjects) > 1:
        raise RieError(f"{Path(path).name} has extrinsics for several subjects ({', '.join(subjects)}): "
                       "choose one with --camera-subject")
    views = cameras.for_subject(subject or (subjects[0] if subjects else ""))
    if camera is None:
        if len(views) != 1:
            raise RieError(f"{Path(path).name} holds {len(views)} cameras: choose one with --camera (index or id)")
        return views[0]
    for index, view in enumerate(views):
        if camera in (str(index), view.id):
            return view
    raise RieError(f"no camera '{camera}' in {Path(path).name} (indices 0 to {len(views) - 1}, ids "
                   f"{', '.join(v.id for v in views)})")
