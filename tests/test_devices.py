"""rie_cli.devices: device names, the precision table, and bf16 only where it is native."""

import json
import platform
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rie_cli import devices
from rie_cli.cli import app
from rie_cli.devices import PRECISIONS, resolve_device, resolve_precision
from rie_cli.errors import RieError

from helpers import save_small_checkpoint

runner = CliRunner()


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    with pytest.raises(RieError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(RieError, match="only cpu, cuda and mps"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0"):
            with pytest.raises(RieError, match="CUDA is not available"):
                resolve_device(name)
    else:
        # Under torchrun 'cuda' means this process's GPU.
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)
        with pytest.raises(RieError, match="device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_one_precision_table():
    assert PRECISIONS == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    assert devices.PRECISION_CHOICES == ("auto", "fp32", "bf16", "fp16")
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(RieError, match="must be one of auto, fp32, bf16, fp16"):
        resolve_precision("int8", "cpu")
    with pytest.raises(RieError, match="fp16 is for CUDA"):
        resolve_precision("fp16", "cpu")


def test_bf16_refused_where_not_native(monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16_native", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(RieError, match="no native bfloat16.*slower than fp32"):
        resolve_precision("bf16", "cpu")
    assert "bf16 not native" in devices.describe_device("cpu")

    monkeypatch.setattr(devices, "cpu_bf16_native", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert "bf16 native" in devices.describe_device("cpu")


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86 CPU flags")
def test_cpu_detection_agrees_with_the_kernel_flags():
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else None
    if flags is None:
        pytest.skip("no /proc/cpuinfo on this system")
    expected = "avx512_bf16" in flags or "amx_bf16" in flags
    assert devices.cpu_bf16_native() == expected
    assert devices.cpu_capability().startswith(torch.backends.cpu.get_cpu_capability())


def test_probe_is_cached_and_short():
    devices._probe_bf16_faster.cache_clear()
    first = devices._probe_bf16_faster()
    assert isinstance(first, bool)
    assert devices._probe_bf16_faster.cache_info().hits == 0
    assert devices._probe_bf16_faster() == first
    assert devices._probe_bf16_faster.cache_info().hits == 1


def test_commands_refuse_slow_bf16_with_one_line(monkeypatch, demo_h5, tmp_path):
    monkeypatch.setattr(devices, "cpu_bf16_native", lambda: False)
    checkpoint = save_small_checkpoint(tmp_path / "small.pt")
    commands = [
        ["evaluate", "--checkpoint", checkpoint, "--data", demo_h5, "--keypoints", "gt", "--precision", "bf16"],
        ["train", "--stage", "1", "--data", demo_h5, "--keypoints", "gt", "--precision", "bf16",
         "--checkpoint-dir", tmp_path / "run"],
        ["predict", "--checkpoint", checkpoint, "--keypoints", tmp_path / "k.npy", "--width", "100",
         "--height", "100", "--out", tmp_path / "out.npz", "--precision", "bf16"],
    ]
    for args in commands:
        result = runner.invoke(app, list(map(str, args)))
        assert result.exit_code == 1, (args[0], result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "slower than fp32" in lines[0], lines
    assert not (tmp_path / "run").exists() and not (tmp_path / "out.npz").exists()


def test_evaluate_auto_records_the_precision_used(monkeypatch, demo_h5, tmp_path):
    monkeypatch.setattr(devices, "cpu_bf16_native", lambda: False)
    checkpoint = save_small_checkpoint(tmp_path / "small.pt")
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(demo_h5),
                                 "--keypoints", "gt", "--actions", "walk", "--precision", "auto", "--json", "-"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["precision"] == "fp32"


def test_tf32_switch_uses_the_fp32_precision_api():
    old = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    try:
        devices.set_tf32(True)
        assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == ("tf32",) * 2
        devices.set_tf32(False)
        assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == ("ieee",) * 2
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = old
