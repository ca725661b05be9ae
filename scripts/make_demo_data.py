"""Regenerate data/bnmocap-demo/ (the shipped demo subset) from the shared bnmocap data.

    python scripts/make_demo_data.py                      # ../shared/data/bnmocap -> data/bnmocap-demo
    python scripts/make_demo_data.py --source DIR --out DIR

Deterministic: for each subject and each kept activity, the takes are taken in
name order until that activity's frame budget is reached; the arrays are copied
unchanged (the 2D files stay exact projections / the same noisy detections).
The README with the licence notice is not touched.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SUBJECTS = ("BN2-active", "BN2-feminine", "BN2-normal")
# activity -> frame budget per subject (the take that crosses it is kept whole):
# about 2,400 frames per subject keeps the three .npz files near 8 MB, since
# float32 coordinates barely compress (about 1.1 kB per frame with both 2D sources).
BUDGETS = {
    "walk": 700,
    "run": 400,
    "wave-left-hand": 300,
    "wave-right-hand": 300,
    "raise-up-both-hands": 200,
    "raise-up-right-hand": 200,
}
SOURCES_2D = ("gt", "noisy")


def select(positions_3d: dict) -> dict[str, list[str]]:
    """subject -> kept actions, in name order."""
    kept = {}
    for subject in SUBJECTS:
        actions = sorted(positions_3d[subject])
        kept[subject] = []
        for activity, budget in BUDGETS.items():
            frames = 0
            for action in actions:
                if action.split(" ")[0] == activity and frames < budget:
                    kept[subject].append(action)
                    frames += len(positions_3d[subject][action])
    return {s: sorted(actions) for s, actions in kept.items()}


def save_npz(path: Path, **arrays) -> None:
    """np.savez_compressed with a fixed timestamp inside the zip, so reruns are byte-identical."""
    np.savez_compressed(path, **arrays)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "bnmocap")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bnmocap-demo")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    positions_3d = np.load(args.source / "data_3d_bnmocap.npz", allow_pickle=True)["positions_3d"].item()
    kept = select(positions_3d)
    save_npz(args.out / "data_3d_bnmocap.npz",
             positions_3d={s: {a: positions_3d[s][a] for a in kept[s]} for s in SUBJECTS})
    for source in SOURCES_2D:
        archive = np.load(args.source / f"data_2d_bnmocap_{source}.npz", allow_pickle=True)
        positions_2d = archive["positions_2d"].item()
        save_npz(args.out / f"data_2d_bnmocap_{source}.npz",
                 positions_2d={s: {a: positions_2d[s][a] for a in kept[s]} for s in SUBJECTS},
                 metadata=archive["metadata"].item())

    cameras = json.loads((args.source / "cameras_bnmocap.json").read_text())
    for entry in cameras.values():
        entry["extrinsics"] = {s: e for s, e in entry["extrinsics"].items() if s in SUBJECTS}
    (args.out / "cameras_bnmocap.json").write_text(json.dumps(cameras, indent=1) + "\n")

    for subject in SUBJECTS:
        frames = sum(len(positions_3d[subject][a]) for a in kept[subject])
        print(f"{subject}: {len(kept[subject])} actions, {frames} frames")
    total = sum(p.stat().st_size for p in args.out.glob("*.npz"))
    print(f"npz files: {total / 2**20:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
