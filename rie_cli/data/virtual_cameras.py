"""Virtual cameras: random cameras drawn around a person, and projection through them.

`rie train --virtual-cameras` (docs/training.md, "Virtual cameras") projects the 3D
training poses into cameras the dataset never had, so that a model learns to lift 2D
from any viewpoint, lens and image shape instead of the studio's four. This module
is the camera half: the distribution (`CameraDistribution`), drawing a batch of
cameras from it on the training device (`sample_cameras`), and projecting world
points through them (`VirtualCameras.project`), all in torch and vectorised over the
batch. `rie_cli/data/virtual_windows.py` uses it on training windows. `look_at_camera`
builds one such camera as a `cameras.Camera`, for cameras files (novel test views).

A camera is placed relative to the person it films (docs/training.md):
- it looks at `target` (the root joint at the window's reference frame) from the
  direction (azimuth, elevation) at `distance` metres; the world is z up
  (docs/hdf5-format.md), azimuth turns about z, elevation is the angle of the
  camera above the target's horizontal plane;
- the distance is raised where the person (every joint of the window, a sphere of
  radius `extent` around the target) would not fit in the image;
- the camera then turns by `roll` about its optical axis and is aimed off the
  person so that the root lands off-centre, within `aim` of the free image space;
- intrinsics: a focal length in 35 mm-equivalent millimetres (the diagonal of the
  image is the 43.27 mm diagonal of a 36 x 24 mm frame), square pixels, the
  principal point within `principal_point` of the image size from its centre, one of
  `image_sizes`, and the radial distortion k1 of VideoPose3D's model
  (`cameras.project_to_pixels`), other coefficients 0.

Conventions are `rie_cli/cameras.py`'s: camera x right, y down, z forward,
`X_cam = R (X_world - C)`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from rie_cli.cameras import Camera
from rie_cli.errors import RieError

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm: what "35 mm-equivalent" refers to
# Share of the image's half-size the person's extent may fill at most (a margin for roll).
FILL = 0.9


@dataclass(frozen=True)
class CameraDistribution:
    """Where virtual cameras come from. Ranges are (low, high), drawn uniformly (the focal
    length log-uniformly); the defaults cover phones (24-28 mm main, 50-77 mm tele,
    portrait or landscape, held at chest height to overhead) and studio cameras
    (Human3.6M's are 35 mm-equivalent, 1000 x 1000, about 5 m away and 8 degrees above the pelvis)."""

    azimuth: tuple[float, float] = (0.0, 360.0)  # degrees about the world's up axis
    elevation: tuple[float, float] = (-10.0, 60.0)  # degrees above the person's root
    distance: tuple[float, float] = (2.0, 8.0)  # metres to the root (raised where the person would not fit)
    roll: float = 10.0  # degrees either way about the optical axis
    focal_length: tuple[float, float] = (18.0, 80.0)  # 35 mm-equivalent millimetres
    principal_point: float = 0.02  # offset from the image centre, share of width/height either way
    image_sizes: tuple[tuple[int, int], ...] = ((1920, 1080), (1080, 1920), (1280, 720), (720, 1280), (1000, 1000))
    distortion: float = 0.0  # radial k1 drawn from [-distortion, distortion]
    aim: float = 0.5  # how far off-centre the root may land, share of the free image space
    noise: float = 0.0  # 2D jitter std, share of the person's size in the image (0: exact projections)
    # Share of training windows that get a virtual camera (the rest keep the dataset's): 0.5 is
    # what was measured to keep the accuracy in the dataset's own cameras (docs/training.md).
    share: float = 0.5

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """RieError (naming the option) for a parameter out of its range."""
        def span(name, value, low, high):
            lo, hi = value
            if not (low <= lo <= hi <= high):
                raise RieError(f"--vcam-{name.replace('_', '-')}: need {low:g} <= low <= high <= {high:g}, "
                               f"got {lo:g},{hi:g}")

        span("azimuth", self.azimuth, -360.0, 720.0)
        span("elevation", self.elevation, -80.0, 80.0)
        span("distance", self.distance, 0.5, 1000.0)
        span("focal_length", self.focal_length, 1.0, 2000.0)
        for name, value, high in (("roll", self.roll, 180.0), ("principal_point", self.principal_point, 0.5),
                                  ("distortion", self.distortion, 1.0), ("aim", self.aim, 1.0),
                                  ("noise", self.noise, 1.0), ("share", self.share, 1.0)):
            if not 0.0 <= value <= high:
                raise RieError(f"--vcam-{name.replace('_', '-')}: need a value in [0, {high:g}], got {value:g}")
        if self.share == 0.0:
            raise RieError("--vcam-share 0 gives no window a virtual camera: leave --virtual-cameras out instead")
        if not self.image_sizes or any(len(s) != 2 or min(s) < 16 for s in self.image_sizes):
            raise RieError(f"--vcam-image-sizes: need sizes like 1920x1080 (at least 16 pixels), "
                           f"got {self.image_sizes}")

    def to_dict(self) -> dict:
        """Plain lists and numbers (stored in checkpoints and run.json)."""
        d = asdict(self)
        return {k: [list(s) for s in v] if k == "image_sizes" else (list(v) if isinstance(v, tuple) else v)
                for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "CameraDistribution":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RieError(f"unknown virtual-camera parameters: {', '.join(unknown)}")
        d = dict(d)
        if "image_sizes" in d:
            d["image_sizes"] = tuple(tuple(int(v) for v in s) for s in d["image_sizes"])
        for key in ("azimuth", "elevation", "distance", "focal_length"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        return cls(**d)


@dataclass
class VirtualCameras:
    """A batch of B pinhole cameras (tensors on one device, float32)."""

    rotation: torch.Tensor  # (B, 3, 3) world -> camera
    centre: torch.Tensor  # (B, 3) camera centre in world metres
    focal: torch.Tensor  # (B,) pixels (fx = fy)
    principal: torch.Tensor  # (B, 2) pixels
    size: torch.Tensor  # (B, 2) image width, height in pixels
    k1: torch.Tensor  # (B,) radial distortion

    def to_camera_space(self, world: torch.Tensor) -> torch.Tensor:
        """World points (B, ..., 3) -> camera space (B, ..., 3)."""
        shape = world.shape
        flat = world.reshape(shape[0], -1, 3) - self.centre[:, None]
        return torch.einsum("bij,bnj->bni", self.rotation, flat).reshape(shape)

    def to_pixels(self, cam: torch.Tensor) -> torch.Tensor:
        """Camera-space points (B, ..., 3) -> pixels (B, ..., 2), k1 distortion included
        (`cameras.project_to_pixels` with k2 = k3 = p1 = p2 = 0)."""
        view = (-1,) + (1,) * (cam.dim() - 2)
        xy = cam[..., :2] / cam[..., 2:3]
        r2 = (xy * xy).sum(-1, keepdim=True)
        xy = xy * (1.0 + self.k1.reshape(view + (1,)) * r2)
        return self.focal.reshape(view + (1,)) * xy + self.principal.reshape(view + (2,))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (B, ..., 2) -> normalised screen coordinates (docs/method.md §1) of each
        camera's own image."""
        view = (-1,) + (1,) * (pixels.dim() - 2)
        w = self.size[:, 0].reshape(view + (1,))
        h_over_w = (self.size[:, 1] / self.size[:, 0]).reshape(view)
        offset = torch.stack([torch.ones_like(h_over_w), h_over_w], dim=-1)
        return pixels / w * 2 - offset

    def camera(self, index: int, name: str = "virtual") -> Camera:
        """Camera `index` as a `cameras.Camera` (float64 maths of `rie_cli.cameras`)."""
        rotation = self.rotation[index].double().cpu().numpy()
        w, h = (int(round(v)) for v in self.size[index].tolist())
        f = float(self.focal[index])
        return Camera(id=name, res_w=w, res_h=h, focal_length=(f, f),
                      center=tuple(float(v) for v in self.principal[index]),
                      radial_distortion=(float(self.k1[index]), 0.0, 0.0),
                      orientation=tuple(rotation_to_quaternion(rotation.T)),
                      translation=tuple(float(v) for v in self.centre[index]))


def focal_pixels(focal_mm, width, height):
    """35 mm-equivalent focal length (mm) -> pixels of a `width` x `height` image (any
    mix of numbers, NumPy arrays and tensors)."""
    diagonal = (width * width + height * height) ** 0.5
    return focal_mm * diagonal / FULL_FRAME_DIAGONAL_MM


@functools.lru_cache(maxsize=16)
def _image_sizes(sizes: tuple, device: torch.device) -> torch.Tensor:
    """The sizes as a tensor on `device`, copied there once: a copy from the host every
    batch would make a GPU wait for it."""
    return torch.tensor(sizes, dtype=torch.float32, device=device)


def _uniform(generator, n, low, high, device):
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _look_at(centre: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """World -> camera rotations (B, 3, 3) of cameras at `centre` looking at `target` with
    the image's y axis pointing down the world's up axis (rows: right, down, forward)."""
    forward = torch.nn.functional.normalize(target - centre, dim=-1)
    up = torch.zeros_like(forward)
    up[:, 2] = 1.0  # the world is z up; made on the device (a tensor from Python is a copy per batch)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=-1)
    down = torch.linalg.cross(forward, right)
    return torch.stack([right, down, forward], dim=1)


def _roll(angle: torch.Tensor) -> torch.Tensor:
    """Rotations (B, 3, 3) by `angle` (radians) about the camera's z axis."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1),
                        torch.stack([zero, zero, one], -1)], dim=1)


def _turn_axis_to(direction: torch.Tensor) -> torch.Tensor:
    """Rotations (B, 3, 3) taking the camera's z axis onto the unit vectors `direction` (B, 3)
    (Rodrigues' formula about z x direction)."""
    z = torch.zeros_like(direction)
    z[:, 2] = 1.0
    axis = torch.linalg.cross(z, direction)
    sin = torch.linalg.vector_norm(axis, dim=-1)
    cos = direction[:, 2]
    k = axis / sin.clamp_min(1e-12)[:, None]
    kx = torch.zeros(direction.shape[0], 3, 3, dtype=direction.dtype, device=direction.device)
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    kx = kx - kx.transpose(1, 2)
    eye = torch.eye(3, dtype=direction.dtype, device=direction.device).expand_as(kx)
    return eye + sin[:, None, None] * kx + (1.0 - cos)[:, None, None] * (kx @ kx)


def sample_cameras(distribution: CameraDistribution, target: torch.Tensor, extent: torch.Tensor,
                   generator: torch.Generator) -> VirtualCameras:
    """One camera per target: `target` (B, 3) world metres (what the camera films),
    `extent` (B,) the radius around it that must stay in the image. Draws from
    `generator` (on the targets' device) in a fixed order: same generator state, same
    cameras."""
    d, n, device = distribution, target.shape[0], target.device
    rad = math.pi / 180.0
    sizes = _image_sizes(d.image_sizes, device)  # (S, 2)
    size = sizes[torch.randint(len(sizes), (n,), generator=generator, device=device)]  # (B, 2)
    log_f = _uniform(generator, n, math.log(d.focal_length[0]), math.log(d.focal_length[1]), device)
    focal = focal_pixels(torch.exp(log_f), size[:, 0], size[:, 1])
    principal = size / 2 + size * _uniform(generator, (n, 2), -d.principal_point, d.principal_point, device)
    k1 = _uniform(generator, n, -d.distortion, d.distortion, device)

    # Far enough for the person to fit in the image's shorter side: a sphere of radius
    # `extent` at distance d spans f * extent / sqrt(d^2 - extent^2) pixels from its centre.
    fit = extent * torch.sqrt(1.0 + (focal / (FILL * 0.5 * size.min(dim=1).values)) ** 2)
    low = torch.maximum(torch.full_like(fit, d.distance[0]), fit)
    high = torch.maximum(torch.full_like(fit, d.distance[1]), low)
    distance = _uniform(generator, n, 0.0, 1.0, device) * (high - low) + low
    azimuth = _uniform(generator, n, d.azimuth[0], d.azimuth[1], device) * rad
    elevation = _uniform(generator, n, d.elevation[0], d.elevation[1], device) * rad
    direction = torch.stack([torch.cos(elevation) * torch.cos(azimuth), torch.cos(elevation) * torch.sin(azimuth),
                             torch.sin(elevation)], dim=-1)
    centre = target + distance[:, None] * direction
    rotation = _roll(_uniform(generator, n, -d.roll, d.roll, device) * rad) @ _look_at(centre, target)

    # Aim off the person: the root lands at `offset` pixels from the principal point,
    # within `aim` of the space the person leaves free on each axis.
    # (The margin FILL also covers the sphere's image growing away from the axis.)
    radius = extent * focal / torch.sqrt(distance**2 - extent**2)
    free = (size / 2 - (radius / FILL)[:, None]).clamp_min(0.0)  # (B, 2)
    offset = d.aim * free * _uniform(generator, (n, 2), -1.0, 1.0, device)
    ray = torch.nn.functional.normalize(torch.cat([offset / focal[:, None], torch.ones_like(focal)[:, None]], -1),
                                        dim=-1)
    rotation = _turn_axis_to(ray) @ rotation
    return VirtualCameras(rotation, centre, focal, principal, size, k1)


def detector_noise(pixels: torch.Tensor, scale: torch.Tensor, noise: float,
                   generator: torch.Generator) -> torch.Tensor:
    """Detector-like jitter added to pixels (B, R, J, 2): Gaussian, with standard deviation
    `noise` x `scale` (B,) (the person's size in the image), correlated over three
    consecutive frames (the mean of three white draws), as detections wobble
    rather than flicker."""
    b, r = pixels.shape[:2]
    white = torch.randn((b, r + 2) + pixels.shape[2:], generator=generator, device=pixels.device)
    correlated = (white[:, :-2] + white[:, 1:-1] + white[:, 2:]) / math.sqrt(3.0)
    return pixels + correlated * (noise * scale).reshape(-1, 1, 1, 1)


# --- single cameras for cameras files -----------------------------------------------

def rotation_to_quaternion(matrix: np.ndarray) -> list[float]:
    """A rotation matrix (3, 3) -> unit quaternion [w, x, y, z] (the same rotation)."""
    m = np.asarray(matrix, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q) / np.linalg.norm(q)
    return (q if q[0] >= 0 else -q).tolist()


def look_at_camera(name: str, position, target, *, width: int, height: int, focal_mm: float,
                   roll: float = 0.0, azimuth: float | None = None) -> Camera:
    """A camera at `position` (world metres) looking at `target`, image `width` x `height`,
    focal length `focal_mm` (35 mm-equivalent), principal point at the centre, no distortion,
    turned by `roll` degrees about its axis. `azimuth` (the plots' viewing angle) defaults
    to the camera's direction seen from the target."""
    centre = torch.tensor([position], dtype=torch.float64)
    rotation = _roll(torch.tensor([roll * math.pi / 180.0], dtype=torch.float64)) @ \
        _look_at(centre, torch.tensor([target], dtype=torch.float64))
    if azimuth is None:
        dx, dy = (np.asarray(position, dtype=np.float64) - np.asarray(target, dtype=np.float64))[:2]
        azimuth = math.degrees(math.atan2(dy, dx))
    f = float(focal_pixels(focal_mm, width, height))
    return Camera(id=name, res_w=width, res_h=height, azimuth=float(azimuth), focal_length=(f, f),
                  center=(width / 2.0, height / 2.0), orientation=tuple(rotation_to_quaternion(rotation[0].numpy().T)),
                  translation=tuple(float(v) for v in position))


def cameras_file_entry(cameras: list[Camera], subjects: list[str], *, fps: float) -> dict:
    """One dataset's entry of a cameras file (docs/hdf5-format.md, `/cameras`) holding
    `cameras` (with extrinsics) for every one of `subjects`: what `rie prepare-data
    --cameras FILE --project` reads to make a test set in these views."""
    intrinsics, views = [], []
    for camera in cameras:
        d = camera.to_dict()
        views.append({"orientation": d.pop("orientation"), "translation": d.pop("translation")})
        intrinsics.append(d)
    return {"fps": fps, "intrinsics": intrinsics, "extrinsics": {s: [dict(v) for v in views] for s in subjects}}
