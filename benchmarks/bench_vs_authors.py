"""`rie` against the authors' code: same data, same recipe, same machine, one run.

    python benchmarks/bench_vs_authors.py --authors-dir PATH/Pose3D-RIE --data bnmocap.h5 --keypoints noisy
    python benchmarks/bench_vs_authors.py ... --device cuda              # on a GPU
    python benchmarks/bench_vs_authors.py ... --train-windows 0 --actions all --epochs 80   # full size

PATH is a clone of github.com/paTRICK-swk/Pose3D-RIE; it is run from a temporary copy
(`authors_code.py` says how, without editing its files). The prepared file (`rie
prepare-data`) is written in the authors' `.npz` layout, so both codes read the same
frames. For each configuration (`--configs`, default stage 1 at receptive field 27 and
stage 3 at 243) and each of `--rounds` rounds, in this order, so that a busy machine
slows every side alike:

1. the authors' `run.py`: `--epochs` epochs without per-epoch evaluation, then its
   final evaluation (flip TTA, action-wise P1/P2) on the test subjects;
2. `rie train` with the same recipe in fp32, then `rie evaluate` (TTA) of its model;
3. `rie` at its fastest here (bf16 where native, `--compile` on a GPU), both steps.

Stages 2 and 3 start both codes from one initial model: the authors' model class,
freshly initialised with seed 4321, saved as their checkpoint (their `-p`/`-ft`,
our `--init`). Stage 1 starts both from scratch (each seeds 4321).

Times: training seconds per epoch, measured per training window (the two codes cut
`--subset` slices at different places, so window counts differ by a few), the
evaluation's wall time once data and model are loaded (authors: from their
"Evaluating..." line to the end of the process; rie: `evaluate_checkpoint` from its
`on_start` call to its result; both include scoring), peak
resident memory of each child process (ru_maxrss; on a GPU also the peak CUDA
memory). Minimum and median over all epochs / rounds of each side, and their ratios.
The default run is small (`--actions raise-up-both-hands`: 3,556 test frames; about
10,000 and 2,000 training windows per epoch; 2 epochs, 2 rounds), yet it took about 50
minutes for stage 1 alone on a 2-core machine at load 8-20 (docs/training.md);
`--train-windows 0 --actions all` uses everything.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import authors_code  # noqa: E402
from rie_cli.data.dataset import PoseDataset  # noqa: E402
from rie_cli.devices import bf16_native, describe_device, resolve_device  # noqa: E402
from rie_cli.model import ModelConfig, build_model  # noqa: E402
from rie_cli.training.options import STAGE_RECIPES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Our side's children: `rie train` (through the CLI) or `evaluate_checkpoint` (what
# `rie evaluate` runs), timed inside; both report the peak CUDA memory at exit.
RIE_DRIVER = '''import atexit, json, runpy, sys, time
import torch
@atexit.register
def _cuda_peak():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        print("BENCH_CUDA_PEAK_BYTES", torch.cuda.max_memory_allocated(), flush=True)
if sys.argv[1] == "train":
    sys.argv = ["rie"] + sys.argv[1:]
    runpy.run_module("rie_cli", run_name="__main__", alter_sys=True)
else:
    from pathlib import Path
    from rie_cli.evaluation import evaluate_checkpoint
    a = json.loads(sys.argv[2])
    start = []  # once data and model are loaded, as the authors' "Evaluating..." line
    r = evaluate_checkpoint(Path(a["checkpoint"]), Path(a["data"]), a["keypoints"], subjects=a["subjects"],
                            actions=a["actions"], tta=True, device=a["device"], precision=a["precision"],
                            on_start=lambda frames: start.append(time.perf_counter()))
    print("BENCH_EVAL", json.dumps({"seconds": time.perf_counter() - start[0], "p1": r.average.mpjpe,
                                    "p2": r.average.p_mpjpe}), flush=True)
'''


@dataclass(frozen=True)
class Config:
    stage: int
    receptive_field: int
    target_windows: int

    @property
    def name(self) -> str:
        return f"stage {self.stage}, RF {self.receptive_field}"

    @property
    def widths(self) -> str:
        return ",".join(str(w) for w in authors_code.FILTER_WIDTHS[self.receptive_field])


@dataclass
class Side:
    """What one code measured for one configuration, over all rounds."""
    label: str
    epoch_seconds: list[float] = field(default_factory=list)
    window_seconds: list[float] = field(default_factory=list)  # per training window, per epoch
    eval_seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    peak_cuda: list[int] = field(default_factory=list)
    errors: list[tuple[float, float]] = field(default_factory=list)  # (P1, P2) mm
    windows: int = 0


@dataclass
class Child:
    lines: list[tuple[float, str]]  # (seconds since start, line)
    peak_rss: int
    peak_cuda: int
    seconds: float


def run_child(cmd: list[str], env: dict, log: Path, stop_at: str | None = None) -> Child:
    """Run `cmd`, timestamping every output line as it arrives; its own peak RSS (wait4).
    `stop_at`: end the child when a line starts with it (what follows is not measured)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines, stopped = [], False
    with open(log, "w") as out:
        for line in proc.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
            out.write(line)
            if stop_at and line.startswith(stop_at):
                proc.send_signal(signal.SIGINT)  # not SIGTERM: its exit handlers still report CUDA memory
                stopped = True
                break
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    seconds = time.perf_counter() - start
    if proc.returncode != 0 and not stopped:
        sys.exit(f"child failed (exit {proc.returncode}), see {log}:\n" + "\n".join(t for _, t in lines[-15:]))
    cuda = [int(t.split()[1]) for _, t in lines if t.startswith("BENCH_CUDA_PEAK_BYTES")]
    return Child(lines, usage.ru_maxrss * 1024, cuda[0] if cuda else 0, seconds)


def _first(lines, prefix: str) -> float:
    return next(t for t, text in lines if text.startswith(prefix))


def run_authors(ctx, config: Config, subset: float, round_: int, side: Side, evaluate: bool) -> None:
    tag = f"s{config.stage}_rf{config.receptive_field}_r{round_}"
    args = ["run", "--stage", str(config.stage), "-k", ctx.keypoints, "-arc", config.widths,
            "-str", ctx.their_train, "-ste", ctx.their_test, "-e", str(ctx.epochs), "--subset", str(subset),
            "--no-eval", "--checkpoint-frequency", "1000000", "-c", str(ctx.copy / "checkpoint" / tag),
            "-lr", str(STAGE_RECIPES[config.stage]["lr"])]  # rie's stage learning rate (theirs: 1e-3 always)
    if ctx.actions:
        args += ["-a", ",".join(ctx.actions)]
    if config.stage > 1:
        args += ["-p" if config.stage == 2 else "-ft", str(ctx.init[config])]
    child = run_child(authors_code.authors_command(ctx.copy, *args), ctx.authors_env, ctx.work / f"authors_{tag}.log",
                      stop_at=None if evaluate else "Evaluating...")
    marks = [_first(child.lines, "** The final evaluation")]
    marks += [t for t, text in child.lines if text.startswith("[") and "] time" in text]
    if len(marks) != ctx.epochs + 1:
        sys.exit(f"unexpected output of the authors' run.py, see {ctx.work / f'authors_{tag}.log'}")
    side.windows = ctx.authors_windows[config]
    for a, b in zip(marks, marks[1:]):
        side.epoch_seconds.append(b - a)
        side.window_seconds.append((b - a) / side.windows)
    side.peak_rss.append(child.peak_rss)
    side.peak_cuda.append(child.peak_cuda)
    if evaluate:
        side.eval_seconds.append(child.seconds - _first(child.lines, "Evaluating..."))
        p1 = [float(t.split(":")[1].split()[0]) for _, t in child.lines if t.startswith("Protocol #1   (MPJPE)")]
        p2 = [float(t.split(":")[1].split()[0]) for _, t in child.lines if t.startswith("Protocol #2 (P-MPJPE)")]
        side.errors.append((p1[-1], p2[-1]))


def run_rie(ctx, config: Config, subset: float, round_: int, side: Side, precision: str, compile_: bool,
            evaluate: bool) -> None:
    tag = f"s{config.stage}_rf{config.receptive_field}_{precision}{'_compiled' if compile_ else ''}_r{round_}"
    run_dir = ctx.work / "rie" / tag
    args = ["train", "--stage", str(config.stage), "--data", str(ctx.data), "-k", ctx.keypoints,
            "--subjects-train", ",".join(ctx.train_subjects), "--subjects-test", ",".join(ctx.test_subjects),
            "--epochs", str(ctx.epochs), "--subset", str(subset), "--no-eval", "--checkpoint-every", "0",
            "--checkpoint-dir", str(run_dir), "--force", "--device", ctx.device, "--precision", precision]
    args += ["--filter-widths", config.widths] if config.stage == 1 else ["--init", str(ctx.init[config])]
    if ctx.actions:
        args += ["--actions", ",".join(ctx.actions)]
    if compile_:
        args.append("--compile")
    child = run_child([sys.executable, "-u", "-c", RIE_DRIVER, *args], ctx.rie_env, ctx.work / f"rie_{tag}.log")
    with open(run_dir / "log.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        seconds = float(row["train_time_s"])
        side.windows = round(float(row["frames_per_s"]) * seconds)
        side.epoch_seconds.append(seconds)
        side.window_seconds.append(seconds / side.windows)
    side.peak_rss.append(child.peak_rss)
    side.peak_cuda.append(child.peak_cuda)
    if evaluate:
        request = {"checkpoint": str(run_dir / "last.pt"), "data": str(ctx.data), "keypoints": ctx.keypoints,
                   "subjects": ctx.test_subjects, "actions": ctx.actions, "device": ctx.device,
                   "precision": precision}
        child = run_child([sys.executable, "-u", "-c", RIE_DRIVER, "evaluate", json.dumps(request)], ctx.rie_env,
                          ctx.work / f"rie_{tag}_eval.log")
        result = json.loads(next(t for _, t in child.lines if t.startswith("BENCH_EVAL")).split(" ", 1)[1])
        side.eval_seconds.append(result["seconds"])
        side.errors.append((result["p1"], result["p2"]))
        side.peak_rss.append(child.peak_rss)
        side.peak_cuda.append(child.peak_cuda)


# --- set-up ---

def parse_configs(text: str, windows: str) -> list[Config]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    targets = [int(w) for w in windows.split(",")]
    if len(targets) == 1:
        targets *= len(names)
    if len(targets) != len(names):
        sys.exit(f"--train-windows: one number, or one per configuration ({len(names)})")
    configs = []
    for name, target in zip(names, targets):
        try:
            stage, rf = name.lower().split("-rf")
            config = Config(int(stage.lstrip("s")), int(rf), target)
        except ValueError:
            sys.exit(f"--configs: '{name}' is not like s1-rf27")
        if config.receptive_field not in authors_code.FILTER_WIDTHS or config.stage not in (1, 2, 3):
            sys.exit(f"--configs: '{name}': stage 1-3, receptive field 27, 81 or 243")
        if config.stage == 2 and config.receptive_field != 243:
            sys.exit("--configs: the authors' stage 2 loads a stage-1 model of receptive field 243 only")
        configs.append(config)
    return configs


def uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


class Context:
    """Everything the runs share: data, the authors' copy, environments, initial models."""

    def __init__(self, args, configs: list[Config]):
        self.work = Path(args.work_dir or tempfile.mkdtemp(prefix="rie_vs_authors_")).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.data, self.keypoints, self.epochs, self.device = Path(args.data).resolve(), args.keypoints, args.epochs, args.device
        dataset = PoseDataset(self.data)
        dataset.check_source(self.keypoints)
        self.train_subjects = list(dataset.train_subjects)
        self.test_subjects = list(dataset.test_subjects)
        self.actions = None if args.actions == "all" else [a for a in args.actions.split(",") if a]
        self.copy = authors_code.authors_copy(Path(args.authors_dir), self.work)
        names = authors_code.write_authors_data(self.data, self.keypoints, self.copy / "data")
        self.their_train = ",".join(names[s] for s in self.train_subjects)
        self.their_test = ",".join(names[s] for s in self.test_subjects)
        threads = dict(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED="1")
        self.authors_env = authors_code.authors_env(self.device, args.threads)
        self.rie_env = dict(os.environ, **threads, PYTHONPATH=str(REPO))
        if not self.device.startswith("cuda"):
            self.rie_env["CUDA_VISIBLE_DEVICES"] = ""
        full = {c: authors_code.authors_windows(self.data, self.keypoints, self.train_subjects, self.actions, 1.0)
                for c in configs}
        self.subset = {c: min(1.0, c.target_windows / full[c]) if c.target_windows > 0 else 1.0 for c in configs}
        self.authors_windows = {c: authors_code.authors_windows(self.data, self.keypoints, self.train_subjects,
                                                                 self.actions, self.subset[c]) for c in configs}
        for c in configs:
            if self.authors_windows[c] < 1024:
                sys.exit(f"{c.name}: {self.authors_windows[c]} training windows per epoch (--subset "
                         f"{self.subset[c]:.3g} of short sequences): raise --train-windows or narrow --actions")
        self.init = {}
        for c in configs:
            if c.stage > 1:  # stage 2 starts from a stage-1 model, stage 3 from a full one
                self.init[c] = authors_code.write_initial_model(
                    self.copy, self.work / f"init_s{c.stage}_rf{c.receptive_field}.bin", 1 if c.stage == 2 else 3,
                    c.receptive_field, self.authors_env)


def fast_settings(device: str, compile_cpu: bool) -> tuple[str, bool] | None:
    """rie's fastest settings here: bf16 where native; torch.compile on a GPU (CUDA graphs)."""
    dev = resolve_device(device)
    if not bf16_native(dev):
        return None
    return "bf16", dev.type == "cuda" or compile_cpu


def parameter_count(config: Config) -> int:
    model = build_model(ModelConfig(filter_widths=authors_code.FILTER_WIDTHS[config.receptive_field],
                                    fusion=config.stage > 1))
    return sum(p.numel() for p in model.parameters())


def _mm(values):
    return (min(values), statistics.median(values)) if values else (float("nan"), float("nan"))


def report(config: Config, ctx: Context, sides: list[Side]) -> dict:
    authors = sides[0]
    print(f"\n{config.name} (filter widths {config.widths}; {parameter_count(config):,} parameters; "
          f"--subset {ctx.subset[config]:.4g}): training windows/epoch "
          + ", ".join(f"{s.label} {s.windows:,}" for s in sides))
    head = f"{'':34s}" + "".join(f"{s.label:>22s}" for s in sides)
    print(head)

    def row(label, values, fmt="{:.1f} / {:.1f}"):
        print(f"{label:34s}" + "".join(f"{fmt.format(*v):>22s}" for v in values))

    row("train s/epoch (min / median)", [_mm(s.epoch_seconds) for s in sides])
    row("train ms per 1k windows", [tuple(1e6 * x for x in _mm(s.window_seconds)) for s in sides], "{:.0f} / {:.0f}")
    row("  speed-up vs authors", [(_mm(authors.window_seconds)[0] / _mm(s.window_seconds)[0],
                                   _mm(authors.window_seconds)[1] / _mm(s.window_seconds)[1]) for s in sides],
        "{:.2f}x / {:.2f}x")
    if authors.eval_seconds:
        row("evaluation with TTA, s", [_mm(s.eval_seconds) for s in sides])
        row("  speed-up vs authors", [(_mm(authors.eval_seconds)[0] / _mm(s.eval_seconds)[0],
                                       _mm(authors.eval_seconds)[1] / _mm(s.eval_seconds)[1]) for s in sides],
            "{:.2f}x / {:.2f}x")
        row("P1 / P2 (mm, first round)", [s.errors[0] for s in sides], "{:.1f} / {:.1f}")
    row("peak RSS, MB (max of children)", [(max(s.peak_rss) / 2**20,) for s in sides], "{:.0f}")
    if any(max(s.peak_cuda) for s in sides):
        row("peak CUDA memory, MB", [(max(s.peak_cuda) / 2**20,) for s in sides], "{:.0f}")
    return {"config": config.name, "stage": config.stage, "receptive_field": config.receptive_field,
            "subset": ctx.subset[config],
            "sides": {s.label: {k: v for k, v in vars(s).items() if k != "label"} for s in sides}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors-dir", required=True, help="a clone of paTRICK-swk/Pose3D-RIE (run from a copy)")
    parser.add_argument("--data", required=True, help="prepared HDF5 file (rie prepare-data), 17 joints")
    parser.add_argument("--keypoints", default="noisy", help="2D source in the file (default noisy)")
    parser.add_argument("--configs", default="s1-rf27,s3-rf243", help="stage-RF pairs (default s1-rf27,s3-rf243)")
    parser.add_argument("--train-windows", default="10000,2000",
                        help="training windows per epoch (with flip) per configuration, via --subset; 0: all")
    parser.add_argument("--actions", default="raise-up-both-hands", help="action prefixes for training and test, or 'all'")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="authors, rie, authors, rie, ... (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads of every child (OMP_NUM_THREADS)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the authors' code takes CUDA when it sees it)")
    parser.add_argument("--compile-cpu", action="store_true", help="also --compile rie's fast run on a CPU")
    parser.add_argument("--no-eval", action="store_true", help="training times only (children stop at evaluation)")
    parser.add_argument("--work-dir", help="where data, copies, logs and checkpoints go (default: a new temp dir)")
    parser.add_argument("--json", help="write every measurement to this file")
    args = parser.parse_args(argv)
    configs = parse_configs(args.configs, args.train_windows)
    torch.set_num_threads(args.threads)
    load_before = uptime()
    ctx = Context(args, configs)
    fast = fast_settings(args.device, args.compile_cpu)
    print(f"device: {describe_device(resolve_device(args.device))}; torch {torch.__version__}; "
          f"{args.threads} thread(s) per child; load average before {load_before}")
    print(f"data {ctx.data.name} ({ctx.keypoints}): train {ctx.train_subjects} (authors: {ctx.their_train}), "
          f"test {ctx.test_subjects} ({ctx.their_test}); actions {ctx.actions or 'all'}; {args.epochs} epochs x "
          f"{args.rounds} rounds; work dir {ctx.work}")
    results = []
    for config in configs:
        sides = [Side("authors"), Side("rie fp32")]
        if fast:
            sides.append(Side(f"rie {fast[0]}{' compiled' if fast[1] else ''}"))
        for r in range(args.rounds):
            print(f"{config.name}, round {r + 1}/{args.rounds} (load {uptime()})", flush=True)
            run_authors(ctx, config, ctx.subset[config], r, sides[0], not args.no_eval)
            run_rie(ctx, config, ctx.subset[config], r, sides[1], "fp32", False, not args.no_eval)
            if fast:
                run_rie(ctx, config, ctx.subset[config], r, sides[2], fast[0], fast[1], not args.no_eval)
        results.append(report(config, ctx, sides))
    print(f"\nload average after: {uptime()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": describe_device(resolve_device(args.device)),
                                               "torch": torch.__version__, "threads": args.threads,
                                               "epochs": args.epochs, "rounds": args.rounds,
                                               "results": results}, indent=1))


if __name__ == "__main__":
    main()
