"""torch.compile of the training step: eager against compile=losses (the loss terms, one
whole graph) and compile=all (and the DepthNet and PoseNet), one SC-DepthV3 step (networks,
every loss, backward, Adam) per measurement.

Each setting runs with the trainer's other defaults (channels-last networks, the host cache)
in a fresh process with an empty Inductor cache, so that its first step
pays the whole compile: first_step_s (compile + one step), step_s (median of `repeat` steps
after the first two; the second checks that a new step does not recompile) and peak_bytes
(benchmarks.common.peak_bytes over one step).

    python -m benchmarks.bench_compile                    # 96x128, B=4 (the default run)
    python -m benchmarks.bench_compile --size 256 832     # the KITTI size
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ("none", "losses", "all")


def measure(mode, B, H, W, repeat, threads=None):
    """One setting in this process: the JSON row."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from scdepth import config, host_memory

    torch.manual_seed(0)
    cfg = config.load(overrides=[f"compile={mode}", f"batch_size={B}"])
    with host_memory.caching(cfg.host_memory == "cache"):  # as scdepth-train runs
        return measure_steps(cfg, mode, B, H, W, repeat)


def measure_steps(cfg, mode, B, H, W, repeat):
    import torch

    from benchmarks.bench_step import batch_for
    from benchmarks.common import peak_bytes
    from scdepth import step
    from scdepth.models import DepthNet, PoseNet
    from scdepth.ops import get_backend

    nets = DepthNet(18), PoseNet(18)
    step.prepare_networks(cfg, *nets)
    opt = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=1e-4)
    batch, ops, count = batch_for(B, H, W, "cpu"), get_backend(cfg.backend), [0]

    def one_step():
        opt.zero_grad(set_to_none=True)
        total, _, _ = step.compute_losses(*nets, batch, cfg, ops, count[0])
        total.backward()
        opt.step()
        count[0] += 1

    times = []
    for _ in range(2 + repeat):
        t0 = time.perf_counter()
        one_step()
        times.append(time.perf_counter() - t0)
    return {
        "mode": mode,
        "shape": [B, H, W],
        "first_step_s": times[0],
        "second_step_s": times[1],
        "step_s": statistics.median(times[2:]),
        "times_s": times,
        "peak_bytes": peak_bytes(one_step, "cpu"),
        "threads": torch.get_num_threads(),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", nargs=2, type=int, default=(96, 128), metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", help="append the rows to this JSON-lines file")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    a = p.parse_args(argv)
    H, W = a.size
    if a.one:
        print(json.dumps(measure(a.modes[0], a.batch, H, W, a.repeat, a.threads)))
        return
    rows = []
    for mode in a.modes:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            cmd = [sys.executable, "-m", "benchmarks.bench_compile", "--one", "--modes", mode]
            cmd += ["--size", str(H), str(W), "--batch", str(a.batch), "--repeat", str(a.repeat)]
            cmd += ["--threads", str(a.threads)]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{mode:>6} B{a.batch} {H}x{W}: first step {r['first_step_s']:.1f} s, "
            f"step {r['step_s']:.3f} s (second {r['second_step_s']:.3f} s), "
            f"peak {r['peak_bytes'] / 2**20:.0f} MiB",
            flush=True,
        )
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
