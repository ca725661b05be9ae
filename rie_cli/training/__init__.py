"""Training (docs/method.md §3): three stages, resumable checkpoints, data-parallel runs.

    options.py      TrainOptions, the per-stage recipe and its defaults
    stages.py       what each stage builds, loads from --init and freezes
    trainer.py      the epoch loop (`train`): set-up, one epoch, end of epoch
    steps.py        one optimisation step and evaluation pass, losses, optimizer, schedules
    inputs.py       the sequences a run selects and the window samplers over them
    state.py        checkpoint payloads and the run directory's bookkeeping
    lock.py         run.lock: one live run per checkpoint directory
    log.py          progress bar, per-epoch line, CSV/JSONL logs, curves PNG
    distributed.py  torchrun / DistributedDataParallel
"""

from rie_cli.training.options import STAGE_RECIPES, TrainOptions
from rie_cli.training.trainer import TrainResult, train

__all__ = ["STAGE_RECIPES", "TrainOptions", "TrainResult", "train"]
