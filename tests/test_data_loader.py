"""The trainer's one DataLoader: RunBatches follows each epoch's batches across the run and
from a resumed step, and workers that live across epochs augment with each item's epoch."""

import torch
from conftest import tiny_config

from scdepth.data import loader
from scdepth.data.folders import TrainFolder


def test_run_batches_follow_the_epochs_and_resume_mid_epoch(tiny_synthetic):
    cfg = tiny_config(tiny_synthetic, epochs=3, epoch_size=4, batch_size=3)
    n = 10
    expected = [
        [(epoch, i) for i in batch]
        for epoch in range(3)
        for batch in loader.epoch_batches(n, cfg, epoch, 0, rank=1)
    ]
    assert len(expected) == 12 and all(len(b) == 3 for b in expected)
    assert list(loader.RunBatches(n, cfg, 1, 0)) == expected
    for first in (1, 4, 6, 11):
        batches = loader.RunBatches(n, cfg, 1, first)
        assert len(batches) == 12 - first and list(batches) == expected[first:]
    assert list(loader.RunBatches(n, cfg, 0, 0)) != expected  # each rank draws its own


def test_workers_across_epochs_load_what_the_main_process_loads(tiny_synthetic):
    cfg = tiny_config(tiny_synthetic, epochs=2, epoch_size=2, num_workers=2)
    data = TrainFolder(tiny_synthetic, image_size=(64, 64), seed=0)
    batches = list(loader.RunBatches(len(data), cfg, 0, 1))

    def direct(batch):
        items = []
        for epoch, i in batch:
            data.set_epoch(epoch)
            items.append(data[i])
        return torch.utils.data.default_collate(items)

    loaded = list(loader.make_loader(data, cfg, 0, 1, torch.device("cpu")))
    assert len(loaded) == len(batches) == 3
    for got, batch in zip(loaded, batches, strict=True):
        want = direct(batch)
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), (batch, k)
    # the augmentation differs between epochs: the epoch reached the workers
    assert batches[0][0][0] == 0 and batches[-1][0][0] == 1
    first = direct([(0, 0)])["tgt"]
    assert not torch.equal(first, direct([(1, 0)])["tgt"])


def test_loader_benchmark_writes_its_section(tmp_path):
    from benchmarks import bench_loader

    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nkept\n")
    argv = ["--size", "64", "96", "--workers", "1", "--batches", "1", "--samples", "1"]
    for _ in range(2):  # the second run replaces the section
        assert bench_loader.main([*argv, "--no-step", "--md", str(md)]) == 0
    text = md.read_text()
    assert text.startswith("# Results\n\nkept\n") and text.count(bench_loader.BEGIN) == 1
    assert "| 1 | " in text and "PNG decode" in text and text.rstrip().endswith(bench_loader.END)
