"""Lifting speed on a CPU: frames/s of `rie predict`'s lifting beside the authors' code.

    python benchmarks/bench_lifting.py --data bnmocap.h5 --authors-dir PATH/Pose3D-RIE
    python benchmarks/bench_lifting.py --data bnmocap.h5                  # rie only
    python benchmarks/bench_lifting.py --data bnmocap.h5 --authors-dir PATH --device cuda --threads 1

For receptive fields 27, 81 and 243 (RIE with the fusion module, the shape of the
published models; channels 256, latent 256), 1 and 2 threads, flip TTA on and off:

- rie: `InferenceModel.predict` (`rie_cli.loading`), the lifting step of `rie predict`
  and of `Lifter.lift`, in fp32 and in bf16 (where bf16 is native);
- the authors: their model class in eval mode (the single-frame form their evaluation
  uses) over their `Evaluate_Generator`'s windows, averaging the mirrored prediction
  as their evaluation does, fp32 (their code has no other precision).

Both run the same weights (the authors' model, freshly initialised with seed 4321 and
read by rie as one of their checkpoints) on the same frames: the first `--frames`
frames of the test subjects' sequences of the prepared file (normalised keypoints).
For every cell the sides alternate (authors, rie fp32, rie bf16, authors, ...) for
`--repeats` rounds; the best and the median frames/s of each are printed, and the
ratios to the authors' at the same threads and TTA. The first line gives the CPU
capability, the last the load average.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import authors_code  # noqa: E402
from rie_cli.data.dataset import PoseDataset  # noqa: E402
from rie_cli.devices import bf16_native, describe_device, resolve_device  # noqa: E402
from rie_cli.loading import load_for_inference  # noqa: E402
from rie_cli.skeleton import H36M_17  # noqa: E402


def test_frames(data: Path, keypoints: str, frames: int) -> list[np.ndarray]:
    """Whole sequences of the test subjects, then a piece of the next, `frames` frames in all."""
    dataset = PoseDataset(data)
    out, total = [], 0
    for seq in dataset.sequences(list(dataset.test_subjects), keypoints):
        take = seq.keypoints_2d[: frames - total]
        out.append(np.ascontiguousarray(take, dtype=np.float32))
        total += len(take)
        if total >= frames:
            break
    return out


class AuthorsLifter:
    """The authors' evaluation of a list of sequences: their generator's windows, their
    model, the mirrored prediction mirrored back and averaged."""

    def __init__(self, copy: Path, init: Path, receptive_field: int, device: torch.device):
        sys.path.insert(0, str(copy))
        if device.type != "cuda":  # their model makes one tensor with .cuda()
            torch.Tensor.cuda = lambda self, *args, **kwargs: self
        from common.generators import Evaluate_Generator
        from common.model import RIEModel

        self.generator = Evaluate_Generator
        self.model = RIEModel(17, 2, 17, filter_widths=list(authors_code.FILTER_WIDTHS[receptive_field]),
                              channels=256, latten_features=256, is_train=False, Optimize1f=True, stage=3)
        self.model.load_state_dict(torch.load(init, weights_only=False)["model_pos"])
        self.model.eval().to(device)
        self.device, self.pad = device, (receptive_field - 1) // 2
        self.left, self.right = list(H36M_17.joints_left), list(H36M_17.joints_right)

    def __call__(self, sequences: list[np.ndarray], tta: bool) -> list[np.ndarray]:
        out = []
        with torch.no_grad():
            for seq in sequences:
                windows = self.generator(1024, None, None, [seq], 1, pad=self.pad, causal_shift=0, augment=tta,
                                         shuffle=False, kps_left=self.left, kps_right=self.right,
                                         joints_left=self.left, joints_right=self.right)
                for batch in windows.next_epoch():
                    pred = self.model(torch.from_numpy(batch[2].astype("float32")).to(self.device))
                    if tta:
                        mirrored = self.model(torch.from_numpy(batch[3].astype("float32")).to(self.device))
                        mirrored[:, :, :, 0] *= -1
                        mirrored[:, :, self.left + self.right] = mirrored[:, :, self.right + self.left]
                        pred = (pred + mirrored) / 2
                    out.append(pred.squeeze(1).cpu().numpy())
        return out


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="prepared HDF5 file (rie prepare-data), 17 joints")
    parser.add_argument("--keypoints", default="noisy")
    parser.add_argument("--authors-dir", help="a clone of paTRICK-swk/Pose3D-RIE (run from a copy); rie only without")
    parser.add_argument("--frames", type=int, default=1000, help="test frames lifted per measurement (default 1000)")
    parser.add_argument("--receptive-fields", default="27,81,243")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", help="for the authors' copy and the weights (default: a new temp dir)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="rie_lifting_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sequences = test_frames(Path(args.data), args.keypoints, args.frames)
    frames = sum(map(len, sequences))
    precisions = ["fp32"] + (["bf16"] if bf16_native(device) else [])
    copy = authors_code.authors_copy(Path(args.authors_dir), work) if args.authors_dir else None
    if copy is None:  # the same initial weights need their model class: without it, a random rie model
        from rie_cli.model import ModelConfig, build_model
        from rie_cli.model.checkpoint import FORMAT, save_checkpoint
    print(f"device: {describe_device(device)}; torch {torch.__version__}; {frames} frames in {len(sequences)} "
          f"sequences; best / median of {args.repeats}; load average {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"{'RF':>4s} {'thr':>3s} {'TTA':>4s} {'authors fp32':>14s}"
          + "".join(f"{'rie ' + p:>14s}{'ratio':>13s}" for p in precisions))
    for rf in (int(r) for r in args.receptive_fields.split(",")):
        init = work / f"init_rf{rf}.bin"
        if copy is not None:
            authors_code.write_initial_model(copy, init, 3, rf, authors_code.authors_env("cpu", 1))
        else:
            model = build_model(ModelConfig(filter_widths=authors_code.FILTER_WIDTHS[rf], fusion=True))
            init = work / f"init_rf{rf}.pt"
            save_checkpoint(init, {"format": FORMAT, "config": model.config.to_dict(), "stage": 3,
                                   "model": model.state_dict()})
        theirs = AuthorsLifter(copy, init, rf, device) if copy is not None else None
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for tta in (True, False):
                ours = {p: load_for_inference(init, device=device, precision=p, tta=tta) for p in precisions}
                times = {name: [] for name in ["authors", *precisions]}
                for name in times:  # warm-up: first calls allocate buffers and pick kernels
                    if name == "authors" and theirs is not None:
                        theirs(sequences[:1], tta)
                    elif name != "authors":
                        ours[name].predict(sequences[:1])
                for _ in range(args.repeats):
                    if theirs is not None:
                        times["authors"].append(timed(lambda: theirs(sequences, tta)))
                    for p in precisions:
                        times[p].append(timed(lambda p=p: ours[p].predict(sequences)))
                rate = {k: (frames / min(v), frames / statistics.median(v)) if v else None for k, v in times.items()}
                line = f"{rf:4d} {threads:3d} {'on' if tta else 'off':>4s} "
                line += f"{rate['authors'][0]:8.0f}/{rate['authors'][1]:<5.0f}" if rate["authors"] else f"{'-':>14s}"
                for p in precisions:
                    line += f"{rate[p][0]:8.0f}/{rate[p][1]:<5.0f}"
                    line += (f"{rate[p][0] / rate['authors'][0]:6.2f}x/{rate[p][1] / rate['authors'][1]:.2f}x"
                             if rate["authors"] else f"{'':13s}")
                print(line, flush=True)
    print(f"frames/s as best/median; ratio = rie / authors (best/median); load average after "
          f"{Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
