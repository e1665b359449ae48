"""torch.distributed for the trainer: one process per device, started by torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them training runs in one process.
NCCL is used on GPUs, gloo on the CPU. Rank 0 alone logs, validates and writes checkpoints.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as td


@dataclass
class Dist:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def active(self):
        return self.world_size > 1

    @staticmethod
    def setup(device="auto"):
        world = int(os.environ.get("WORLD_SIZE", "1"))
        cuda = device != "cpu" and torch.cuda.is_available()
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but no CUDA device is available")
        if world == 1:
            return Dist(0, 1, torch.device("cuda" if cuda else "cpu"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            torch.cuda.set_device(local)
        if not td.is_initialized():
            td.init_process_group("nccl" if cuda else "gloo")
        return Dist(
            td.get_rank(), td.get_world_size(), torch.device(f"cuda:{local}" if cuda else "cpu")
        )

    def wrap(self, module):
        """DistributedDataParallel around module when running on several processes."""
        if not self.active:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def all_true(self, flag):
        """True on every rank when flag is true on every rank."""
        if not self.active:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        td.all_reduce(t, op=td.ReduceOp.MIN)
        return bool(t.item() > 0)

    def barrier(self):
        if self.active:
            td.barrier()

    def close(self):
        if self.active and td.is_initialized():
            td.destroy_process_group()
