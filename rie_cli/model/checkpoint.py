"""Checkpoints: this project's, the RIE authors' and VideoPose3D's, loaded safely.

Three kinds of file are recognised by what they hold, never by a flag:

- this project's: `{"format": "rie-checkpoint", "config": ModelConfig.to_dict(),
  "stage": int, "model": state_dict, ...}` plus whatever training keeps (optimizer,
  scheduler, epoch, RNG states as tensors or lists, metrics);
- the RIE authors' (`run.py`): `{"epoch", "lr", "random_state", "optimizer",
  "model_pos"}` with `LocalLayer_*` / `GlobalInfo` / `Integration_*` keys;
- VideoPose3D's: the same wrapper, with `expand_conv` / `layers_conv` / `shrink` keys.

For the two foreign kinds the architecture (joints, filter widths, channels, latent
size, fusion module, hence stage) is read from tensor shapes and every inference is
written to `LoadedCheckpoint.messages`.

Files are read with `torch.load(weights_only=True)`. The authors' files pickle a NumPy
RandomState, which that refuses; the few NumPy globals it needs are allowed explicitly
(`numpy_safe_globals`). Only an explicit `allow_unsafe=True` falls back to full
unpickling, which can run arbitrary code from the file.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rie_cli.atomic import atomic_path
from rie_cli.errors import RieError
from rie_cli.devices import resolve_device
from rie_cli.model import build_model
from rie_cli.model.config import ModelConfig
from rie_cli.skeleton import SKELETONS

FORMAT = "rie-checkpoint"
FORMAT_VERSION = 1
# Prefixes that wrappers add to every key: torch.compile and (Distributed)DataParallel.
WRAPPER_PREFIXES = ("_orig_mod.", "module.")
# Dropout is not stored in foreign files (it does nothing in eval mode anyway): their defaults.
AUTHORS_DROPOUT = 0.2
VIDEOPOSE3D_DROPOUT = 0.25


@dataclass
class LoadedCheckpoint:
    model: nn.Module  # on the requested device, eval mode
    config: ModelConfig
    stage: int  # 1, 2 or 3 (authors' files: 1 without fusion, 3 with)
    origin: str  # "rie" | "authors-rie" | "videopose3d"
    messages: list[str]  # what was inferred, missing/unexpected keys
    raw: dict  # the whole loaded dict (optimizer, epoch, ...)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    epoch: int | None = None


def numpy_safe_globals() -> list:
    """The NumPy globals a pickled `numpy.random.RandomState` needs, and nothing more."""
    from numpy.random import _mt19937, _pickle

    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
    return [
        getattr(_pickle, "__randomstate_ctor"),
        getattr(_pickle, "__bit_generator_ctor"),
        _mt19937.MT19937,
        np.random.RandomState,
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
        # Files pickled under NumPy 2 and NumPy 1 spell the module differently.
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        (reconstruct, "numpy.core.multiarray._reconstruct"),
    ]


def read_checkpoint(path, allow_unsafe: bool = False) -> dict:
    """The dict stored in `path`, read with weights_only=True unless `allow_unsafe`."""
    path = Path(path)
    if not path.exists():
        raise RieError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise RieError(f"checkpoint {path} is not a file")
    try:
        if allow_unsafe:
            data = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(numpy_safe_globals()):
                data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise RieError(
                f"{path} holds objects that safe loading refuses ({found.group(1)}); "
                "allow unsafe loading only if you trust the file"
            ) from None
        raise RieError(f"{path} is not a PyTorch checkpoint ({_first_line(exc)})") from None
    except RuntimeError as exc:
        raise RieError(f"{path} is not a readable PyTorch checkpoint, maybe truncated ({_first_line(exc)})") from None
    except MemoryError:
        raise RieError(f"{path} is too large to load into memory") from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for foreign bytes
        raise RieError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise RieError(f"{path} holds a {type(data).__name__}, not a checkpoint dict")
    return data


def load_checkpoint(path, device="cpu", allow_unsafe: bool = False, *, strict: bool = True,
                    causal: bool | None = None, target: str | None = "pose") -> LoadedCheckpoint:
    """Rebuild the model a checkpoint holds, load its weights, move it to `device` in eval mode.

    `strict`: refuse a file that lacks weights the model needs (otherwise load what is
    there and list the rest in `messages`). `causal`: for foreign files, which do not
    record it, whether the model was trained with causal windows (default: centred).
    `target`: the kind of model the caller needs ("pose" or "trajectory"); a file
    holding the other kind is a RieError. None accepts either.
    """
    dev = resolve_device(device)
    raw = read_checkpoint(path, allow_unsafe=allow_unsafe)
    messages: list[str] = []
    if raw.get("format") == FORMAT:
        origin, config, stage, state = _own_model(raw, path, causal, messages)
    else:
        origin, config, stage, state = _foreign_model(raw, path, causal, messages)

    check_target(config, target, path)
    model = build_model(config)
    missing, unexpected = _load_weights(model, state, path, strict)
    if missing:
        messages.append(f"missing keys ({len(missing)}), left at their initial values: {_few(missing)}")
    if unexpected:
        messages.append(f"unexpected keys ({len(unexpected)}), ignored: {_few(unexpected)}")
    epoch = raw.get("epoch")
    if isinstance(epoch, int):
        messages.append(f"saved after epoch {epoch}")
    model.to(dev).eval()
    return LoadedCheckpoint(
        model=model, config=config, stage=stage, origin=origin, messages=messages, raw=raw,
        missing_keys=missing, unexpected_keys=unexpected, epoch=epoch if isinstance(epoch, int) else None,
    )


def _own_model(raw: dict, path, causal: bool | None, messages: list[str]):
    """(origin, config, stage, state dict) of this project's checkpoint."""
    config = ModelConfig.from_dict(_require(raw, "config", path))
    if causal is not None and causal != config.causal:
        raise RieError(f"{path} records causal={config.causal}; it cannot be loaded as causal={causal}")
    stage = _stage(raw.get("stage", config.stage), path)
    state = _clean_state_dict(_require(raw, "model", path), path, messages)
    messages.append(f"rie checkpoint: {config.describe()}, stage {stage}")
    return "rie", config, stage, state


def _foreign_model(raw: dict, path, causal: bool | None, messages: list[str]):
    """(origin, config, stage, state dict) of the authors' or VideoPose3D's file (or a bare
    state dict): the architecture inferred from the tensor shapes, since they record none."""
    if "model_pos" in raw:
        state = _clean_state_dict(raw["model_pos"], path, messages)
    elif raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        state = _clean_state_dict(raw, path, messages)
        messages.append("the file is a bare state dict (no checkpoint wrapper)")
    else:
        keys = ", ".join(sorted(map(str, raw))[:6]) or "none"
        raise RieError(f"{path} is not a model checkpoint: no 'model_pos' or rie format (keys: {keys})")
    if any(k.startswith("LocalLayer_") for k in state):
        origin = "authors-rie"
        config = _infer_rie_config(state, path, causal=bool(causal))
        stage = config.stage
        messages.append(f"the authors' RIE checkpoint; inferred from tensor shapes: {config.describe()}")
        messages.append(
            "feature fusion module present: stage 3 (stages 2 and 3 share the same model)"
            if config.fusion else "no feature fusion module: stage 1"
        )
    elif "expand_conv.weight" in state:
        origin = "videopose3d"
        config = _infer_videopose3d_config(state, path, causal=bool(causal))
        stage = 1
        messages.append(f"a VideoPose3D checkpoint; inferred from tensor shapes: {config.describe()}")
        if raw.get("model_traj") is not None:
            messages.append("its trajectory model (model_traj) is not used")
    else:
        first_key = next(iter(state), "none")
        raise RieError(f"{path} holds neither an RIE nor a VideoPose3D model (first key: {first_key})")
    if causal is None:
        messages.append("causal mode is not stored in this file: assuming centred windows")
    return origin, config, stage, state


def check_target(config: ModelConfig, target: str | None, path) -> None:
    """One line saying what `path` is and what was needed, where the kinds differ."""
    if target is None or config.target == target:
        return
    name = Path(path).name
    if config.target == "trajectory":
        raise RieError(f"{name} is a trajectory model (it predicts the root's position), but a pose model is "
                       "needed here; give trajectory models as {trajectory}", arguments=("trajectory",))
    raise RieError(f"{name} is a pose model, but a trajectory model is needed here "
                   "(train one with `rie train --target trajectory`)")


def checkpoint_payload(model: nn.Module, *, stage: int, **extra) -> dict:
    """This project's checkpoint dict for `model` (unwrapped from torch.compile / DDP)."""
    model = unwrap_model(model)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "stage": int(stage),
        "model": model.state_dict(),
    }
    payload.update(extra)
    return payload


def save_checkpoint(path, payload: dict) -> None:
    """Write `payload` atomically: a temporary file in the same folder, then a rename.

    An existing file at `path` stays intact until the new one is complete. The payload
    must hold only what `torch.load(weights_only=True)` reads back (tensors, numbers,
    strings, lists, tuples, dicts, None): anything else raises TypeError before writing.
    """
    path = Path(path)
    _check_weights_only_safe(payload, "payload")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside torch.compile (`_orig_mod`) and (Distributed)DataParallel (`module`)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


# --- inferring the architecture from tensor shapes -------------------------------------


def _infer_rie_config(state: dict, path, *, causal: bool) -> ModelConfig:
    parts = [k[len("LocalLayer_") : -len(".expand_conv.weight")] for k in state
             if k.startswith("LocalLayer_") and k.endswith(".expand_conv.weight")]
    if not parts:
        raise RieError(f"{path}: RIE state dict without LocalLayer_*.expand_conv.weight")
    first = f"LocalLayer_{parts[0]}"
    channels, _, w0 = _shape(state, f"{first}.expand_conv.weight", 3, path)
    widths = [w0] + _level_widths(state, f"{first}.", path)
    latent = _shape(state, f"{first}.shrink.weight", 3, path)[0]
    fc_width, global_in = _shape(state, "GlobalInfo.fc_1.weight", 2, path)
    if global_in % 2:
        raise RieError(f"{path}: GlobalInfo takes {global_in} inputs, not 2 per joint")
    num_joints = global_in // 2
    part_sizes = {}
    for name in parts:
        in_channels = _shape(state, f"LocalLayer_{name}.expand_conv.weight", 3, path)[1]
        if in_channels % 6:
            raise RieError(f"{path}: LocalLayer_{name} takes {in_channels} channels, not 6 per joint")
        part_sizes[name] = in_channels // 6
    skeleton = next((s for s in SKELETONS.values() if s.num_joints == num_joints
                     and {p.name: len(p.joints) for p in s.parts} == part_sizes), None)
    if skeleton is None:
        raise RieError(
            f"{path}: no built-in skeleton has {num_joints} joints grouped as "
            + ", ".join(f"{k} {v}" for k, v in part_sizes.items())
        )
    return ModelConfig(
        arch="rie", num_joints=num_joints, skeleton=skeleton.name, filter_widths=tuple(widths),
        channels=channels, latent=latent, dropout=AUTHORS_DROPOUT, causal=causal,
        fusion=any(k.startswith("FuseBlocks.") for k in state), fc_width=fc_width,
    )


def _infer_videopose3d_config(state: dict, path, *, causal: bool) -> ModelConfig:
    channels, in_channels, w0 = _shape(state, "expand_conv.weight", 3, path)
    widths = [w0] + _level_widths(state, "", path)
    out_channels = _shape(state, "shrink.weight", 3, path)[0]
    if in_channels % 2 or out_channels % 3 or in_channels // 2 != out_channels // 3:
        raise RieError(f"{path}: VideoPose3D model with {in_channels} inputs and {out_channels} outputs "
                       "(expected 2 and 3 per joint, same joints in and out)")
    num_joints = in_channels // 2
    skeleton = next((s for s in SKELETONS.values() if s.num_joints == num_joints), None)
    if skeleton is None:
        raise RieError(f"{path}: no built-in skeleton has {num_joints} joints")
    return ModelConfig(
        arch="videopose3d", num_joints=num_joints, skeleton=skeleton.name, filter_widths=tuple(widths),
        channels=channels, dropout=VIDEOPOSE3D_DROPOUT, causal=causal,
    )


def _level_widths(state: dict, prefix: str, path) -> list[int]:
    """Kernel widths of the levels after the first: layers_conv.0, .2, .4, ... (the .1, .3 are 1x1)."""
    widths = []
    while f"{prefix}layers_conv.{2 * len(widths)}.weight" in state:
        widths.append(_shape(state, f"{prefix}layers_conv.{2 * len(widths)}.weight", 3, path)[2])
    if any(w % 2 == 0 for w in widths):
        raise RieError(f"{path}: even filter width in {widths}; only odd widths are supported")
    return widths


def _shape(state: dict, key: str, ndim: int, path) -> tuple[int, ...]:
    if key not in state:
        raise RieError(f"{path}: the state dict lacks '{key}', needed to infer the architecture")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise RieError(f"{path}: '{key}' has shape {list(shape)}, expected {ndim} dimensions")
    return shape


# --- loading weights ----------------------------------------------------------------------


def _clean_state_dict(state, path, messages: list[str]) -> dict:
    if not isinstance(state, dict) or not state:
        raise RieError(f"{path}: the model entry is not a state dict")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise RieError(f"{path}: state dict entry '{bad}' is not a tensor")
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
            messages.append(f"removed the '{prefix}' prefix from every key")
    return state


def _load_weights(model: nn.Module, state: dict, path, strict: bool) -> tuple[list[str], list[str]]:
    expected = model.state_dict()
    mismatched = [(k, list(v.shape), list(expected[k].shape)) for k, v in state.items()
                  if k in expected and v.shape != expected[k].shape]
    if mismatched:
        key, got, want = mismatched[0]
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise RieError(f"{path} does not fit the model: '{key}' has shape {got}, the model expects {want}{more}")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    # A missing BatchNorm batch counter changes nothing the model computes.
    needed = [k for k in missing if not k.endswith("num_batches_tracked")]
    if needed and strict:
        raise RieError(f"{path} lacks {len(needed)} weights the model needs, e.g. '{needed[0]}'")
    model.load_state_dict(state, strict=False)
    return missing, unexpected


def _require(raw: dict, key: str, path):
    if key not in raw:
        raise RieError(f"{path}: rie checkpoint without '{key}'")
    return raw[key]


def _stage(value, path) -> int:
    if not isinstance(value, int) or value not in (1, 2, 3):
        raise RieError(f"{path}: stage must be 1, 2 or 3, got {value!r}")
    return value


def _few(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def _first_line(exc: BaseException) -> str:
    message = str(exc).strip()
    # torch's weights-only errors open with a long generic paragraph about the
    # weights_only default; the actual reason follows "Unpickler error:".
    if "Unpickler error:" in message:
        reason = message.split("Unpickler error:", 1)[1].strip().splitlines()
        if reason:
            return reason[0][:200]
    # A torch.save zip missing its end (truncated): say that, not miniz's advice.
    if "failed finding central directory" in message:
        return "the zip archive has no central directory"
    text = message.splitlines()
    return text[0][:200] if text else type(exc).__name__


_SAFE_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.Tensor, torch.Size, torch.dtype, torch.device)


def _check_weights_only_safe(obj, where: str) -> None:
    if isinstance(obj, _SAFE_LEAVES) and type(obj).__module__.split(".")[0] in ("builtins", "torch"):
        return
    if type(obj) in (dict,) or type(obj).__name__ == "OrderedDict":
        for key, value in obj.items():
            _check_weights_only_safe(key, f"{where} key")
            _check_weights_only_safe(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple, set):
        for i, value in enumerate(obj):
            _check_weights_only_safe(value, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which weights_only loading refuses; "
        "store it as a tensor, number, string, list or dict"
    )
