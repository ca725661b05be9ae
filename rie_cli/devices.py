"""Where a model runs and in which number format: one home for both choices.

    device = resolve_device("auto")                  # cuda if available, else cpu
    precision = resolve_precision("auto", device)    # "bf16" where it is natively fast, else "fp32"
    dtype = PRECISIONS[precision]

Every command that takes `--device` or `--precision` goes through these two
functions, so that the rules are the same for `train`, `evaluate`, `predict`,
`render` and `export`.

Why bf16 is checked at all: bfloat16 halves the memory traffic and, on hardware with
native bf16 arithmetic (x86 CPUs with AVX-512 BF16 or AMX; NVIDIA GPUs from Ampere,
compute capability 8.0, on), runs matrix products about twice as fast as float32.
Without it PyTorch emulates bf16 through float32 conversions: on a day when this
project's VM reported AVX2 only, a 1,024² bf16 matmul ran at 0.8 GFLOP/s against 95
in fp32, and a bf16 evaluation that fp32 finished in 30 s was killed after 400 s. So
`--precision bf16` is refused where it would be slower than fp32, and `auto` picks
bf16 only where it is native.
"""

from __future__ import annotations

import functools
import os
import platform
import time

import torch

from rie_cli.errors import RieError

# The one table of number formats: name -> torch dtype of weights and activations.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# What `--precision` accepts: a name of PRECISIONS, or "auto".
PRECISION_CHOICES = ("auto", *PRECISIONS)
PRECISION_HELP = ("auto (bf16 where the hardware runs it natively, else fp32), fp32, bf16 (refused where it "
                  "would be slower than fp32), or fp16 (CUDA only)")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def resolve_device(name="auto", local_rank: int = 0) -> torch.device:
    """A device name (or torch.device) -> the torch.device to run on, checked.

    'auto' -> CUDA if available, else the CPU. 'cuda' without an index -> this
    process's GPU `cuda:local_rank` (under torchrun every process passes its
    LOCAL_RANK; alone it is cuda:0). A device this machine lacks is a RieError.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise RieError(f"unknown device '{name}' (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RieError(f"device '{name}' requested but CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise RieError(f"device '{name}' requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise RieError(f"device '{name}' requested but MPS is not available on this machine")
    elif device.type != "cpu":
        raise RieError(f"device '{name}': only cpu, cuda and mps are supported")
    return device


def resolve_precision(precision: str, device) -> str:
    """'auto' | 'fp32' | 'bf16' | 'fp16' -> the name of PRECISIONS to run in on `device`.

    'auto' -> 'bf16' where `device` runs bf16 natively, else 'fp32'. 'bf16' where it
    is not native, and 'fp16' on a CPU, are refused with a RieError (they would be
    slower than fp32).
    """
    if precision not in PRECISION_CHOICES:
        raise RieError(f"{{precision}} must be one of {', '.join(PRECISION_CHOICES)}, got '{precision}'",
                       arguments=("precision",))
    device = resolve_device(device)
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    if precision == "bf16" and not bf16_native(device):
        raise RieError(f"{{precision}} bf16: {describe_device(device)} has no native bfloat16 arithmetic, so bf16 "
                       "would be slower than fp32 here; use {precision} fp32 (or auto)", arguments=("precision",))
    if precision == "fp16" and device.type != "cuda":
        raise RieError(f"{{precision}} fp16 is for CUDA devices; on {device.type} use fp32, or bf16 where it is "
                       "native", arguments=("precision",))
    return precision


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matrix products and cuDNN convolutions on CUDA (on) or IEEE fp32 (off).

    TF32 runs fp32 products on tensor cores with a 10-bit mantissa, several times the
    IEEE rate on Ampere and later. Off is `rie`'s default, so that fp32 results match
    the CPU's to float rounding (PyTorch's own default leaves cuDNN convolutions in
    TF32). Uses the fp32_precision API only: PyTorch refuses to mix it with the older
    allow_tf32 flags. No effect on CPU computations.
    """
    mode = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode


def bf16_native(device) -> bool:
    """Whether bf16 matrix products on `device` are faster than fp32 ones."""
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)  # Ampere and later
    if device.type == "cpu":
        return cpu_bf16_native()
    return False  # MPS: not measured here, stay in fp32


def cpu_bf16_native() -> bool:
    """x86: the CPU flags (AVX-512 BF16 or AMX), as oneDNN uses them; elsewhere a short timing probe."""
    if platform.machine().lower() in _X86:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return _probe_bf16_faster()


@functools.lru_cache(maxsize=1)
def _probe_bf16_faster(size: int = 256, repeats: int = 5) -> bool:
    """Time a size² matmul in bf16 and fp32 (best of `repeats`); a few ms where bf16 is native.

    Where bf16 is emulated one bf16 product of this size takes ~40 ms, so the probe
    stays short either way. Cached: it runs once per process.
    """
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b  # warm-up (kernel selection, first-touch allocation)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        best[dtype] = min(times)
    return best[torch.bfloat16] < best[torch.float32]


def cpu_capability() -> str:
    """torch's vector ISA for this CPU ('AVX2', 'AVX512', ...) plus the bf16 features found."""
    features = []
    if platform.machine().lower() in _X86:
        features = [name for name, has in (("avx512_bf16", torch.cpu._is_avx512_bf16_supported()),
                                           ("amx", torch.cpu._is_amx_tile_supported())) if has]
    return torch.backends.cpu.get_cpu_capability() + (f" ({', '.join(features)})" if features else "")


def describe_device(device) -> str:
    """One line for logs and benchmarks: what the device is and whether bf16 is native there."""
    device = resolve_device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (sm_{major}{minor}, bf16 {_native(bf16_native(device))})"
    if device.type == "cpu":
        return (f"CPU {platform.machine()}, capability {cpu_capability()}, bf16 {_native(cpu_bf16_native())}, "
                f"{torch.get_num_threads()} threads of {os.cpu_count()} cores")
    return str(device)


def _native(flag: bool) -> str:
    return "native" if flag else "not native"
