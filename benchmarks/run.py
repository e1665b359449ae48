"""Kernel microbenchmarks: extension vs reference, side by side in one process.

    python -m benchmarks.run [--ops inverse_warp,...] [--device cpu|cuda] [--dtype float32]
                             [--sizes KITTI,NYU] [--json out.json] [--repeat 7]

Prints a table (median times, speed-up ext/reference, peak extra memory) and writes JSON.
"""

import argparse
import importlib
import json
import sys

import torch

from benchmarks.common import machine, median_time, peak_bytes

MODULES = ["benchmarks.bench_warp", "benchmarks.bench_photometric", "benchmarks.bench_pairs"]


def all_cases():
    return [c for m in MODULES for c in importlib.import_module(m).cases()]


def measure(case, backend, device, dtype, repeat):
    """Median times and peak memory; a case whose runner gives no gradients (grads None) is
    forward only, and its backward entries are None."""
    forward, _ = case.make(backend, device, dtype, backward=False)
    with torch.no_grad():
        t_fwd = median_time(forward, device, repeat=repeat)
    fwd_bwd, grads = case.make(backend, device, dtype, backward=True)
    if grads is None:
        peak = peak_bytes(forward, device)
        return {"forward_s": t_fwd, "backward_s": None, "fwd_bwd_s": None, "peak_bytes": peak}

    def run_both():
        torch.autograd.backward(fwd_bwd(), grads)

    t_both = median_time(run_both, device, repeat=repeat)
    t_bwd = median_time(
        lambda outs: torch.autograd.backward(outs, grads), device, setup=fwd_bwd, repeat=repeat
    )
    peak = peak_bytes(run_both, device)
    return {"forward_s": t_fwd, "backward_s": t_bwd, "fwd_bwd_s": t_both, "peak_bytes": peak}


def run(ops, device, dtype, sizes, repeat):
    rows = []
    for case in all_cases():
        if ops and case.op not in ops:
            continue
        if sizes and not any(case.size.startswith(s) for s in sizes):
            continue
        row = {"op": case.op, "size": case.size, "device": device, "dtype": str(dtype)[6:]}
        for backend in ("ext", "reference"):
            row[backend] = measure(case, backend, device, dtype, repeat)
            print(f"  {case.op} {case.size} {backend}: {row[backend]}", file=sys.stderr)
        row["speedup_fwd"] = row["reference"]["forward_s"] / row["ext"]["forward_s"]
        both = row["ext"]["fwd_bwd_s"] is not None
        row["speedup_fwd_bwd"] = (
            row["reference"]["fwd_bwd_s"] / row["ext"]["fwd_bwd_s"] if both else None
        )
        row["memory_ratio"] = row["ext"]["peak_bytes"] / max(row["reference"]["peak_bytes"], 1)
        if case.bytes_moved and device == "cuda":
            key = "fwd_bwd_s" if both else "forward_s"  # bytes_moved counts what is timed
            row[f"ext_{key[:-2]}_GBps"] = case.bytes_moved(dtype) / row["ext"][key] / 1e9
        rows.append(row)
    return rows


def ms(seconds):
    """A 9-character time column in ms; '-' for a forward-only case's backward."""
    return f"{'-':>9}" if seconds is None else f"{seconds * 1e3:>8.2f}m"


def times(ratio):
    return f"{'-':>7}" if ratio is None else f"{ratio:>6.1f}x"


def table(rows):
    head = (
        f"{'op':<22}{'size':<26}{'dtype':<9}{'ext fwd':>9}{'ref fwd':>9}{'ext f+b':>9}"
        f"{'ref f+b':>9}{'x fwd':>7}{'x f+b':>7}{'ext MB':>8}{'ref MB':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        e, f = r["ext"], r["reference"]
        lines.append(
            f"{r['op']:<22}{r['size']:<26}{r['dtype']:<9}"
            f"{ms(e['forward_s'])}{ms(f['forward_s'])}"
            f"{ms(e['fwd_bwd_s'])}{ms(f['fwd_bwd_s'])}"
            f"{r['speedup_fwd']:>6.1f}x{times(r['speedup_fwd_bwd'])}"
            f"{e['peak_bytes'] / 2**20:>8.1f}{f['peak_bytes'] / 2**20:>8.1f}"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--sizes", default="", help="comma-separated size prefixes (KITTI, DDAD, NYU)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    ops = [o for o in a.ops.split(",") if o]
    sizes = [s for s in a.sizes.split(",") if s]
    rows = run(ops, a.device, getattr(torch, a.dtype), sizes, a.repeat)
    print(f"machine: {machine(a.device)}")
    print(table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(a.device), "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
