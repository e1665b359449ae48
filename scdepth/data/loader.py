"""The trainer's data loading: one DataLoader for the whole run whose batches are drawn from
(seed, epoch, rank), so that a resumed run reads exactly the batches it would have read."""

from __future__ import annotations

import torch

from ..ops import _checks


def epoch_batches(n_samples, cfg, epoch, start, rank=0):
    """One epoch's index batches for one rank: epoch_size random batches drawn from
    (seed, epoch, rank), so that a resumed run draws the same ones; batches before `start`
    are skipped."""
    g = torch.Generator().manual_seed((cfg.seed * 100_003 + epoch) * 1009 + rank)
    idx = torch.randint(n_samples, (cfg.epoch_size, cfg.batch_size), generator=g)
    return idx[start:].tolist()


class RunBatches(torch.utils.data.Sampler):
    """Batch sampler of the run's one DataLoader: every batch from `first_step` to the end of
    training, epoch after epoch (epoch_batches), each index paired with its epoch for
    EpochItems. One iterator serves the whole run, so the workers start once and keep
    decoding across epoch ends and during validation; a resume starts at the saved step and
    replays the rest of the interrupted epoch's batches exactly."""

    def __init__(self, n_samples, cfg, rank, first_step):
        self.n, self.cfg, self.rank, self.first = n_samples, cfg, rank, first_step

    def __len__(self):
        return self.cfg.epochs * self.cfg.epoch_size - self.first

    def __iter__(self):
        step, total = self.first, self.cfg.epochs * self.cfg.epoch_size
        while step < total:
            epoch, start = divmod(step, self.cfg.epoch_size)
            for batch in epoch_batches(self.n, self.cfg, epoch, start, self.rank):
                yield [(epoch, i) for i in batch]
            step = (epoch + 1) * self.cfg.epoch_size


class EpochItems(torch.utils.data.Dataset):
    """A TrainFolder indexed by (epoch, index): whichever process loads an item sets the
    augmentation epoch of its own copy first (a set_epoch in the main process would not reach
    workers that live across epochs)."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, key):
        epoch, index = key
        self.data.set_epoch(epoch)
        return self.data[index]


def make_loader(train_set, cfg, rank, first_step, device):
    """The run's DataLoader (iterate it once): RunBatches over EpochItems."""
    return torch.utils.data.DataLoader(
        EpochItems(train_set),
        batch_sampler=RunBatches(len(train_set), cfg, rank, first_step),
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        collate_fn=collate,
    )


def collate(items):
    """default_collate, with the batch's K checked on the host, in the loader's workers."""
    batch = torch.utils.data.default_collate(items)
    _checks.check_intrinsics(batch["K"])
    return batch


def to_device(batch, device):
    """A loader batch (collate checked its K) on `device`, its K marked as checked, so that
    no warp of the step reads K back from the device (ops._checks.mark_checked)."""
    out = {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }
    if "K" in out:
        _checks.mark_checked(out["K"])
    return out
