"""Data-parallel training across processes started by `torchrun`.

    torchrun --nproc-per-node 2 -m rie_cli train --stage 1 ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (a plain `rie train`) the
run is one process and nothing here does any communication. Each process trains on
its shard of every epoch (`WindowSampler(num_shards=world_size, shard_index=rank)`),
DistributedDataParallel averages the gradients, and rank 0 alone writes checkpoints
and logs. Backends: NCCL for CUDA devices, gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from rie_cli.devices import resolve_device


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train: DDP around `model` when distributed, `model` itself otherwise."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes (float64, so frame-weighted means stay exact)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        """Every process's `obj`, in rank order (all ranks must call it)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every process rank 0's BatchNorm statistics (before evaluating or saving)."""
        if not self.enabled:
            return
        for buf in model.buffers():
            dist.broadcast(buf, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def setup(device_name: str) -> Distributed:
    """Join the process group torchrun describes in the environment (or run alone)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size <= 1:
        return Distributed(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
