"""The training loop of docs/method.md §3, resumable and data-parallel.

    result = train(TrainOptions(stage=1, data=Path("demo.h5"), keypoints="gt",
                                checkpoint_dir=Path("runs/s1")), ConsoleReporter(console))

Per epoch (the step, loss, optimizer and schedules are in `steps.py`, the sequences
and samplers in `inputs.py`): AdamW (amsgrad, default weight decay) on the MPJPE loss
over shuffled, flip-augmented windows; then, in eval mode and without test-time
augmentation, the MPJPE on the training windows and on the validation windows
(frame-weighted, as the authors report during training); then the learning rate is
multiplied by `lr_decay` and the temporal blocks' BatchNorm momentum follows
0.1 * exp(-e / E * ln(0.1 / 0.001)); then `last.pt` (and `best.pt`, and every
`checkpoint_every` epochs a periodic file) is written. Everything the next epoch depends on is in the checkpoint, and the data
order of epoch e depends only on (seed, e), so `--resume` continues bit for bit.

A trajectory run (`target="trajectory"`) is the same loop over the same windows with
the camera-space root (N, 1, 3) as target and VideoPose3D's loss for it,
`trajectory_loss`; its logged "MPJPE" is the root's position error (the MPJPE of its
one joint).
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rie_cli.atomic import check_directory
from rie_cli.data.dataset import WorldSequence
from rie_cli.data.windows import WindowSampler
from rie_cli.devices import describe_device, resolve_precision, set_tf32
from rie_cli.errors import RieError
from rie_cli.model import ModelConfig
from rie_cli.training import distributed, state
from rie_cli.training.inputs import RunData, load_data, run_sampler
from rie_cli.training.lock import RunLock
from rie_cli.training.log import Reporter, write_logs
from rie_cli.training.options import TrainOptions, resolve_options
from rie_cli.training.stages import (StageModel, resume_stage, set_frozen_mode, start_at_mean_root,
                                     start_stage)
from rie_cli.training.steps import (INITIAL_BN_MOMENTUM, bn_momentum, compile_for_training, error_label,
                                    evaluate_windows, learning_rate, make_optimizer, train_steps)

# Set to 1 to have every process save the window ids it trained on in each epoch
# (windows_rank<r>_epoch<e>.npy in the checkpoint directory): how the tests check
# that the shards of a distributed run cover each window exactly once.
RECORD_WINDOWS_ENV = "RIE_TRAIN_RECORD_WINDOWS"


@dataclass
class TrainResult:
    checkpoint_dir: Path
    stage: int
    config: ModelConfig
    epoch: int  # epochs finished in total
    epochs: int  # the run's planned total
    history: list[dict] = field(default_factory=list)
    best_val: float | None = None
    last: Path | None = None
    best: Path | None = None
    trainable_parameters: int = 0
    frozen_parameters: int = 0


def _checkpoint_dir(opts: TrainOptions) -> Path:
    if opts.checkpoint_dir is not None:
        return check_directory(opts.checkpoint_dir)  # a file there: one line, before the data loads
    if opts.resume is not None:
        return opts.resume.parent
    raise RieError("--checkpoint-dir is required: where the run writes its checkpoints and logs")


def train(options: TrainOptions, reporter: Reporter | None = None) -> TrainResult:
    """Run (or continue) one stage; returns where the results went and the metrics."""
    dist = distributed.setup(options.device)
    try:
        return _train(options, reporter if dist.is_main and reporter is not None else Reporter(), dist)
    finally:
        dist.close()


@dataclass
class _Run:
    """A run set up for its epochs: what one epoch and the end of an epoch read and update.

    `lr`, `momentum`, `history` and `best_val` are those of the next epoch; they are
    what the checkpoint stores, so that a resumed run picks up exactly there.
    """

    opts: TrainOptions  # resolved: every recipe option, data selection and architecture set
    directory: Path
    dist: distributed.Distributed
    precision: str  # resolved (rie_cli.devices.resolve_precision)
    staged: StageModel
    model: nn.Module  # the plain model on the device: evaluated and saved
    train_model: nn.Module  # what the training step runs: wrapped for data parallelism, maybe compiled
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None  # fp16 only
    train_sampler: WindowSampler
    eval_samplers: list  # [(log key, sampler)]: training windows, then validation windows; [] with --no-eval
    lr: float
    momentum: float
    start_epoch: int  # epochs finished before this process started
    history: list[dict]
    best_val: float | None
    resumed: bool
    record_windows: bool  # RECORD_WINDOWS_ENV

    @property
    def config(self) -> ModelConfig:
        return self.staged.config


def _train(options: TrainOptions, reporter: Reporter, dist: distributed.Distributed) -> TrainResult:
    with ExitStack() as held:  # the directory's lock, from the claim to the end of the run
        return _run_epochs(_set_up(options, reporter, dist, held), reporter)


def _run_epochs(run: _Run, reporter: Reporter) -> TrainResult:
    n_train = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    n_frozen = sum(p.numel() for p in run.model.parameters() if not p.requires_grad)
    result = TrainResult(run.directory, run.opts.stage, run.config, run.start_epoch, run.opts.epochs, run.history,
                         run.best_val, trainable_parameters=n_train, frozen_parameters=n_frozen)
    for epoch in range(run.start_epoch, run.opts.epochs):
        epoch_start = time.perf_counter()
        row = _train_epoch(run, epoch, reporter)
        _end_epoch(run, epoch, row, reporter, epoch_start)
        result.epoch = epoch + 1

    result.history, result.best_val = run.history, run.best_val
    last, best = run.directory / state.LAST, run.directory / state.BEST
    result.last = last if last.exists() else None
    result.best = best if best.exists() else None
    return result


# --- set-up: options, data, model, run directory, samplers, optimizer, restore ---

def _set_up(options: TrainOptions, reporter: Reporter, dist: distributed.Distributed, held: ExitStack) -> _Run:
    """Everything before the first epoch, in an order that keeps the random streams of
    every run (and of a resumed one) the same: the weights' seed before the model is
    built, each process's dropout seed after it, restored RNG states last."""
    device = dist.device
    payload = state.read_training_checkpoint(options.resume) if options.resume is not None else None
    opts = resolve_options(options, None if payload is None else TrainOptions.from_dict(payload["options"]))
    opts = replace(opts, checkpoint_dir=_checkpoint_dir(opts))
    precision = resolve_precision(opts.precision, device)  # "auto" -> bf16 where native; refuses slow bf16
    if device.type == "cuda":
        set_tf32(opts.tf32)

    data = load_data(opts)
    # What the run trained on is part of its recipe (stored in checkpoints and run.json).
    opts = replace(opts, keypoints=data.keypoints, subjects_train=data.subjects_train,
                   subjects_test=data.subjects_test)
    torch.manual_seed(opts.seed)  # the same initial weights on every process
    staged = _stage_model(opts, data, payload)  # fills opts' architecture for stages 2 and 3
    model = staged.model.to(device)
    # The samplers refuse data they cannot make epochs of: before the directory is claimed.
    train_sampler, storage = run_sampler(data.train, staged.config, opts, dist, train=True,
                                         skeleton=data.skeleton)
    eval_samplers = []
    if opts.evaluate:
        eval_samplers = [(key, run_sampler(seqs, staged.config, opts, dist, train=False,
                                           skeleton=data.skeleton)[0])
                         for key, seqs in (("train_eval_mpjpe", data.train), ("val_mpjpe", data.val))]
    _claim_directory(opts, staged.config, dist, reporter, held, payload)

    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], opts.lr, device)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    lr, momentum, start_epoch, history, best_val = opts.lr, INITIAL_BN_MOMENTUM, 0, [], None
    torch.manual_seed(opts.seed + dist.rank)  # each process its own dropout masks
    if payload is not None:
        lr, momentum, start_epoch, history, best_val = _restore(payload, optimizer, scaler, dist, reporter)
    _set_schedules(model, optimizer, lr, momentum)

    run = _Run(opts, opts.checkpoint_dir, dist, precision, staged, model, _training_form(model, dist, opts),
               optimizer, scaler, train_sampler, eval_samplers, lr, momentum, start_epoch, history, best_val,
               resumed=payload is not None, record_windows=os.environ.get(RECORD_WINDOWS_ENV) == "1")
    _announce(run, reporter, storage)
    return run


def _stage_model(opts: TrainOptions, data: RunData, payload: dict | None) -> StageModel:
    """The model of a new run of the stage, or the resumed run's model with its freezing."""
    if payload is not None:
        return resume_stage(opts, ModelConfig.from_dict(payload["config"]), payload["model"], data.skeleton)
    staged = start_stage(opts, data.skeleton)
    if staged.config.target == "trajectory" and not isinstance(data.train[0], WorldSequence):
        start_at_mean_root(staged.model, [s.trajectory for s in data.train])
    return staged


def _claim_directory(opts: TrainOptions, config: ModelConfig, dist: distributed.Distributed, reporter: Reporter,
                     held: ExitStack, payload: dict | None) -> None:
    """Lock the checkpoint directory for this run (`held` releases it), check it (--resume /
    --force rules; `payload`: the checkpoint resumed from), and write the run's run.json."""
    directory, identity = opts.checkpoint_dir, opts.identity()
    if dist.is_main:  # one lock per run, however many processes it has
        held.enter_context(RunLock(directory))
    resuming = payload is not None
    discard = state.check_run_directory(directory, identity, resuming=resuming, force=opts.force)
    later = state.check_resume_point(directory, opts.resume, payload["epoch"], opts.force) if resuming else []
    dist.barrier()  # every process has checked the directory before rank 0 writes to it
    if dist.is_main:
        if discard:
            deleted = state.discard_run(directory)
            reporter.message(f"--force: deleted the run {directory} held ({len(deleted)} files)")
        if later:
            state.rewind_run(directory, opts.resume, payload, later)
            write_logs(directory, payload.get("history", []), error_label(config.target))
            reporter.message(f"--force: deleted {len(later)} files of the epochs after {payload['epoch']} "
                             f"({', '.join(sorted(p.name for p in later))})")
        directory.mkdir(parents=True, exist_ok=True)
        state.write_run_file(directory, identity, config)


def _training_form(model: nn.Module, dist: distributed.Distributed, opts: TrainOptions) -> nn.Module:
    """The model as the training step runs it: data-parallel wrapped, compiled with --compile."""
    train_model = dist.wrap(model)
    if opts.compile:
        train_model = compile_for_training(train_model, dist.device, distributed=dist.enabled)
    return train_model


def _set_schedules(model: nn.Module, optimizer: torch.optim.Optimizer, lr: float, momentum: float) -> None:
    """Apply the next epoch's learning rate and BatchNorm momentum."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.set_bn_momentum(momentum)


def _announce(run: _Run, reporter: Reporter, storage: str) -> None:
    """The two lines a run starts with: what trains on what, and where and how it runs."""
    opts, dist, device = run.opts, run.dist, run.dist.device
    n_train = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    n_frozen = sum(p.numel() for p in run.model.parameters() if not p.requires_grad)
    reporter.message(
        f"stage {opts.stage}: {run.config.describe()}; {run.staged.source}; {n_train:,} trainable"
        + (f", {n_frozen:,} frozen ({'eval' if opts.frozen_eval else 'train'} mode)" if n_frozen else "")
        + f" parameters; {run.train_sampler.num_windows:,} training windows"
        + (f", {run.eval_samplers[1][1].num_windows:,} validation windows" if run.eval_samplers else "")
        + (f"; {dist.world_size} processes" if dist.enabled else "")
        + (f"; continuing after epoch {run.start_epoch}" if run.resumed else "")
    )
    reporter.message(f"on {describe_device(device)}; precision {run.precision}"
                     + (f" (from {opts.precision})" if opts.precision != run.precision else "")
                     + ("; TF32 matmuls" if opts.tf32 and device.type == "cuda" else "") + f"; {storage}")
    if run.start_epoch >= opts.epochs:
        reporter.message(f"the run already finished {run.start_epoch} of {opts.epochs} epochs: nothing to do "
                         "(raise --epochs to train longer)")


# --- one epoch, and the end of an epoch ---

def _train_epoch(run: _Run, epoch: int, reporter: Reporter) -> dict:
    """The optimisation steps of epoch `epoch` (0-based); its log row so far."""
    run.train_sampler.set_epoch(epoch)
    run.train_model.train()
    set_frozen_mode(run.model, run.staged.frozen_modules, bool(run.opts.frozen_eval))
    reporter.start_epoch(epoch + 1, run.opts.epochs, run.train_sampler.shard_windows())
    window_log = [] if run.record_windows else None
    stats = train_steps(run.train_model, run.optimizer, run.train_sampler, device=run.dist.device,
                        precision=run.precision, reporter=reporter, window_log=window_log, scaler=run.scaler,
                        target=run.config.target)
    if run.record_windows:
        np.save(run.directory / f"windows_rank{run.dist.rank}_epoch{epoch + 1:03d}.npy",
                np.concatenate(window_log) if window_log else np.zeros(0, np.int64))
    error_sum, windows = run.dist.sum([stats.error_sum_mm, stats.windows])
    return {"epoch": epoch + 1, "train_mpjpe": error_sum / windows, "train_eval_mpjpe": None,
            "val_mpjpe": None, "lr": run.lr, "bn_momentum": run.momentum,
            "train_time_s": stats.seconds, "frames_per_s": windows / stats.seconds,
            "batch_prep_share": stats.prep_seconds / stats.seconds}


def _end_epoch(run: _Run, epoch: int, row: dict, reporter: Reporter, epoch_start: float) -> None:
    """Evaluation, the next epoch's schedules, checkpoints, logs and curves of epoch `epoch`."""
    dist = run.dist
    dist.sync_buffers(run.model)
    _check_finite_weights(run.model, epoch)
    if run.eval_samplers:
        row.update(_evaluate(run.model, run.eval_samplers, dist, run.precision, reporter))

    # Schedules for the next epoch (the authors' order: after the evaluation).
    run.lr = learning_rate(epoch + 1, run.opts.lr, run.opts.lr_decay)
    run.momentum = bn_momentum(epoch + 1, run.opts.epochs)
    _set_schedules(run.model, run.optimizer, run.lr, run.momentum)

    is_best = row["val_mpjpe"] is not None and (run.best_val is None or row["val_mpjpe"] < run.best_val)
    if is_best:
        run.best_val = row["val_mpjpe"]
    rng_states = dist.gather(state.rng_state(dist.device))
    row["epoch_time_s"] = time.perf_counter() - epoch_start
    run.history.append(row)
    if dist.is_main:
        _write_checkpoints(run, epoch + 1, rng_states, is_best)
        write_logs(run.directory, run.history, error_label(run.config.target))
    dist.barrier()
    reporter.end_epoch(row, run.opts.epochs, is_best)


def _check_finite_weights(model: nn.Module, epoch: int) -> None:
    """RieError when epoch `epoch` (0-based) left NaN or infinite weights: the run diverged
    and every later epoch would be NaN too. Checked before its checkpoint is written, so
    last.pt keeps the last sound epoch. (fp16's GradScaler skips overflowing steps: it
    does not get here.)"""
    if all(bool(torch.isfinite(t).all()) for t in [*model.parameters(), *model.buffers()]
           if t.is_floating_point()):
        return
    kept = f"last.pt keeps epoch {epoch}" if epoch else "no checkpoint was written"
    raise RieError(f"training diverged in epoch {epoch + 1}: the weights are no longer finite (NaN or infinite); "
                   f"{kept}. Start over with a lower --lr")


def _restore(payload: dict, optimizer, scaler, dist: distributed.Distributed, reporter: Reporter):
    """Optimizer, fp16 gradient-scaler and RNG state of a resumed run; its schedules, position
    and history."""
    optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])  # its scale and growth tracker: fp16 resumes exactly
    rng = payload["rng"]
    if len(rng) == dist.world_size:
        state.restore_rng_state(rng[dist.rank], dist.device)
    else:
        reporter.message(f"[yellow]note:[/] the checkpoint was written by {len(rng)} processes, this run "
                         f"has {dist.world_size}: dropout draws differ from an uninterrupted run")
    return (payload["lr"], payload["bn_momentum"], payload["epoch"], list(payload.get("history", [])),
            payload.get("best_val"))


def _evaluate(model: nn.Module, samplers, dist: distributed.Distributed, precision: str,
              reporter: Reporter) -> dict:
    """Frame-weighted MPJPE (mm) of the eval-mode model over each sampler, summed over processes."""
    model.eval()
    reporter.start_evaluation(sum(s.shard_windows() for _, s in samplers))
    out = {}
    for key, sampler in samplers:
        ev = evaluate_windows(model, sampler, device=dist.device, precision=precision, reporter=reporter)
        error_sum, windows = dist.sum([ev.error_sum_mm, ev.windows])
        out[key] = error_sum / windows
    return out


def _write_checkpoints(run: _Run, epoch: int, rng_states: list, is_best: bool) -> None:
    """last.pt (everything resuming needs), best.pt (the weights, without what only resuming
    needs) and the periodic epoch_NNN.pt (resumable) after `epoch` finished epochs."""
    from rie_cli.model.checkpoint import save_checkpoint

    payload = state.make_payload(
        model=run.model, stage=run.opts.stage, optimizer_state=run.optimizer.state_dict(),
        epoch=epoch, lr=run.lr, bn_momentum=run.momentum, rng_states=rng_states, history=run.history,
        options=run.opts.to_dict(), best_val=run.best_val,
        scaler_state=None if run.scaler is None else run.scaler.state_dict(),
    )
    last = run.directory / state.LAST
    save_checkpoint(last, payload)
    if is_best:
        save_checkpoint(run.directory / state.BEST, state.weights_payload(payload))
    if run.opts.checkpoint_every and epoch % run.opts.checkpoint_every == 0:
        state.publish_copy(last, run.directory / state.periodic_name(epoch))
