"""`rie train` end to end on tiny data: the three stages, logs, errors."""

import csv
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.devices import bf16_native
from rie_cli.model.checkpoint import load_checkpoint, read_checkpoint
from rie_cli.training.steps import bn_momentum

runner = CliRunner()
# A small model on a small slice of the demo data: each run takes about a second.
DATA = ["--keypoints", "gt", "--batch-size", "64", "--subset", "0.05", "--actions", "walk"]
ARCH = ["--filter-widths", "3,3", "--channels", "32", "--latent", "32", "--fc-width", "64"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine OpenMP
    threads waiting for each other make in-process runs many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(*args):
    result = runner.invoke(app, ["train", *map(str, args)])
    return result


@pytest.fixture(scope="module")
def stages(demo_h5, tmp_path_factory):
    """Stages 1, 2 and 3 run one after another, each from the previous one's checkpoint."""
    root = tmp_path_factory.mktemp("stages")
    runs = {}
    r1 = _train("--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--epochs", 2, "--checkpoint-every", 1,
                "--checkpoint-dir", root / "s1")
    r2 = _train("--stage", 2, "--data", demo_h5, *DATA, "--epochs", 1, "--init", root / "s1" / "best.pt",
                "--checkpoint-dir", root / "s2")
    r3 = _train("--stage", 3, "--data", demo_h5, *DATA, "--epochs", 1, "--init", root / "s2" / "last.pt",
                "--checkpoint-dir", root / "s3")
    for stage, result in zip((1, 2, 3), (r1, r2, r3)):
        assert result.exit_code == 0, result.stderr
        runs[stage] = (root / f"s{stage}", result)
    return runs


def test_three_stages_chain(stages):
    for stage, (directory, _) in stages.items():
        loaded = load_checkpoint(directory / "last.pt")
        assert loaded.stage == stage and loaded.origin == "rie"
        assert loaded.config.fusion == (stage > 1)
        assert loaded.config.filter_widths == (3, 3) and loaded.config.fc_width == 64
    s1 = read_checkpoint(stages[1][0] / "best.pt")["model"]
    s2 = read_checkpoint(stages[2][0] / "last.pt")["model"]
    s3 = read_checkpoint(stages[3][0] / "last.pt")["model"]
    # Stage 2: encoder weights exactly stage 1's (frozen) ...
    for key in s1:
        if key.startswith(("LocalLayer_", "GlobalInfo")) and key.endswith(("weight", "bias")):
            assert torch.equal(s1[key], s2[key]), key
    # ... but their BatchNorm statistics moved: the frozen encoders ran in train mode.
    assert not torch.equal(s1["LocalLayer_Torso.expand_bn.running_mean"], s2["LocalLayer_Torso.expand_bn.running_mean"])
    # The decoders changed shape (3 latents in), the fusion module is new.
    assert s2["Integration_Torso.fc_1.weight"].shape[1] == 3 * 32
    assert any(k.startswith("FuseBlocks.") for k in s2)
    # Stage 3 trains everything, encoders included.
    assert not torch.equal(s2["LocalLayer_Torso.expand_conv.weight"], s3["LocalLayer_Torso.expand_conv.weight"])
    assert not torch.equal(s2["FuseBlocks.0.fc_1.weight"], s3["FuseBlocks.0.fc_1.weight"])


def test_stage1_outputs_logs_and_schedules(stages):
    directory, result = stages[1]
    names = {p.name for p in directory.iterdir()}
    assert {"last.pt", "best.pt", "epoch_001.pt", "epoch_002.pt", "log.csv", "log.jsonl", "curves.png",
            "run.json"} <= names
    assert (directory / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((directory / "log.csv").open()))
    jsonl = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines()]
    assert [int(r["epoch"]) for r in rows] == [1, 2] and [r["epoch"] for r in jsonl] == [1, 2]
    for row in jsonl:
        for key in ("train_mpjpe", "train_eval_mpjpe", "val_mpjpe", "frames_per_s"):
            assert math.isfinite(row[key]) and row[key] > 0
    # lr decays x0.95 per epoch; BN momentum follows the authors' schedule.
    assert jsonl[0]["lr"] == pytest.approx(1e-3) and jsonl[1]["lr"] == pytest.approx(0.95e-3)
    assert jsonl[0]["bn_momentum"] == pytest.approx(0.1)
    assert jsonl[1]["bn_momentum"] == pytest.approx(bn_momentum(1, 2))
    payload = read_checkpoint(directory / "last.pt")
    assert payload["epoch"] == 2 and payload["lr"] == pytest.approx(1e-3 * 0.95**2)
    assert payload["bn_momentum"] == pytest.approx(0.001)  # the end of the schedule
    assert len(payload["history"]) == 2 and len(payload["rng"]) == 1
    # One summary line per epoch on stderr.
    assert result.stderr.count("epoch   1/2") == 1 and "val" in result.stderr


def test_best_holds_the_weights_without_the_optimizer(stages, demo_h5, tmp_path):
    directory = stages[1][0]
    best, last = read_checkpoint(directory / "best.pt"), read_checkpoint(directory / "last.pt")
    assert "optimizer" not in best and "optimizer" in last  # AdamW's state: 3 tensors per weight
    assert (directory / "best.pt").stat().st_size < 0.4 * (directory / "last.pt").stat().st_size
    assert load_checkpoint(directory / "best.pt").stage == 1  # loads for inference; --init: the stages fixture
    refused = _train("--stage", 1, "--resume", directory / "best.pt", "--checkpoint-dir", tmp_path / "r")
    assert refused.exit_code == 1 and "without the optimizer state" in refused.stderr
    assert "resume from last.pt or an epoch_NNN.pt" in " ".join(refused.stderr.split())


def test_resuming_from_a_periodic_checkpoint_discards_the_later_epochs(demo_h5, tmp_path):
    directory = tmp_path / "run"
    first = _train("--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--epochs", 3, "--checkpoint-every", 1,
                   "--checkpoint-dir", directory)
    assert first.exit_code == 0, first.stderr
    names = {p.name for p in directory.iterdir()}
    assert {"epoch_001.pt", "epoch_002.pt", "epoch_003.pt", "best.pt"} <= names
    # Without --force: refused, nothing touched.
    refused = _train("--stage", 1, "--resume", directory / "epoch_001.pt", "--epochs", 1)
    assert refused.exit_code == 1 and "holds epochs after 1" in refused.stderr
    assert {p.name for p in directory.iterdir()} == names
    # With it, the directory is the run as it was after epoch 1: no epoch_002/003.pt, and
    # no best.pt of an abandoned epoch beside the continued run.
    rewound = _train("--stage", 1, "--resume", directory / "epoch_001.pt", "--epochs", 1, "--force")
    assert rewound.exit_code == 0, rewound.stderr
    assert not (directory / "epoch_002.pt").exists() and not (directory / "epoch_003.pt").exists()
    assert read_checkpoint(directory / "last.pt")["epoch"] == 1
    best = read_checkpoint(directory / "best.pt")
    assert best["epoch"] == 1 and "optimizer" not in best
    assert len((directory / "log.csv").read_text().splitlines()) == 2  # header + epoch 1
    resumed = _train("--stage", 1, "--resume", directory / "last.pt", "--epochs", 2)
    assert resumed.exit_code == 0, resumed.stderr
    assert read_checkpoint(directory / "last.pt")["epoch"] == 2


def test_grad_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    # fp16 runs (CUDA) step through a GradScaler: its scale and growth tracker are part of
    # the state a resumed run needs (tests/test_cuda.py runs the whole fp16 resume).
    from rie_cli.model import ModelConfig, build_model
    from rie_cli.model.checkpoint import save_checkpoint
    from rie_cli.training import state
    from rie_cli.training.distributed import Distributed
    from rie_cli.training.log import Reporter
    from rie_cli.training.steps import make_optimizer
    from rie_cli.training.trainer import _restore

    model = build_model(ModelConfig(filter_widths=(3,), channels=16, latent=16, fc_width=32))
    optimizer = make_optimizer(model.parameters(), 1e-3, torch.device("cpu"))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    scaler.scale(torch.ones(()))  # what a step's scaled loss does first
    for p in model.parameters():
        p.grad = torch.full_like(p, float("inf"))  # an overflow: the step is skipped, the scale halves
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 512.0
    payload = state.make_payload(model=model, stage=1, optimizer_state=optimizer.state_dict(), epoch=1, lr=1e-3,
                                 bn_momentum=0.1, rng_states=[state.rng_state(torch.device("cpu"))], history=[],
                                 options={}, best_val=None, scaler_state=scaler.state_dict())
    save_checkpoint(tmp_path / "last.pt", payload)
    fresh = torch.amp.GradScaler("cpu")
    _restore(read_checkpoint(tmp_path / "last.pt"), optimizer, fresh, Distributed(device=torch.device("cpu")),
             Reporter())
    assert fresh.state_dict() == scaler.state_dict()
    assert "scaler" not in state.weights_payload(payload)


def test_a_diverging_run_stops_with_one_line(demo_h5, tmp_path):
    # It went on training NaN weights for every remaining epoch, writing NaN checkpoints.
    result = _train("--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--epochs", 3, "--lr", "1e30", "--no-eval",
                    "--checkpoint-dir", tmp_path / "run")
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "training diverged in epoch 1" in lines[-1] and "lower --lr" in lines[-1], result.stderr
    assert not (tmp_path / "run" / "last.pt").exists()
    assert not (tmp_path / "run" / "run.lock").exists()  # the lock goes with a failed run too


def test_bn_momentum_schedule():
    assert bn_momentum(0, 80) == pytest.approx(0.1)
    assert bn_momentum(40, 80) == pytest.approx(0.01)
    assert bn_momentum(80, 80) == pytest.approx(0.001)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--stage", 1, "--keypoints", "cpn_ft_h36m_dbb"], "keypoint source 'cpn_ft_h36m_dbb' is not in"),
        (["--stage", 1, "--actions", "nothing-like-this"], "holds no sequences"),
        (["--stage", 1, "--train-subjects", "S99"], "subject 'S99' is not in"),
        (["--stage", 2], "pass --init"),
        (["--stage", 1, "--lr-decay", "1.5"], "--lr-decay"),
        # These failed inside the first epoch, after run.json (a stride longer than every
        # sequence: a ZeroDivisionError once an epoch had no windows).
        (["--stage", 1, "--seed", "-1"], "--seed must be an integer from 0"),
        (["--stage", 1, "--subset", "0.02", "--window-stride", "10", "--no-eval"], "holds 0 windows"),
        (["--stage", 1, "--batch-size", "1"], "training needs at least 2"),
    ],
)
def test_errors_are_one_line(demo_h5, tmp_path, extra, message):
    keypoints = [] if "--keypoints" in extra else ["--keypoints", "gt"]
    result = _train("--data", demo_h5, *keypoints, "--checkpoint-dir", tmp_path / "run", *ARCH, *extra)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run").exists()  # refused before the run claims its directory


def test_window_stride_thins_training_only(demo_h5, tmp_path):
    from rie_cli.data.dataset import PoseDataset

    result = _train("--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--epochs", 1, "--window-stride", 4,
                    "--no-augment", "--checkpoint-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    dataset = PoseDataset(demo_h5)
    train = dataset.sequences(["BN2-active", "BN2-feminine"], "gt", ["walk"], subset=0.05)
    val = dataset.sequences(["BN2-normal"], "gt", ["walk"])
    first_phase = sum(len(range(0, len(s), 4)) for s in train)  # epoch 1: frames 0, 4, 8, ...
    line = " ".join(result.stderr.split())
    assert f"{first_phase:,} training windows, {sum(len(s) for s in val):,} validation windows" in line


def test_stage_init_must_fit_the_stage(stages, demo_h5, tmp_path):
    s1, s2 = stages[1][0] / "last.pt", stages[2][0] / "last.pt"
    for stage, init, message in ((2, s2, "stage 2 starts from an RIE stage-1 checkpoint"),
                                 (3, s1, "stage 3 starts from an RIE stage-2 checkpoint"),
                                 (2, demo_h5, "not a PyTorch checkpoint"),
                                 (2, tmp_path / "missing.pt", "not found")):
        result = _train("--stage", stage, "--data", demo_h5, *DATA, "--init", init, "--checkpoint-dir", tmp_path / "x")
        assert result.exit_code == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = _train("--stage", 2, "--data", demo_h5, *DATA, "--init", s1, "--channels", 64,
                    "--checkpoint-dir", tmp_path / "x")
    assert result.exit_code == 1 and "contradicts --channels" in result.stderr


def test_checkpoint_dir_holding_a_run_is_refused(stages, demo_h5):
    directory = stages[1][0]
    before = (directory / "last.pt").stat().st_mtime_ns
    other = _train("--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--lr", "0.01", "--checkpoint-dir", directory)
    assert other.exit_code == 1 and "holds another run" in other.stderr and "lr" in other.stderr
    same = _train("--stage", 1, "--data", demo_h5, *DATA, *ARCH, "--epochs", 2, "--checkpoint-dir", directory)
    assert same.exit_code == 1 and "--resume" in same.stderr
    stage2 = _train("--stage", 2, "--data", demo_h5, *DATA, "--init", directory / "last.pt",
                    "--checkpoint-dir", directory)
    assert stage2.exit_code == 1 and "holds another run" in stage2.stderr
    assert (directory / "last.pt").stat().st_mtime_ns == before  # nothing overwritten


def test_resume_refuses_a_changed_recipe(stages, demo_h5):
    last = stages[1][0] / "last.pt"
    result = _train("--stage", 1, "--resume", last, "--batch-size", 128)
    assert result.exit_code == 1 and "batch-size=64" in result.stderr
    result = _train("--stage", 2, "--resume", last)
    assert result.exit_code == 1 and "from stage 1" in result.stderr
    # A finished run resumed without more epochs does nothing and says so.
    result = _train("--stage", 1, "--resume", last)
    assert result.exit_code == 0 and "nothing to do" in result.stderr


@pytest.mark.skipif(not bf16_native("cpu"), reason="bf16 is refused on a CPU without native bf16")
def test_bf16_and_videopose3d(demo_h5, tmp_path):
    result = _train("--stage", 1, "--data", demo_h5, *DATA, "--arch", "videopose3d", "--filter-widths", "3,3",
                    "--channels", 32, "--epochs", 1, "--precision", "bf16", "--no-eval",
                    "--checkpoint-dir", tmp_path / "vp3d")
    assert result.exit_code == 0, result.stderr
    loaded = load_checkpoint(tmp_path / "vp3d" / "last.pt")
    assert loaded.config.arch == "videopose3d" and not (tmp_path / "vp3d" / "best.pt").exists()
    row = json.loads((tmp_path / "vp3d" / "log.jsonl").read_text())
    assert row["val_mpjpe"] is None and math.isfinite(row["train_mpjpe"])
    result = _train("--stage", 2, "--data", demo_h5, *DATA, "--init", tmp_path / "vp3d" / "last.pt",
                    "--checkpoint-dir", tmp_path / "x")
    assert result.exit_code == 1 and "VideoPose3D" in result.stderr


def test_help_says_frozen_encoders_train_mode():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "train mode" in result.stdout and "--frozen-eval" in result.stdout


def test_frozen_eval_keeps_encoder_statistics(stages, demo_h5, tmp_path):
    s1 = stages[1][0] / "best.pt"
    result = _train("--stage", 2, "--data", demo_h5, *DATA, "--epochs", 1, "--init", s1, "--frozen-eval",
                    "--checkpoint-dir", tmp_path / "s2")
    assert result.exit_code == 0, result.stderr
    assert "frozen (eval mode)" in result.stderr.replace("\n", " ")
    before, after = read_checkpoint(s1)["model"], read_checkpoint(tmp_path / "s2" / "last.pt")["model"]
    for key in before:
        if key.startswith(("LocalLayer_", "GlobalInfo")):
            assert torch.equal(before[key], after[key]), key


def test_stage_recipes_are_the_papers(tmp_path):
    from rie_cli.training.options import TrainOptions, resolve_options

    init = tmp_path / "init.pt"
    for stage, epochs, lr in ((1, 80, 1e-3), (2, 80, 1e-3), (3, 20, 5e-4)):
        o = resolve_options(TrainOptions(stage=stage, data=tmp_path / "d.h5", init=None if stage == 1 else init))
        assert (o.epochs, o.lr, o.lr_decay, o.batch_size, o.dropout, o.seed, o.checkpoint_every, o.augment) == (
            epochs, lr, 0.95, 1024, 0.2, 4321, 10, True)
        # Stages 2 and 3 leave the architecture to their --init checkpoint.
        assert (o.filter_widths is None) == (stage != 1)
