"""Reading BVH motion capture: the text, the local transforms, resampling, forward kinematics.

    clip = read_bvh(path)                                   # skeleton + channels, file units and axes
    offsets, rotations = local_transforms(clip)             # (T, J, 3), (T, J, 3, 3)
    offsets, rotations = resample(offsets, rotations, clip.fps, 50)
    positions, frames = forward_kinematics(clip.parents, offsets, rotations)

How the channels are read (the BVH format as Biovision described it; where it is
silent, what Blender's importer and `bvhio` do):
- A joint's local transform is a translation, then a rotation. The translation is its
  OFFSET; a position channel (`Xposition`, ...) *replaces* that component of the
  offset (Bandai Namco's files give every joint position channels equal to its offset,
  and the root's OFFSET is not added to its position channels).
- The rotation is R(c1) R(c2) R(c3) for the rotation channels in the order the
  CHANNELS line lists them (angles in degrees, right-handed): `Zrotation Xrotation
  Yrotation` means Rz Rx Ry applied to a child's offset.
- World transform of a joint = its parent's world transform times its local one.
- An `End Site` is a point fixed in its joint's frame (`end_site_positions`).

`rie_cli/bvh.py` writes BVH files with the same conventions (position channels on the
root only, OFFSET 0 there), so its files read back through this module unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rie_cli.errors import RieError

AXES = "XYZ"
# Frame times are written with a few digits (1/30 s as 0.0333333); a rate this close
# to a whole number of frames per second is that whole number.
WHOLE_FPS_TOLERANCE = 1e-3


@dataclass
class BvhClip:
    """One BVH file as written: skeleton, channels and motion, in the file's units and axes."""

    path: Path
    names: tuple[str, ...]
    parents: tuple[int, ...]  # -1 for the root
    offsets: np.ndarray  # (J, 3) OFFSET of each joint in its parent's frame
    channels: tuple[tuple[str, ...], ...]  # per joint, e.g. ("Zrotation", "Xrotation", "Yrotation")
    end_sites: dict[int, np.ndarray]  # joint -> (3,) End Site offset in that joint's frame
    frame_time: float  # seconds
    motion: np.ndarray  # (T, total channels) float64

    @property
    def num_frames(self) -> int:
        return len(self.motion)

    @property
    def fps(self) -> float:
        """Frames per second; a rate within 0.1 % of a whole number is that number."""
        rate = 1.0 / self.frame_time
        whole = round(rate)
        return float(whole) if whole > 0 and abs(rate - whole) <= WHOLE_FPS_TOLERANCE * whole else rate


class _Tokens:
    """The whitespace-separated words of a BVH file, read front to back."""

    def __init__(self, path: Path, text: str):
        self.path, self.words, self.pos = path, text.split(), 0

    def error(self, message: str) -> RieError:
        return RieError(f"{self.path}: not a readable BVH file: {message}")

    def next(self, what: str) -> str:
        if self.pos >= len(self.words):
            raise self.error(f"the file ends where {what} was expected")
        self.pos += 1
        return self.words[self.pos - 1]

    def expect(self, word: str) -> None:
        found = self.next(f"'{word}'")
        if found != word:
            raise self.error(f"expected '{word}', found '{found}'")

    def numbers(self, count: int, what: str) -> np.ndarray:
        words = [self.next(what) for _ in range(count)]
        try:
            return np.array([float(w) for w in words])
        except ValueError:
            raise self.error(f"{what} must be {count} numbers, found {' '.join(words)}") from None


def read_bvh(path: str | Path) -> BvhClip:
    """Parse a BVH file; a malformed file is a `RieError` naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise RieError(f"cannot read {path}: {exc.strerror or exc}") from None
    tokens = _Tokens(path, text)
    tokens.expect("HIERARCHY")
    tokens.expect("ROOT")
    skeleton = _Skeleton()
    skeleton.read_joint(tokens, parent=-1)
    tokens.expect("MOTION")
    tokens.expect("Frames:")
    frames = tokens.numbers(1, "the frame count")[0]
    tokens.expect("Frame")
    tokens.expect("Time:")
    frame_time = float(tokens.numbers(1, "the frame time")[0])
    if frames != int(frames) or frames < 1:
        raise tokens.error(f"the frame count must be a whole number >= 1, found {frames:g}")
    if not frame_time > 0:
        raise tokens.error(f"the frame time must be positive, found {frame_time:g}")
    width = sum(len(c) for c in skeleton.channels)
    values = tokens.words[tokens.pos:]
    if len(values) < int(frames) * width:
        raise tokens.error(f"{int(frames)} frames of {width} channels need {int(frames) * width} numbers, "
                           f"the motion has {len(values)}")
    try:
        motion = np.array(values[:int(frames) * width], dtype=np.float64).reshape(int(frames), width)
    except ValueError:
        raise tokens.error("the motion holds something that is not a number") from None
    if not np.isfinite(motion).all():
        raise tokens.error("the motion holds NaN or infinite values")
    return BvhClip(path, tuple(skeleton.names), tuple(skeleton.parents), np.array(skeleton.offsets),
                   tuple(skeleton.channels), skeleton.end_sites, frame_time, motion)


class _Skeleton:
    """The HIERARCHY section, filled joint by joint (depth first, as the file lists them)."""

    CHANNEL_NAMES = {f"{a}{kind}" for a in AXES for kind in ("position", "rotation")}

    def __init__(self):
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[np.ndarray] = []
        self.channels: list[tuple[str, ...]] = []
        self.end_sites: dict[int, np.ndarray] = {}

    def read_joint(self, tokens: _Tokens, parent: int) -> None:
        name = tokens.next("a joint name")
        index = len(self.names)
        self.names.append(name)
        self.parents.append(parent)
        tokens.expect("{")
        tokens.expect("OFFSET")
        self.offsets.append(tokens.numbers(3, f"the OFFSET of {name}"))
        tokens.expect("CHANNELS")
        count = tokens.numbers(1, f"the channel count of {name}")[0]
        channels = tuple(tokens.next(f"a channel of {name}") for _ in range(int(count)))
        unknown = [c for c in channels if c not in self.CHANNEL_NAMES]
        if unknown:
            raise tokens.error(f"joint {name} has an unknown channel '{unknown[0]}'")
        self.channels.append(channels)
        while True:
            word = tokens.next(f"the end of joint {name}")
            if word == "}":
                return
            if word == "JOINT":
                self.read_joint(tokens, parent=index)
            elif word == "End":
                tokens.expect("Site")
                tokens.expect("{")
                tokens.expect("OFFSET")
                self.end_sites[index] = tokens.numbers(3, f"the End Site OFFSET of {name}")
                tokens.expect("}")
            else:
                raise tokens.error(f"unexpected '{word}' in joint {name}")


# --- local transforms -----------------------------------------------------------------

def axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(T,) angles -> (T, 3, 3) right-handed rotations about X, Y or Z."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][AXES.index(axis)]  # the plane the rotation turns
    out = np.zeros(a.shape + (3, 3))
    k = AXES.index(axis)
    out[..., k, k] = 1.0
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = c, -s, s, c
    return out


def local_transforms(clip: BvhClip) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and joint, the translation (T, J, 3) and rotation (T, J, 3, 3) of the
    joint in its parent's frame (module docstring)."""
    frames, joints = clip.num_frames, len(clip.names)
    translations = np.broadcast_to(clip.offsets, (frames, joints, 3)).copy()
    rotations = np.broadcast_to(np.eye(3), (frames, joints, 3, 3)).copy()
    column = 0
    for j, channels in enumerate(clip.channels):
        for channel in channels:
            values = clip.motion[:, column]
            column += 1
            axis = channel[0]
            if channel.endswith("position"):
                translations[:, j, AXES.index(axis)] = values
            else:
                rotations[:, j] = rotations[:, j] @ axis_rotation(axis, values)
    return translations, rotations


def forward_kinematics(parents: tuple[int, ...], translations: np.ndarray,
                       rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World positions (T, J, 3) and world rotations (T, J, 3, 3) of every joint.
    Parents come before their children (the file's depth-first order)."""
    positions = np.empty_like(translations)
    frames = np.empty_like(rotations)
    for j, parent in enumerate(parents):
        if parent < 0:
            positions[:, j], frames[:, j] = translations[:, j], rotations[:, j]
        else:
            positions[:, j] = positions[:, parent] + np.einsum("tij,tj->ti", frames[:, parent], translations[:, j])
            frames[:, j] = frames[:, parent] @ rotations[:, j]
    return positions, frames


def end_site_positions(clip: BvhClip, positions: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(T, E, 3) world positions of the End Sites, in joint order."""
    if not clip.end_sites:
        return np.zeros((len(positions), 0, 3))
    return np.stack([positions[:, j] + frames[:, j] @ offset for j, offset in clip.end_sites.items()], axis=1)


# --- resampling ---------------------------------------------------------------------

def resample(translations: np.ndarray, rotations: np.ndarray, fps_in: float,
             fps_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Local transforms at `fps_out`: frame k at time k / fps_out, for every such time
    within the clip. Translations are interpolated linearly and rotations along the
    shortest arc (slerp), so bones keep their lengths between the file's frames."""
    count = len(translations)
    duration = (count - 1) / fps_in
    out_count = int(np.floor(duration * fps_out + 1e-6)) + 1
    source = np.minimum(np.arange(out_count) * fps_in / fps_out, count - 1)
    lower = np.minimum(np.floor(source).astype(int), max(count - 2, 0))
    upper = np.minimum(lower + 1, count - 1)
    weight = source - lower  # (K,)
    w = weight[:, None, None]
    moved = translations[lower] * (1 - w) + translations[upper] * w
    quats = _slerp(matrix_to_quaternion(rotations[lower]), matrix_to_quaternion(rotations[upper]), weight)
    return moved, quaternion_to_matrix(quats)


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (w, x, y, z); from the largest
    of the four diagonal combinations, so no division by a value near zero."""
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = np.stack([
        np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - trace, m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - trace,
                  m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 + 2 * m[..., 2, 2] - trace], -1),
    ], axis=-2)  # (..., 4 candidates, 4); candidate i has 4 q_i^2 at position i
    best = np.argmax(np.stack([1 + trace, 1 + 2 * m[..., 0, 0] - trace, 1 + 2 * m[..., 1, 1] - trace,
                               1 + 2 * m[..., 2, 2] - trace], -1), axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3, 3) rotations."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _slerp(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Shortest-arc interpolation of (K, J, 4) unit quaternions, weight (K,) in [0, 1]."""
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)  # q and -q are one rotation: take the nearer
    dot = np.abs(dot)
    angle = np.arccos(np.clip(dot, -1.0, 1.0))
    t = weight[:, None, None]
    sin = np.sin(angle)
    near = sin < 1e-6  # (almost) the same rotation: linear is exact enough
    safe = np.where(near, 1.0, sin)
    wa = np.where(near, 1 - t, np.sin((1 - t) * angle) / safe)
    wb = np.where(near, t, np.sin(t * angle) / safe)
    q = wa * a + wb * b
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
