"""Reading the original Human3.6M `S*/MyPoseFeatures/D3_Positions/<Action>.cdf` files.

Each file holds the variable "Pose" of shape (1, N, 96): 32 joints x 3 world
coordinates in millimetres. cdflib is an optional dependency (`pip install -e ".[cdf]"`),
imported only when CDF files are actually read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rie_cli.errors import RieError, install_hint

CDF_PATTERN = "S*/MyPoseFeatures/D3_Positions/*.cdf"

# Human3.6M's file names differ from the action names every published table (and
# VideoPose3D's .npz files) use for two actions.
_CANONICAL_ACTIONS = (("TakingPhoto", "Photo"), ("WalkingDog", "WalkDog"))

# S11's "Directions" video is corrupted; the usual protocol leaves the take out.
_SKIPPED = {("S11", "Directions")}


def canonical_action(file_action: str) -> str:
    """'TakingPhoto 1' -> 'Photo 1', 'WalkingDog' -> 'WalkDog'; others unchanged."""
    for old, new in _CANONICAL_ACTIONS:
        if file_action.startswith(old):
            return new + file_action[len(old):]
    return file_action


def _subject_order(subject: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", subject)
    return (int(digits) if digits else 0, subject)


def find_h36m_cdf_files(cdf_dir: Path) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """subject -> action -> CDF path (subjects S1, S5, .., S11 in numeric order), and
    notes on what was left out."""
    cdf_dir = Path(cdf_dir)
    if not cdf_dir.is_dir():
        raise RieError(f"CDF directory not found: {cdf_dir}")
    files: dict[str, dict[str, Path]] = {}
    notes: list[str] = []
    for path in sorted(cdf_dir.glob(CDF_PATTERN)):
        subject = path.parts[-4]
        action = canonical_action(path.stem)
        if (subject, action) in _SKIPPED:
            notes.append(f"left out {subject} '{action}' (its video is corrupted; standard protocol)")
            continue
        files.setdefault(subject, {})[action] = path
    if not files:
        raise RieError(f"no Human3.6M CDF files ({CDF_PATTERN}) under {cdf_dir}")
    ordered = {s: dict(sorted(files[s].items())) for s in sorted(files, key=_subject_order)}
    return ordered, notes


def _cdflib():
    try:
        import cdflib
    except ImportError:
        raise RieError(f"reading CDF files needs cdflib: {install_hint('cdf')}") from None
    return cdflib


def read_h36m_pose(path: Path) -> np.ndarray:
    """(N, 32, 3) float64 world positions in metres from one D3_Positions CDF file."""
    cdflib = _cdflib()
    try:
        pose = np.asarray(cdflib.CDF(str(path)).varget("Pose"), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - cdflib raises many types for broken files
        raise RieError(f"cannot read CDF file {path}: {exc}") from None
    if pose.ndim < 2 or pose.shape[-1] != 96:
        raise RieError(f"{path}: 'Pose' has shape {pose.shape}, expected (1, N, 96) (32 joints x 3)")
    pose = pose.reshape(-1, 32, 3) / 1000.0  # millimetres -> metres
    if len(pose) == 0:
        raise RieError(f"{path}: 'Pose' holds no frames")
    return pose
