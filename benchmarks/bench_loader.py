"""Does the training loader keep up? Per-sample decode and resize cost, and the trainer's
DataLoader throughput with 1, 2 and 4 workers, beside the training step rate.

    python -m benchmarks.bench_loader [--size 256 832] [--batch 4] [--workers 1 2 4]
                                      [--batches 12] [--no-step] [--md benchmarks/RESULTS.md]

Generates a small outdoor scene (scdepth-synth's generator) at the size into a temporary
folder, then measures in this process:
- per sample (the trainer's SC-DepthV3 item: target, 2 references, pseudo-depth): PNG decode,
  augmentation (flip, zoom, crop: the resize), to-tensor and the whole item, medians;
- the trainer's DataLoader (scdepth.data.loader.make_loader, batch `--batch`) with each worker
  count: samples/s after its first batch (the workers' start-up is reported apart);
- one SC-DepthV3 training step at the size on this device (compute_losses, backward, Adam;
  the second of two), unless --no-step.
A loader of R samples/s sustains R / batch steps/s: a GPU step faster than that waits for
data, and then needs about step rate x batch x (item cost) worker processes (CPU cores).
The scene is small and read repeatedly, so the files come from the page cache (as a data set
that fits in memory does); a cold disk adds its read time.
"""

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from benchmarks.common import cpu_name, load_average

BEGIN, END = "<!-- loader: begin (python -m benchmarks.bench_loader) -->", "<!-- loader: end -->"


def per_sample(data, n):
    """Median seconds per sample of each part of TrainFolder's item, over n samples, on one
    thread as in a DataLoader worker (and without thread contention on a loaded machine)."""
    parts = {"decode": [], "resize": [], "to_tensor": [], "item": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for k in range(n):
            for key, dt in zip(parts, time_item(data, k % len(data)), strict=True):
                parts[key].append(dt)
    finally:
        torch.set_num_threads(threads)
    return {k: statistics.median(v) for k, v in parts.items()}


def time_item(data, index):
    """Seconds of (decode, resize, to tensor, the whole item) of one sample."""
    from scdepth.data import transforms as T
    from scdepth.data.layout import read_image, read_pseudo_depth

    si, i = data.samples[index]
    scene, aug = data.scenes[si], data._augmentation(index)
    t0 = time.perf_counter()
    frames = [read_image(scene.frames[i + s]) for s in [0, *data.shifts]]
    pseudo = read_pseudo_depth(scene.pseudo[i])
    t1 = time.perf_counter()
    out = [T.apply(f, data.image_size, aug) for f in frames]
    T.apply(pseudo, data.image_size, aug, nearest=True)
    t2 = time.perf_counter()
    [T.to_tensor(f) for f in out]
    t3 = time.perf_counter()
    data[index]
    return t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3


def loader_rate(data, cfg, workers, batches):
    """(seconds to the first batch, samples/s over the next `batches` batches)."""
    from scdepth.data import loader

    cfg.num_workers = workers
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # > cores: meant
    it = iter(loader.make_loader(data, cfg, 0, 0, torch.device("cpu")))
    t0 = time.perf_counter()
    next(it)
    t1 = time.perf_counter()
    for _ in range(batches):
        next(it)
    t2 = time.perf_counter()
    del it
    return t1 - t0, batches * cfg.batch_size / (t2 - t1)


def step_rate(data, cfg):
    """Steps/s of one SC-DepthV3 training step (the second of two) on this machine."""
    from scdepth import train
    from scdepth.ops import get_backend
    from scdepth.step import compute_losses

    torch.manual_seed(0)
    depth_net, pose_net, _, optim = train.build(cfg, torch.device("cpu"))
    batch = torch.utils.data.default_collate([data[i] for i in range(cfg.batch_size)])
    times = []
    for step in range(2):
        t0 = time.perf_counter()
        total, _, _ = compute_losses(depth_net, pose_net, batch, cfg, get_backend("ext"), step)
        optim.zero_grad(set_to_none=True)
        total.backward()
        optim.step()
        times.append(time.perf_counter() - t0)
    return 1 / times[-1]


def measure(a):
    from scdepth import config
    from scdepth.data.folders import TrainFolder
    from scdepth.data.synth import generate

    size = tuple(a.size)
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        t0 = time.perf_counter()
        root = generate(
            Path(tmp) / "outdoor",
            preset="outdoor",
            image_size=size,
            num_scenes=1,
            frames_per_scene=10,
            supersample=1,
            workers=1,
            progress=False,
        )
        gen_s = time.perf_counter() - t0
        cfg = config.apply(
            config.Config(),
            dict(
                data_root=str(root),
                image_size=list(size),
                batch_size=a.batch,
                epochs=1,
                epoch_size=a.batches + 1,
            ),
            "bench_loader",
        ).validate()
        data = TrainFolder(root, image_size=size, seed=0, use_pseudo_depth=True)
        costs = per_sample(data, a.samples)
        rates = {w: loader_rate(data, cfg, w, a.batches) for w in a.workers}
        step = None if a.no_step else step_rate(data, cfg)
    return dict(size=size, gen_s=gen_s, costs=costs, rates=rates, step=step)


def render(r, a, load_before, load_after):
    h, w = r["size"]
    c = r["costs"]
    lines = [
        f"## Training loader (CPU, {h}x{w}, batch {a.batch})",
        "",
        f"`python -m benchmarks.bench_loader`: {cpu_name()}, {torch.get_num_threads()} threads,"
        f" torch {torch.__version__}; load average {load_before} before,"
        f" {load_after} after. {a.note}".rstrip(),
        "",
        "Per sample (SC-DepthV3's item: target, 2 references and pseudo-depth; medians over"
        f" {a.samples}): PNG decode {c['decode'] * 1e3:.1f} ms, augmentation resize and crop"
        f" {c['resize'] * 1e3:.1f} ms, to tensor {c['to_tensor'] * 1e3:.1f} ms; the whole item"
        f" {c['item'] * 1e3:.1f} ms, so one core loads about {1 / c['item']:.0f} samples/s.",
        "",
        "| workers | first batch s | samples/s | steps/s it sustains |",
        "| --- | --- | --- | --- |",
    ]
    for workers, (first, rate) in r["rates"].items():
        lines.append(f"| {workers} | {first:.2f} | {rate:.1f} | {rate / a.batch:.1f} |")
    lines.append("")
    if r["step"] is not None:
        best = max(rate for _, rate in r["rates"].values()) / a.batch
        lines.append(
            f"The SC-DepthV3 training step at this size on this CPU (no GPU):"
            f" {r['step']:.3f} steps/s ({1 / r['step']:.1f} s per step); the fastest loader"
            f" row sustains {best / r['step']:.0f}x that"
            + (": on this machine the loader never limits training." if best > r["step"] else ".")
        )
    need = math.ceil(10 * a.batch * c["item"])
    cores = os.cpu_count() or 1
    over = [w for w in r["rates"] if w >= cores]
    lines.append(
        "A GPU step faster than a row's steps/s waits for data with that many workers. Set"
        " `num_workers` to at least step rate × batch × item time (e.g. 10 steps/s at batch"
        f" {a.batch}: {need} worker{'s' * (need != 1)}, a CPU core each, and one core for the"
        " main process); beyond the machine's cores more workers only add contention"
        + (
            f" (here {cores} cores: the rows with {', '.join(map(str, over))} workers)."
            if over
            else "."
        )
    )
    return "\n".join(lines) + "\n"


def write_md(path, section):
    """Replaces this script's section of `path` (appended when missing), atomically."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{section}{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=[256, 832], metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--batches", type=int, default=12, help="timed batches per worker count")
    ap.add_argument("--samples", type=int, default=16, help="samples timed one by one")
    ap.add_argument("--no-step", action="store_true", help="skip the training step's rate")
    ap.add_argument("--note", default="", help="a sentence for the section (e.g. the load)")
    ap.add_argument("--md", help="write the section into this Markdown file")
    a = ap.parse_args(argv)
    if any(w < 1 for w in a.workers) or a.batch < 1 or a.batches < 1 or a.samples < 1:
        ap.error("--workers, --batch, --batches and --samples must be >= 1")
    if any(s % 32 for s in a.size):
        ap.error(f"--size must be multiples of 32, got {a.size}")
    before = load_average()
    t0 = time.perf_counter()
    r = measure(a)
    section = render(r, a, before, load_average())
    print(section)
    print(f"(data generated in {r['gen_s']:.0f} s; {time.perf_counter() - t0:.0f} s in all)")
    if a.md:
        write_md(a.md, section)
        print(f"bench_loader: wrote {a.md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
