"""`rie predict`: 3D poses for one's own video, from the 2D keypoints a detector wrote.

    result = predict_keypoints("ckpt.bin", Path("clip.json"), Path("clip_3d.npz"), width=1920, height=1080)
    np.load("clip_3d.npz")["poses_3d"]    # (T, 17, 3) camera space, metres, root-relative

The steps, each its own function so that tests can check them one by one:
1. read the file (`rie_cli.keypoint_formats.read_keypoints`), one person, in the
   file's joint layout;
2. mark missing points (NaN, exact zeros, scores under `min_score`) and fill them by
   linear interpolation over time, per joint, holding the first/last seen value at
   the ends (`fill_gaps`); a joint the sequence never shows is an error (for COCO,
   only the joints the mapping needs);
3. COCO-17 -> Human3.6M-17 (`keypoint_formats.coco_to_h36m`);
4. normalise with the image size (docs/method.md §1) and predict every frame from its own
   edge-padded window with flip augmentation (`rie_cli.inference.predict_sequence`,
   the same code path as `rie evaluate` and `rie export predictions`).
Filling happens in the detector's layout, before the mapping, so that a point built
from several (the pelvis from two hips) is never half real, half invented without the
filled mask saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rie_cli import __version__
from rie_cli.cameras import Camera, normalize_screen_coordinates, poses_to_world
from rie_cli.devices import resolve_precision
from rie_cli.errors import RieError
from rie_cli.keypoint_formats import LAYOUTS, KeypointTrack, coco_to_h36m, detect_layout, read_keypoints
from rie_cli.predictions import write_clip_prediction
from rie_cli.skeleton import H36M_17

DEFAULT_MIN_SCORE = 0.3
RENDER_SUFFIXES = (".gif", ".mp4")
# The camera's orientation in the world is unknown, so renders show the camera-space
# pose turned upright (y down -> z up) and seen from this fixed angle: -90 would look
# along the camera's own axis; a little to the side shows depth.
RENDER_AZIMUTH = -70.0


@dataclass
class PreparedKeypoints:
    """Human3.6M-17 pixel keypoints ready to normalise, and what was done to them."""

    pixels: np.ndarray  # (T, 17, 2) float32, after mapping and gap filling
    filled: np.ndarray  # (T, 17) bool, True where the point was filled in
    layout: str  # the input's layout: "h36m" or "coco"
    notes: list[str] = field(default_factory=list)

    @property
    def filled_share(self) -> float:
        return float(self.filled.mean())


@dataclass
class PredictResult:
    """What `predict_keypoints` wrote."""

    out: Path
    frames: int
    format: str
    layout: str
    width: int
    height: int
    filled_share: float
    most_filled: list[tuple[str, float]]  # (joint name, share of its frames filled), worst first
    notes: list[str]
    render: Path | None = None
    space: str = "camera-relative"  # of the written poses: camera-relative, camera or world
    root_span: float | None = None  # metres the predicted root covers (largest extent), with a trajectory
    bvh: Path | None = None
    latencies: np.ndarray | None = None  # with --stream: seconds per pushed frame (T,)


# --- missing points ----------------------------------------------------------------------

def valid_mask(points: np.ndarray, scores: np.ndarray | None, min_score: float) -> np.ndarray:
    """(T, K) True where a point counts as seen: finite, not exactly (0, 0) (how OpenPose
    and others write a joint they did not find), and scored at least `min_score`."""
    points = np.asarray(points, dtype=np.float64)
    valid = np.isfinite(points).all(-1) & ~(points == 0).all(-1)  # (T, K)
    if scores is not None:
        with np.errstate(invalid="ignore"):
            valid &= np.asarray(scores, dtype=np.float64) >= min_score  # NaN scores fail
    return valid


def fill_gaps(points: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Fill every point not `valid` by linear interpolation over time, per joint.

    Before the first and after the last seen frame the nearest seen value is held.
    Returns (filled points (T, K, 2), filled mask (T, K), joints never seen); a never
    seen joint stays NaN (the caller decides whether it matters).
    """
    points = np.asarray(points, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    num_frames, num_joints = valid.shape
    frames = np.arange(num_frames)
    out = np.full(points.shape, np.nan)
    never_seen = []
    for joint in range(num_joints):
        seen = np.flatnonzero(valid[:, joint])
        if seen.size == 0:
            never_seen.append(joint)
            continue
        for axis in range(2):
            # np.interp holds the end values outside [first seen, last seen]: edge hold.
            out[:, joint, axis] = np.interp(frames, seen, points[seen, joint, axis])
    return out, ~valid, never_seen


def prepare_keypoints(track: KeypointTrack, layout: str = "auto",
                      min_score: float = DEFAULT_MIN_SCORE) -> PreparedKeypoints:
    """The track's points as gap-filled Human3.6M-17 pixels."""
    if layout not in LAYOUTS:
        raise RieError(f"unknown layout '{layout}' (choose from {', '.join(LAYOUTS)})")
    num_joints = track.points.shape[1]
    if num_joints != 17:
        raise RieError(f"the keypoints have {num_joints} joints per frame; rie maps Human3.6M-17 and COCO-17 "
                       "(and OpenPose BODY_25 / COCO-18 folders, MMPose Halpe-26 / COCO-WholeBody files)")
    notes = list(track.notes)
    valid = valid_mask(track.points, track.scores, min_score)
    if layout == "auto":
        layout = track.layout
        if layout is None:
            layout = detect_layout(np.where(valid[..., None], track.points, np.nan))
            notes.append(f"joint order not stated in the file: read as {layout} from the body's geometry "
                         "(override with --layout)")
    elif track.layout is not None and track.layout != layout:
        notes.append(f"the file says {track.layout}; read as {layout} as asked")

    filled_points, filled, never_seen = fill_gaps(track.points, valid)
    if layout == "coco":
        pixels, filled, mapping_notes = coco_to_h36m(filled_points, filled)
        notes.extend(mapping_notes)
    else:
        if never_seen:
            names = ", ".join(H36M_17.joint_names[j] for j in never_seen)
            raise RieError(f"joint(s) {names} never seen in any frame (missing, zero, or scored under "
                           f"--min-score {min_score:g}): cannot fill them")
        pixels = filled_points
    return PreparedKeypoints(pixels.astype(np.float32), filled, layout, notes)


# --- image size ----------------------------------------------------------------------------

def image_size(track: KeypointTrack, width: int | None, height: int | None) -> tuple[int, int, list[str]]:
    """(width, height) from --width/--height, else from the file; an error if neither has it."""
    notes = []
    if (width is None) != (height is None):
        raise RieError("give both --width and --height (the image size in pixels)")
    if width is not None:
        if width <= 0 or height <= 0:
            raise RieError(f"--width and --height must be positive, got {width} x {height}")
        if track.width is not None and (track.width, track.height) != (width, height):
            notes.append(f"the file records {track.width} x {track.height}; using {width} x {height} as given")
        return int(width), int(height), notes
    if track.width is None or track.height is None:
        raise RieError(f"the image size is needed to normalise the keypoints and {track.format} input does not "
                       "record it: give --width and --height (the video's frame size in pixels)")
    if track.width <= 0 or track.height <= 0:
        raise RieError(f"the file records an image size of {track.width} x {track.height}: give --width and --height")
    return track.width, track.height, notes


def check_pixels(pixels: np.ndarray, width: int, height: int) -> None:
    """Refuse keypoints that are plainly not pixels of a width x height image."""
    extent = float(np.abs(pixels).max())
    if extent <= 1.5 and max(width, height) > 16:
        raise RieError("the keypoints all lie within [-1.5, 1.5]: they look normalised, but rie predict needs "
                       "pixel coordinates (e.g. OpenPose with --keypoint_scale 0)")
    if extent > 10 * max(width, height):
        raise RieError(f"keypoints reach {extent:.0f} px, far outside a {width} x {height} image: "
                       "check --width/--height and the file's units")


# --- the whole command ---------------------------------------------------------------------

def predict_keypoints(
    checkpoint: Path,
    keypoints: Path,
    out: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    fmt: str = "auto",
    layout: str = "auto",
    video_name: str | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
    tta: bool = True,
    batch_size: int = 1024,
    device: str = "cpu",
    precision: str = "fp32",
    allow_unsafe_load: bool = False,
    render: Path | None = None,
    fps: float = 50.0,
    smoothing=None,
    bvh: Path | None = None,
    bvh_options: dict | None = None,
    stream: bool = False,
    on_phase: Callable[[str, int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    trajectory: Path | None = None,
    cameras: Path | None = None,
    camera: str | None = None,
    camera_subject: str | None = None,
) -> PredictResult:
    """`rie predict`: lift a keypoint file to 3D, write `out` (.npz) and optionally `render`
    and a `bvh` motion file (`bvh_options`: units, up).
    `smoothing` (a `rie_cli.smoothing.Smoothing`) filters the poses before anything is written.

    `on_phase(description, total)` announces each long step (predicting frames,
    drawing frames); `progress(n)` reports n more of them done. `precision`: auto, fp32,
    bf16 or fp16 (`rie_cli.devices.resolve_precision`). With `trajectory` (a trajectory
    model) the poses are placed at the root it predicts: in camera space, or in world
    space with a camera that has extrinsics (`cameras` file; `camera` index or id;
    `camera_subject` where the file has extrinsics for several subjects). With `stream`,
    the frames go one by one through `Lifter.stream` as if they arrived live (causal
    gap filling, docs/api.md) and the result carries each push's latency; the root, if
    any, is then predicted over the whole sequence.
    """
    from rie_cli.api import Lifter, load_for_inference

    out, checkpoint = Path(out), Path(checkpoint)
    _check_options(out, render, bvh, batch_size, fps, checkpoint)
    precision = resolve_precision(precision, device)

    cam = None if cameras is None else select_camera(cameras, camera, camera_subject)
    if cam is not None and width is None and height is None:
        width, height = cam.res_w, cam.res_h
    track = read_keypoints(keypoints, fmt, video_name=video_name)
    prepared = prepare_keypoints(track, layout, min_score)
    w, h, size_notes = image_size(track, width, height)
    normalized = normalized_keypoints(prepared.pixels, w, h)  # (T, 17, 2)

    lifter = Lifter(load_for_inference(checkpoint, device=device, precision=precision, tta=tta,
                                       allow_unsafe=allow_unsafe_load))
    traj_model = None
    if trajectory is not None:
        from rie_cli.trajectory import load_trajectory_model

        traj_model = load_trajectory_model(trajectory, H36M_17, device, allow_unsafe_load).model
    if on_phase is not None:
        on_phase("predicting", len(normalized) * (2 if traj_model is not None else 1))
    latencies = None
    if stream:
        lifted, latencies = stream_track(lifter, track, width=w, height=h, layout=prepared.layout,
                                         min_score=min_score, progress=progress)
        prepared = PreparedKeypoints(lifted.keypoints_2d, lifted.filled, lifted.layout, prepared.notes)
    else:
        lifted = lifter.lift_prepared(prepared, normalized, width=w, height=h, batch_size=batch_size,
                                      progress=progress)
    poses = lifted.poses if smoothing is None else smoothing.apply(lifted.poses, fps)  # (T, 17, 3)
    placed = place(poses, lifted.keypoints_2d_normalized, traj_model, cam, tta=tta, batch_size=batch_size,
                   device=device, precision=precision, progress=progress, smoothing=smoothing, fps=fps)

    settings = {
        "checkpoint": str(checkpoint), "keypoints_file": str(keypoints), "width": w, "height": h,
        "format": track.format, "layout": prepared.layout, "tta": tta, "min_score": min_score, "fps": fps,
        "video_name": video_name or "", "rie_version": __version__, "space": placed.space,
        "trajectory_checkpoint": "" if trajectory is None else str(trajectory),
        "cameras_file": "" if cameras is None else str(cameras), "camera": "" if cam is None else cam.id,
        "smoothing": smoothing.describe(fps) if smoothing is not None else "none",
    }
    write_prediction(out, placed.poses, prepared, lifted.keypoints_2d_normalized, settings,
                     trajectory=placed.trajectory)
    if bvh is not None:
        from rie_cli.bvh import poses_to_motion, write_bvh

        motion = poses_to_motion(placed.poses, H36M_17, space=placed.space,
                                 root_relative=placed.space == "camera-relative")
        write_bvh(Path(bvh), motion, fps=fps, **(bvh_options or {}))

    rendered = None
    if render is not None:
        rendered = render_prediction(Path(render), prepared.pixels, poses, w, h, fps, on_phase, progress,
                                     placed=placed)
    return PredictResult(out=out, frames=len(poses), format=track.format, layout=prepared.layout, width=w,
                         height=h, filled_share=prepared.filled_share, most_filled=most_filled(prepared.filled),
                         notes=prepared.notes + size_notes, render=rendered, space=placed.space,
                         root_span=placed.root_span, bvh=bvh, latencies=latencies)


def _check_options(out: Path, render: Path | None, bvh: Path | None, batch_size: int, fps: float,
                   checkpoint: Path) -> None:
    """The option errors found before any file is read."""
    if out.suffix.lower() != ".npz":
        raise RieError(f"cannot write '{out.name}': rie predict writes an .npz file")
    if render is not None and Path(render).suffix.lower() not in RENDER_SUFFIXES:
        raise RieError(f"cannot render to '{Path(render).name}': use a .gif or .mp4 file")
    if batch_size < 1:
        raise RieError(f"batch size must be positive, got {batch_size}")
    if fps <= 0:
        raise RieError(f"--fps must be positive, got {fps}")
    if bvh is not None and Path(bvh).suffix.lower() != ".bvh":
        raise RieError(f"cannot write '{Path(bvh).name}': a BVH file must end in .bvh")
    if not checkpoint.is_file():
        raise RieError(f"checkpoint not found: {checkpoint}")


def most_filled(filled: np.ndarray, count: int = 3) -> list[tuple[str, float]]:
    """(T, 17) filled mask -> up to `count` (joint name, share of its frames filled), worst first."""
    per_joint = filled.mean(axis=0)  # (17,)
    order = np.argsort(-per_joint, kind="stable")
    return [(H36M_17.joint_names[j], float(per_joint[j])) for j in order[:count] if per_joint[j] > 0]


def normalized_keypoints(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, 17, 2) pixels -> float32 model input, after refusing what is plainly not pixels."""
    check_pixels(pixels, width, height)
    return normalize_screen_coordinates(pixels, width, height).astype(np.float32)


def stream_track(lifter, track: KeypointTrack, *, width: int, height: int, layout: str, min_score: float,
                 progress: Callable[[int], None] | None = None):
    """Feed `track` frame by frame through `lifter.stream`, timing every push.

    Returns (the lifted sequence as a `LiftResult`, seconds per push (T,) float64).
    """
    import time

    stream = lifter.stream(width=width, height=height, layout=layout, min_score=min_score, record=True)
    frames = track.points if track.scores is None else np.concatenate((track.points, track.scores[..., None]), -1)
    latencies = np.empty(len(frames))
    for t, frame in enumerate(frames):
        start = time.perf_counter()
        done = stream.push(frame)
        latencies[t] = time.perf_counter() - start
        if progress is not None and done:
            progress(len(done))
    done = stream.flush()
    if progress is not None and done:
        progress(len(done))
    return stream.result(), latencies


@dataclass
class Placed:
    """The poses `rie predict` writes, and where they are."""

    poses: np.ndarray  # (T, 17, 3) float32 in `space`
    space: str  # "camera-relative" (no trajectory), "camera" or "world"
    trajectory: np.ndarray | None = None  # (T, 3) camera-space root, metres
    camera: Camera | None = None  # the camera with extrinsics, for "world"

    @property
    def root_span(self) -> float | None:
        """Metres the predicted root covers along its longest axis (None without a trajectory)."""
        if self.trajectory is None:
            return None
        return float((self.trajectory.max(axis=0) - self.trajectory.min(axis=0)).max())


def place(poses, normalized, traj_model, camera: Camera | None, smoothing=None, fps: float | None = None,
          **predict_options) -> Placed:
    """Root-relative poses (T, 17, 3) placed at the root `traj_model` predicts from the 2D:
    camera space, or world space where `camera` has extrinsics. Without a trajectory
    model the poses stay root-relative. `smoothing` filters the root (the caller has
    filtered the poses)."""
    from rie_cli.trajectory import CAMERA, CAMERA_RELATIVE, WORLD, absolute_poses, predict_trajectories, to_world

    if traj_model is None:
        return Placed(np.asarray(poses, dtype=np.float32), CAMERA_RELATIVE)
    root = predict_trajectories(traj_model, [normalized], skeleton=H36M_17, **predict_options)[0]  # (T, 3)
    if smoothing is not None:
        root = smoothing.apply(root, fps).astype(np.float32)
    absolute = absolute_poses(poses, root)
    if camera is not None and camera.has_extrinsics:
        return Placed(to_world(absolute, camera), WORLD, root, camera)
    return Placed(absolute, CAMERA, root)


def select_camera(path: Path, camera: str | None, subject: str | None) -> Camera:
    """One camera of a cameras file (schema: docs/hdf5-format.md): by index or id, with the
    extrinsics of `subject` (needed only where the file has them for several subjects)."""
    from rie_cli.cameras import load_cameras_file

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


def write_prediction(out: Path, poses: np.ndarray, prepared: PreparedKeypoints, normalized: np.ndarray,
                     settings: dict, trajectory: np.ndarray | None = None) -> Path:
    """`rie predict`'s clip file: the poses, the 2D input as used and the settings."""
    arrays = {
        "keypoints_2d": prepared.pixels.astype(np.float32),  # (T, 17, 2) pixels, H36M order, as used
        "keypoints_2d_normalized": np.asarray(normalized, dtype=np.float32),  # (T, 17, 2) model input
        "filled_mask": prepared.filled.astype(bool),  # (T, 17)
        "filled_share": np.float64(prepared.filled_share),
        "joint_names": np.array(H36M_17.joint_names),
    }
    if trajectory is not None:
        arrays["trajectory"] = np.asarray(trajectory, dtype=np.float32)  # (T, 3) camera-space root, metres
    for key, value in settings.items():
        arrays[key] = np.array(value)
    # poses_3d: (T, 17, 3) metres, in settings["space"]
    return write_clip_prediction(out, poses, arrays)


def render_prediction(output: Path, pixels: np.ndarray, poses: np.ndarray, width: int, height: int, fps: float,
                      on_phase: Callable[[str, int], None] | None, progress: Callable[[int], None] | None,
                      placed: Placed | None = None) -> Path:
    """Draw the input beside the prediction, upright: a camera without extrinsics makes
    `poses_to_world` turn camera axes (x right, y down, z forward) into x, z, -y and put
    the feet on the floor. With a trajectory the figure moves through a fixed view: in
    world space with extrinsics, else on the floor its feet show (`floor_frame`)."""
    from rie_cli.render import render_animation
    from rie_cli.trajectory import floor_frame

    azimuth, moving = RENDER_AZIMUTH, placed is not None and placed.trajectory is not None
    if moving and placed.camera is not None:
        shown, azimuth = placed.poses, placed.camera.azimuth  # world
    elif moving:
        shown = floor_frame(placed.poses, H36M_17)  # camera space -> a floor estimated from the feet
    else:
        shown = poses_to_world(poses, Camera(id="input", res_w=width, res_h=height), None)  # (T, 17, 3)
    if on_phase is not None:
        on_phase("drawing", len(poses))
    return render_animation(pixels, {"Prediction": shown}, skeleton=H36M_17, output=output, fps=fps,
                            azimuth=azimuth, resolution=(width, height), progress=progress, fixed_view=moving)
