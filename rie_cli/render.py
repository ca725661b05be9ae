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

`rie render` itself (one sequence of a prepared file) is `rie_cli.render_dataset`;
`rie predict --render` draws through `render_animation` too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from rie_cli.atomic import atomic_path
from rie_cli.errors import RieError
from rie_cli.skeleton import Skeleton
from rie_cli.video.reader import last_line

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
        raise RieError(f"cannot read video {video}: {last_line(exc)}") from None
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
    """The video frames at sequence indices `wanted` (ascending), streamed upright
    (`rie_cli.video.reader`); frame `skip` of the video is sequence frame 0."""
    from rie_cli.video.reader import VideoReader

    reader = VideoReader(video, max_frames=skip + int(wanted[-1]) + 1)
    try:
        wanted_iter = iter(wanted.tolist())
        target = next(wanted_iter, None)
        for index, image in enumerate(reader):
            if target is None:
                break
            if index - skip == target:
                yield image
                target = next(wanted_iter, None)
        if target is not None:
            raise RieError(f"video {video} ended before sequence frame {target}")
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
    video_frames: int | None = None,
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
    many there will be. `video_frames`: the video's frame count where the caller knows
    it (otherwise it is counted, which decodes the whole file once). Returns `output`.
    """
    output = Path(output)
    suffix = output.suffix.lower()
    keypoints_2d = np.asarray(keypoints_2d, dtype=np.float32)
    _check_arguments(keypoints_2d, poses_3d, skeleton, suffix, output, fps, size, downsample,
                     limit, frame, video_skip)
    poses_3d = {title: np.asarray(p, dtype=np.float32) for title, p in poses_3d.items()}
    if video is not None and video_frames is None:
        video_frames = video_frame_count(video, video_skip)
    indices = _drawn_frames(len(keypoints_2d), frame=frame, downsample=downsample, limit=limit,
                            video_frames=video_frames)
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
                  video_frames: int | None) -> np.ndarray:
    """The sequence frames to draw: the one `frame`, or every `downsample`-th up to `limit`;
    with a video (`video_frames` of them after the skipped ones), none past its end."""
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
        raise RieError(f"ffmpeg failed while writing {path.suffix} output: {last_line(exc)}") from None


def check_output(output: Path, frame: int | None) -> None:
    suffix = output.suffix.lower()
    if suffix not in SUFFIXES:
        raise RieError(f"cannot write '{output.name}': the output must end in .gif, .mp4 or .png")
    if suffix == ".png" and frame is None:
        raise RieError("a .png output is one still picture: choose its frame with --frame N")
    if frame is not None and suffix != ".png":
        raise RieError(f"--frame writes one still picture: use a .png output, not {suffix}")


def _check_arguments(keypoints_2d, poses_3d, skeleton, suffix, output, fps, size, downsample,
                     limit, frame, video_skip) -> None:
    check_output(output, frame)
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
