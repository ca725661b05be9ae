"""Training checkpoints: what a resumed run needs to continue exactly, in plain types.

A payload holds the model config, stage and weights (what `rie_cli.model.checkpoint`
reads for inference), plus what only training needs: the optimizer state (and fp16's
gradient-scaler state), the next epoch's learning rate and BatchNorm momentum, the
random-number generators' states, the options of the run and the metrics history.
RNG states are stored as uint8 tensors and everything else as numbers, strings,
lists and dicts, so `torch.load(..., weights_only=True)` reads the file: no pickled
objects.

Files in a run's checkpoint directory:
    last.pt             after every epoch
    best.pt             the epoch with the lowest validation MPJPE so far, without the
                        optimizer state (`RESUME_ONLY`: a quarter of last.pt's size for
                        RIE); not resumable
    epoch_010.pt ...    every `checkpoint_every` epochs (resumable)
    run.json            which run this directory holds (refuses to mix runs)
    run.lock            while a run is alive: its pid and host (`lock.py`, one run at a time)

The `--force` rule of every output (rie_cli/atomic.py) applies to the directory as a
whole: a directory that holds a run is refused unless the run is resumed (--resume)
or started over (--force: the old run's files are deleted before the new run starts,
so that no checkpoint or log of two runs ever sits side by side).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from rie_cli.atomic import write_text_atomic
from rie_cli.errors import RieError
from rie_cli.model.checkpoint import FORMAT

LAST, BEST, RUN_FILE = "last.pt", "best.pt", "run.json"
# What only continuing a run needs (AdamW with amsgrad keeps three tensors per weight):
# best.pt, for evaluation and --init, leaves it out.
RESUME_ONLY = ("optimizer", "scaler")


def periodic_name(epoch: int) -> str:
    return f"epoch_{epoch:03d}.pt"


def rng_state(device: torch.device) -> dict:
    """This process's generators (dropout draws from them; data order does not)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def make_payload(*, model, stage: int, optimizer_state: dict, epoch: int, lr: float, bn_momentum: float,
                 rng_states: list[dict], history: list[dict], options: dict, best_val: float | None,
                 scaler_state: dict | None = None) -> dict:
    """`epoch` counts finished epochs; `lr` and `bn_momentum` are those of the next one.
    `scaler_state`: fp16's GradScaler (its scale and growth tracker), for an exact resume."""
    from rie_cli.model.checkpoint import checkpoint_payload

    extra = {} if scaler_state is None else {"scaler": scaler_state}
    return checkpoint_payload(
        model,
        stage=stage,
        optimizer=optimizer_state,
        epoch=int(epoch),
        lr=float(lr),
        bn_momentum=float(bn_momentum),
        rng=rng_states,  # one entry per process of the run, in rank order
        history=history,
        options=options,
        best_val=best_val,
        **extra,
    )


def weights_payload(payload: dict) -> dict:
    """`payload` without what only resuming needs (best.pt)."""
    return {k: v for k, v in payload.items() if k not in RESUME_ONLY}


def stored_epoch(path: Path) -> int:
    """The finished epochs a checkpoint of `rie train` records (memory-mapped: its tensors are not read)."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])


def read_training_checkpoint(path: Path) -> dict:
    """A checkpoint written by `rie train`, with everything resuming needs."""
    from rie_cli.model.checkpoint import read_checkpoint

    if not path.exists():
        raise RieError(f"--resume checkpoint not found: {path}")
    payload = read_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RieError(
            f"{path} is not a checkpoint written by `rie train` (an authors' .bin can start "
            "stage 2 or 3 with --init, but cannot be resumed)"
        )
    missing = [k for k in ("config", "stage", "model", "optimizer", "epoch", "lr", "rng", "options")
               if k not in payload]
    if missing == ["optimizer"]:
        raise RieError(f"{path} holds the weights without the optimizer state (as best.pt does): resume from "
                       f"{LAST} or an epoch_NNN.pt of the run")
    if missing:
        raise RieError(f"{path} lacks {', '.join(missing)}: it cannot be resumed")
    return payload


def publish_copy(source: Path, target: Path) -> None:
    """Make `target` a copy of the just-written checkpoint `source`, atomically.

    A hard link costs nothing (hundreds of MB for RIE with its optimizer state are not
    serialised again); it stays valid when `source` is later replaced, because every
    checkpoint write renames a new file into place. Falls back to copying.
    """
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def check_run_directory(directory: Path, identity: dict, resuming: bool, force: bool = False) -> bool:
    """Refuse a checkpoint directory that holds another run (or this one, without --resume).

    Nothing in an existing run's directory is overwritten by a new run, unless `force`
    (a new run, not a resumed one) says to start over: then the answer is True and the
    caller discards the old run with `discard_run` before writing anything.
    """
    run_file = directory / RUN_FILE
    if not (directory / LAST).exists():
        # No finished epoch: a run that died in its first epoch left nothing to keep.
        return False
    if force and not resuming:
        return True
    if not run_file.exists():
        if not resuming:
            raise RieError(f"{directory} already holds checkpoints: pass --resume {directory / LAST} "
                           "to continue that run, --force to start over, or choose another --checkpoint-dir")
        return False
    try:
        stored = json.loads(run_file.read_text())
    except (OSError, ValueError) as exc:
        raise RieError(f"cannot read {run_file}: {exc}") from None
    if stored.get("identity") != identity:
        differs = sorted(k for k in set(identity) | set(stored.get("identity", {}))
                         if identity.get(k) != stored.get("identity", {}).get(k))
        raise RieError(
            f"{directory} holds another run (stage {stored.get('identity', {}).get('stage')}; differs in "
            f"{', '.join(d.replace('_', '-') for d in differs)}): choose another --checkpoint-dir, "
            "or use --force to replace it"
        )
    if not resuming:
        raise RieError(f"{directory} already holds this run: pass --resume {directory / LAST} "
                       "to continue it, --force to start over, or choose another --checkpoint-dir")
    return False


def discard_run(directory: Path) -> list[Path]:
    """Delete the files a run wrote in `directory` (checkpoints, logs, run.json); others stay.

    Returns what was deleted. run.json goes first, so an interrupted discard leaves
    no run.json that would vouch for the remaining files.
    """
    from rie_cli.training.log import CSV_FILE, CURVES_FILE, JSONL_FILE

    names = [RUN_FILE, LAST, BEST, CSV_FILE, JSONL_FILE, CURVES_FILE]
    files = [directory / n for n in names] + sorted(directory.glob("epoch_[0-9][0-9][0-9]*.pt"))
    files += sorted(directory.glob("windows_rank*_epoch*.npy"))
    deleted = [f for f in files if f.is_file()]
    for f in deleted:
        f.unlink()
    return deleted


def write_run_file(directory: Path, identity: dict, config) -> None:
    write_text_atomic(directory / RUN_FILE,
                      json.dumps({"identity": identity, "config": config.to_dict()}, indent=2) + "\n")


def _epoch_files(directory: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the periodic checkpoints and recorded window ids in `directory`."""
    found = []
    for path in [*directory.glob("epoch_[0-9][0-9][0-9]*.pt"), *directory.glob("windows_rank*_epoch*.npy")]:
        digits = path.stem.rsplit("epoch", 1)[-1].lstrip("_")
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found)


def files_after(directory: Path, epoch: int) -> list[Path]:
    """The files of `directory`'s run that belong to epochs after `epoch` (last.pt and best.pt
    when they record a later epoch, periodic checkpoints, window logs)."""
    later = [path for e, path in _epoch_files(directory) if e > epoch]
    for name in (LAST, BEST):
        if (directory / name).exists() and stored_epoch(directory / name) > epoch:
            later.append(directory / name)
    return later


def check_resume_point(directory: Path, resumed_from: Path, epoch: int, force: bool) -> list[Path]:
    """The files a run resumed after `epoch` into `directory` must discard: those of later
    epochs (a run resumed from a periodic checkpoint leaves them behind otherwise, and an
    old best.pt would then not be the best of the run it continues). RieError unless
    `force` allows it."""
    later = files_after(directory, epoch)
    if later and not force:
        raise RieError(f"{directory} holds epochs after {epoch} ({', '.join(sorted(p.name for p in later))}): "
                       f"resuming from {resumed_from.name} discards them; add --force to do so, or resume "
                       "into another --checkpoint-dir")
    return later


def rewind_run(directory: Path, resumed_from: Path, payload: dict, later: list[Path]) -> None:
    """Make `directory` hold its run as it was after `payload["epoch"]`: the files of later
    epochs (`check_resume_point`) deleted, last.pt the resumed checkpoint, and best.pt the
    best epoch up to there where a checkpoint of it is at hand."""
    from rie_cli.model.checkpoint import read_checkpoint, save_checkpoint

    for path in later:
        path.unlink()
    last = directory / LAST
    if not last.exists() or not os.path.samefile(resumed_from, last):
        publish_copy(resumed_from, last)
    best = directory / BEST
    if best.exists():
        return
    scored = [row for row in payload.get("history", []) if row.get("val_mpjpe") is not None]
    if not scored:
        return
    best_epoch = min(scored, key=lambda row: row["val_mpjpe"])["epoch"]  # the first of equals, as training
    source = last if best_epoch == payload["epoch"] else directory / periodic_name(best_epoch)
    if source.exists():
        save_checkpoint(best, weights_payload(read_checkpoint(source)))
