"""`rie_cli.render` and `rie render`: frames, sizes, stills, video backgrounds, errors."""

from __future__ import annotations


import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rie_cli.cameras import Camera, poses_to_world, world_to_camera
from rie_cli.cli import app
from rie_cli.errors import RieError
from rie_cli.render import CROP_MARGIN, MIN_CROP, _crop_image, crop_box, frame_indices, frame_size, render_animation
from rie_cli.skeleton import H36M_17

RES = (320, 240)  # (w, h) of the synthetic camera image


def _walk(frames: int = 30, seed: int = 0):
    """A person-like 17-joint pose drifting forward: pixels (T, 17, 2), world (T, 17, 3)."""
    rng = np.random.default_rng(seed)
    rest = np.array([[0, 0, 0.9], [-0.1, 0, 0.9], [-0.1, 0, 0.5], [-0.1, 0, 0.1], [0.1, 0, 0.9],
                     [0.1, 0, 0.5], [0.1, 0, 0.1], [0, 0, 1.15], [0, 0, 1.4], [0, 0, 1.5],
                     [0, 0, 1.6], [0.2, 0, 1.4], [0.3, 0, 1.15], [0.35, 0, 0.9], [-0.2, 0, 1.4],
                     [-0.3, 0, 1.15], [-0.35, 0, 0.9]], dtype=np.float32)
    drift = np.zeros((frames, 1, 3), np.float32)
    drift[:, 0, 1] = np.linspace(0, 1, frames)
    world = rest[None] + drift + rng.normal(scale=0.01, size=(frames, 17, 3)).astype(np.float32)
    pixels = np.stack([160 + world[..., 0] * 100, 220 - world[..., 2] * 120], axis=-1).astype(np.float32)
    return pixels, world


def _render(tmp_path, name, **kwargs):
    pixels, world = _walk(kwargs.pop("frames", 30))
    args = dict(skeleton=H36M_17, fps=50, azimuth=70, resolution=RES, size=2)
    args.update(kwargs)
    return render_animation(pixels, {"Prediction": world + 0.02, "Ground truth": world},
                            output=tmp_path / name, **args)


def test_gif_has_expected_frames_and_size(tmp_path):
    drawn = []
    out = _render(tmp_path, "walk.gif", downsample=2, limit=9, progress=drawn.append)
    with Image.open(out) as im:
        assert im.n_frames == 9 == sum(drawn)
        assert im.size == frame_size(2, 3) == (480, 160)
        assert im.info["duration"] == 40  # 50 fps / downsample 2 = 25 fps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.gif"]  # no temporary files left


def test_mp4_has_expected_frames_and_size(tmp_path):
    out = _render(tmp_path, "walk.mp4", frames=25, downsample=3)
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == len(frame_indices(25, downsample=3)) == 9
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    reader.close()
    assert tuple(meta["size"]) == (480, 160)
    assert meta["fps"] == pytest.approx(50 / 3, rel=1e-3)


def test_png_still_draws_both_sides_in_their_colours(tmp_path):
    out = _render(tmp_path, "still.png", frame=5, size=3)
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert image.shape == (240, 720, 3)
    left_blue = (image[..., 2] > 150) & (image[..., 0] < 80)  # COLOURS["left"]
    right_red = (image[..., 0] > 180) & (image[..., 1] < 90) & (image[..., 2] < 90)  # COLOURS["right"]
    for panel in range(3):  # the input and the two 3D panels each show both sides
        cols = slice(panel * 240, (panel + 1) * 240)
        assert left_blue[:, cols].sum() > 20 and right_red[:, cols].sum() > 20


def test_video_background_follows_video_skip(tmp_path):
    video = tmp_path / "bg.mp4"
    writer = imageio_ffmpeg.write_frames(str(video), RES, fps=25, macro_block_size=1)
    writer.send(None)
    for i in range(20):  # frame i is a flat grey of level 10 * i
        writer.send(np.full((RES[1], RES[0], 3), 10 * i, np.uint8).tobytes())
    writer.close()
    out = _render(tmp_path, "on_video.png", frame=4, video=video, video_skip=6, size=3)
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    corner = image[70:80, 20:30]  # inside the input panel, away from the skeleton
    assert np.abs(corner - 100).max() <= 6  # video frame 6 + 4 = 10 -> level 100

    with pytest.raises(RieError, match="out of range: the sequence has 14 frames"):
        _render(tmp_path, "late.png", frame=14, video=video, video_skip=6)  # video shorter than the poses


# --- the input panel shows the person ---------------------------------------------

def test_crop_box_is_a_fixed_square_around_the_person():
    # Two frames; together the keypoints span x 100..140 and y 50..150 (extent 100).
    points = np.array([[[100, 50], [120, 90]], [[140, 150], [110, 60]]], dtype=np.float32)
    x0, y0, x1, y1 = crop_box(points, (1000, 1000))
    assert x1 - x0 == pytest.approx(100 * (1 + 2 * CROP_MARGIN)) == y1 - y0
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((120, 100))
    assert x0 <= 100 and x1 >= 140 and y0 <= 50 and y1 >= 150

    assert crop_box(np.array([[[5, 5], [25, 45]]]), (1000, 1000))[:2] == (0, 0)  # moved inside at an edge
    assert crop_box(np.array([[[990, 990], [970, 950]]]), (1000, 1000))[2:] == (1000, 1000)
    nan_too = np.array([[[100, 50], [np.nan, np.nan]], [[140, 150], [np.inf, 3]]])
    assert crop_box(nan_too, (1000, 1000)) == crop_box(nan_too[:, :1], (1000, 1000))  # non-finite ignored
    assert crop_box(np.full((3, 17, 2), np.nan), (640, 480)) == (0, 0, 640, 480)  # nothing to frame
    x0, y0, x1, y1 = crop_box(np.array([[[300, 200]]]), (640, 480))  # one point: the smallest square
    assert x1 - x0 == MIN_CROP and (x0 + x1) / 2 == 300
    x0, y0, x1, y1 = crop_box(np.array([[[10, 10], [630, 470]]]), (640, 480))  # larger than the image
    assert (x0, x1) == (0, 640) and (y0, y1) == (-80, 560)  # capped at the larger side, centred


def test_crop_image_cuts_the_box_out_of_a_frame():
    frame = np.arange(40 * 60 * 3, dtype=np.int64).reshape(40, 60, 3) % 251
    pixels, extent = _crop_image(frame, (10.5, -5.0, 30.2, 20.0))  # partly above the frame
    np.testing.assert_array_equal(pixels, frame[0:20, 10:31])
    assert extent == (10, 31, 20, 0)  # imshow's (left, right, bottom, top)


def _person_rows(image: np.ndarray, columns: slice) -> int:
    """Rows of one panel holding skeleton colours (blue left side or red right side)."""
    panel = image[:, columns]
    coloured = ((panel[..., 2] > 150) & (panel[..., 0] < 80)) | (
        (panel[..., 0] > 180) & (panel[..., 1] < 90) & (panel[..., 2] < 90))
    rows = np.flatnonzero(coloured.any(axis=1))
    return int(rows[-1] - rows[0]) if len(rows) else 0


def test_input_panel_crops_to_the_person_by_default(tmp_path):
    # A person about 190 px tall in a 1000 x 1000 image, as in a Human3.6M camera.
    cropped = _render(tmp_path, "cropped.png", frame=5, size=3, resolution=(1000, 1000))
    full = _render(tmp_path, "full.png", frame=5, size=3, resolution=(1000, 1000), crop=False)
    panel = slice(0, 240)
    tall_cropped = _person_rows(np.asarray(Image.open(cropped).convert("RGB")).astype(int), panel)
    tall_full = _person_rows(np.asarray(Image.open(full).convert("RGB")).astype(int), panel)
    # The panel's axes are about 216 px high: the person fills 1 / (1 + 2 * margin) of it when
    # cropped, about a fifth of it when the whole image is shown.
    assert tall_cropped > 130 and tall_full < 50 and tall_cropped > 3 * tall_full


def test_video_frames_are_cropped_like_the_keypoints(tmp_path):
    res = (640, 480)
    video = tmp_path / "bg.mp4"
    writer = imageio_ffmpeg.write_frames(str(video), res, fps=25, macro_block_size=1)
    writer.send(None)
    frame = np.full((res[1], res[0], 3), 60, np.uint8)
    frame[:80, :80] = (0, 255, 0)  # a green corner far from the person
    for _ in range(10):
        writer.send(frame.tobytes())
    writer.close()
    pixels, world = _walk(10)
    pixels = pixels * 0.5 + np.array([300, 200], np.float32)  # a small person in the middle
    args = dict(skeleton=H36M_17, fps=25, azimuth=70, resolution=res, size=3, frame=2, video=video)

    def green_and_grey(name, crop):
        out = render_animation(pixels, {"Prediction": world}, output=tmp_path / name, crop=crop, **args)
        panel = np.asarray(Image.open(out).convert("RGB")).astype(int)[:, :240]
        green = (panel[..., 1] > 200) & (panel[..., 0] < 60) & (panel[..., 2] < 60)
        grey = (np.abs(panel - 60) <= 8).all(axis=-1)
        return green.sum(), grey.sum()

    green_full, _ = green_and_grey("full.png", crop=False)
    green_cropped, grey_cropped = green_and_grey("cropped.png", crop=True)
    assert green_full > 100  # the whole frame, corner included
    assert green_cropped == 0 and grey_cropped > 0.5 * 240 * 240  # the video around the person only


def test_errors_leave_existing_output_alone(tmp_path):
    (tmp_path / "keep.gif").write_bytes(b"old")
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_text("not a video")
    with pytest.raises(RieError, match="cannot read video"):
        _render(tmp_path, "keep.gif", video=bad_video)
    with pytest.raises(RieError, match="must end in .gif, .mp4 or .png"):
        _render(tmp_path, "walk.avi")
    with pytest.raises(RieError, match="--frame N"):
        _render(tmp_path, "walk.png")
    with pytest.raises(RieError, match="use a .png output"):
        _render(tmp_path, "walk.gif", frame=3)
    with pytest.raises(RieError, match="out of range"):
        _render(tmp_path, "walk.png", frame=30)
    assert (tmp_path / "keep.gif").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "keep.gif"]


def test_poses_to_world_restores_the_recorded_world_poses():
    _, world = _walk(12)
    q = np.array([0.1407, -0.1500, -0.7552, 0.6223])  # a Human3.6M-like camera orientation
    camera = Camera(id="c", res_w=1000, res_h=1000, orientation=tuple(q / np.linalg.norm(q)),
                    translation=(1.84, 4.96, 1.56))
    cam_space = world_to_camera(world, camera)
    trajectory = cam_space[:, 0]
    relative = cam_space - cam_space[:, :1]
    np.testing.assert_allclose(poses_to_world(relative, camera, trajectory), world, atol=1e-5)
    # Without a trajectory: the rotation is undone and the lowest point is put on the floor.
    grounded = poses_to_world(relative, camera, None)
    assert grounded[..., 2].min() == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(grounded[0, 10] - grounded[0, 0], world[0, 10] - world[0, 0], atol=1e-5)


# --- the command, on the shipped demo data -----------------------------------------

def _cli(*args):
    return CliRunner().invoke(app, ["render", *map(str, args)])


def test_cli_gif_mp4_and_still_of_a_demo_sequence(demo_h5, small_checkpoint, tmp_path):
    common = ["-c", small_checkpoint, "-d", demo_h5, "-k", "gt", "-s", "BN2-normal", "-a", "walk 001.1", "--camera", "1"]
    result = _cli(*common, "-o", tmp_path / "walk.gif", "--size", "2", "--limit", "8", "--downsample", "2")
    assert result.exit_code == 0, result.output
    assert "8 frames, 480x160" in result.stderr
    with Image.open(tmp_path / "walk.gif") as im:
        assert (im.n_frames, im.size) == (8, (480, 160))

    result = _cli(*common, "-o", tmp_path / "walk.mp4", "--size", "2", "--limit", "6", "--no-ground-truth")
    assert result.exit_code == 0, result.output
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "walk.mp4"))[0] == 6
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "walk.mp4"))
    assert tuple(next(reader)["size"]) == (320, 160)  # input + prediction only
    reader.close()

    result = _cli(*common, "-o", tmp_path / "still.png", "--size", "3", "--frame", "20")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "still.png").size == (720, 240)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-s", "S11", "-a", "walk 001.1"], "unknown subject 'S11'"),
        (["-s", "BN2-normal", "-a", "walk 1"], "unknown action 'walk 1'"),
        (["-s", "BN2-normal", "-a", "walk 001"], "did you mean 'walk 001.1', 'walk 001.2'"),  # takes of the action
        (["-s", "BN2-normal", "-a", "walk 001.1", "--camera", "4"], "unknown camera 4"),
        (["-s", "BN2-normal", "-a", "walk 001.1", "--frame", "100000"], "out of range"),
        (["-s", "BN2-normal", "-a", "walk 001.1", "--video", "missing.mp4"], "video not found"),
    ],
)
def test_cli_errors_are_one_line(demo_h5, small_checkpoint, tmp_path, extra, message):
    out = tmp_path / ("x.png" if "--frame" in extra else "x.gif")
    result = _cli("-c", small_checkpoint, "-d", demo_h5, "-k", "gt", *extra, "-o", out)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_bad_suffix_fails_before_predicting(tmp_path):
    result = _cli("-c", tmp_path / "absent.bin", "-d", tmp_path / "absent.h5", "-k", "gt", "-s", "S1", "-a", "x",
                  "-o", tmp_path / "x.avi")
    assert result.exit_code == 1 and "must end in .gif, .mp4 or .png" in result.stderr


def test_render_from_predictions_file_matches_checkpoint(demo_h5, small_checkpoint, tmp_path):
    from rie_cli.export import export_predictions
    from rie_cli.render_dataset import plan_dataset_render

    export_predictions(small_checkpoint, demo_h5, "gt", tmp_path / "pred.npz", actions=["walk 001.1"])
    args = (demo_h5, "BN2-normal", "walk 001.1", 2, "gt")
    from_file = plan_dataset_render(*args, predictions=tmp_path / "pred.npz")
    from_model = plan_dataset_render(*args, checkpoint=small_checkpoint)
    assert list(from_file.poses_3d) == ["Prediction", "Ground truth"]
    np.testing.assert_array_equal(from_file.poses_3d["Prediction"], from_model.poses_3d["Prediction"])
    with pytest.raises(RieError, match="no prediction for BN2-normal / walk 002.1"):
        plan_dataset_render(demo_h5, "BN2-normal", "walk 002.1", 0, "gt", predictions=tmp_path / "pred.npz")


def test_render_from_predictions_draws_the_2d_they_were_lifted_from(demo_h5, small_checkpoint, tmp_path):
    from rie_cli.export import export_predictions
    from rie_cli.render_dataset import plan_dataset_render

    export_predictions(small_checkpoint, demo_h5, "noisy", tmp_path / "noisy.npz", actions=["walk 001.1"])
    args = (demo_h5, "BN2-normal", "walk 001.1", 1)
    # The input panel showed the gt 2D beside poses lifted from the noisy 2D.
    with pytest.raises(RieError, match="predicted from the 'noisy' 2D keypoints, not 'gt': render it with -k noisy"):
        plan_dataset_render(*args, "gt", predictions=tmp_path / "noisy.npz")
    drawn = plan_dataset_render(*args, predictions=tmp_path / "noisy.npz")  # no source given: the file's
    expected = plan_dataset_render(*args, "noisy", checkpoint=small_checkpoint)
    np.testing.assert_array_equal(drawn.keypoints_2d, expected.keypoints_2d)
    result = _cli("-p", tmp_path / "noisy.npz", "-d", demo_h5, "-k", "gt", "-s", "BN2-normal", "-a", "walk 001.1",
                  "-o", tmp_path / "x.gif")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "render it with -k noisy" in result.stderr
    assert not (tmp_path / "x.gif").exists()
