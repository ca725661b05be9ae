"""Drawing pose animations: the 2D input beside 3D poses, as GIF, MP4 or one PNG still.

    from rie_cli.render import render_animation
    render_animation(kp_pixels, {"Prediction": pred_world, "Ground truth": gt_world},
                     skeleton=H36M_17, output=Path("walk.gif"), fps=50, azimuth=70,
                     resolution=(1000, 1002), size=3, downsample=2, limit=100)

The left panel shows the input keypoints (on the video's frames with `video`, on a
blank image of the camera's resolution otherwise), cropped to the person: a fixed
square around all keypoints of the drawn frames, with a margin (`crop_box`;
`crop=False` shows the whole image); one 3D panel per entry of
`poses_3d`, in world coordinates (z up, metres), viewed from `azimuth` and following
the root's horizontal position like VideoPose3D's viewer. The skeleton's left and
right sides have their own colours in every panel.

Writers: GIF through matplotlib's Pillow writer, MP4 through matplotlib's ffmpeg
writer pointed at the binary inside the `imageio-ffmpeg` wheel (no system ffmpeg,
no ImageMagick); background video frames are streamed with `imageio_ffmpeg`. The
figure is a bare `matplotlib.figure.Figure` (no pyplot state), artists are created
once and updated per frame, and the file appears only when complete (temporary
name, then rename).

`rie render` itself (`render_dataset_sequence`) picks one sequence of a prepared
file, gets its prediction from a checkpoint (through `rie_cli.api.load_for_inference`,
like `rie evaluate`) or from a predictions file, and restores world coordinates as the
authors do: the ground-truth root trajectory is added to the root-relative poses
and the camera transform is inverted.
"""

from __future__ import annotations

import difflib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from rie_cli.atomic import atomic_path
from rie_cli.cameras import Camera, image_coordinates, poses_to_world
from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton

DPI = 80  # pixels per inch of `size`: a --size 6 panel is 480 px square
RADIUS = 1.7  # metres of the world shown around the root in a 3D panel
ELEVATION = 15.0  # degrees, the viewer's height angle in the 3D panels
COLOURS = {"left": "#1f66c2", "right": "#d1342f", "centre": "#3a3a3a"}
BLANK_BACKGROUND = (0.93, 0.93, 0.93)
CROP_MARGIN = 0.2  # space around the person in the input panel, as a share of their larger extent
MIN_CROP = 64.0  # pixels: the smallest square shown, for a person too small (or one point) to frame
SUFFIXES = (".gif", ".mp4", ".png")


# --- frame bookkeeping -------------------------------------------------------------

def video_frame_count(video: Path, video_skip: int = 0) -> int:
    """Frames of `video` left after skipping `video_skip`; RieError if unreadable."""
    import imageio_ffmpeg

    video = Path(video)
    if not video.is_file():
        raise RieError(f"video not found: {video}")
    try:
        count, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
        raise RieError(f"cannot read video {video}: {_last_line(exc)}") from None
    if count - video_skip < 1:
        raise RieError(f"video {video} has {count} frames: nothing is left after skipping {video_skip}")
    return count - video_skip


def frame_indices(num_frames: int, *, downsample: int = 1, limit: int | None = None,
                  video_frames: int | None = None) -> np.ndarray:
    """Indices of the sequence frames an animation draws: every `downsample`-th frame
    of the part covered by both the poses and the video, at most `limit` of them.
    The output's frame rate is the sequence's divided by `downsample`."""
    usable = num_frames if video_frames is None else min(num_frames, video_frames)
    indices = np.arange(0, usable, downsample)
    return indices if limit is None else indices[:limit]


def frame_size(size: float, num_panels: int) -> tuple[int, int]:
    """(width, height) in pixels of a rendered frame with `num_panels` panels."""
    return round(size * num_panels * DPI), round(size * DPI)


# --- the input panel's crop --------------------------------------------------------

def crop_box(keypoints_2d: np.ndarray, image_size: tuple[int, int],
             margin: float = CROP_MARGIN) -> tuple[float, float, float, float]:
    """The part of the image the input panel shows: (x0, y0, x1, y1) pixels, a square.

    keypoints_2d: (T, J, 2) pixels of the frames drawn. The square holds every finite
    keypoint of all of them, with `margin` times the person's larger extent added on
    each side, so it stays fixed over the clip (a box following the person would make
    the background jump). It is moved inside the image where the image is large enough
    and is never larger than the image's larger side. No finite keypoint: the whole image.
    """
    w, h = image_size
    points = np.asarray(keypoints_2d, dtype=np.float64).reshape(-1, 2)
    points = points[np.isfinite(points).all(axis=1)]  # (P, 2)
    if len(points) == 0:
        return 0.0, 0.0, float(w), float(h)
    low, high = points.min(axis=0), points.max(axis=0)
    side = float(np.max(high - low)) * (1 + 2 * margin)
    side = min(max(side, MIN_CROP), float(max(w, h)))
    centre = (low + high) / 2
    x0 = _place(centre[0] - side / 2, side, w)
    y0 = _place(centre[1] - side / 2, side, h)
    return x0, y0, x0 + side, y0 + side


def _place(start: float, side: float, extent: int) -> float:
    """Move an interval [start, start + side) inside [0, extent) if it fits; centre it otherwise."""
    if side >= extent:
        return (extent - side) / 2
    return float(min(max(start, 0.0), extent - side))


def _crop_image(image: np.ndarray, box) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The pixels of `image` (H, W, 3) inside `box`, and their extent for imshow."""
    h, w = image.shape[:2]
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    return image[y0:y1, x0:x1], (x0, x1, y1, y0)


# --- the figure --------------------------------------------------------------------

def _side_colour(skeleton: Skeleton, joint: int) -> str:
    if joint in skeleton.joints_left:
        return COLOURS["left"]
    if joint in skeleton.joints_right:
        return COLOURS["right"]
    return COLOURS["centre"]


class _Scene:
    """The figure and its artists; `show(t, image)` moves every artist to frame t."""

    def __init__(self, keypoints_2d, poses_3d, skeleton, azimuth, size, first_image, box,
                 fixed_frames: np.ndarray | None = None):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the "3d" projection)

        self.keypoints = keypoints_2d  # (T, J, 2) pixels
        self.poses = list(poses_3d.values())  # each (T, J, 3) world metres
        self.bones = [(j, p) for j, p in enumerate(skeleton.parents) if p >= 0]
        panels = 1 + len(self.poses)
        self.fig = Figure(figsize=(size * panels, size), dpi=DPI)
        FigureCanvasAgg(self.fig)
        self.fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.92, wspace=0.05)

        ax = self.fig.add_subplot(1, panels, 1)
        ax.set_title("Input")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor(BLANK_BACKGROUND)  # where the box reaches past the image
        self.box = box  # (x0, y0, x1, y1) pixels shown
        if first_image is None:  # blank: the background colour fills the panel
            self.image = None
        else:  # only the shown part of each video frame is handed to matplotlib
            pixels, extent = _crop_image(first_image, box)
            self.image = ax.imshow(pixels, extent=extent)
        ax.set_xlim(box[0], box[2])
        ax.set_ylim(box[3], box[1])
        ax.set_aspect("equal")
        colours = [_side_colour(skeleton, j) for j, _ in self.bones]
        self.lines_2d = [ax.plot([], [], color=c, lw=2, solid_capstyle="round")[0] for c in colours]
        self.points_2d = ax.scatter(keypoints_2d[0, :, 0], keypoints_2d[0, :, 1], s=12, zorder=10,
                                    c=[_side_colour(skeleton, j) for j in range(skeleton.num_joints)],
                                    edgecolors="white", linewidths=0.6)

        # Fixed view: one floor area for the whole clip (every panel the same), so that a
        # person who walks is seen walking through it; otherwise the view follows the root.
        self.fixed = None if fixed_frames is None else _floor_area([p[fixed_frames] for p in self.poses])
        radius = RADIUS if self.fixed is None else self.fixed[2]
        # Heights from the floor to the highest joint (at least RADIUS), at the same scale
        # as the horizontal axes: the box is as many times taller as that range is.
        top = max([RADIUS] + [float(np.nanmax(p[..., 2])) + 0.05 for p in self.poses])
        self.axes_3d, self.lines_3d = [], []
        for index, title in enumerate(poses_3d):
            ax3 = self.fig.add_subplot(1, panels, index + 2, projection="3d")
            ax3.view_init(elev=ELEVATION, azim=azimuth)
            ax3.set_zlim3d(0, top)
            # Equal scale on all axes; the zoom stands in for VideoPose3D's `ax.dist = 7.5`.
            ax3.set_box_aspect((1, 1, top / radius), zoom=1.15)
            if self.fixed is not None:
                cx, cy, side = self.fixed
                ax3.set_xlim3d(cx - side / 2, cx + side / 2)
                ax3.set_ylim3d(cy - side / 2, cy + side / 2)
            ax3.set_xticklabels([])
            ax3.set_yticklabels([])
            ax3.set_zticklabels([])
            ax3.set_title(title)
            self.axes_3d.append(ax3)
            self.lines_3d.append([ax3.plot([0, 0], [0, 0], [0, 0], color=c, lw=2.5)[0] for c in colours])

    def show(self, t: int, image: np.ndarray | None) -> None:
        if image is not None:
            self.image.set_data(_crop_image(image, self.box)[0])
        kp = self.keypoints[t]  # (J, 2)
        for line, (j, p) in zip(self.lines_2d, self.bones):
            line.set_data([kp[j, 0], kp[p, 0]], [kp[j, 1], kp[p, 1]])
        self.points_2d.set_offsets(kp)
        for ax, lines, poses in zip(self.axes_3d, self.lines_3d, self.poses):
            pose = poses[t]  # (J, 3)
            if self.fixed is None:
                root_x, root_y = pose[0, 0], pose[0, 1]  # the view follows the root over the floor
                ax.set_xlim3d(root_x - RADIUS / 2, root_x + RADIUS / 2)
                ax.set_ylim3d(root_y - RADIUS / 2, root_y + RADIUS / 2)
            for line, (j, p) in zip(lines, self.bones):
                line.set_data_3d([pose[j, 0], pose[p, 0]], [pose[j, 1], pose[p, 1]], [pose[j, 2], pose[p, 2]])

    def close(self) -> None:
        self.fig.clear()


def _floor_area(poses: list[np.ndarray]) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square of floor every pose of the clip stays in."""
    xy = np.concatenate([p[..., :2].reshape(-1, 2) for p in poses])  # (T * J * panels, 2)
    low, high = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
    side = max(RADIUS, float((high - low).max()) + 0.4)  # a margin of 0.2 m on each side
    centre = (low + high) / 2
    return float(centre[0]), float(centre[1]), side


def _video_frames(video: Path, skip: int, wanted: np.ndarray) -> Iterator[np.ndarray]:
    """The video frames at sequence indices `wanted` (ascending), streamed; frame
    `skip` of the video is sequence frame 0."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(video), pix_fmt="rgb24")
    try:
        meta = next(reader)
        w, h = meta["size"]
        wanted_iter = iter(wanted.tolist())
        target = next(wanted_iter, None)
        for index, raw in enumerate(reader):
            if target is None:
                break
            if index - skip == target:
                yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
                target = next(wanted_iter, None)
        if target is not None:
            raise RieError(f"video {video} ended before sequence frame {target}")
    except (RuntimeError, OSError, StopIteration) as exc:
        raise RieError(f"cannot read video {video}: {_last_line(exc)}") from None
    finally:
        reader.close()


# --- the entry point ---------------------------------------------------------------

def render_animation(
    keypoints_2d: np.ndarray,
    poses_3d: dict[str, np.ndarray],
    *,
    skeleton: Skeleton,
    output: Path,
    fps: float,
    azimuth: float,
    resolution: tuple[int, int],
    video: Path | None = None,
    video_skip: int = 0,
    size: float = 6,
    downsample: int = 1,
    limit: int | None = None,
    bitrate: int = 3000,
    frame: int | None = None,
    crop: bool = True,
    progress: Callable[[int], None] | None = None,
    fixed_view: bool = False,
) -> Path:
    """Write an animation (.gif, .mp4) or, with `frame`, one still picture (.png).

    keypoints_2d: (T, J, 2) pixels; poses_3d: title -> (T, J, 3) world metres, z up.
    `resolution` (w, h) is the image the keypoints belong to (the video's frames when
    `video` is given). `crop`: the input panel shows the person (`crop_box` of the drawn
    frames), not the whole image. `fixed_view`: the 3D panels show one floor area
    holding the whole clip (the frames drawn; for poses that move through the scene)
    instead of following the root.
    `frame` is a sequence frame index (before `downsample`). `progress(n)` is called
    with the number of frames drawn since the last call; `frame_indices` tells how
    many there will be. Returns `output`.
    """
    output = Path(output)
    suffix = output.suffix.lower()
    keypoints_2d = np.asarray(keypoints_2d, dtype=np.float32)
    _check_arguments(keypoints_2d, poses_3d, skeleton, suffix, output, fps, size, downsample,
                     limit, frame, video_skip)
    poses_3d = {title: np.asarray(p, dtype=np.float32) for title, p in poses_3d.items()}
    indices = _drawn_frames(len(keypoints_2d), frame=frame, downsample=downsample, limit=limit, video=video,
                            video_skip=video_skip)
    images = _video_frames(Path(video), video_skip, indices) if video is not None else None
    first_image = next(images) if images is not None else None
    w, h = resolution if first_image is None else first_image.shape[1::-1]
    box = crop_box(keypoints_2d[indices], (w, h)) if crop else (0.0, 0.0, float(w), float(h))

    output.parent.mkdir(parents=True, exist_ok=True)
    scene = _Scene(keypoints_2d, poses_3d, skeleton, azimuth, size, first_image, box,
                   indices if fixed_view else None)
    try:
        with atomic_path(output) as partial:
            if suffix == ".png":
                _write_still(scene, partial, int(indices[0]), first_image, progress)
            else:
                _write_movie(scene, partial, suffix, indices, first_image, images,
                             fps / downsample, bitrate, progress)
    finally:
        scene.close()
        if images is not None:
            images.close()
    return output


def _drawn_frames(num_frames: int, *, frame: int | None, downsample: int, limit: int | None,
                  video: Path | None, video_skip: int) -> np.ndarray:
    """The sequence frames to draw: the one `frame`, or every `downsample`-th up to `limit`;
    with a video, none past its end."""
    video_frames = None if video is None else video_frame_count(video, video_skip)
    if frame is not None:
        usable = frame_indices(num_frames, video_frames=video_frames)
        if not 0 <= frame < len(usable):
            raise RieError(f"--frame {frame} is out of range: the sequence has {len(usable)} frames "
                           f"(0 to {len(usable) - 1})")
        return np.array([frame])
    return frame_indices(num_frames, downsample=downsample, limit=limit, video_frames=video_frames)


def _write_still(scene, path, index: int, image, progress) -> None:
    scene.show(index, image)
    scene.fig.savefig(path, dpi=DPI, format="png")
    if progress is not None:
        progress(1)


def _write_movie(scene, path, suffix, indices, first_image, images, fps, bitrate, progress) -> None:
    import matplotlib
    from matplotlib.animation import FFMpegWriter, PillowWriter

    if suffix == ".gif":
        writer = PillowWriter(fps=fps)
        ffmpeg = matplotlib.rcParams["animation.ffmpeg_path"]
    else:
        import imageio_ffmpeg

        writer = FFMpegWriter(fps=fps, bitrate=bitrate, codec="h264")
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    try:
        with matplotlib.rc_context({"animation.ffmpeg_path": ffmpeg}):
            with writer.saving(scene.fig, str(path), dpi=DPI):
                for n, t in enumerate(indices):
                    image = first_image if n == 0 or images is None else next(images)
                    scene.show(int(t), image)
                    writer.grab_frame()
                    if progress is not None:
                        progress(1)
    except subprocess.CalledProcessError as exc:
        raise RieError(f"ffmpeg failed while writing {path.suffix} output: {_last_line(exc)}") from None


def _check_output(output: Path, frame: int | None) -> None:
    suffix = output.suffix.lower()
    if suffix not in SUFFIXES:
        raise RieError(f"cannot write '{output.name}': the output must end in .gif, .mp4 or .png")
    if suffix == ".png" and frame is None:
        raise RieError("a .png output is one still picture: choose its frame with --frame N")
    if frame is not None and suffix != ".png":
        raise RieError(f"--frame writes one still picture: use a .png output, not {suffix}")


def _check_arguments(keypoints_2d, poses_3d, skeleton, suffix, output, fps, size, downsample,
                     limit, frame, video_skip) -> None:
    _check_output(output, frame)
    if keypoints_2d.ndim != 3 or keypoints_2d.shape[-1] != 2 or keypoints_2d.shape[1] != skeleton.num_joints:
        raise RieError(f"2D keypoints must be (frames, {skeleton.num_joints}, 2), got {keypoints_2d.shape}")
    if len(keypoints_2d) == 0:
        raise RieError("nothing to render: the sequence has no frames")
    for title, poses in poses_3d.items():
        if np.shape(poses) != keypoints_2d.shape[:2] + (3,):
            raise RieError(f"'{title}' poses are {np.shape(poses)}, expected {keypoints_2d.shape[:2] + (3,)}")
    if fps <= 0 or size <= 0:
        raise RieError(f"fps and size must be positive, got {fps} and {size}")
    if downsample < 1:
        raise RieError(f"--downsample must be >= 1, got {downsample}")
    if limit is not None and limit < 1:
        raise RieError(f"--limit must be >= 1, got {limit}")
    if video_skip < 0:
        raise RieError(f"--video-skip must be >= 0, got {video_skip}")


def _last_line(exc: BaseException) -> str:
    """ffmpeg's reason for failing is the last line of its log (the first is a banner)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


# --- `rie render`: one sequence of a prepared file ---------------------------------

@dataclass
class RenderResult:
    """What `render_dataset_sequence` wrote."""

    path: Path
    description: str
    frames: int
    frame_size: tuple[int, int]  # (width, height) pixels


def render_dataset_sequence(
    data: Path,
    subject: str,
    action: str,
    camera: int,
    output: Path,
    *,
    keypoints: str | None = None,
    checkpoint: Path | None = None,
    predictions: Path | None = None,
    ground_truth: bool = True,
    tta: bool = True,
    device: str = "cpu",
    allow_unsafe_load: bool = False,
    video: Path | None = None,
    video_skip: int = 0,
    size: float = 6,
    downsample: int = 1,
    limit: int | None = None,
    bitrate: int = 3000,
    fps: float | None = None,
    frame: int | None = None,
    crop: bool = True,
    smoothing=None,
    on_start: Callable[[int, str], None] | None = None,
    progress: Callable[[int], None] | None = None,
    trajectory: Path | None = None,
) -> RenderResult:
    """`rie render`: draw one sequence of a prepared file with its prediction.

    With `trajectory` (a trajectory model) the prediction is placed at its predicted
    root and drawn moving through the scene (`fixed_view`), beside the ground truth.

    `fps` is the output's frame rate (default: the data's divided by `downsample`).
    `smoothing` (a `rie_cli.smoothing.Smoothing`) filters the prediction first.
    `on_start(frames, description)` is called once the number of frames to draw is
    known, then `progress(n)` while drawing.
    """
    output = Path(output)
    _check_output(output, frame)
    video_frames = None if video is None else video_frame_count(video, video_skip)  # before predicting
    plan = plan_dataset_render(data, subject, action, camera, keypoints, checkpoint=checkpoint,
                               predictions=predictions, ground_truth=ground_truth, tta=tta, device=device,
                               allow_unsafe_load=allow_unsafe_load, trajectory=trajectory,
                               smoothing=smoothing)
    if frame is not None:
        frames = 1
    else:
        frames = len(frame_indices(len(plan.keypoints_2d), downsample=max(downsample, 1), limit=limit,
                                   video_frames=video_frames))
    if on_start is not None:
        on_start(frames, plan.description)
    sequence_fps = plan.fps if fps is None else fps * downsample
    render_animation(plan.keypoints_2d, plan.poses_3d, skeleton=plan.skeleton, output=output,
                     fps=sequence_fps, azimuth=plan.camera.azimuth,
                     resolution=(plan.camera.res_w, plan.camera.res_h), video=video, video_skip=video_skip,
                     size=size, downsample=downsample, limit=limit, bitrate=bitrate, frame=frame,
                     crop=crop, progress=progress, fixed_view=plan.fixed_view)
    return RenderResult(path=output, description=plan.description, frames=frames,
                        frame_size=frame_size(size, 1 + len(plan.poses_3d)))


@dataclass
class RenderPlan:
    """What `rie render` will draw (the CLI sizes its progress bar from `frames`)."""

    keypoints_2d: np.ndarray  # (T, J, 2) pixels
    poses_3d: dict[str, np.ndarray]  # title -> (T, J, 3) world metres
    skeleton: Skeleton
    camera: Camera
    fps: float
    description: str
    fixed_view: bool = False  # the poses move through the scene: draw them in one fixed area


def plan_dataset_render(
    data: Path,
    subject: str,
    action: str,
    camera: int,
    keypoints: str | None = None,
    *,
    checkpoint: Path | None = None,
    predictions: Path | None = None,
    ground_truth: bool = True,
    tta: bool = True,
    device: str = "cpu",
    allow_unsafe_load: bool = False,
    trajectory: Path | None = None,
    smoothing=None,
) -> RenderPlan:
    """Load one (subject, action, camera) sequence and its prediction in world space.

    Without `trajectory` the prediction gets the ground-truth root (the authors'
    rendering); with it, the root the trajectory model predicts.
    """
    from rie_cli.data.dataset import PoseDataset

    if (checkpoint is None) == (predictions is None):
        raise RieError("give either --checkpoint or --predictions (exactly one)")
    dataset = PoseDataset(data)
    sequence = _find_sequence(dataset, subject, action, camera, keypoints)
    if checkpoint is not None:
        prediction = _predict_one(checkpoint, sequence, dataset.skeleton, tta, device, allow_unsafe_load)
    else:
        prediction = _read_prediction(predictions, sequence)

    if smoothing is not None:
        prediction = smoothing.apply(prediction, dataset.fps)
    cam = sequence.camera
    if trajectory is not None:
        from rie_cli.loading import load_trajectory_model
        from rie_cli.trajectory import placed_poses, predict_trajectories

        traj_model = load_trajectory_model(trajectory, dataset.skeleton, device, allow_unsafe_load).model
        root = predict_trajectories(traj_model, [sequence.keypoints_2d], skeleton=dataset.skeleton, tta=tta,
                                    device=device)[0]  # (T, 3)
        if smoothing is not None:
            root = smoothing.apply(root, dataset.fps)
        poses = {"Prediction": placed_poses(prediction, root, cam, dataset.skeleton)[0]}
    else:
        poses = {"Prediction": poses_to_world(prediction, cam, sequence.trajectory)}
    if ground_truth and sequence.positions_3d is not None:
        poses["Ground truth"] = poses_to_world(sequence.positions_3d, cam, sequence.trajectory)
    return RenderPlan(
        keypoints_2d=image_coordinates(sequence.keypoints_2d, cam.res_w, cam.res_h),
        poses_3d=poses,
        skeleton=dataset.skeleton,
        camera=cam,
        fps=dataset.fps,
        description=f"{subject} / {action} / camera {camera}",
        fixed_view=trajectory is not None,
    )


def _find_sequence(dataset, subject: str, action: str, camera: int, keypoints: str | None):
    """The one (subject, action, camera) sequence, or a RieError naming what the file has."""
    if keypoints is None:  # ground-truth 2D where the file has it
        keypoints = "gt" if "gt" in dataset.keypoint_sources else dataset.keypoint_sources[0]
    if subject not in dataset.subjects():
        raise RieError(f"unknown subject '{subject}' (the file has: {', '.join(dataset.subjects())})")
    known_actions = dataset.actions(subject)
    if action not in known_actions:
        close = difflib.get_close_matches(action, known_actions, n=3)
        hint = f"; did you mean {', '.join(repr(a) for a in close)}?" if close else ""
        raise RieError(f"unknown action '{action}' of subject {subject}{hint}")
    n_cameras = len(dataset.cameras.for_subject(subject))
    if not 0 <= camera < n_cameras:
        raise RieError(f"unknown camera {camera}: subject {subject} has cameras 0 to {n_cameras - 1}")
    candidates = dataset.sequences([subject], keypoints, actions=[action], cameras=[camera])
    # Actions are matched by prefix: keep the exact one.
    return next(s for s in candidates if s.action == action)


def _read_prediction(predictions: Path, sequence) -> np.ndarray:
    """The sequence's (T, J, 3) root-relative camera-space poses from a predictions file."""
    from rie_cli.predictions import read_sequence_poses

    subject, action, camera = sequence.subject, sequence.action, sequence.camera_index
    prediction = read_sequence_poses(predictions, subject, action, camera)
    if prediction.shape != sequence.keypoints_2d.shape[:2] + (3,):
        raise RieError(f"{Path(predictions).name} holds {prediction.shape} for {subject} / {action} "
                       f"camera {camera}, but the sequence is {sequence.keypoints_2d.shape[:2] + (3,)}")
    return prediction


def _predict_one(checkpoint, sequence, skeleton, tta, device, allow_unsafe_load) -> np.ndarray:
    from rie_cli.loading import load_models

    loaded, _ = load_models(checkpoint, None, skeleton, "the data", device=device, tta=tta,
                            allow_unsafe=allow_unsafe_load)
    return loaded.predict([sequence.keypoints_2d])[0]
