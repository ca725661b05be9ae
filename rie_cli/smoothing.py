"""Temporal smoothing of predicted poses: less jitter for animation and rendering.

    smooth_poses(poses, "savgol")                        # (T, J, 3) -> (T, J, 3)
    smooth_poses(poses, "oneeuro", fps=30, beta=0.5)

Methods (docs/predict.md, "Smoothing", has the measured effect on P1, P2 and MPJVE):

- `none`: the poses as predicted.
- `savgol`: Savitzky-Golay, offline and zero-lag: every frame is replaced by the value
  at its centre of a least-squares polynomial of degree `order` fitted to the
  `window` frames around it. A polynomial of degree <= `order` passes unchanged; in
  the first and last window/2 frames the polynomial fitted to the first (last)
  `window` frames is evaluated, so the ends are neither padded nor shortened.
  Sequences shorter than the window use the longest odd window that fits.
- `oneeuro`: the 1-euro filter (Casiez et al., CHI 2012), causal (each frame uses
  only the past, so it also suits streaming): an exponential smoother whose cutoff
  rises with speed, cutoff = `min_cutoff` + `beta` x speed (Hz; speed of each joint in
  units per second, estimated with a `d_cutoff` low-pass). Slow motion is smoothed
  strongly, fast motion follows with little lag. Needs the frame rate `fps`.

Everything is vectorised over joints and coordinates; arrays of any shape (T, ...)
are smoothed along their first axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rie_cli.errors import RieError

METHODS = ("none", "savgol", "oneeuro")
# Defaults: see the measurements in docs/predict.md (bnmocap noisy 2D, 50 fps).
DEFAULTS = {
    "none": {},
    "savgol": {"window": 9, "order": 2},
    "oneeuro": {"min_cutoff": 1.5, "beta": 10.0, "d_cutoff": 1.0, "fps": 50.0},
}


def smooth_poses(poses: np.ndarray, method: str = "none", **params) -> np.ndarray:
    """Smooth poses (T, J, 3), a trajectory (T, 3) or any (T, ...) array along time.

    `params` override the method's `DEFAULTS`; unknown names are an error. The result
    has the input's shape and float dtype.
    """
    if method not in METHODS:
        raise RieError(f"unknown smoothing method '{method}' (choose from {', '.join(METHODS)})")
    unknown = sorted(set(params) - set(DEFAULTS[method]))
    if unknown:
        raise RieError(f"smoothing '{method}' has no parameter {', '.join(unknown)} "
                       f"(it has: {', '.join(DEFAULTS[method]) or 'none'})")
    x = np.asarray(poses)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    if method == "none" or len(x) < 2:
        return x.astype(dtype, copy=True)
    settings = {**DEFAULTS[method], **{k: v for k, v in params.items() if v is not None}}
    if method == "savgol":
        out = savgol(x, int(settings["window"]), int(settings["order"]))
    else:
        out = one_euro(x, **{k: float(v) for k, v in settings.items()})
    return out.astype(dtype)


@dataclass
class Smoothing:
    """A chosen filter and its parameters, applied to every predicted sequence.

    The frame rate the 1-euro filter needs comes from the data (`apply(poses, fps)`)
    unless `params` fixes it.
    """

    method: str = "none"
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = {k: v for k, v in self.params.items() if v is not None}
        smooth_poses(np.zeros((2, 1)), self.method, **self.params)  # validates now, not after predicting

    @property
    def active(self) -> bool:
        return self.method != "none"

    def apply(self, poses: np.ndarray, fps: float | None = None) -> np.ndarray:
        params = dict(self.params)
        if self.method == "oneeuro" and fps and "fps" not in params:
            params["fps"] = float(fps)
        return smooth_poses(poses, self.method, **params)

    def describe(self, fps: float | None = None) -> str:
        params = dict(self.params)
        if self.method == "oneeuro" and fps and "fps" not in params:
            params["fps"] = float(fps)
        return describe(self.method, **params)


def describe(method: str, **params) -> str:
    """'savgol (window 9, order 2)' for messages and file metadata."""
    if method == "none":
        return "none"
    settings = {**DEFAULTS.get(method, {}), **{k: v for k, v in params.items() if v is not None}}
    return f"{method} (" + ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in settings.items()) + ")"


# --- Savitzky-Golay -------------------------------------------------------------------

def savgol_matrix(window: int, order: int) -> np.ndarray:
    """(window, window) matrix M: row i gives the fitted value at position i of the
    window from the window's samples, M = V pinv(V), V the polynomial design matrix."""
    positions = np.arange(window) - window // 2
    design = np.vander(positions, order + 1, increasing=True).astype(np.float64)  # (W, order+1)
    return design @ np.linalg.pinv(design)  # (W, W) projection onto polynomials


def savgol(x: np.ndarray, window: int, order: int) -> np.ndarray:
    """Savitzky-Golay smoothing of (T, ...) along time; see the module docstring."""
    if window < 1 or window % 2 == 0:
        raise RieError(f"the Savitzky-Golay window must be a positive odd number of frames, got {window}")
    if order < 0 or order >= window:
        raise RieError(f"the Savitzky-Golay order must be between 0 and window - 1 ({window - 1}), got {order}")
    x = np.asarray(x, dtype=np.float64)
    frames = len(x)
    if window > frames:  # short sequence: the longest odd window that fits
        window = frames if frames % 2 else frames - 1
        order = min(order, window - 1)
    if window == 1:
        return x.copy()
    half = window // 2
    matrix = savgol_matrix(window, order)  # (W, W)
    flat = x.reshape(frames, -1)  # (T, C)
    windows = np.lib.stride_tricks.sliding_window_view(flat, window, axis=0)  # (T-W+1, C, W)
    out = np.empty_like(flat)
    out[half:frames - half] = windows @ matrix[half]  # centre row: (T-W+1, C)
    out[:half] = matrix[:half] @ flat[:window]  # first window's fit at its first frames
    out[frames - half:] = matrix[half + 1:] @ flat[frames - window:]  # last window's fit
    return out.reshape(x.shape)


# --- 1-euro filter --------------------------------------------------------------------

def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(x: np.ndarray, *, min_cutoff: float, beta: float, d_cutoff: float, fps: float) -> np.ndarray:
    """The 1-euro filter along time of (T, ...) arrays. The last axis of a (T, J, 3)
    array is one point: its speed (norm) sets the cutoff for all three coordinates."""
    if fps <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
        raise RieError(f"1-euro filter: fps, min cutoff and d cutoff must be positive and beta not negative "
                       f"(got fps {fps:g}, min cutoff {min_cutoff:g}, d cutoff {d_cutoff:g}, beta {beta:g})")
    x = np.asarray(x, dtype=np.float64)
    points = x.reshape(len(x), -1, x.shape[-1]) if x.ndim >= 2 else x.reshape(len(x), -1, 1)  # (T, P, D)
    dt = 1.0 / fps
    alpha_d = _alpha(d_cutoff, dt)
    out = np.empty_like(points)
    out[0] = points[0]
    speed = np.zeros(points.shape[1:])  # (P, D) filtered velocity
    for t in range(1, len(points)):
        velocity = (points[t] - out[t - 1]) / dt  # (P, D)
        speed = speed + alpha_d * (velocity - speed)
        cutoff = min_cutoff + beta * np.linalg.norm(speed, axis=-1, keepdims=True)  # (P, 1)
        out[t] = out[t - 1] + _alpha(cutoff, dt) * (points[t] - out[t - 1])
    return out.reshape(x.shape)
