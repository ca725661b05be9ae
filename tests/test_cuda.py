"""The CUDA path, where a CUDA device is present (skipped with a reason elsewhere; CI never needs it).

What runs: a few steps of each stage in fp32 and bf16; the golden checkpoints on the
GPU against the authors' outputs (fp32, TF32 off: within 1e-4); evaluate, export,
predict and render with --device cuda; a CUDA run resumed on the CPU and back;
`torchrun --nproc-per-node 1` with NCCL; the device-resident sampler on the GPU
giving the host sampler's batches; the folded evaluation form on the GPU matching
the eager model. benchmarks/gpu_check.sh runs this file first.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.devices import bf16_native, set_tf32

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("RIE_SHARED_DIR", REPO.parent / "shared")) / "golden"
GOLDEN_NAMES = sorted(p.name[len("ckpt_"): -len(".bin")] for p in GOLDEN.glob("ckpt_*.bin")) or ["absent"]
GOLDEN_ATOL = 1e-4
runner = CliRunner()
# A small model on a small slice of the demo data (as tests/test_train.py).
DATA = ["--keypoints", "gt", "--batch-size", "64", "--subset", "0.05", "--actions", "walk"]
ARCH = ["--filter-widths", "3,3", "--channels", "32", "--latent", "32", "--fc-width", "64"]


@pytest.fixture(autouse=True)
def tf32_off():
    """fp32 on the GPU has to give the CPU's numbers: TF32 matmuls stay off (the default)."""
    set_tf32(False)
    yield
    set_tf32(False)


def _cli(*args):
    return runner.invoke(app, list(map(str, args)))


def _last_row(run_dir: Path) -> dict:
    return json.loads((run_dir / "log.jsonl").read_text().strip().splitlines()[-1])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_three_stages_on_cuda(precision, demo_h5, tmp_path):
    if precision == "bf16" and not bf16_native("cuda"):
        pytest.skip("this GPU has no native bf16 (compute capability < 8.0)")
    common = ["--data", demo_h5, *DATA, "--epochs", 1, "--device", "cuda", "--precision", precision]
    init = []
    for stage in (1, 2, 3):
        run_dir = tmp_path / f"s{stage}"
        result = _cli("train", "--stage", stage, *common, *(ARCH if stage == 1 else init),
                      "--checkpoint-dir", run_dir)
        assert result.exit_code == 0, result.output
        # (output, not stderr: older click mixes the two and has no separate stderr)
        said = " ".join(result.output.split())  # rich wraps long lines at the terminal's width
        assert "batches built on cuda" in said and f"precision {precision}" in said
        row = _last_row(run_dir)
        assert math.isfinite(row["train_mpjpe"]) and math.isfinite(row["val_mpjpe"]), row
        init = ["--init", run_dir / "last.pt"]


def test_compiled_training_with_cuda_graphs_compiles_once_per_batch_size(demo_h5, tmp_path):
    """`--compile` on one GPU: CUDA graphs, and the epochs' BatchNorm momentum decay must not
    recompile (at most one graph per batch size; a third compilation fails the run)."""
    import torch._dynamo

    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    torch._dynamo.reset()
    fail = {"fail_on_recompile_limit_hit": True} if hasattr(torch._dynamo.config, "fail_on_recompile_limit_hit") else {}
    with torch._dynamo.config.patch(**{limit: 2, **fail}):
        result = _cli("train", "--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--epochs", 3, "--device", "cuda",
                      "--precision", "bf16", "--compile", "--no-eval", "--checkpoint-dir", tmp_path / "compiled")
    torch._dynamo.reset()
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "compiled" / "log.jsonl").read_text().strip().splitlines()]
    assert len(rows) == 3 and all(math.isfinite(r["train_mpjpe"]) for r in rows)
    assert rows[-1]["train_mpjpe"] < rows[0]["train_mpjpe"]


def test_fp16_trains_with_a_grad_scaler(demo_h5, tmp_path):
    result = _cli("train", "--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--epochs", 1, "--device", "cuda",
                  "--precision", "fp16", "--no-eval", "--checkpoint-dir", tmp_path / "fp16")
    assert result.exit_code == 0, result.output
    assert math.isfinite(_last_row(tmp_path / "fp16")["train_mpjpe"])


def test_fp16_resumes_with_its_grad_scaler(demo_h5, tmp_path):
    # The scaler's scale and growth tracker were not saved: a resumed fp16 run started
    # again from a scale of 65536 and took other steps than an uninterrupted one.
    base = ["--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--device", "cuda", "--precision", "fp16", "--no-eval"]
    assert _cli("train", *base, "--epochs", 3, "--checkpoint-dir", tmp_path / "whole").exit_code == 0
    assert _cli("train", *base, "--epochs", 2, "--checkpoint-dir", tmp_path / "cut").exit_code == 0
    resumed = _cli("train", "--stage", 1, "--resume", tmp_path / "cut" / "last.pt", "--epochs", 3, "--device",
                   "cuda", "--precision", "fp16", "--no-eval")
    assert resumed.exit_code == 0, resumed.output
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert whole["scaler"]["scale"] > 0 and whole["scaler"] == cut["scaler"]


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_checkpoints_on_cuda(name, golden_dir):
    from rie_cli.inference import predict_many
    from rie_cli.model.checkpoint import load_checkpoint
    from rie_cli.skeleton import H36M_17

    loaded = load_checkpoint(golden_dir / f"ckpt_{name}.bin", device="cuda")
    with np.load(golden_dir / f"io_{name}.npz") as f:
        io = {k: f[k] for k in f.files}
    with torch.inference_mode():
        eager = loaded.model(torch.from_numpy(io["x_rf"]).cuda()).cpu().numpy()
    np.testing.assert_allclose(eager, io["out_rf"], atol=GOLDEN_ATOL, rtol=0)
    # The folded evaluation form, on the GPU.
    plain = np.stack(predict_many(loaded.model, list(io["x_long"]), skeleton=H36M_17, tta=False, device="cuda"))
    np.testing.assert_allclose(plain, io["seq_out"], atol=GOLDEN_ATOL, rtol=0)
    tta = np.stack(predict_many(loaded.model, list(io["x_long"]), skeleton=H36M_17, tta=True, device="cuda",
                                batch_size=200))
    np.testing.assert_allclose(tta, io["seq_out_tta"], atol=GOLDEN_ATOL, rtol=0)


def test_folded_form_on_cuda_matches_cpu_and_bf16_stays_close():
    from helpers import small_model
    from rie_cli.inference import predict_many
    from rie_cli.skeleton import H36M_17

    model = small_model(fusion=True)
    seqs = [np.random.default_rng(i).normal(0, 0.2, (n, 17, 2)).astype(np.float32) for i, n in enumerate((40, 7))]
    cpu = predict_many(model, seqs, skeleton=H36M_17, device="cpu")
    gpu = predict_many(model, seqs, skeleton=H36M_17, device="cuda")
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    if bf16_native("cuda"):
        half = predict_many(model, seqs, skeleton=H36M_17, device="cuda", precision="bf16")
        for a, b in zip(cpu, half):
            assert np.abs(b - a).max() < 0.05  # bf16 keeps 8 significant bits


def test_commands_with_device_cuda(demo_h5, small_checkpoint, tmp_path):
    ckpt = ["-c", small_checkpoint]
    result = _cli("evaluate", *ckpt, "-d", demo_h5, "-k", "gt", "--actions", "walk", "--device", "cuda",
                  "--json", tmp_path / "eval.json")
    assert result.exit_code == 0, result.output
    on_gpu = json.loads((tmp_path / "eval.json").read_text())["average"]["mpjpe"]
    result = _cli("evaluate", *ckpt, "-d", demo_h5, "-k", "gt", "--actions", "walk", "--json", tmp_path / "cpu.json")
    assert result.exit_code == 0, result.output
    assert on_gpu == pytest.approx(json.loads((tmp_path / "cpu.json").read_text())["average"]["mpjpe"], abs=1e-3)

    result = _cli("export", "predictions", *ckpt, "-d", demo_h5, "-k", "gt", "--actions", "wave-right",
                  "--device", "cuda", "--out", tmp_path / "pred.npz")
    assert result.exit_code == 0, result.output

    rng = np.random.default_rng(0)
    points = (np.array([500.0, 400.0]) + rng.normal(0, 30, (20, 17, 2))).astype(np.float32)
    np.save(tmp_path / "kp.npy", points)
    result = _cli("predict", *ckpt, "-k", tmp_path / "kp.npy", "--width", 1000, "--height", 800,
                  "--device", "cuda", "--out", tmp_path / "clip.npz")
    assert result.exit_code == 0, result.output

    result = _cli("render", *ckpt, "-d", demo_h5, "-k", "gt", "-s", "BN2-normal", "-a", "walk 001.1", "--camera", 1,
                  "--device", "cuda", "-o", tmp_path / "walk.gif", "--size", 2, "--limit", 6)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "walk.gif").stat().st_size > 0


def test_cuda_run_resumes_on_cpu_and_back(demo_h5, tmp_path):
    run_dir = tmp_path / "run"
    base = ["--data", demo_h5, *DATA, "--no-eval", "--checkpoint-dir", run_dir]
    result = _cli("train", "--stage", 1, *base, *ARCH, "--epochs", 1, "--device", "cuda")
    assert result.exit_code == 0, result.output
    result = _cli("train", "--stage", 1, "--resume", run_dir / "last.pt", "--epochs", 2, "--device", "cpu",
                  "--no-eval")
    assert result.exit_code == 0, result.output
    result = _cli("train", "--stage", 1, "--resume", run_dir / "last.pt", "--epochs", 3, "--device", "cuda",
                  "--no-eval")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().strip().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(math.isfinite(r["train_mpjpe"]) for r in rows)


def test_device_sampler_on_cuda_gives_the_host_batches():
    from rie_cli.data.windows import DeviceWindowSampler, WindowSampler
    from rie_cli.skeleton import H36M_17

    rng = np.random.default_rng(0)
    x2d = [rng.normal(size=(n, 17, 2)).astype(np.float32) for n in (60, 13)]
    y3d = [rng.normal(size=(n, 17, 3)).astype(np.float32) for n in (60, 13)]
    kw = dict(skeleton=H36M_17, shuffle=True, augment=True, seed=3)
    host = WindowSampler(x2d, y3d, 27, 32, **kw)
    device = DeviceWindowSampler(x2d, y3d, 27, 32, device="cuda", **kw)
    for (hx, hy, hids), (dx, dy, dids) in zip(host, device):
        assert dx.is_cuda and dy.is_cuda
        np.testing.assert_array_equal(dids, hids)
        np.testing.assert_array_equal(dx.cpu().numpy(), hx)
        np.testing.assert_array_equal(dy.cpu().numpy(), hy)


def test_torchrun_one_process_with_nccl(demo_h5, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
           "-m", "rie_cli", "train", "--stage", "1",
           "--data", str(demo_h5), *DATA, *ARCH, "--epochs", "1", "--device", "cuda", "--no-eval",
           "--checkpoint-dir", str(tmp_path / "ddp")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "ddp" / "last.pt").exists()
    assert torch.distributed.is_nccl_available()
