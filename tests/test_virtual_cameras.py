"""Virtual cameras (rie_cli/data/virtual_cameras.py, virtual_windows.py): the distribution's
ranges, determinism for a seed, projection against rie_cli.cameras, and training windows
whose 2D and targets follow the drawn camera."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rie_cli.cameras import (normalize_screen_coordinates, project_to_pixels, world_to_camera)
from rie_cli.data.virtual_cameras import (FULL_FRAME_DIAGONAL_MM, CameraDistribution, look_at_camera,
                                          sample_cameras)
from rie_cli.data.virtual_windows import VirtualCameraSampler
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17


def _draw(distribution, n=2000, seed=0, extent=1.0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, generator=torch.Generator().manual_seed(99)) * torch.tensor([3.0, 3.0, 0.3]) \
        + torch.tensor([-1.5, -1.5, 0.8])
    return target, sample_cameras(distribution, target, torch.full((n,), extent), g)


def test_same_seed_same_cameras_other_seed_others():
    d = CameraDistribution(distortion=0.1)
    _, a = _draw(d, n=64, seed=1)
    _, b = _draw(d, n=64, seed=1)
    _, c = _draw(d, n=64, seed=2)
    for field in ("rotation", "centre", "focal", "principal", "size", "k1"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.allclose(a.centre, c.centre)


def test_draws_stay_in_the_distribution():
    d = CameraDistribution(azimuth=(30.0, 120.0), elevation=(-5.0, 45.0), distance=(3.0, 6.0), roll=8.0,
                           focal_length=(20.0, 60.0), principal_point=0.03, distortion=0.2, aim=0.0,
                           image_sizes=((1920, 1080), (1080, 1920)))
    target, cams = _draw(d)
    offset = (cams.centre - target).double()
    distance = offset.norm(dim=-1)
    azimuth = torch.rad2deg(torch.atan2(offset[:, 1], offset[:, 0])) % 360
    elevation = torch.rad2deg(torch.asin(offset[:, 2] / distance))
    assert azimuth.min() >= 30 - 1e-3 and azimuth.max() <= 120 + 1e-3
    assert elevation.min() >= -5 - 1e-3 and elevation.max() <= 45 + 1e-3
    assert distance.min() >= 3 - 1e-4
    # Raised above 6 m only where the person would not fit otherwise (long lenses).
    fit = torch.sqrt(1 + (cams.focal / (0.9 * 0.5 * cams.size.min(dim=1).values)) ** 2)  # extent 1 m
    assert torch.all((distance <= 6 + 1e-4) | (distance <= fit.double() + 1e-3))
    focal_mm = cams.focal * FULL_FRAME_DIAGONAL_MM / cams.size.norm(dim=-1)
    assert focal_mm.min() >= 20 - 1e-3 and focal_mm.max() <= 60 + 1e-3
    sizes = {tuple(s) for s in cams.size.int().tolist()}
    assert sizes == {(1920, 1080), (1080, 1920)}
    centre_offset = (cams.principal - cams.size / 2) / cams.size
    assert centre_offset.abs().max() <= 0.03 + 1e-6
    assert cams.k1.abs().max() <= 0.2 and cams.k1.min() < -0.15 and cams.k1.max() > 0.15
    # Without aim, the root is on the optical axis and the camera's x axis is rolled
    # by at most `roll` out of the horizontal plane.
    on_axis = cams.to_camera_space(target[:, None])[:, 0]
    assert torch.allclose(on_axis[:, :2], torch.zeros_like(on_axis[:, :2]), atol=1e-4)
    assert torch.allclose(on_axis[:, 2], distance.float(), atol=1e-4)
    tilt = torch.rad2deg(torch.asin(cams.rotation[:, 0, 2].abs()))
    assert tilt.max() <= 8 + 1e-3 and tilt.max() > 6


def test_the_person_stays_in_the_image():
    """Every point within `extent` of the root projects into the image (defaults: aim, roll)."""
    target, cams = _draw(CameraDistribution(), n=500, extent=1.2)
    directions = torch.nn.functional.normalize(torch.randn(500, 64, 3, generator=torch.Generator().manual_seed(3)),
                                               dim=-1)
    pixels = cams.to_pixels(cams.to_camera_space(target[:, None] + 1.2 * directions))
    assert (pixels >= 0).all()
    assert (pixels <= cams.size[:, None]).all()


def test_projection_agrees_with_cameras_module():
    """Torch projection (float32) == rie_cli.cameras' float64 maths through the same Camera."""
    target, cams = _draw(CameraDistribution(distortion=0.3), n=20)
    points = target[:, None] + torch.randn(20, 17, 3, generator=torch.Generator().manual_seed(5)) * 0.6
    pixels = cams.to_pixels(cams.to_camera_space(points))
    normalised = cams.normalize(pixels)
    for i in range(20):
        camera = cams.camera(i)
        x_cam = world_to_camera(points[i].double().numpy(), camera)
        expected = project_to_pixels(x_cam, camera)
        np.testing.assert_allclose(pixels[i].numpy(), expected, atol=2e-3)
        np.testing.assert_allclose(normalised[i].numpy(),
                                   normalize_screen_coordinates(expected, camera.res_w, camera.res_h), atol=5e-6)


def test_look_at_camera():
    camera = look_at_camera("side", (5.0, 0.0, 1.2), (0.0, 0.0, 1.2), width=1080, height=1920, focal_mm=26)
    assert camera.focal_length[0] == pytest.approx(26 / FULL_FRAME_DIAGONAL_MM * math.hypot(1080, 1920))
    head, feet = world_to_camera(np.array([[0.0, 0.0, 1.7], [0.0, 0.0, 0.0]]), camera)
    assert project_to_pixels(world_to_camera(np.array([0.0, 0.0, 1.2]), camera), camera) == pytest.approx(
        [540.0, 960.0])
    assert head[1] < 0 < feet[1]  # image y points down the world's up axis
    assert head[2] == pytest.approx(5.0)


def test_distribution_checks_and_round_trip():
    d = CameraDistribution(elevation=(0.0, 30.0), image_sizes=((640, 480),), noise=0.01, share=0.5)
    assert CameraDistribution.from_dict(d.to_dict()) == d
    with pytest.raises(RieError, match="vcam-elevation"):
        CameraDistribution(elevation=(30.0, 0.0))
    with pytest.raises(RieError, match="vcam-share"):
        CameraDistribution(share=1.5)
    with pytest.raises(RieError, match="unknown virtual-camera"):
        CameraDistribution.from_dict({"zoom": 2})


# --- training windows ---------------------------------------------------------------

def _world_sequences(n_seq=3, frames=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_seq):
        pose = rng.normal(0, 0.3, (17, 3))
        pose[0] = 0
        walk = np.linspace(0, 1, frames)[:, None] * rng.normal(0, 1, 3) * [1, 1, 0] + [0, 0, 0.9]
        out.append((pose[None] + walk[:, None] + rng.normal(0, 0.01, (frames, 17, 3))).astype(np.float32))
    return out


def _sampler(target="pose", share=1.0, augment=False, **kw):
    world = _world_sequences()
    inputs = [w[..., :2] * 0.1 for w in world]
    targets = [w[:, :1] if target == "trajectory" else w - w[:, :1] for w in world]
    return world, VirtualCameraSampler(inputs, targets, 9, 32, world_3d=world, skeleton=H36M_17, shuffle=True,
                                       augment=augment, distribution=CameraDistribution(share=share, **kw),
                                       target=target, seed=7, **{})


@pytest.mark.parametrize("target", ["pose", "trajectory"])
def test_window_targets_follow_the_camera(target):
    """The 2D and the target of a virtual window are the world window seen by its camera,
    checked with rie_cli.cameras' own maths."""
    world, sampler = _sampler(target, distortion=0.1)
    ids = torch.arange(20)
    rows = sampler._starts[ids][:, None] + sampler._offsets
    windows = sampler._world[rows]
    x, y, cams = sampler.project(windows)
    ref = sampler.reference_frame
    for i in range(20):
        camera = cams.camera(i)
        cam_space = world_to_camera(windows[i].double().numpy(), camera)  # (R, J, 3)
        expected_2d = normalize_screen_coordinates(project_to_pixels(cam_space, camera), camera.res_w, camera.res_h)
        np.testing.assert_allclose(x[i].numpy(), expected_2d, atol=1e-4)
        if target == "trajectory":
            np.testing.assert_allclose(y[i, 0, 0].numpy(), cam_space[ref, 0], atol=1e-4)
            assert y[i, 0, 0, 2] > 0
        else:
            np.testing.assert_allclose(y[i, 0].numpy(), cam_space[ref] - cam_space[ref, :1], atol=1e-4)
    # A rigid change of frame: bone lengths are the world's.
    if target == "pose":
        bones = np.linalg.norm(y[:, 0, 1:].numpy(), axis=-1)
        world_bones = np.linalg.norm((windows[:, ref, 1:] - windows[:, ref, :1]).numpy(), axis=-1)
        np.testing.assert_allclose(bones, world_bones, atol=1e-4)


def test_epochs_are_deterministic_and_differ():
    _, a = _sampler(augment=True)
    _, b = _sampler(augment=True)
    a.set_epoch(3)
    b.set_epoch(3)
    first = [x for x, _, _ in a]
    again = [x for x, _, _ in a]  # the same epoch iterated twice
    other = [x for x, _, _ in b]
    for u, v, w in zip(first, again, other):
        assert torch.equal(u, v) and torch.equal(u, w)
    a.set_epoch(4)
    assert not torch.equal(next(iter(a))[0], first[0])


def test_share_mixes_real_and_virtual_windows():
    world, sampler = _sampler(share=0.5)
    sampler.set_epoch(0)
    host = VirtualCameraSampler([w[..., :2] * 0.1 for w in world], [w - w[:, :1] for w in world], 9, 32,
                                world_3d=world, skeleton=H36M_17, shuffle=True,
                                distribution=CameraDistribution(), seed=7)
    real = virtual = 0
    for (x, _, ids) in sampler:
        rows = sampler._starts[torch.as_tensor(ids)][:, None] + sampler._offsets
        same = (x == sampler._inputs[rows]).flatten(1).all(1)
        real += int(same.sum())
        virtual += int((~same).sum())
    assert host.num_windows == real + virtual
    assert 0.35 < real / (real + virtual) < 0.65


def test_three_d_only_data():
    world = _world_sequences()
    sampler = VirtualCameraSampler(None, None, 9, 16, world_3d=world, skeleton=H36M_17,
                                   distribution=CameraDistribution(share=0.3), target="trajectory")
    assert sampler.distribution.share == 1.0
    x, y, _ = next(iter(sampler))
    assert x.shape[1:] == (9, 17, 2) and y.shape[1:] == (1, 1, 3) and (y[..., 2] > 0).all()


# --- test sets in chosen cameras: rie prepare-data --project --------------------------

def test_prepare_project_reproduces_the_recorded_projections(demo_dir, tmp_path):
    """bnmocap's gt 2D files are exact projections of its 3D: --project through the same
    cameras file writes the same 2D."""
    from rie_cli.data.dataset import PoseDataset
    from rie_cli.data.prepare import prepare_dataset

    common = dict(data_dir=demo_dir, cameras=demo_dir / "cameras_bnmocap.json", test_subjects=["BN2-normal"])
    read = prepare_dataset("bnmocap", tmp_path / "read.h5", keypoints=["gt"], **common)
    projected = prepare_dataset("bnmocap", tmp_path / "projected.h5", project=True, **common)
    assert projected.sources == ["gt"] and projected.total_frames == read.total_frames
    a, b = PoseDataset(read.out), PoseDataset(projected.out)
    for subject in a.subjects():
        for action in a.actions(subject):
            np.testing.assert_allclose(b.keypoints_pixels(subject, action, "gt"),
                                       a.keypoints_pixels(subject, action, "gt"), atol=0.02)


def test_prepare_project_into_new_cameras(demo_dir, tmp_path):
    """A cameras file of new views (look_at_camera) becomes a test set in those views."""
    import json

    from rie_cli.data.dataset import PoseDataset
    from rie_cli.data.prepare import prepare_dataset
    from rie_cli.data.virtual_cameras import cameras_file_entry

    phone = look_at_camera("phone", (3.5, 0.0, 1.4), (0.0, 0.0, 0.9), width=1080, height=1920, focal_mm=26)
    subjects = ["BN2-active", "BN2-feminine", "BN2-normal"]
    path = tmp_path / "phone.json"
    path.write_text(json.dumps({"bnmocap": cameras_file_entry([phone], subjects, fps=50)}))
    out = prepare_dataset("bnmocap", tmp_path / "phone.h5", data_dir=demo_dir, cameras=path, project=True,
                          test_subjects=["BN2-normal"]).out
    data = PoseDataset(out)
    seq = data.sequences(["BN2-normal"], "gt")[0]
    assert (seq.camera.res_w, seq.camera.res_h) == (1080, 1920)
    pixels = data.keypoints_pixels("BN2-normal", seq.action, "gt")[0]
    expected = project_to_pixels(world_to_camera(data.world_positions("BN2-normal", seq.action), phone), phone)
    np.testing.assert_allclose(pixels, expected, atol=1e-3)
    with pytest.raises(RieError, match="--project writes one 2D source"):
        prepare_dataset("bnmocap", tmp_path / "x.h5", data_dir=demo_dir, cameras=path, project=True,
                        keypoints=["noisy"], test_subjects=["BN2-normal"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_windows_are_built_on_the_gpu():
    """On a GPU the cameras are drawn and the windows projected there, the same for a seed."""
    world = _world_sequences()
    make = lambda: VirtualCameraSampler([w[..., :2] for w in world], [w - w[:, :1] for w in world], 9, 32,  # noqa: E731
                                        world_3d=world, skeleton=H36M_17, shuffle=True, augment=True,
                                        distribution=CameraDistribution(noise=0.01, share=0.5), device="cuda")
    a, b = make(), make()
    for (xa, ya, _), (xb, yb, _) in zip(a, b):
        assert xa.is_cuda and ya.is_cuda
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
