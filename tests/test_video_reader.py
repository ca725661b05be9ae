"""`rie_cli.video.reader`: frames streamed upright, size, fps and rotation from the file, errors."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from rie_cli.errors import RieError
from rie_cli.video.reader import VideoReader, display_rotation

W, H = 64, 32  # landscape as stored


def _landscape_clip(path, frames=6, fps=25):
    """Frames whose left half is red and right half blue, brightening frame by frame."""
    writer = imageio_ffmpeg.write_frames(str(path), (W, H), fps=fps, macro_block_size=1, quality=10)
    writer.send(None)
    for t in range(frames):
        image = np.zeros((H, W, 3), np.uint8)
        image[:, : W // 2, 0] = 100 + 20 * t
        image[:, W // 2:, 2] = 100 + 20 * t
        writer.send(np.ascontiguousarray(image))
    writer.close()
    return path


def _with_rotation(source, target, degrees):
    """A copy of `source` whose display matrix asks players to turn it by `degrees`."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                    "-display_rotation", str(degrees), "-i", str(source), "-c", "copy", str(target)], check=True)
    return target


def test_frames_size_and_fps_from_the_file(tmp_path):
    clip = _landscape_clip(tmp_path / "clip.mp4")
    with VideoReader(clip) as video:
        assert (video.info.width, video.info.height, video.info.fps, video.info.rotation) == (W, H, 25.0, 0)
        frames = [frame.copy() for frame in video]
    assert len(frames) == 6 and frames[0].shape == (H, W, 3) and frames[0].dtype == np.uint8
    assert frames[0][:, : W // 2 - 4, 0].mean() == pytest.approx(100, abs=6)  # red on the left
    assert frames[5][:, W // 2 + 4:, 2].mean() == pytest.approx(200, abs=6)  # blue on the right, brighter


def test_max_frames_stops_early(tmp_path):
    clip = _landscape_clip(tmp_path / "clip.mp4")
    video = VideoReader(clip, max_frames=2)
    assert len(list(video)) == 2 and video.info.frames == 2


def test_rotation_metadata_is_honoured(tmp_path):
    """A phone stores landscape pixels and a rotation tag: the frames come out as shown,
    portrait, turned as a player turns them (display rotation +90 is a quarter turn
    counter-clockwise: the left half, red, ends at the bottom)."""
    rotated = _with_rotation(_landscape_clip(tmp_path / "clip.mp4"), tmp_path / "rotated.mp4", 90)
    assert display_rotation(rotated) == 90
    with VideoReader(rotated) as video:
        assert (video.info.width, video.info.height, video.info.rotation) == (H, W, 90)
        frame = next(iter(video))
    assert frame.shape == (W, H, 3)
    top, bottom = frame[: W // 2 - 4], frame[W // 2 + 4:]
    assert top[..., 2].mean() > 80 and top[..., 0].mean() < 20  # blue
    assert bottom[..., 0].mean() > 80 and bottom[..., 2].mean() < 20  # red


def test_errors_are_one_line(tmp_path):
    with pytest.raises(RieError, match="video not found"):
        VideoReader(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(RieError, match="cannot read video"):
        VideoReader(bad)
    with pytest.raises(RieError, match="--max-frames must be at least 1"):
        VideoReader(_landscape_clip(tmp_path / "clip.mp4"), max_frames=0)
