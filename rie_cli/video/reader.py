"""Video frames streamed from a file, upright, one at a time.

    with VideoReader(Path("clip.mp4"), max_frames=300) as video:
        video.info.width, video.info.height, video.info.fps   # of the frames as shown
        for frame in video:        # (height, width, 3) uint8 RGB
            ...

The frames come from the ffmpeg binary inside the `imageio-ffmpeg` wheel through a
pipe (`imageio_ffmpeg.read_frames`): one frame is in memory at a time, whatever the
length of the video. ffmpeg turns frames by the file's display rotation (what a
phone records when held upright: landscape pixels and a "rotate 90" tag), so the
frames, their size and every keypoint found on them are in the picture as a player
shows it. The frame rate and size come from the file.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from rie_cli.errors import RieError


@dataclass(frozen=True)
class VideoInfo:
    """What the file says about its video stream (sizes after rotation)."""

    path: Path
    width: int  # pixels of the frames as read (upright)
    height: int
    fps: float
    frames: int | None  # estimated from the duration (for progress bars); None where unknown
    rotation: int  # degrees of display rotation the file asks for (0, 90, 180, 270), applied by the reader


class VideoReader:
    """The frames of one video file, streamed (`max_frames`: stop after that many).

    Iterate once; `close()` (or the `with` block) ends the ffmpeg process early.
    """

    def __init__(self, path: str | Path, *, max_frames: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise RieError(f"video not found: {self.path}")
        if max_frames is not None and max_frames < 1:
            raise RieError(f"--max-frames must be at least 1, got {max_frames}")
        self.max_frames = max_frames
        self._frames, meta = _open(self.path)
        estimate = _estimated_frames(meta)
        if estimate is not None and max_frames is not None:
            estimate = min(estimate, max_frames)
        width, height = meta["size"]
        self.info = VideoInfo(self.path, int(width), int(height), float(meta["fps"]), estimate,
                              display_rotation(self.path))
        if self.info.fps <= 0:
            self.close()
            raise RieError(f"cannot read video {self.path}: the file states no frame rate")

    def __iter__(self) -> Iterator[np.ndarray]:
        shape = (self.info.height, self.info.width, 3)
        try:
            for index, raw in enumerate(self._frames):
                if self.max_frames is not None and index >= self.max_frames:
                    break
                yield np.frombuffer(raw, dtype=np.uint8).reshape(shape)
        except (RuntimeError, OSError) as exc:
            raise RieError(f"cannot read video {self.path}: {last_line(exc)}") from None
        finally:
            self.close()

    def close(self) -> None:
        self._frames.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open(path: Path):
    """(the frame generator positioned after its metadata, the metadata) of `path`."""
    import imageio_ffmpeg

    # imageio-ffmpeg warns (logging) whenever the frames' size differs from the stored
    # one, which is exactly what honouring a rotation does.
    logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)
    frames = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(frames)
    except (RuntimeError, OSError, StopIteration, IndexError, AttributeError) as exc:
        frames.close()
        raise RieError(f"cannot read video {path}: {last_line(exc)}") from None
    return frames, meta


def _estimated_frames(meta: dict) -> int | None:
    duration, fps = float(meta.get("duration") or 0), float(meta.get("fps") or 0)
    return round(duration * fps) if duration > 0 and fps > 0 else None


_ROTATION = re.compile(r"rotation of (-?[0-9.]+) degrees|rotate\s*:\s*(-?[0-9]+)")


def display_rotation(path: Path) -> int:
    """Degrees (0, 90, 180 or 270) the file's display matrix or `rotate` tag turns its
    frames, from ffmpeg's description of the file (0 where it states none)."""
    import imageio_ffmpeg

    try:
        described = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                                   capture_output=True, text=True, timeout=30, errors="replace").stderr
    except (OSError, subprocess.SubprocessError):
        return 0
    match = _ROTATION.search(described)
    if match is None:
        return 0
    return round(float(match.group(1) or match.group(2))) % 360


def last_line(exc: BaseException) -> str:
    """ffmpeg's reason for failing is the last line of its log (the first is a banner)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
