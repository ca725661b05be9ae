"""`rie predict`: 3D poses for one's own video, from the 2D keypoints a detector wrote
or from the video itself (`VideoInput`: a detector runs on every frame first).

    options = PredictOptions(KeypointInput(Path("clip.json"), width=1920, height=1080),
                             ModelOptions(Path("ckpt.bin")), OutputOptions(Path("clip_3d.npz")))
    result = predict_keypoints(options)
    np.load("clip_3d.npz")["poses_3d"]    # (T, 17, 3) camera space, metres, root-relative

The steps, each its own function so that tests can check them one by one:
1. read the file (`rie_cli.keypoint_formats.read_keypoints`), one person, in the
   file's joint layout; or with `--person` the people it names, one track each
   (`rie_cli.predict_people`, `rie_cli.tracking`); or detect one in a video
   (`rie_cli.predict_video`), which gives the same kind of track;
2. fill missing points, map COCO-17 to Human3.6M-17 and normalise with the image size
   (`rie_cli.lifting`, shared with `Lifter.lift` and `LiftStream`);
3. predict every frame from its own edge-padded window with flip augmentation
   (`Lifter.lift_prepared`, through `rie_cli.loading.load_for_inference`: the same code
   path as `rie evaluate` and `rie export predictions`), or frame by frame (`--stream`);
4. smooth, place at a trajectory model's root (`place`), write the .npz, a BVH file
   and a render.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from rie_cli import __version__
from rie_cli.bvh import check_bvh_output, poses_to_motion, write_bvh
from rie_cli.cameras import Camera, poses_to_world, select_camera
from rie_cli.devices import resolve_precision
from rie_cli.errors import RieError
from rie_cli.keypoint_formats import KeypointTrack, read_keypoints
from rie_cli.lifting import (DEFAULT_MIN_SCORE, PreparedKeypoints, image_size, normalized_keypoints,
                             prepare_keypoints)
from rie_cli.loading import load_trajectory_model
from rie_cli.predict_people import (check_person_paths, person_path, read_people_tracks, several,
                                    write_people_prediction)
from rie_cli.predict_video import VideoInput, check_video_options, detect_clip, video_settings
from rie_cli.predictions import write_clip_prediction
from rie_cli.skeleton import H36M_17
from rie_cli.trajectory import (CAMERA_RELATIVE, FLOOR, WORLD, FloorTransform, floor_frame, place_motion,
                                predict_trajectories)

RENDER_SUFFIXES = (".gif", ".mp4")
# The camera's orientation in the world is unknown, so renders show the camera-space
# pose turned upright (y down -> z up) and seen from this fixed angle: -90 would look
# along the camera's own axis; a little to the side shows depth.
RENDER_AZIMUTH = -70.0
DEFAULT_FPS = 50.0  # where neither the options nor the input state a frame rate


@dataclass
class KeypointInput:
    """What to read and how to make it ready to lift (`--keypoints`, `--format`, `--layout`, ...)."""

    path: Path  # .npy/.npz/.json file or a folder of per-frame JSON files
    format: str = "auto"  # rie_cli.keypoint_formats.FORMATS
    layout: str = "auto"  # rie_cli.keypoint_formats.LAYOUTS
    video_name: str | None = None  # the video in a VideoPose3D custom .npz holding several
    min_score: float = DEFAULT_MIN_SCORE  # points scored below count as missing
    width: int | None = None  # image size in pixels; None: the file's (or the camera's)
    height: int | None = None
    fps: float | None = None  # frame rate (smoothing, render, BVH); None: the file's `fps`, else DEFAULT_FPS
    person: str | None = None  # files with several people: a person's number or "all" (rie_cli.tracking);
    # None: the most confident person in each frame


@dataclass
class ModelOptions:
    """Which pose model and how it runs (`--checkpoint`, `--device`, `--tta`, ...)."""

    checkpoint: Path
    device: str = "cpu"
    precision: str = "fp32"  # auto, fp32, bf16 or fp16 (rie_cli.devices.resolve_precision)
    tta: bool = True  # flip test-time augmentation
    batch_size: int = 1024  # windows per forward pass
    allow_unsafe_load: bool = False
    stream: bool = False  # frame by frame through `Lifter.stream`, timing each push


@dataclass
class MotionOptions:
    """What happens to the lifted poses before they are written: smoothing, and placing
    them at a trajectory model's root (camera space, or world space with a camera)."""

    smoothing: object = None  # a rie_cli.smoothing.Smoothing, or None
    trajectory: Path | None = None  # a trajectory model checkpoint
    cameras: Path | None = None  # cameras file holding this video's camera
    camera: str | None = None  # index or id in `cameras`
    camera_subject: str | None = None  # whose extrinsics, where `cameras` has several subjects
    level: bool = True  # without extrinsics: upright on the floor the feet show (space "floor")
    foot_lock: bool = False  # planted feet kept still (rie_cli.foot_contact), contacts stored


@dataclass
class OutputOptions:
    """What `rie predict` writes: the .npz, and optionally a render and a BVH file."""

    out: Path  # the .npz
    render: Path | None = None  # .gif or .mp4
    bvh: Path | None = None
    bvh_units: str = "m"
    bvh_up: str = "y"
    bvh_helper_joints: bool = True
    force: bool = False  # replace per-person files named only once the people are known ('{person}')
    keypoints: Path | None = None  # --save-keypoints: a VideoInput's detections, as a keypoint .npz

    def paths(self) -> list[Path]:
        """Every file this will write (each checked with `atomic.check_writable` first)."""
        return [Path(p) for p in (self.out, self.render, self.bvh, self.keypoints) if p is not None]


@dataclass
class PredictOptions:
    """Every option of `rie predict`, in the groups that travel together. A new option
    is a field of the group it belongs to, not a parameter of `predict_keypoints`."""

    input: KeypointInput | VideoInput  # VideoInput (rie_cli.predict_video): a video, detected first
    model: ModelOptions
    output: OutputOptions
    motion: MotionOptions = field(default_factory=MotionOptions)


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
    people: list[int] | None = None  # with --person: the labels of the people lifted
    bvh_files: list[Path] = field(default_factory=list)  # every BVH written (one per person)
    video: object = None  # with a VideoInput: its rie_cli.video.detector.VideoDetections


# --- the whole command ---------------------------------------------------------------------

def predict_keypoints(options: PredictOptions, *, on_phase: Callable[[str, int], None] | None = None,
                      progress: Callable[[int], None] | None = None) -> PredictResult:
    """`rie predict`: lift a keypoint file to 3D, write the .npz and optionally a render
    and a BVH motion file (`PredictOptions`, field by field in its groups).

    `on_phase(description, total)` announces each long step (predicting frames,
    drawing frames); `progress(n)` reports n more of them done. With a trajectory model
    (`motion.trajectory`) the poses are placed at the root it predicts: in camera space,
    or in world space with a camera that has extrinsics (`motion.cameras`). With
    `model.stream`, the frames go one by one through `Lifter.stream` as if they arrived
    live (causal gap filling, docs/api.md) and the result carries each push's latency;
    the root, if any, is then predicted over the whole sequence. `motion.smoothing`
    filters the poses (and the root) before anything is written.
    """
    source, run, output, motion = options.input, options.model, options.output, options.motion
    video = source.path if isinstance(source, VideoInput) else None
    person = getattr(source, "person", None)  # a video's detector finds one person
    # Every check that needs no model comes first: a bad file fails before a slow load.
    checkpoint = Path(run.checkpoint)
    _check_options(output, run.batch_size, source.fps, checkpoint)
    check_video_options(video, output.keypoints)
    if several(person) and output.render is not None:
        raise RieError("--render draws one person: choose one with --person N")
    if motion.foot_lock and motion.trajectory is None:
        raise RieError("--foot-lock needs --trajectory: feet are planted where the trajectory model places the body")
    precision = resolve_precision(run.precision, run.device)
    cam = None if motion.cameras is None else select_camera(motion.cameras, motion.camera, motion.camera_subject)
    detections, models = None, None

    def load_models():
        lifter, traj_model = _load_models(checkpoint, motion.trajectory, run.device, precision, run.tta,
                                          run.allow_unsafe_load)
        lifter.inference.evaluation_form()  # folded now (cached), not on the first prediction
        return lifter, traj_model

    if video is not None:  # the models load on the core the detector leaves free
        clip, detections, models = detect_clip(source, output.keypoints, lambda track: track_clip(
            track, "auto", source.min_score, None, None), load_models, on_phase, progress)
        clips, num_frames, people_notes = [clip], len(clip.normalized), []
    else:
        width, height = source.width, source.height
        if cam is not None and width is None and height is None:
            width, height = cam.res_w, cam.res_h
        clips, num_frames, people_notes = read_clips(source, width, height)
    source = replace(source, fps=source.fps or clips[0].track.fps or DEFAULT_FPS)  # the options', else the input's
    options = replace(options, input=source)
    labels = [clip.track.person for clip in clips]
    check_person_paths(output.bvh, labels, output.force)
    lifter, traj_model = models or load_models()
    if on_phase is not None:
        on_phase("predicting", sum(len(c.normalized) for c in clips) * (2 if traj_model is not None else 1))
    people = lift_people(lifter, traj_model, clips, options, cam, precision, progress)
    first = people[0]
    settings = {
        "checkpoint": str(checkpoint), "keypoints_file": str(source.path), "width": first.clip.width,
        **video_settings(video, output.keypoints, detections),
        "height": first.clip.height, "format": first.clip.track.format, "layout": first.prepared.layout,
        "tta": run.tta, "min_score": source.min_score, "fps": source.fps,
        "video_name": getattr(source, "video_name", None) or "",
        "rie_version": __version__, "space": first.placed.space,
        "trajectory_checkpoint": "" if motion.trajectory is None else str(motion.trajectory),
        "cameras_file": "" if motion.cameras is None else str(motion.cameras), "camera": "" if cam is None else cam.id,
        "smoothing": motion.smoothing.describe(source.fps) if motion.smoothing is not None else "none",
    }
    out = Path(output.out)
    if several(person):
        write_people_prediction(out, [person.arrays() for person in people], num_frames, {**settings, "person": "all"})
    else:
        if person is not None:
            settings.update(person=first.clip.track.person, first_frame=first.clip.track.first_frame)
        write_prediction(out, first.placed.poses, first.prepared, first.normalized, settings,
                         trajectory=first.placed.trajectory, placed=first.placed)
    bvh_files = [write_prediction_bvh(person_path(Path(output.bvh), person.label), person.placed, source.fps, output)
                 for person in people] if output.bvh is not None else []
    rendered = None if output.render is None else render_prediction(
        Path(output.render), first.prepared.pixels, first.poses, first.clip.width, first.clip.height, source.fps,
        on_phase, progress, placed=first.placed, video=video)
    filled = np.concatenate([person.prepared.filled for person in people])  # (sum of T_i, 17)
    notes = list(dict.fromkeys(n for person in people for n in person.prepared.notes + person.clip.size_notes))
    latencies = [person.latencies for person in people if person.latencies is not None]
    return PredictResult(out=out, frames=num_frames if several(person) else len(first.poses),
                         format=first.clip.track.format, layout=first.prepared.layout, width=first.clip.width,
                         height=first.clip.height, filled_share=float(filled.mean()), most_filled=most_filled(filled),
                         notes=notes + people_notes, render=rendered, space=first.placed.space,
                         root_span=first.placed.root_span, bvh=bvh_files[0] if bvh_files else None,
                         latencies=np.concatenate(latencies) if latencies else None,
                         people=None if person is None else labels, bvh_files=bvh_files, video=detections)


@dataclass
class Clip:
    """A keypoint file read and made ready to lift (`read_clip`)."""

    track: KeypointTrack  # as read, in the file's layout
    prepared: PreparedKeypoints  # gap-filled Human3.6M-17 pixels
    width: int
    height: int
    normalized: np.ndarray  # (T, 17, 2) float32, the model's input
    size_notes: list[str]  # what `image_size` noticed (a size that differs from the file's)


def read_clip(keypoints: Path, fmt: str, video_name: str | None, layout: str, min_score: float,
              width: int | None, height: int | None) -> Clip:
    """Read, gap-fill, map and normalise a keypoint file (rie_cli.lifting), in that order:
    the order its errors are found in."""
    return track_clip(read_keypoints(keypoints, fmt, video_name=video_name), layout, min_score, width, height)


def track_clip(track: KeypointTrack, layout: str, min_score: float, width: int | None, height: int | None) -> Clip:
    """One track gap-filled, mapped and normalised (`read_clip` after reading)."""
    prepared = prepare_keypoints(track, layout, min_score)
    w, h, size_notes = image_size(track, width, height)
    return Clip(track, prepared, w, h, normalized_keypoints(prepared.pixels, w, h), size_notes)


def read_clips(source: KeypointInput, width: int | None, height: int | None) -> tuple[list[Clip], int, list[str]]:
    """The clips to lift, the file's frame count and notes: one clip (the file's person, or
    the most confident in each frame), or with `source.person` the people it selects
    (`rie_cli.predict_people`)."""
    if source.person is None:
        clip = read_clip(source.path, source.format, source.video_name, source.layout, source.min_score, width,
                         height)
        return [clip], len(clip.normalized), []
    return read_people_tracks(source.path, source.format, source.video_name, source.person, source.min_score,
                              lambda track: track_clip(track, source.layout, source.min_score, width, height))


def _load_models(checkpoint: Path, trajectory: Path | None, device: str, precision: str, tta: bool,
                 allow_unsafe_load: bool):
    """(a `Lifter` for the pose model, the trajectory model or None), both through
    `rie_cli.loading.load_for_inference`."""
    from rie_cli.api import Lifter
    from rie_cli.loading import load_for_inference

    lifter = Lifter(load_for_inference(checkpoint, device=device, precision=precision, tta=tta,
                                       allow_unsafe=allow_unsafe_load))
    if trajectory is None:
        return lifter, None
    return lifter, load_trajectory_model(trajectory, H36M_17, device, allow_unsafe_load).model


def lift_clips(lifter, clips: list[Clip], *, stream: bool, min_score: float, batch_size: int,
               progress: Callable[[int], None] | None = None) -> list[tuple]:
    """Lift clips whole (their windows sharing batches), or each frame by frame through
    `lifter.stream` with `stream`.

    Returns per clip (`LiftResult`, the keypoints as used, seconds per push (T,) or None).
    A stream fills missing points causally, so its filled pixels replace the clip's.
    """
    if not stream:
        results = lifter.lift_prepared_many([c.prepared for c in clips], [c.normalized for c in clips],
                                            width=clips[0].width, height=clips[0].height, batch_size=batch_size,
                                            progress=progress)
        return [(result, clip.prepared, None) for result, clip in zip(results, clips)]
    out = []
    for clip in clips:
        lifted, latencies = stream_track(lifter, clip.track, width=clip.width, height=clip.height,
                                         layout=clip.prepared.layout, min_score=min_score, progress=progress)
        prepared = PreparedKeypoints(lifted.keypoints_2d, lifted.filled, lifted.layout, clip.prepared.notes)
        out.append((lifted, prepared, latencies))
    return out


@dataclass
class LiftedPerson:
    """One person's clip after lifting, smoothing and placing: what `rie predict` writes."""

    clip: Clip
    prepared: PreparedKeypoints  # the keypoints as used (a stream's own causal filling with --stream)
    normalized: np.ndarray  # (T, 17, 2) the model's input
    poses: np.ndarray  # (T, 17, 3) root-relative, smoothed
    placed: Placed  # the poses as written
    latencies: np.ndarray | None  # with --stream: seconds per push

    @property
    def label(self) -> int | None:
        return self.clip.track.person

    def arrays(self) -> dict:
        """What `rie_cli.predict_people.write_people_prediction` takes of one person."""
        return {"label": self.label, "first_frame": self.clip.track.first_frame, "poses": self.placed.poses,
                "pixels": self.prepared.pixels, "normalized": self.normalized, "filled": self.prepared.filled,
                "trajectory": self.placed.trajectory}


def lift_people(lifter, traj_model, clips: list[Clip], options: PredictOptions, cam: Camera | None, precision: str,
                progress: Callable[[int], None] | None) -> list[LiftedPerson]:
    """Lift every clip (`lift_clips`), then smooth and place each (`place`)."""
    run, fps, smoothing = options.model, options.input.fps, options.motion.smoothing
    # Several people keep camera axes: a floor estimated per person would not be one floor.
    # A VideoInput has no `person`: its detector gives the one most confident person.
    crowd = several(getattr(options.input, "person", None))
    people = []
    for clip, (result, prepared, latencies) in zip(clips, lift_clips(
            lifter, clips, stream=run.stream, min_score=options.input.min_score, batch_size=run.batch_size,
            progress=progress)):
        poses = result.poses if smoothing is None else smoothing.apply(result.poses, fps)  # (T, 17, 3)
        placed = place(poses, result.keypoints_2d_normalized, traj_model, cam, tta=run.tta, batch_size=run.batch_size,
                       device=run.device, precision=precision, progress=progress, smoothing=smoothing, fps=fps,
                       level=options.motion.level and not crowd, foot_lock=options.motion.foot_lock)
        people.append(LiftedPerson(clip, prepared, result.keypoints_2d_normalized, poses, placed, latencies))
    return people


def write_prediction_bvh(path: Path, placed: Placed, fps: float, output: OutputOptions) -> Path:
    """The written poses as a BVH motion file (rie_cli.bvh), in the space they were placed in."""
    motion = poses_to_motion(placed.poses, H36M_17, space=placed.space,
                             root_relative=placed.space == "camera-relative",
                             helper_joints=output.bvh_helper_joints)
    return write_bvh(path, motion, fps=fps, units=output.bvh_units, up=output.bvh_up)


def _check_options(output: OutputOptions, batch_size: int, fps: float | None, checkpoint: Path) -> None:
    """The option errors found before any file is read."""
    out = Path(output.out)
    if out.suffix.lower() != ".npz":
        raise RieError(f"cannot write '{out.name}': rie predict writes an .npz file")
    if output.render is not None and Path(output.render).suffix.lower() not in RENDER_SUFFIXES:
        raise RieError(f"cannot render to '{Path(output.render).name}': use a .gif or .mp4 file")
    if batch_size < 1:
        raise RieError(f"batch size must be positive, got {batch_size}")
    if fps is not None and fps <= 0:
        raise RieError(f"fps must be positive, got {fps}")
    if output.bvh is not None:
        check_bvh_output(Path(output.bvh), output.bvh_units, output.bvh_up)
    if not checkpoint.is_file():
        raise RieError(f"checkpoint not found: {checkpoint}")


def most_filled(filled: np.ndarray, count: int = 3) -> list[tuple[str, float]]:
    """(T, 17) filled mask -> up to `count` (joint name, share of its frames filled), worst first."""
    per_joint = filled.mean(axis=0)  # (17,)
    order = np.argsort(-per_joint, kind="stable")
    return [(H36M_17.joint_names[j], float(per_joint[j])) for j in order[:count] if per_joint[j] > 0]


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
    space: str  # "camera-relative" (no trajectory), "camera", "world" or "floor"
    trajectory: np.ndarray | None = None  # (T, 3) camera-space root, metres
    camera: Camera | None = None  # the camera with extrinsics, for "world"
    contacts: np.ndarray | None = None  # (T, 2) bool, right and left foot planted, with --foot-lock
    floor: FloorTransform | None = None  # camera space -> "floor" / "world"

    @property
    def root_span(self) -> float | None:
        """Metres the predicted root covers along its longest axis (None without a trajectory)."""
        if self.trajectory is None:
            return None
        return float((self.trajectory.max(axis=0) - self.trajectory.min(axis=0)).max())


def place(poses, normalized, traj_model, camera: Camera | None, smoothing=None, fps: float = 50.0, *,
          level: bool = True, foot_lock: bool = False, **predict_options) -> Placed:
    """Root-relative poses (T, 17, 3) placed at the root `traj_model` predicts from the 2D
    (`rie_cli.trajectory.place_motion`): world space where `camera` has extrinsics,
    otherwise upright on the floor the feet show (`level`) or camera space; `foot_lock`
    keeps planted feet still. Without a trajectory model the poses stay root-relative.
    `smoothing` filters the root (the caller has filtered the poses)."""
    if traj_model is None:
        return Placed(np.asarray(poses, dtype=np.float32), CAMERA_RELATIVE)
    root = predict_trajectories(traj_model, [normalized], skeleton=H36M_17, **predict_options)[0]  # (T, 3)
    if smoothing is not None:
        root = smoothing.apply(root, fps).astype(np.float32)
    motion = place_motion(poses, root, H36M_17, fps, camera=camera, level=level, foot_lock=foot_lock)
    return Placed(motion.poses, motion.space, motion.root, camera if motion.space == WORLD else None,
                  motion.contacts, motion.floor)


def write_prediction(out: Path, poses: np.ndarray, prepared: PreparedKeypoints, normalized: np.ndarray,
                     settings: dict, trajectory: np.ndarray | None = None, placed: Placed | None = None) -> Path:
    """`rie predict`'s clip file: the poses, the 2D input as used and the settings; with
    `placed`, its foot contacts and floor (docs/predict.md, the output file)."""
    arrays = {
        "keypoints_2d": prepared.pixels.astype(np.float32),  # (T, 17, 2) pixels, H36M order, as used
        "keypoints_2d_normalized": np.asarray(normalized, dtype=np.float32),  # (T, 17, 2) model input
        "filled_mask": prepared.filled.astype(bool),  # (T, 17)
        "filled_share": np.float64(prepared.filled_share),
        "joint_names": np.array(H36M_17.joint_names),
    }
    if trajectory is not None:
        arrays["trajectory"] = np.asarray(trajectory, dtype=np.float32)  # (T, 3) camera-space root, metres
    if placed is not None and placed.contacts is not None:
        arrays["contacts"] = placed.contacts.astype(bool)  # (T, 2): right, left foot planted
        arrays["contact_joints"] = np.array([H36M_17.joint_names[j] for j in H36M_17.feet()])
    if placed is not None and placed.space == FLOOR:  # floor = camera @ floor_rotation.T + floor_offset
        arrays["floor_rotation"] = placed.floor.rotation.astype(np.float64)
        arrays["floor_offset"] = placed.floor.offset.astype(np.float64)
    for key, value in settings.items():
        arrays[key] = np.array(value)
    # poses_3d: (T, 17, 3) metres, in settings["space"]
    return write_clip_prediction(out, poses, arrays)


def render_prediction(output: Path, pixels: np.ndarray, poses: np.ndarray, width: int, height: int, fps: float,
                      on_phase: Callable[[str, int], None] | None, progress: Callable[[int], None] | None,
                      placed: Placed | None = None, video: Path | None = None) -> Path:
    """Draw the input beside the prediction (on the frames of `video`, 0 to T - 1, where
    there is one), upright: a camera without extrinsics makes
    `poses_to_world` turn camera axes (x right, y down, z forward) into x, z, -y and put
    the feet on the floor. With a trajectory the figure moves through a fixed view: in
    world space with extrinsics, else on the floor its feet show (`floor_frame`)."""
    from rie_cli.render import render_animation

    azimuth, moving = RENDER_AZIMUTH, placed is not None and placed.trajectory is not None
    if moving and placed.camera is not None:
        shown, azimuth = placed.poses, placed.camera.azimuth  # world
    elif moving and placed.space == FLOOR:
        shown = placed.poses  # levelled already
    elif moving:
        shown = floor_frame(placed.poses, H36M_17)  # camera space -> a floor estimated from the feet
    else:
        shown = poses_to_world(poses, Camera(id="input", res_w=width, res_h=height), None)  # (T, 17, 3)
    if on_phase is not None:
        on_phase("drawing", len(poses))
    return render_animation(pixels, {"Prediction": shown}, skeleton=H36M_17, output=output, fps=fps,
                            azimuth=azimuth, resolution=(width, height), progress=progress, fixed_view=moving,
                            video=video, video_frames=None if video is None else len(poses))
