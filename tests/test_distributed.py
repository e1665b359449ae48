"""DistributedDataParallel on the CPU (gloo): two ranks end with identical weights."""

import os
import socket

import torch
import torch.multiprocessing as mp
from conftest import tiny_config

from scdepth import train


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join(rank, world, port):
    """Make this process rank `rank` of `world` (torchrun's variables), one thread each."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)


def worker(rank, world, port, root, out, dump, epochs, resume):
    join(rank, world, port)
    cfg = tiny_config(root, epochs=epochs, epoch_size=2, device="cpu")
    run = train.train(cfg, out, resume=resume, progress=False)
    # Parameters (weights): DDP keeps them identical. BatchNorm running statistics are each
    # rank's own between broadcasts; rank 0's are the ones checkpointed.
    params = {
        part: {n: p.detach() for n, p in net.named_parameters()}
        for part, net in (("depth", run.depth_net), ("pose", run.pose_net))
    }
    torch.save({**params, "step": run.step}, dump / f"rank{rank}.pt")


def run_ranks(root, out, dump, epochs, resume=False):
    mp.spawn(worker, args=(2, free_port(), root, out, dump, epochs, resume), nprocs=2)
    return [torch.load(dump / f"rank{r}.pt", weights_only=True) for r in range(2)]


def assert_same(a, b):
    for part in ("depth", "pose"):
        for (name, x), y in zip(a[part].items(), b[part].values(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_two_gloo_ranks_train_identical_weights_and_resume(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    first = run_ranks(tiny_synthetic, out, tmp_path, epochs=1)
    assert first[0]["step"] == first[1]["step"] == 2
    assert_same(*first)
    assert (out / "last.pt").is_file() and not (out / "log.jsonl").read_text().count('"rank"')
    resumed = run_ranks(tiny_synthetic, out, tmp_path, epochs=2, resume=True)
    assert resumed[0]["step"] == 4
    assert_same(*resumed)
    changed = any(
        not torch.equal(x, y)
        for x, y in zip(first[0]["depth"].values(), resumed[0]["depth"].values(), strict=True)
    )
    assert changed
