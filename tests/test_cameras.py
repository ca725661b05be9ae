"""Camera maths: world<->camera round trip, projection, screen normalisation."""

import json

import numpy as np
import pytest

from rie_cli.cameras import (
    Camera,
    builtin_cameras,
    camera_to_world,
    image_coordinates,
    load_cameras_file,
    normalize_screen_coordinates,
    project_to_pixels,
    qinverse,
    qrot,
    world_to_camera,
)
from rie_cli.errors import RieError


def _random_quaternion(rng):
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def _rotation_matrix(q):
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def test_qrot_matches_rotation_matrix():
    rng = np.random.default_rng(0)
    q = _random_quaternion(rng)
    v = rng.normal(size=(10, 3))
    np.testing.assert_allclose(qrot(q, v), v @ _rotation_matrix(q).T, atol=1e-12)
    np.testing.assert_allclose(qrot(qinverse(q), qrot(q, v)), v, atol=1e-12)


def test_world_camera_round_trip_builtin_h36m():
    rng = np.random.default_rng(1)
    cams = builtin_cameras("h36m").for_subject("S9")
    assert len(cams) == 4 and cams[0].res_w == 1000 and cams[0].res_h == 1002
    x = rng.normal(size=(5, 17, 3))
    for cam in cams:
        # The published quaternions are float32-rounded, so not exactly unit: the
        # conjugate is then only nearly the inverse (as in VideoPose3D).
        np.testing.assert_allclose(camera_to_world(world_to_camera(x, cam), cam), x, atol=5e-6)
    # The camera centre (translation, mm in the file -> m) maps to the camera origin.
    t = np.asarray(cams[0].translation)
    np.testing.assert_allclose(world_to_camera(t, cams[0]), 0, atol=1e-12)


def test_translation_converted_to_metres():
    cam = builtin_cameras("h36m").for_subject("S1")[0]
    assert cam.translation == pytest.approx((1.8411070556640625, 4.95528466796875, 1.5634454345703125))


def test_projection_pinhole_without_distortion():
    cam = Camera(id="c", res_w=1000, res_h=1000, focal_length=(1000.0, 900.0), center=(500.0, 400.0))
    x = np.array([[0.5, -0.25, 2.0], [0.0, 0.0, 4.0]])
    np.testing.assert_allclose(project_to_pixels(x, cam), [[750.0, 287.5], [500.0, 400.0]])


def test_projection_distortion_formula():
    k = (-0.2, 0.25, -0.003)
    p = (-0.001, -0.0014)
    cam = Camera(id="c", res_w=1000, res_h=1000, focal_length=(1145.0, 1143.0), center=(512.0, 515.0),
                 radial_distortion=k, tangential_distortion=p)
    X, Y, Z = 0.3, -0.4, 3.0
    x, y = X / Z, Y / Z
    r2 = x * x + y * y
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = p[0] * x + p[1] * y
    expected = [1145.0 * (x * (radial + tan) + p[0] * r2) + 512.0,
                1143.0 * (y * (radial + tan) + p[1] * r2) + 515.0]
    np.testing.assert_allclose(project_to_pixels(np.array([X, Y, Z]), cam), expected, atol=1e-9)


def test_screen_normalisation_round_trip_and_range():
    w, h = 1000, 1002
    px = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]], dtype=np.float32)
    n = normalize_screen_coordinates(px, w, h)
    np.testing.assert_allclose(n[0], [-1, -h / w], rtol=1e-6)
    np.testing.assert_allclose(n[1], [1, h / w], rtol=1e-6)
    np.testing.assert_allclose(n[2], [0, 0], atol=1e-6)
    np.testing.assert_allclose(image_coordinates(n, w, h), px, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16])
def test_integer_pixels_normalise_as_floats(dtype):
    # The offset h / w was cast to the input's integer dtype: 0 or 1 instead of 0.75.
    w, h = 1000, 750
    px = np.array([[0, 0], [1000, 750], [500, 375]], dtype=dtype)
    expected = normalize_screen_coordinates(px.astype(np.float64), w, h)
    n = normalize_screen_coordinates(px, w, h)
    assert n.dtype == np.float64
    np.testing.assert_allclose(n, expected)
    np.testing.assert_allclose(n[2], [0, 0], atol=1e-12)  # the image centre
    back = image_coordinates(np.array([[0, 0], [1, 0]], dtype=dtype), w, h)
    np.testing.assert_allclose(back, [[500, 375], [1000, 375]])


def test_cameras_file_errors(tmp_path):
    with pytest.raises(RieError, match="not found"):
        load_cameras_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RieError, match="cannot read"):
        load_cameras_file(bad)
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"a": {"intrinsics": []}, "b": {"intrinsics": []}}))
    with pytest.raises(RieError, match="cannot tell"):
        load_cameras_file(two)


def test_humaneva_builtin_has_no_intrinsics_but_extrinsics():
    cams = builtin_cameras("humaneva")
    assert cams.fps == 60
    c = cams.for_subject("S2")[1]
    assert c.res_w == 640 and c.has_extrinsics and not c.has_intrinsics
    with pytest.raises(RieError, match="cannot project"):
        project_to_pixels(np.ones((1, 3)), c)
