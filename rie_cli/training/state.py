"""Training checkpoints: what a resumed run needs to continue exactly, in plain types.

A payload holds the model config, stage and weights (what `rie_cli.model.checkpoint`
reads for inference), plus what only training needs: the optimizer state, the next
epoch's learning rate and BatchNorm momentum, the random-number generators' states,
the options of the run and the metrics history. RNG states are stored as uint8
tensors and everything else as numbers, strings, lists and dicts, so
`torch.load(..., weights_only=True)` reads the file: no pickled objects.

Files in a run's checkpoint directory:
    last.pt             after every epoch
    best.pt             the epoch with the lowest validation MPJPE so far
    epoch_010.pt ...    every `checkpoint_every` epochs
    run.json            which run this directory holds (refuses to mix runs)
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
                 rng_states: list[dict], history: list[dict], options: dict, best_val: float | None) -> dict:
    """`epoch` counts finished epochs; `lr` and `bn_momentum` are those of the next one."""
    from rie_cli.model.checkpoint import checkpoint_payload

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
    )


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


def check_run_directory(directory: Path, identity: dict, resuming: bool) -> None:
    """Refuse a checkpoint directory that holds another run (or this one, without --resume).

    Nothing in an existing run's directory is ever overwritten by a new run.
    """
    run_file = directory / RUN_FILE
    if not (directory / LAST).exists():
        # No finished epoch: a run that died in its first epoch left nothing to keep.
        return
    if not run_file.exists():
        if not resuming:
            raise RieError(f"{directory} already holds checkpoints: pass --resume {directory / LAST} "
                           "to continue that run, or choose another --checkpoint-dir")
        return
    try:
        stored = json.loads(run_file.read_text())
    except (OSError, ValueError) as exc:
        raise RieError(f"cannot read {run_file}: {exc}") from None
    if stored.get("identity") != identity:
        differs = sorted(k for k in set(identity) | set(stored.get("identity", {}))
                         if identity.get(k) != stored.get("identity", {}).get(k))
        raise RieError(
            f"{directory} holds another run (stage {stored.get('identity', {}).get('stage')}; differs in "
            f"{', '.join(d.replace('_', '-') for d in differs)}): choose another --checkpoint-dir"
        )
    if not resuming:
        raise RieError(f"{directory} already holds this run: pass --resume {directory / LAST} "
                       "to continue it, or choose another --checkpoint-dir")


def write_run_file(directory: Path, identity: dict, config) -> None:
    write_text_atomic(directory / RUN_FILE,
                      json.dumps({"identity": identity, "config": config.to_dict()}, indent=2) + "\n")
