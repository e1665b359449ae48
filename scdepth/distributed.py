"""torch.distributed for the trainer: one process per device, started by torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them training runs in one process.
NCCL is used on GPUs, gloo on the CPU. Rank 0 alone logs, validates and writes checkpoints.
"""

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as td


@dataclass
class Dist:
    rank: int
    world_size: int
    device: torch.device
    host_group: Any = None  # gloo group for flags the host holds (None: the default group)

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
        # host flags go through gloo on the CPU: over NCCL they would wait for the GPU
        host = td.new_group(backend="gloo") if cuda else None
        return Dist(
            td.get_rank(),
            td.get_world_size(),
            torch.device(f"cuda:{local}" if cuda else "cpu"),
            host,
        )

    def wrap(self, module):
        """DistributedDataParallel around module when running on several processes."""
        if not self.active:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def all_true(self, flag):
        """True on every rank when the host's flag is true on every rank (a CPU all-reduce:
        it waits for the other ranks, never for a GPU)."""
        if not self.active:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0])
        td.all_reduce(t, op=td.ReduceOp.MIN, group=self.host_group)
        return bool(t.item() > 0)

    def all_min_(self, t):
        """t (on the device) := its minimum over the ranks, in place; nothing is read back."""
        if self.active:
            td.all_reduce(t, op=td.ReduceOp.MIN)

    def barrier(self):
        if self.active:
            td.barrier()

    def close(self):
        if self.active and td.is_initialized():
            td.destroy_process_group()
