"""What a run records: log.jsonl (and TensorBoard when installed) with the curve history, and
the step statistics the training loop keeps on the device between two reads."""

from __future__ import annotations

import json

import torch


class Log:
    """log.jsonl (every logged step and epoch), TensorBoard when installed, curve history."""

    def __init__(self, out, history):
        self.file = open(out / "log.jsonl", "a")  # noqa: SIM115 (closed in close())
        self.history = history
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            self.tb = None

    def write(self, kind, step, values):
        self.file.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.history.setdefault(f"{kind}/{k}", []).append((step, float(v)))
                if self.tb is not None:
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self):
        self.file.close()
        if self.tb is not None:
            self.tb.close()


class StepStats:
    """The loop's numbers, left on the device between two reads so that a step never waits
    for the GPU: per step a row [taken, loss finite, gradients finite (these on every rank),
    loss and each term finite on this rank] (taken: the optimiser stepped), and the loss terms
    summed over the steps taken since the last log line. read() brings them to the host in
    one transfer, the loop's only sync. Unreadable batches, known on the host, queue beside
    the rows to keep the step order."""

    def __init__(self):
        self.names, self.rows = None, []
        self.sum = self.count = self.last = None

    def add(self, step, total, terms, flags):
        values = torch.stack([total.detach(), *(v.detach() for v in terms.values())]).float()
        self.names = ["loss", *terms]
        taken = flags.amin()
        kept = torch.where(taken > 0, values, 0)
        self.sum = kept if self.sum is None else self.sum + kept
        self.count = taken if self.count is None else self.count + taken
        self.last = values
        self.rows.append((step, torch.cat([taken[None], flags, values.isfinite().float()])))

    def unreadable(self, step, reason):
        self.rows.append((step, reason))

    def read(self, mean=False):
        """([(step, reason or the row as floats)] since the last read, and with `mean` the
        terms' mean over the steps taken since the last mean read ({name: value}; the last
        step's values when none was taken; None when no step computed losses))."""
        with_mean = mean and self.last is not None
        packed = [r for _, r in self.rows if torch.is_tensor(r)]
        if with_mean:
            packed += [self.sum, self.count[None], self.last]
        flat = torch.cat(packed).tolist() if packed else []
        events, at = [], 0
        for step, row in self.rows:
            if torch.is_tensor(row):
                row, at = flat[at : at + len(row)], at + len(row)
            events.append((step, row))
        self.rows, values = [], None
        if with_mean:
            n = len(self.names)
            total, count, last = flat[at : at + n], flat[at + n], flat[at + n + 1 :]
            values = dict(
                zip(self.names, [v / count for v in total] if count else last, strict=True)
            )
            self.sum = self.count = self.last = None
        return events, values

    def cause(self, row):
        """What was not finite in a step's row: the loss terms, or the gradients."""
        _, loss_ok, _, total_ok, *finite = row
        if loss_ok:
            return "gradients"
        bad = [n for n, ok in zip(self.names[1:], finite, strict=True) if not ok]
        return ", ".join(bad) or ("loss (another rank)" if total_ok else "loss")
