"""Running the authors' RIE code beside `rie`, on the same data (benchmarks only).

The authors' implementation (github.com/paTRICK-swk/Pose3D-RIE, MIT) is not part of
this project and nothing of it is copied here: the benchmarks take the location of a
clone (`--authors-dir`), copy it to a temporary folder and run it from there, started
through a small launcher of ours written next to it. The launcher makes the three
changes its code needs to run here, without editing any of its files:

- its Human3.6M camera tables are replaced (in memory) by the data's cameras: its
  loader reads the extrinsics of every subject from that table;
- on a machine without CUDA, `Tensor.cuda()` returns the tensor itself: its model
  creates one tensor with `.cuda()` in every forward pass;
- `torch.load` defaults to `weights_only=False` for its own checkpoints (torch >= 2.6
  refuses pickled dicts otherwise).

`write_authors_data` writes a prepared `rie` HDF5 file in the layout its `run.py`
reads (`data/data_3d_h36m.npz`, `data/data_2d_h36m_<source>.npz`): subjects renamed
S1, S2, ... (its loader knows subjects only by those names), 3D in the 32-joint layout
of Human3.6M (its loader keeps 17 of them: ours, at `H36M_32_TO_17`), 2D in pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

from rie_cli.data import h5format
from rie_cli.errors import RieError
from rie_cli.skeleton import H36M_17, H36M_32_TO_17

FILTER_WIDTHS = {27: (3, 3, 3), 81: (3, 3, 3, 3), 243: (3, 3, 3, 3, 3)}

# Our launcher: the only code that runs inside the authors' copy besides theirs.
LAUNCHER = '''"""Written by rie's benchmarks/authors_code.py: starts the authors' run.py with the
data's cameras, on a CPU when there is no GPU, or writes a freshly initialised model."""
import atexit, json, os, runpy, sys
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.chdir(HERE)
import common.h36m_dataset as h36m

if os.path.exists(os.path.join(HERE, "data", "cameras.json")):
    cameras = json.load(open(os.path.join(HERE, "data", "cameras.json")))
    h36m.h36m_cameras_intrinsic_params[:] = cameras["intrinsics"]
    h36m.h36m_cameras_extrinsic_params.clear()
    h36m.h36m_cameras_extrinsic_params.update(cameras["extrinsics"])
if not torch.cuda.is_available():
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
_torch_load = torch.load


def _load(*args, **kwargs):
    kwargs.setdefault("weights_only", False)
    return _torch_load(*args, **kwargs)


torch.load = _load


@atexit.register
def _cuda_peak():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        print("BENCH_CUDA_PEAK_BYTES", torch.cuda.max_memory_allocated(), flush=True)


if sys.argv[1] == "init":  # init OUT STAGE WIDTHS: the model run.py would start from, seed 4321
    from common.model import RIEModel
    torch.manual_seed(4321)
    widths = [int(w) for w in sys.argv[4].split(",")]
    model = RIEModel(17, 2, 17, filter_widths=widths, channels=256, latten_features=256,
                     is_train=True, Optimize1f=True, stage=int(sys.argv[3]))
    torch.save({"model_pos": model.state_dict(), "epoch": 0}, sys.argv[2])
else:
    sys.argv = ["run.py"] + sys.argv[2:]
    runpy.run_path("run.py", run_name="__main__")
'''


def authors_copy(authors_dir: Path, work: Path) -> Path:
    """A temporary copy of the authors' code under `work`, with our launcher beside run.py."""
    authors_dir = Path(authors_dir)
    for needed in ("run.py", "common/model.py", "common/h36m_dataset.py", "common/generators.py"):
        if not (authors_dir / needed).is_file():
            raise RieError(f"--authors-dir {authors_dir}: no {needed} (a clone of paTRICK-swk/Pose3D-RIE expected)")
    copy = work / "authors"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(authors_dir, copy, ignore=shutil.ignore_patterns(".git", "*.bin", "*.npz", "__pycache__"))
    (copy / "data").mkdir(exist_ok=True)
    (copy / "checkpoint").mkdir(exist_ok=True)
    (copy / "bench_launch.py").write_text(LAUNCHER)
    return copy


def authors_env(device: str, threads: int) -> dict:
    """The environment of an authors' child process: their code takes CUDA whenever it sees it."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    if not device.startswith("cuda"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def authors_command(copy: Path, *args: str) -> list[str]:
    return [sys.executable, "-u", str(copy / "bench_launch.py"), *args]


def write_initial_model(copy: Path, out: Path, stage: int, receptive_field: int, env: dict) -> Path:
    """The authors' freshly initialised model (seed 4321) as one of their checkpoints: the
    common start of both codes for stages 2 and 3 (`rie train --init` reads their files)."""
    import subprocess

    widths = ",".join(str(w) for w in FILTER_WIDTHS[receptive_field])
    subprocess.run(authors_command(copy, "init", str(out), str(stage), widths), env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return out


def subject_names(subjects: list[str]) -> dict[str, str]:
    """Our subject name -> the name the authors' loader knows it by (S1, S2, ...)."""
    return {name: f"S{i + 1}" for i, name in enumerate(subjects)}


def write_authors_data(h5_path: Path, keypoints: str, data_dir: Path) -> dict[str, str]:
    """The prepared file `h5_path` in the layout of the authors' run.py, under `data_dir`.

    Returns the subject names used (ours -> theirs). Only 17-joint Human3.6M-layout data
    can be written (their loader reduces Human3.6M's 32 joints to these 17).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    positions, views = {}, {}
    with h5py.File(h5_path, "r") as f:
        if int(f.attrs["num_joints"]) != 17:
            raise RieError(f"{h5_path}: the authors' code reads 17-joint Human3.6M-layout data only")
        cameras = json.loads(f[h5format.CAMERAS_GROUP].attrs["json"])
        groups = list(f[h5format.SUBJECTS_GROUP].values())
        names = subject_names([g.attrs["name"] for g in groups])
        for group in groups:
            ours = names[group.attrs["name"]]
            positions[ours], views[ours] = {}, {}
            for action_group in group.values():
                action = action_group.attrs["name"]
                world = action_group["positions_3d"][()]
                full = np.zeros((len(world), 32, 3), np.float32)
                full[:, list(H36M_32_TO_17)] = world
                positions[ours][action] = full
                views[ours][action] = list(action_group[f"keypoints_2d/{keypoints}"][()].astype(np.float32))
    np.savez_compressed(data_dir / "data_3d_h36m.npz", positions_3d=positions)
    metadata = {"layout_name": "h36m", "num_joints": 17,
                "keypoints_symmetry": [list(H36M_17.joints_left), list(H36M_17.joints_right)]}
    np.savez_compressed(data_dir / f"data_2d_h36m_{keypoints}.npz", positions_2d=views, metadata=metadata)
    extrinsics = {theirs: cameras["extrinsics"][ours] for ours, theirs in names.items()}
    entry = {"fps": cameras["fps"], "intrinsics": cameras["intrinsics"], "extrinsics": extrinsics}
    (data_dir / "cameras.json").write_text(json.dumps(entry))
    return names


def authors_windows(h5_path: Path, keypoints: str, subjects: list[str], actions: list[str] | None,
                    subset: float) -> int:
    """Training windows per epoch of the authors' run.py (flip doubles them) for this selection:
    its --subset keeps round(N * subset) frames of every sequence of N frames."""
    total = 0
    with h5py.File(h5_path, "r") as f:
        for group in f[h5format.SUBJECTS_GROUP].values():
            if group.attrs["name"] not in subjects:
                continue
            for action_group in group.values():
                name = action_group.attrs["name"]
                if actions and not any(name.startswith(a) for a in actions):
                    continue
                views = action_group[f"keypoints_2d/{keypoints}"]
                n = views.shape[1]
                total += views.shape[0] * (int(round(n * subset)) if subset < 1 else n)
    return 2 * total
