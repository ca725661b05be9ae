"""The evaluation form of a model: BatchNorm folded into the layer before it, channels last.

In eval mode a BatchNorm is an affine map per channel, so it merges into the
convolution or linear layer it follows: W' = W * g / sqrt(var + eps) per output channel,
b' = (b - mean) * g / sqrt(var + eps) + beta. Dropout is the identity. What remains of
an RIE (or VideoPose3D) model is a chain of matrix multiplications, bias adds,
LeakyReLUs and residual adds, and `FoldedModel` runs exactly that:

- Activations are channels-last, (B, T, C). A temporal convolution whose stride equals
  its kernel (the strided form, docs/method.md §2.2) reads non-overlapping groups of k
  frames, which are contiguous in that layout: (B, T, C) viewed as (B*T/k, k*C), times
  the kernel laid out as (k*C, C_out), is the whole convolution, with no copy.
- Bias adds are fused into the multiplication (addmm); LeakyReLU and residual adds run
  in place; every intermediate lives in a workspace buffer reused from batch to batch
  (fresh large allocations would cost page faults on every batch).
- The relative encodings are linear per frame except for the temporal one, so the
  absolute and positional encodings are computed once per frame of a sequence
  (`frame_features`), windows are gathered from them with one `index_select` per body
  part, and only the subtraction of the reference frame is done per window.
- The folded weights are computed in float64 and stored in the chosen precision
  (float32, or bfloat16; bfloat16 on the CPU as the transpose's rows, see `_Dense.convert`).

The folded form is built from the model's own modules (`RIEModel.part_encoders()`,
`part_decoders()`, `fuse_blocks()`, `GlobalInfo`; a `TemporalBlock`'s convolutions,
BatchNorms, residual offsets and activation; an `FCBlock`'s layers), and the encodings
are `rie_cli.model.rie.relative_encodings`, the function the model itself runs, so a
renamed or reordered module cannot silently change what is folded. A module of an
unexpected kind or shape raises `NotFoldable`; the caller (`rie_cli.inference`) then
runs the model as it is and warns once that it took the slow path. Outputs equal the
eager model's up to float32 rounding (under 1e-6 m on outputs of order 1 m; per-action
errors move by ~1e-5 mm; tests/test_evaluation_folding.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rie_cli.model.blocks import FCBlock, TemporalBlock
from rie_cli.model.rie import ABSOLUTE, NUM_ENCODINGS, TEMPORAL, relative_encodings



class NotFoldable(Exception):
    """The model is not made of the modules the folded form knows how to fold."""


def _float64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


def _slope(activation: nn.Module) -> float:
    """The negative slope of a block's activation: LeakyReLU's, or 0 for ReLU."""
    if isinstance(activation, nn.LeakyReLU):
        return float(activation.negative_slope)
    if isinstance(activation, nn.ReLU):
        return 0.0
    raise NotFoldable(f"unknown activation {type(activation).__name__}")


class _Dense:
    """y = x @ weight + bias with weight (K, N): one folded convolution or linear layer."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.weight = weight  # (K, N)
        self.bias = bias  # (N,)

    @classmethod
    def conv(cls, conv: nn.Module, bn: nn.Module | None) -> "_Dense":
        """A strided Conv1d (stride = kernel, no padding or dilation), then its BatchNorm."""
        if not isinstance(conv, nn.Conv1d) or conv.groups != 1:
            raise NotFoldable(f"expected a Conv1d, found {type(conv).__name__}")
        if conv.stride[0] != conv.kernel_size[0] or conv.padding != (0,) or conv.dilation != (1,):
            raise NotFoldable("a temporal convolution is not in the strided form (stride = kernel, no padding)")
        w = _float64(conv.weight)  # (C_out, C_in, k)
        weight = w.permute(2, 1, 0).reshape(-1, w.shape[0])  # (k * C_in, C_out), rows tap-major
        b = _float64(conv.bias) if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        return cls._fold(weight, b, bn)

    @classmethod
    def linear(cls, linear: nn.Module, bn: nn.Module | None) -> "_Dense":
        if not isinstance(linear, nn.Linear):
            raise NotFoldable(f"expected a Linear layer, found {type(linear).__name__}")
        bias = _float64(linear.bias) if linear.bias is not None else torch.zeros(linear.out_features, dtype=torch.float64)
        return cls._fold(_float64(linear.weight).t(), bias, bn)

    @classmethod
    def _fold(cls, weight: torch.Tensor, bias: torch.Tensor, bn: nn.Module | None) -> "_Dense":
        if bn is not None:
            if not isinstance(bn, nn.BatchNorm1d) or bn.running_var is None or not bn.affine:
                raise NotFoldable("expected an affine BatchNorm1d with running statistics")
            scale = _float64(bn.weight) / torch.sqrt(_float64(bn.running_var) + bn.eps)
            weight = weight * scale
            bias = (bias - _float64(bn.running_mean)) * scale + _float64(bn.bias)
        if weight.shape[1] != bias.shape[0]:
            raise NotFoldable("a layer's weight and bias disagree in size")
        return cls(weight, bias)

    def convert(self, fn) -> None:
        weight = fn(self.weight)
        # bf16 on the CPU: stored as W^T row-major and used as its transpose. The 2-row
        # products of a stream push run 1.1-1.2x faster this way; batches are no slower
        # (docs/predict.md, "Streaming latency"; same results).
        transposed = weight.dtype == torch.bfloat16 and weight.device.type == "cpu"
        self.weight = weight.t().contiguous().t() if transposed else weight.contiguous()
        self.bias = fn(self.bias).contiguous()


class _Workspace:
    """Buffers reused across batches, one per name (reallocated when the shape changes)."""

    def __init__(self):
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
        return buf

    def clear(self) -> None:
        self._buffers.clear()


class _Net:
    """Shared by the blocks: the workspace of reused buffers."""

    def __init__(self):
        self.ws = _Workspace()

    def affine(self, name: str, x: torch.Tensor, layer: _Dense, slope: float | None) -> torch.Tensor:
        """(M, K) -> (M, N): x @ W + b, then the activation (None: none; 0: ReLU), in the buffer `name`."""
        out = self.ws.get(name, (x.shape[0], layer.weight.shape[1]), x)
        torch.addmm(layer.bias, x, layer.weight, out=out)
        if slope is not None:
            if slope:
                F.leaky_relu_(out, slope)
            else:
                out.relu_()
        return out


class _TemporalBlock:
    """A folded `TemporalBlock` (strided form) on channels-last input."""

    def __init__(self, block: nn.Module):
        if not isinstance(block, TemporalBlock):
            raise NotFoldable(f"expected a TemporalBlock, found {type(block).__name__}")
        self.widths = block.filter_widths
        self.slope = _slope(block.relu)
        self.expand = _Dense.conv(block.expand_conv, block.expand_bn)
        convs, bns = list(block.layers_conv), list(block.layers_bn)
        if len(convs) != 2 * (len(self.widths) - 1) or len(bns) != len(convs):
            raise NotFoldable("a temporal block's layers do not match its filter widths")
        self.levels = [(_Dense.conv(convs[2 * i], bns[2 * i]), _Dense.conv(convs[2 * i + 1], bns[2 * i + 1]))
                       for i in range(len(self.widths) - 1)]
        # The residual of a level is one frame of each group: the centre, or the last (causal).
        self.residual = list(block.residual_offsets)
        self.shrink = _Dense.conv(block.shrink, None)

    def layers(self) -> list[_Dense]:
        return [self.expand, *(d for level in self.levels for d in level), self.shrink]

    def __call__(self, net: _Net, out: str, x: torch.Tensor) -> torch.Tensor:
        """(B, R, C_in) contiguous -> (B, C_out) in the buffer `out`."""
        b, t, c = x.shape
        k = self.widths[0]
        h = net.affine("block.expand", x.view(b * t // k, k * c), self.expand, self.slope)  # (B*T/k, C)
        t //= k
        for i, ((conv, pointwise), offset) in enumerate(zip(self.levels, self.residual)):
            k = self.widths[i + 1]
            ch = h.shape[1]
            res = h.view(b * t // k, k, ch)[:, offset]  # (B*T/k, C), a view
            y = net.affine(f"block.conv{i}", h.view(b * t // k, k * ch), conv, self.slope)
            h = net.affine(f"block.pointwise{i}", y, pointwise, self.slope)
            h += res
            t //= k
        return net.affine(out, h, self.shrink, None)  # (B, C_out)


class _FCBlock:
    """A folded `FCBlock`: fc_1 (+BN, activation), residual units of two folded linear layers, fc_2."""

    def __init__(self, block: nn.Module):
        if not isinstance(block, FCBlock):
            raise NotFoldable(f"expected an FCBlock, found {type(block).__name__}")
        self.slope = _slope(block.relu)
        self.fc_1 = _Dense.linear(block.fc_1, block.bn_1)
        self.units = []
        for unit in block.layers:
            if _slope(unit.relu) != self.slope:
                raise NotFoldable("the residual units of a fully connected block use another activation")
            self.units.append((_Dense.linear(unit.w1, unit.batch_norm1), _Dense.linear(unit.w2, unit.batch_norm2)))
        self.fc_2 = _Dense.linear(block.fc_2, None)

    def layers(self) -> list[_Dense]:
        return [self.fc_1, *(d for unit in self.units for d in unit), self.fc_2]

    def __call__(self, net: _Net, out: str, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in) -> (B, C_out) in the buffer `out`."""
        h = net.affine("fc.h", x, self.fc_1, self.slope)
        for i, (w1, w2) in enumerate(self.units):
            y = net.affine(f"fc.y{i}", h, w1, self.slope)
            h += net.affine(f"fc.z{i}", y, w2, self.slope)
        return net.affine(out, h, self.fc_2, None)


@dataclass
class FrameFeatures:
    """Per-frame inputs of a stretch of frames (rows), ready to be gathered into windows."""

    poses: torch.Tensor  # (P, J*2) absolute 2D, x/y interleaved (the global encoder's input)
    parts: list[torch.Tensor]  # per part (P, 3 * n * 2): absolute, positional, absolute again


class FoldedModel(torch.nn.Module):
    """Inference-only twin of an RIE or VideoPose3D model: the same outputs, folded weights.

    `forward(x: (B, R, J, 2)) -> (B, 1, J, 3)` like the model it comes from; the fast
    path is `frame_features` once per stretch of frames, then `forward_windows` per
    batch. Reuses its buffers between calls, so one instance serves one thread.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        config = model.config
        self.arch = config.arch
        self.filter_widths = tuple(int(w) for w in config.filter_widths)
        self.num_joints = int(config.num_joints)
        # Joints per output: all of them, or 1 for a (VideoPose3D) trajectory model.
        self.output_joints = int(getattr(config, "output_joints", self.num_joints))
        self.dtype = dtype
        rf = self.receptive_field()
        # The frame a window predicts and its encodings refer to (the model's reference_frame).
        self.reference_frame = getattr(model, "reference_frame", rf - 1 if config.causal else rf // 2)
        self._net = _Net()
        if self.arch == "rie":
            self.part_joints = [j.detach().to("cpu", torch.int64) for j in model.part_joints()]
            if sorted(int(j) for p in self.part_joints for j in p) != list(range(self.num_joints)):
                raise NotFoldable("the body parts do not hold every joint exactly once")
            self.encoders = [_TemporalBlock(m) for m in model.part_encoders()]
            self.global_info = _FCBlock(model.GlobalInfo)
            self.fuse = [_FCBlock(m) for m in model.fuse_blocks()]
            self.decoders = [_FCBlock(m) for m in model.part_decoders()]
        elif self.arch == "videopose3d":
            self.part_joints = []
            self.encoders = [_TemporalBlock(model)]
            self.global_info, self.fuse, self.decoders = None, [], []
        else:
            raise NotFoldable(f"unknown architecture '{self.arch}'")
        self._convert(lambda t: t.to(dtype))

    def receptive_field(self) -> int:
        return math.prod(self.filter_widths)

    def _blocks(self) -> list:
        return [*self.encoders, *([self.global_info] if self.global_info else []), *self.fuse, *self.decoders]

    def _convert(self, fn) -> None:
        for block in self._blocks():
            for layer in block.layers():
                layer.convert(fn)

    def _apply(self, fn, recurse=True):
        # `.to(device)` reaches the plain tensors of the folded layers too (dtype stays).
        self._convert(lambda t: fn(t).to(self.dtype) if t.is_floating_point() else fn(t))
        self.part_joints = [fn(j) for j in self.part_joints]
        self._net.ws.clear()
        return super()._apply(fn, recurse)

    def release(self) -> None:
        """Free the batch buffers (they are made again by the next call)."""
        self._net.ws.clear()

    @property
    def device(self) -> torch.device:
        return self.encoders[0].expand.weight.device

    def frame_features(self, poses: torch.Tensor) -> FrameFeatures:
        """(P, J, 2) float32 frames -> the per-frame inputs that windows are gathered from."""
        poses = poses.to(self.device, torch.float32).contiguous()
        # The TEMPORAL slot starts as the absolute position; each window then subtracts
        # its own reference frame (`forward_windows`).
        encodings = relative_encodings(poses)  # (P, 3, J, 2)
        parts = [encodings.index_select(2, joints).flatten(1) for joints in self.part_joints]  # (P, 3 * n * 2)
        return FrameFeatures(poses=poses.flatten(1), parts=parts)

    def forward_windows(self, features: FrameFeatures, index: torch.Tensor) -> torch.Tensor:
        """Predict the windows `index` (B, R) (rows of `features`) -> (B, J_out, 3) float32."""
        b, r = index.shape
        assert r == self.receptive_field(), (r, self.receptive_field())
        net = self._net
        flat = index.reshape(-1)
        reference = index[:, self.reference_frame]  # (B,)
        with torch.inference_mode():
            if self.arch == "videopose3d":
                x = self._gather("input", features.poses, flat, (b, r, -1))  # (B, R, 2J)
                out = self.encoders[0](net, "out", x)  # (B, 3J), a workspace buffer
                return out.to(torch.float32, copy=True).view(b, self.output_joints, 3)
            latents = []
            for i, (part, joints) in enumerate(zip(features.parts, self.part_joints)):
                n = joints.numel()
                feat = net.ws.get(f"gather{n}", (b, r, NUM_ENCODINGS, n, 2), features.poses)  # fp32
                torch.index_select(part, 0, flat, out=feat.view(b * r, NUM_ENCODINGS * n * 2))
                # Temporal encoding: minus the same joint in the window's reference frame.
                reference_rows = part.index_select(0, reference).view(b, 1, NUM_ENCODINGS, n, 2)
                feat[:, :, TEMPORAL] -= reference_rows[:, :, ABSOLUTE]
                x = self._in_precision(f"input{n}", feat).view(b, r, NUM_ENCODINGS * n * 2)
                latents.append(self.encoders[i](net, f"latent{i}", x))  # (B, L)
            centre = features.poses.index_select(0, reference).to(self.dtype)  # (B, 2J)
            glob = self.global_info(net, "global", centre)  # (B, L)
            out = torch.empty(b, self.num_joints, 3, dtype=torch.float32, device=index.device)
            for i, joints in enumerate(self.part_joints):
                features_i = [latents[i]]
                if self.fuse:
                    others = torch.cat(latents[:i] + latents[i + 1 :], dim=1)  # (B, 4L)
                    features_i.append(self.fuse[i](net, "fused", others))  # (B, L)
                features_i.append(glob)
                decoded = self.decoders[i](net, "decoded", torch.cat(features_i, dim=1))  # (B, 3n)
                out[:, joints] = decoded.view(b, -1, 3).float()
            return out

    def _gather(self, name: str, rows: torch.Tensor, flat: torch.Tensor, shape) -> torch.Tensor:
        buf = self._net.ws.get(name, (flat.numel(), rows.shape[1]), rows)
        torch.index_select(rows, 0, flat, out=buf)
        return self._in_precision(name + ".cast", buf).view(shape)

    def _in_precision(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.dtype:
            return x
        buf = self._net.ws.get(name, tuple(x.shape), torch.empty(0, dtype=self.dtype, device=x.device))
        return buf.copy_(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, R, J, 2) windows -> (B, 1, J, 3): the model's own interface."""
        b, r, j, d = x.shape
        if r != self.receptive_field() or j != self.num_joints or d != 2:
            raise ValueError(f"expected (batch, {self.receptive_field()}, {self.num_joints}, 2), got {tuple(x.shape)}")
        features = self.frame_features(x.reshape(b * r, j, 2))
        index = torch.arange(b * r, device=self.device).view(b, r)
        return self.forward_windows(features, index).unsqueeze(1)


def fold_model(model: torch.nn.Module, dtype: torch.dtype = torch.float32) -> FoldedModel:
    """The folded evaluation form of a model from `rie_cli.model.build_model`, on its device.

    Raises NotFoldable, with the reason, where the model is not one this module knows
    how to fold.
    """
    config = getattr(model, "config", None)
    if config is None or getattr(config, "arch", None) not in ("rie", "videopose3d"):
        raise NotFoldable(f"{type(model).__name__} is not a model built by rie_cli.model.build_model")
    parameter = next(model.parameters(), None)
    if parameter is None:
        raise NotFoldable("the model has no parameters")
    return FoldedModel(model, dtype).to(parameter.device)
