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
  (float32, or bfloat16).

Weights are read from the state dict by the authors' module names (which this
project's models keep), so the folded form depends on the checkpoint layout, not on
the Python classes. Outputs equal the eager model's up to float32 rounding (under
1e-6 m on outputs of order 1 m; per-action errors move by ~1e-5 mm;
tests/test_evaluation_folding.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_BN_EPS = 1e-5  # nn.BatchNorm1d's default, which the models use


class NotFoldable(Exception):
    """The model's state dict is not laid out as the folded form expects."""


def _tensor(sd: dict, key: str) -> torch.Tensor:
    if key not in sd:
        raise NotFoldable(f"missing state dict entry {key}")
    return sd[key].detach().to("cpu", torch.float64)


class _Dense:
    """y = x @ weight + bias with weight (K, N): one folded convolution or linear layer."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.weight = weight  # (K, N)
        self.bias = bias  # (N,)

    @classmethod
    def conv(cls, sd: dict, conv: str, bn: str | None, *, bias: bool = False) -> "_Dense":
        w = _tensor(sd, conv + ".weight")  # (C_out, C_in, k)
        weight = w.permute(2, 1, 0).reshape(-1, w.shape[0])  # (k * C_in, C_out), rows tap-major
        b = _tensor(sd, conv + ".bias") if bias else torch.zeros(w.shape[0], dtype=torch.float64)
        return cls._fold(sd, weight, b, bn)

    @classmethod
    def linear(cls, sd: dict, linear: str, bn: str | None) -> "_Dense":
        return cls._fold(sd, _tensor(sd, linear + ".weight").t(), _tensor(sd, linear + ".bias"), bn)

    @classmethod
    def _fold(cls, sd: dict, weight: torch.Tensor, bias: torch.Tensor, bn: str | None) -> "_Dense":
        if bn is not None:
            scale = _tensor(sd, bn + ".weight") / torch.sqrt(_tensor(sd, bn + ".running_var") + _BN_EPS)
            weight = weight * scale
            bias = (bias - _tensor(sd, bn + ".running_mean")) * scale + _tensor(sd, bn + ".bias")
        if weight.shape[1] != bias.shape[0]:
            raise NotFoldable("a layer's weight and bias disagree in size")
        return cls(weight, bias)

    def convert(self, fn) -> None:
        self.weight, self.bias = fn(self.weight).contiguous(), fn(self.bias).contiguous()


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
    """Shared by the blocks: the workspace and the activation."""

    def __init__(self, leaky: bool):
        self.ws = _Workspace()
        self.slope = 0.2 if leaky else 0.0  # RIE: LeakyReLU(0.2); VideoPose3D: ReLU

    def affine(self, name: str, x: torch.Tensor, layer: _Dense, activate: bool) -> torch.Tensor:
        """(M, K) -> (M, N): x @ W + b, then the activation, in the buffer `name`."""
        out = self.ws.get(name, (x.shape[0], layer.weight.shape[1]), x)
        torch.addmm(layer.bias, x, layer.weight, out=out)
        if activate:
            if self.slope:
                F.leaky_relu_(out, self.slope)
            else:
                out.relu_()
        return out


class _TemporalBlock:
    """A folded temporal convolution block (strided form) on channels-last input."""

    def __init__(self, sd: dict, prefix: str, widths: tuple[int, ...], causal: bool):
        p = f"{prefix}." if prefix else ""
        self.widths = widths
        self.expand = _Dense.conv(sd, f"{p}expand_conv", f"{p}expand_bn")
        self.levels = [
            (
                _Dense.conv(sd, f"{p}layers_conv.{2 * i}", f"{p}layers_bn.{2 * i}"),
                _Dense.conv(sd, f"{p}layers_conv.{2 * i + 1}", f"{p}layers_bn.{2 * i + 1}"),
            )
            for i in range(len(widths) - 1)
        ]
        # The residual of a level is one frame of each group: the centre, or the last (causal).
        self.residual = [w - 1 if causal else w // 2 for w in widths[1:]]
        self.shrink = _Dense.conv(sd, f"{p}shrink", None, bias=True)

    def layers(self) -> list[_Dense]:
        return [self.expand, *(d for level in self.levels for d in level), self.shrink]

    def __call__(self, net: _Net, out: str, x: torch.Tensor) -> torch.Tensor:
        """(B, R, C_in) contiguous -> (B, C_out) in the buffer `out`."""
        b, t, c = x.shape
        k = self.widths[0]
        h = net.affine("block.expand", x.view(b * t // k, k * c), self.expand, True)  # (B*T/k, C)
        t //= k
        for i, ((conv, pointwise), offset) in enumerate(zip(self.levels, self.residual)):
            k = self.widths[i + 1]
            ch = h.shape[1]
            res = h.view(b * t // k, k, ch)[:, offset]  # (B*T/k, C), a view
            y = net.affine(f"block.conv{i}", h.view(b * t // k, k * ch), conv, True)
            h = net.affine(f"block.pointwise{i}", y, pointwise, True)
            h += res
            t //= k
        return net.affine(out, h, self.shrink, False)  # (B, C_out)


class _FCBlock:
    """fc_1 (+BN, activation), residual units of two folded linear layers, fc_2."""

    def __init__(self, sd: dict, prefix: str):
        self.fc_1 = _Dense.linear(sd, f"{prefix}.fc_1", f"{prefix}.bn_1")
        self.units = []
        while f"{prefix}.layers.{len(self.units)}.w1.weight" in sd:
            u = f"{prefix}.layers.{len(self.units)}"
            self.units.append(
                (_Dense.linear(sd, f"{u}.w1", f"{u}.batch_norm1"), _Dense.linear(sd, f"{u}.w2", f"{u}.batch_norm2"))
            )
        self.fc_2 = _Dense.linear(sd, f"{prefix}.fc_2", None)

    def layers(self) -> list[_Dense]:
        return [self.fc_1, *(d for unit in self.units for d in unit), self.fc_2]

    def __call__(self, net: _Net, out: str, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in) -> (B, C_out) in the buffer `out`."""
        h = net.affine("fc.h", x, self.fc_1, True)
        for i, (w1, w2) in enumerate(self.units):
            y = net.affine(f"fc.y{i}", h, w1, True)
            h += net.affine(f"fc.z{i}", y, w2, True)
        return net.affine(out, h, self.fc_2, False)


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

    def __init__(self, state_dict: dict, *, arch: str, filter_widths, causal: bool, parts,
                 num_joints: int, dtype: torch.dtype = torch.float32, output_joints: int | None = None):
        super().__init__()
        self.arch = arch
        self.filter_widths = tuple(int(w) for w in filter_widths)
        self.num_joints = int(num_joints)
        # Joints per output: all of them, or 1 for a (VideoPose3D) trajectory model.
        self.output_joints = self.num_joints if output_joints is None else int(output_joints)
        self.dtype = dtype
        rf = self.receptive_field()
        # The frame a window predicts and its encodings refer to (the model's reference_frame).
        self.reference_frame = rf - 1 if causal else rf // 2
        self._net = _Net(leaky=arch == "rie")
        sd = dict(state_dict)
        if arch == "rie":
            names = [p.name for p in parts]
            self.part_joints = [torch.tensor(p.joints, dtype=torch.int64) for p in parts]
            if sorted(int(j) for p in parts for j in p.joints) != list(range(self.num_joints)):
                raise NotFoldable("the body parts do not hold every joint exactly once")
            self.encoders = [_TemporalBlock(sd, f"LocalLayer_{n}", self.filter_widths, causal) for n in names]
            self.global_info = _FCBlock(sd, "GlobalInfo")
            fusion = any(k.startswith("FuseBlocks.") for k in sd)
            self.fuse = [_FCBlock(sd, f"FuseBlocks.{i}") for i in range(len(names))] if fusion else []
            self.decoders = [_FCBlock(sd, f"Integration_{n}") for n in names]
        elif arch == "videopose3d":
            self.part_joints = []
            self.encoders = [_TemporalBlock(sd, "", self.filter_widths, causal)]
            self.global_info, self.fuse, self.decoders = None, [], []
        else:
            raise NotFoldable(f"unknown architecture '{arch}'")
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
        parts = []
        for joints in self.part_joints:
            absolute = poses.index_select(1, joints)  # (P, n, 2)
            # The temporal encoding starts as the absolute position; each window then
            # subtracts its own reference frame (`forward_windows`).
            parts.append(torch.stack((absolute, absolute - poses[:, :1], absolute), dim=1).flatten(1))  # (P, 6n)
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
                feat = net.ws.get(f"gather{n}", (b, r, 3, n, 2), features.poses)  # fp32
                torch.index_select(part, 0, flat, out=feat.view(b * r, 6 * n))
                # Temporal encoding: minus the same joint in the window's reference frame.
                feat[:, :, 2] -= part.index_select(0, reference).view(b, 1, 3, n, 2)[:, :, 0]
                x = self._in_precision(f"input{n}", feat).view(b, r, 6 * n)
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

    Raises NotFoldable where the model is not one this module knows how to fold.
    """
    from rie_cli.skeleton import SKELETONS

    config = getattr(model, "config", None)
    if config is None or config.arch not in ("rie", "videopose3d"):
        raise NotFoldable("not a model built by rie_cli.model.build_model")
    parameter = next(model.parameters(), None)
    if parameter is None:
        raise NotFoldable("the model has no parameters")
    folded = FoldedModel(
        model.state_dict(),
        arch=config.arch,
        filter_widths=config.filter_widths,
        causal=config.causal,
        parts=SKELETONS[config.skeleton].parts,
        num_joints=config.num_joints,
        dtype=dtype,
        output_joints=config.output_joints,
    )
    reference = getattr(model, "reference_frame", folded.reference_frame)
    if reference != folded.reference_frame:
        raise NotFoldable(f"the model predicts frame {reference} of its window, expected {folded.reference_frame}")
    return folded.to(parameter.device)
