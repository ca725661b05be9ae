"""`rie predict --video`: what to run on a video, and its detections made into a clip.

    options = PredictOptions(VideoInput(Path("clip.mp4")), ModelOptions(Path("ckpt.bin")),
                             OutputOptions(Path("clip_3d.npz"), keypoints=Path("clip_2d.npz")))

`detect_clip` runs the detector over the video (rie_cli.video), saves its keypoints
where asked (the keypoint .npz that `--keypoints` reads), and hands the track to
`rie_cli.predict` to be gap-filled, mapped and normalised exactly as a keypoint
file's track is: from there `rie predict` does not know where the 2D came from.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rie_cli.errors import RieError
from rie_cli.lifting import DEFAULT_MIN_SCORE


@dataclass
class VideoInput:
    """A video to run a 2D detector on first (`--video`, `--max-frames`); the frame size
    and rate come from the file."""

    path: Path
    detector: str = "mediapipe"  # a name in rie_cli.video.detector.DETECTORS
    max_frames: int | None = None  # only the first frames (None: all)
    min_score: float = DEFAULT_MIN_SCORE  # points scored below count as missing
    fps: float | None = None  # None: the video's


def check_video_options(video: Path | None, save: Path | None) -> None:
    """The errors found before the detector starts (`video`: None for a keypoint file)."""
    if video is None:
        if save is not None:
            raise RieError("--save-keypoints saves the detections of --video; with --keypoints they are the file")
        return
    if not Path(video).is_file():
        raise RieError(f"video not found: {video}")
    if save is not None and Path(save).suffix.lower() != ".npz":
        raise RieError(f"cannot save keypoints to '{Path(save).name}': use an .npz file")


def video_settings(video: Path | None, save: Path | None, detections) -> dict:
    """What `rie predict`'s .npz records of a video run (empty strings for a keypoint
    file); with a video, `keypoints_file` is the saved detections' file."""
    if video is None:
        return {"video": "", "detector": ""}
    return {"video": str(video), "detector": detections.detector, "keypoints_file": str(save or "")}


def detect_clip(source: VideoInput, save: Path | None, make_clip: Callable, load_models: Callable,
                on_phase: Callable[[str, int], None] | None = None, progress: Callable[[int], None] | None = None):
    """Detect, save (`save`), then `make_clip(track)` (rie_cli.predict.track_clip), while
    another thread runs `load_models()`: the detector keeps about one core busy, so
    loading and folding the lifting model, a fixed cost that a short clip would
    otherwise wait for, happens meanwhile. A model that fails to load stops the
    detection at the next frame.

    Returns (the clip, the `rie_cli.video.detector.VideoDetections`, what `load_models` returned).
    """
    from rie_cli.video.detector import create_detector, detect_video, write_detections

    def on_start(info) -> None:
        if on_phase is not None:
            on_phase("detecting", info.frames)

    def on_frame(n: int) -> None:
        if models.done() and models.exception() is not None:
            raise models.exception()
        if progress is not None:
            progress(n)

    with ThreadPoolExecutor(max_workers=1) as pool:
        models = pool.submit(load_models)
        detector = create_detector(source.detector)
        try:
            detections = detect_video(source.path, detector, max_frames=source.max_frames, on_start=on_start,
                                      progress=on_frame)
        finally:
            detector.close()
        if save is not None:
            write_detections(Path(save), detections)
        return make_clip(detections.track), detections, models.result()
