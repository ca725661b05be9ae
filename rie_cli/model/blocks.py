"""The two building blocks: the temporal convolution block and the fully connected block.

Attribute names and registration order follow the authors' (and VideoPose3D's)
modules, so that their state dicts load unchanged and list in the same order:
`expand_bn`, `shrink`, `expand_conv`, `layers_conv`, `layers_bn` for the temporal
block; `fc_1`, `bn_1`, `fc_2`, `layers[i]` (`w1`, `batch_norm1`, `w2`, `batch_norm2`)
for the fully connected block.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn


class ScheduledBatchNorm1d(nn.BatchNorm1d):
    """nn.BatchNorm1d whose momentum can change between epochs without recompiling.

    The authors decay the BatchNorm momentum every epoch. torch.compile reads a float
    attribute as a constant of the graph, so each new momentum recompiled the training
    step (twice an epoch, one per batch size: a minute each, and after eight the
    compiler gives up and runs eagerly). Under compilation the running statistics are
    updated here from a 0-d tensor instead, which the graph reads as an input. Run
    eagerly it is nn.BatchNorm1d exactly (same kernels, same numbers); checkpoints do
    not see the tensor (it is not persistent).
    """

    def __init__(self, num_features: int, momentum: float = 0.1) -> None:
        super().__init__(num_features, momentum=momentum)
        self.register_buffer("momentum_value", torch.tensor(momentum), persistent=False)

    def set_momentum(self, momentum: float) -> None:
        self.momentum = momentum
        self.momentum_value.fill_(momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.compiler.is_compiling()):
            return super().forward(x)
        # x: (N, C) or (N, C, T). The same update as nn.BatchNorm1d's: running = (1 - m) *
        # running + m * batch, with the unbiased batch variance.
        dims = [d for d in range(x.dim()) if d != 1]
        with torch.no_grad():
            batch = x.detach().float()
            self.running_mean.lerp_(batch.mean(dims), self.momentum_value)
            self.running_var.lerp_(batch.var(dims, correction=1), self.momentum_value)
            self.num_batches_tracked.add_(1)
        # Normalised with the batch's own statistics; momentum 0 leaves nothing to update.
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class TemporalBlock(nn.Module):
    """VideoPose3D's temporal convolution stack in its strided ("single-frame") form.

    Every level convolves with stride = kernel, so a window of exactly
    `prod(filter_widths)` frames shrinks to one output frame, and `k` such windows laid
    end to end give `k` outputs. The dilated form (dilation = product of the earlier
    widths, stride 1) uses the same weights; only the residual slicing differs.

    How it runs (`forward_frames`): activations are channels-last, (B*T, C). A
    convolution with stride = kernel = w reads non-overlapping groups of w frames,
    which are contiguous rows in that layout, so (B*T/w, w*C) times the kernel laid
    out as (w*C, C_out) is the whole convolution, forward and backward, as one matrix
    product (no im2col, no transposes; the evaluation form in `folding.py` does the
    same). On a CPU that made the training step ~1.2-1.3x faster than nn.Conv1d
    (benchmarks/bench_train.py measures both). On a CPU dropout draws its masks with
    `dropout_mask` (a quarter of the random-number work of nn.Dropout's, which took a
    quarter of the whole step); GPUs use the fused dropout kernel. The convolution form
    (`forward_conv`, nn.Conv1d and nn.Dropout: the step as it was, kept as the
    reference and as the benchmark's baseline; `use_conv_form(True)` switches every
    block to it) computes the same function; its masks are other draws.
    """

    # Class-wide switch to the reference nn.Conv1d form (tests and the benchmark baseline).
    conv_form = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_widths: tuple[int, ...],
        *,
        channels: int = 256,
        dropout: float = 0.2,
        causal: bool = False,
        activation: str = "leaky_relu",
    ) -> None:
        super().__init__()
        self.filter_widths = tuple(filter_widths)
        self.causal = causal
        self.drop = Dropout(dropout)
        # RIE uses LeakyReLU(0.2); VideoPose3D's own model uses ReLU.
        self.relu = nn.LeakyReLU(0.2, inplace=True) if activation == "leaky_relu" else nn.ReLU(inplace=True)
        self.expand_bn = ScheduledBatchNorm1d(channels, momentum=0.1)
        self.shrink = nn.Conv1d(channels, out_channels, 1)
        w0 = self.filter_widths[0]
        self.expand_conv = nn.Conv1d(in_channels, channels, w0, stride=w0, bias=False)
        layers_conv, layers_bn = [], []
        for w in self.filter_widths[1:]:
            layers_conv.append(nn.Conv1d(channels, channels, w, stride=w, bias=False))
            layers_bn.append(ScheduledBatchNorm1d(channels, momentum=0.1))
            layers_conv.append(nn.Conv1d(channels, channels, 1, bias=False))
            layers_bn.append(ScheduledBatchNorm1d(channels, momentum=0.1))
        self.layers_conv = nn.ModuleList(layers_conv)
        self.layers_bn = nn.ModuleList(layers_bn)
        # Where the residual of each level starts in its group of `w` frames: the centre
        # frame (w // 2), or in causal mode the last one (VideoPose3D's Optimized1f
        # causal_shift w // 2 on top of the centre, i.e. w - 1).
        self.residual_offsets = tuple((w - 1 if causal else w // 2) for w in self.filter_widths[1:])

    def receptive_field(self) -> int:
        rf = 1
        for w in self.filter_widths:
            rf *= w
        return rf

    def set_bn_momentum(self, momentum: float) -> None:
        self.expand_bn.set_momentum(momentum)
        for bn in self.layers_bn:
            bn.set_momentum(momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, k * R) -> (B, out_channels, k)
        if TemporalBlock.conv_form:
            return self.forward_conv(x)
        return self.forward_frames(x.transpose(1, 2)).transpose(1, 2)

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Channels last: (B, k * R, C_in) -> (B, k, out_channels)."""
        if TemporalBlock.conv_form:
            return self.forward_conv(x.transpose(1, 2)).transpose(1, 2)
        b, t, _ = x.shape
        w0 = self.filter_widths[0]
        h = _strided_conv(self.expand_conv, x.reshape(b * t // w0, -1))  # (B*T/w0, C)
        t //= w0
        h = self.drop(self.relu(self.expand_bn(h)))
        for level, (w, offset) in enumerate(zip(self.filter_widths[1:], self.residual_offsets)):
            c = h.shape[1]
            res = h.view(b * t // w, w, c)[:, offset]  # (B*T/w, C): one frame of every group the conv sees
            t //= w
            y = _strided_conv(self.layers_conv[2 * level], h.view(b * t, w * c))  # (B*T, C)
            y = self.drop(self.relu(self.layers_bn[2 * level](y)))
            y = _strided_conv(self.layers_conv[2 * level + 1], y)
            h = res + self.drop(self.relu(self.layers_bn[2 * level + 1](y)))
        return _strided_conv(self.shrink, h).view(b, t, -1)

    def forward_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The reference form with nn.Conv1d: (B, C_in, k * R) -> (B, out_channels, k)."""
        x = self.drop(self.relu(self.expand_bn(self.expand_conv(x))))  # (B, C, k * R / w0)
        for level, (w, offset) in enumerate(zip(self.filter_widths[1:], self.residual_offsets)):
            res = x[:, :, offset::w]  # (B, C, T / w): one frame of every group the conv sees
            x = self.drop(self.relu(self.layers_bn[2 * level](self.layers_conv[2 * level](x))))
            x = res + self.drop(self.relu(self.layers_bn[2 * level + 1](self.layers_conv[2 * level + 1](x))))
        return self.shrink(x)


MASK_BITS = 16  # random bits per element of a dropout mask


class Dropout(nn.Dropout):
    """nn.Dropout whose masks, in training on a CPU, come from `dropout_mask`.

    Elsewhere it is nn.Dropout: in eval mode, on GPUs (the fused kernel), under
    torch.compile (the compiler's own random numbers) and in the reference form of the
    step (`use_conv_form(True)`, the benchmark's baseline: the step as it was).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.training or self.p == 0 or x.device.type != "cpu" or TemporalBlock.conv_form
                or torch.compiler.is_compiling()):
            return super().forward(x)
        return x * dropout_mask(x.shape, self.p, x.dtype)


def dropout_mask(shape, p: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A CPU dropout mask: 0 with probability ~`p`, else 1 / (its keep probability), so
    that the mask's expectation is exactly 1, as nn.Dropout's.

    nn.Dropout on a CPU draws one double-precision number per element (`bernoulli_`),
    serially; that was a quarter of the training step (RF 27, batch 1,024). Here every
    64-bit random integer gives four 16-bit draws, compared with a threshold: the keep
    probability is round((1 - p) * 2^16) / 2^16 (0.8 -> 0.80000305), and the scale uses
    that same probability, so dropout stays unbiased.
    """
    n = math.prod(shape)
    keep_count = round((1.0 - p) * 2**MASK_BITS)  # of the 2^16 values of a draw, how many keep
    if keep_count == 0:  # p = 1 (or within 2^-17 of it): everything dropped, as nn.Dropout(1.0)
        return torch.zeros(shape, dtype=dtype)
    if keep_count == 2**MASK_BITS:
        # p < 2^-17 rounds to keeping everything. The threshold below would be 2^15,
        # which an int16 draw never reaches but which the comparison wraps to -2^15
        # (every element dropped): a mask of ones is what that rounding means.
        return torch.ones(shape, dtype=dtype)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)
    draws = words.view(torch.int16)[:n].view(shape)  # uniform in [-2^15, 2^15)
    keep = draws < keep_count - 2**15
    return keep.to(dtype).mul_(2**MASK_BITS / keep_count)


def use_conv_form(flag: bool) -> bool:
    """Run the step as it was before (True: TemporalBlocks as nn.Conv1d, dropout as
    nn.Dropout's masks) or in its fast form; returns the old setting."""
    old, TemporalBlock.conv_form = TemporalBlock.conv_form, bool(flag)
    return old


def _strided_conv(conv: nn.Conv1d, rows: torch.Tensor) -> torch.Tensor:
    """A stride = kernel convolution on channels-last rows: (N, k * C_in) -> (N, C_out).

    The row of a group holds its k frames one after another ((tap, channel), tap-major),
    so the kernel (C_out, C_in, k) is laid out as (C_out, k * C_in) to match.
    """
    w = conv.weight  # (C_out, C_in, k)
    return F.linear(rows, w.permute(0, 2, 1).reshape(w.shape[0], -1), conv.bias)


class ResidualLinear(nn.Module):
    """One residual unit of the fully connected block (the authors' `Linear`)."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.relu = nn.LeakyReLU(0.2, inplace=True)
        self.dropout = Dropout(dropout)
        self.w1 = nn.Linear(width, width)
        self.batch_norm1 = nn.BatchNorm1d(width)
        self.w2 = nn.Linear(width, width)
        self.batch_norm2 = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, width)
        y = self.dropout(self.relu(self.batch_norm1(self.w1(x))))
        y = self.dropout(self.relu(self.batch_norm2(self.w2(y))))
        return x + y


class FCBlock(nn.Module):
    """fc_1 -> BN -> LeakyReLU -> dropout -> `num_units` residual units -> fc_2."""

    def __init__(self, in_features: int, out_features: int, num_units: int, *, width: int = 1024,
                 dropout: float = 0.25) -> None:
        super().__init__()
        self.fc_1 = nn.Linear(in_features, width)
        self.bn_1 = nn.BatchNorm1d(width)
        # fc_2 is registered before `layers`, as in the authors' module, so that state
        # dict entries come in the same order as in their checkpoints.
        self.fc_2 = nn.Linear(width, out_features)
        self.layers = nn.ModuleList(ResidualLinear(width, dropout) for _ in range(num_units))
        self.relu = nn.LeakyReLU(0.2, inplace=True)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_features) -> (B, out_features)
        x = self.dropout(self.relu(self.bn_1(self.fc_1(x))))
        for unit in self.layers:
            x = unit(x)
        return self.fc_2(x)
