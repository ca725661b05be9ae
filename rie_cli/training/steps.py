"""One optimisation step and one evaluation pass: what `rie train` repeats (docs/method.md §3).

    stats = train_steps(model, make_optimizer(params, lr, device), sampler, device=device)

The loss (MPJPE for a pose model, VideoPose3D's depth-weighted root error for a
trajectory model), the optimizer (AdamW, amsgrad), the forward pass's autocast for a
precision, `torch.compile` for `--compile`, and the authors' per-epoch schedules of
the learning rate and the BatchNorm momentum. `rie_cli.training.trainer` runs these
over epochs; benchmarks/bench_train.py and bench_gpu.py time `train_steps` itself.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from rie_cli import metrics
from rie_cli.data.windows import WindowSampler, to_device
from rie_cli.devices import PRECISIONS
from rie_cli.training.log import Reporter

INITIAL_BN_MOMENTUM, FINAL_BN_MOMENTUM = 0.1, 0.001
MM_PER_M = 1000.0

def bn_momentum(finished_epochs: int, total_epochs: int) -> float:
    """The authors' schedule: 0.1 at the start, decaying towards 0.001 at the last epoch."""
    return INITIAL_BN_MOMENTUM * math.exp(
        -finished_epochs / total_epochs * math.log(INITIAL_BN_MOMENTUM / FINAL_BN_MOMENTUM)
    )


def learning_rate(finished_epochs: int, initial_lr: float, decay: float) -> float:
    """The authors' schedule: `initial_lr` multiplied by `decay` after every finished epoch.

    A running product rather than `initial_lr * decay ** finished_epochs`: the two can
    differ in the last bit, and the product is what runs have always used (the
    authors' `lr *= lr_decay`), so a resumed run's rates match its checkpoints exactly.
    """
    lr = initial_lr
    for _ in range(finished_epochs):
        lr *= decay
    return lr


def autocast(device: torch.device, precision: str):
    """The forward pass's autocast for a resolved precision (fp32: none)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean joint distance over the batch: (B, 1, J, 3) x 2 -> scalar (metres)."""
    j = pred.shape[-2]
    return metrics.mpjpe(pred.reshape(-1, j, 3), target.reshape(-1, j, 3)).mean()


def trajectory_loss(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VideoPose3D's trajectory loss: the root error weighted per window by 1 / true depth.

    pred, target: (B, 1, 1, 3) camera-space roots (metres). Far people count less,
    since their absolute depth is less certain. Like VideoPose3D's `weighted_mpjpe`,
    the mean of weight x distance (not normalised by the weights). Returns the loss
    and the unweighted mean root error (metres, detached) that the logs report.
    """
    errors = torch.linalg.vector_norm(pred - target, dim=-1).reshape(-1)  # (B,)
    weights = 1.0 / target[..., 2].reshape(-1)  # (B,)
    return (weights * errors).mean(), errors.detach().mean()


def training_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, mean error in metres to report) for a pose or trajectory model."""
    if kind == "trajectory":
        return trajectory_loss(pred, target)
    loss = mpjpe_loss(pred, target)
    return loss, loss.detach()


def error_label(target: str) -> str:
    """What the logged error of a run measures, for axis labels and tables."""
    return "root position error (mm)" if target == "trajectory" else "MPJPE (mm)"


def make_optimizer(params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with amsgrad and PyTorch's default weight decay (0.01), as the authors'.

    The fused kernel does the same update in one pass over each tensor: on a CPU it is
    ~6x faster than the default per-parameter loop, which for the 20-40 M parameters
    of RIE would otherwise take a large share of every step.
    """
    return torch.optim.AdamW(params, lr=lr, amsgrad=True, fused=device.type in ("cpu", "cuda"))


def compile_for_training(model: nn.Module, device: torch.device, *, distributed: bool = False) -> nn.Module:
    """`rie train --compile`: the model under torch.compile, with CUDA graphs on one GPU.

    Static shapes: an epoch has at most two batch sizes (even split), so at most two
    compilations for the whole run (the epoch's BatchNorm momentum is a tensor input,
    see `ScheduledBatchNorm1d`); evaluation runs the plain model. On a GPU the eager
    step is bound by launching hundreds of small kernels: on an H100 (RF 243, batch
    1,024, bf16) a step took 52 ms eagerly, 34 ms compiled and 10 ms with CUDA graphs
    (mode "reduce-overhead", benchmarks/bench_gpu.py). CUDA graphs are left out under
    DDP, whose gradient hooks run between the graph's kernels.
    """
    mode = "reduce-overhead" if device.type == "cuda" and not distributed else "default"
    return torch.compile(model, mode=mode, dynamic=False)


@dataclass
class StepStats:
    """What one pass over batches measured (sums, so processes can add them up)."""

    error_sum_mm: float = 0.0  # sum over windows of the per-window MPJPE
    windows: int = 0
    seconds: float = 0.0
    prep_seconds: float = 0.0  # gathering the batch and moving it to the device

    @property
    def mpjpe(self) -> float | None:
        return self.error_sum_mm / self.windows if self.windows else None


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, batches, *, device: torch.device,
                precision: str = "fp32", reporter: Reporter | None = None, max_steps: int | None = None,
                window_log: list | None = None, scaler: torch.amp.GradScaler | None = None,
                target: str = "pose") -> StepStats:
    """Optimisation steps over `batches` ((x2d, y3d, ids) as the samplers yield them: tensors
    on the device, or NumPy arrays that are copied there).

    `precision` is a resolved one (`rie_cli.devices.resolve_precision`); fp16 needs a
    `scaler` (its small exponent range underflows small gradients otherwise).
    `target`: "pose" (MPJPE loss) or "trajectory" (`trajectory_loss`).
    """
    stats = StepStats()
    start = time.perf_counter()
    iterator = iter(batches)
    step = 0
    while max_steps is None or step < max_steps:
        t0 = time.perf_counter()
        try:
            x, y, ids = next(iterator)
        except StopIteration:
            break
        x, y = to_device(x, device), to_device(y, device)  # (B, R, J, 2), (B, 1, J or 1, 3)
        stats.prep_seconds += time.perf_counter() - t0
        with autocast(device, precision):
            pred = model(x)  # (B, 1, J or 1, 3)
        loss, error = training_loss(pred.float(), y, target)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        stats.error_sum_mm += error.item() * MM_PER_M * len(ids)
        stats.windows += len(ids)
        if window_log is not None:
            window_log.append(ids)
        if reporter is not None:
            reporter.advance(len(ids))
        step += 1
    stats.seconds = time.perf_counter() - start
    return stats


@torch.no_grad()
def evaluate_windows(model: nn.Module, sampler: WindowSampler, *, device: torch.device, precision: str = "fp32",
                     reporter: Reporter | None = None) -> StepStats:
    """Summed MPJPE (mm) of the model in its current mode over the sampler's windows."""
    stats = StepStats()
    start = time.perf_counter()
    for x, y, ids in sampler:
        x, y = to_device(x, device), to_device(y, device)
        with autocast(device, precision):
            pred = model(x)
        j = y.shape[-2]
        errors = metrics.mpjpe(pred.float().reshape(-1, j, 3), y.reshape(-1, j, 3))  # (B,)
        stats.error_sum_mm += errors.double().sum().item() * MM_PER_M
        stats.windows += len(ids)
        if reporter is not None:
            reporter.advance(len(ids))
    stats.seconds = time.perf_counter() - start
    return stats
