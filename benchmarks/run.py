"""Benchmarks of scdepth: extension vs reference side by side in one process.

    python -m benchmarks.run [--parts ops,scaling,bandwidth,losses,step] [--device cpu|cuda]
                             [--dtypes float32,bfloat16] [--ops inverse_warp,...]
                             [--sizes KITTI,DDAD,NYU] [--step-sizes KITTI] [--repeat 7]
                             [--quick] [--json out.json] [--md benchmarks/RESULTS.md]

Parts:
  ops        every op (forward, backward, forward+backward) at the KITTI, DDAD and NYU sizes,
             extension vs reference: median time after warm-up, peak extra memory, speed-up
  scaling    each op's forward+backward at 0.25x, 1x and 4x the KITTI pixels
  bandwidth  the device's copy bandwidth, and each memory-bound op's achieved bytes/s
  losses     the loss stack of a V1 and a V3 step (2 reference frames, both directions,
             networks excluded): the public SC-Depth code vs ours (ext and reference)
  step       one V3 training step (networks, losses, backward, Adam), ext vs reference:
             it/s, peak memory, share of the step in the losses
Prints a table per part and writes JSON (after every part, so a cut-short run keeps what it
measured); --md renders RESULTS.md from it (tools.report). --quick runs every part at a
tiny size with few repeats: it checks the machinery, its figures mean nothing.
"""

import argparse
import datetime
import importlib
import json
import math
import os
import statistics
import sys

import torch

from benchmarks.common import (
    PARTS,
    QUICK_SIZES,
    SCALE_FACTORS,
    SIZES,
    copy_bandwidth,
    describe,
    interleaved_timings,
    load_average,
    machine,
    median_time,
    paired_ratio,
    peak_bytes,
)

MODULES = [
    "benchmarks.bench_warp",
    "benchmarks.bench_photometric",
    "benchmarks.bench_pairs",
    "benchmarks.bench_normal_rank",
    "benchmarks.bench_depth_normals",
]
_LOGGED = set()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def modules(skipped):
    """The op benchmark modules this checkout has (the others are noted in `skipped`)."""
    found = []
    for name in MODULES:
        try:
            found.append(importlib.import_module(name))
        except ImportError as e:
            msg = f"{name}: {e}"
            if msg not in skipped:
                skipped.append(msg)
            if msg not in _LOGGED:
                _LOGGED.add(msg)
                log(f"skipping {msg}")
    return found


def all_cases(sizes=None, skipped=None):
    """Every op's cases at `sizes` ({name: (B, H, W)}; default: the dataset sizes)."""
    skipped = [] if skipped is None else skipped
    cases = []
    for m in modules(skipped):
        for n, s in (SIZES if sizes is None else sizes).items():
            c = m.case_at(n, *s)  # a Case or a list of them
            cases += c if isinstance(c, list) else [c]
    return cases


def measure(case, backend, device, dtype, *, warmup=2, repeat=7, memory=True):
    """forward, backward and forward+backward medians and peak memory of one backend.
    Forward-only ops (grads None) have no backward; their forward+backward is the forward."""
    forward, _ = case.make(backend, device, dtype, backward=False)
    with torch.no_grad():
        t_fwd = median_time(forward, device, warmup=warmup, repeat=repeat)
    fwd_bwd, grads = case.make(backend, device, dtype, backward=True)
    if grads is None:
        out = {"forward_s": t_fwd, "backward_s": None, "fwd_bwd_s": t_fwd}
        out["peak_bytes"] = peak_bytes(forward, device, repeat=3) if memory else None
        return out

    def run_both():
        torch.autograd.backward(fwd_bwd(), grads)

    t_both = median_time(run_both, device, warmup=warmup, repeat=repeat)
    t_bwd = median_time(
        lambda outs: torch.autograd.backward(outs, grads),
        device,
        setup=fwd_bwd,
        warmup=warmup,
        repeat=repeat,
    )
    out = {"forward_s": t_fwd, "backward_s": t_bwd, "fwd_bwd_s": t_both}
    out["peak_bytes"] = peak_bytes(run_both, device, repeat=3) if memory else None
    return out


BACKENDS = ("ext", "reference")


def measure_pair(case, device, dtype, *, warmup=2, repeat=7, memory=True):
    """Both backends of a case timed in turns (forward; forward+backward; backward alone),
    so that load changes of a shared machine hit both alike: ({backend: medians and peak
    memory}, {'fwd', 'bwd', 'fwd_bwd': reference/ext ratios paired by round})."""
    fwd = {b: case.make(b, device, dtype, backward=False)[0] for b in BACKENDS}
    both = {b: case.make(b, device, dtype, backward=True) for b in BACKENDS}
    forward_only = both["ext"][1] is None

    def no_grad(fn):
        def run():
            with torch.no_grad():
                fn()

        return run

    def fwd_bwd(b):
        forward, grads = both[b]
        return lambda: torch.autograd.backward(forward(), grads)

    def bwd(b):
        forward, grads = both[b]
        return (forward, lambda outs: torch.autograd.backward(outs, grads))

    kw = dict(warmup=warmup, repeat=repeat)
    t = {"forward": interleaved_timings({b: no_grad(fwd[b]) for b in BACKENDS}, device, **kw)}
    if not forward_only:
        t["fwd_bwd"] = interleaved_timings({b: fwd_bwd(b) for b in BACKENDS}, device, **kw)
        t["backward"] = interleaved_timings({b: bwd(b) for b in BACKENDS}, device, **kw)
    out = {}
    for b in BACKENDS:
        m = {"forward_s": statistics.median(t["forward"][b])}
        m["backward_s"] = None if forward_only else statistics.median(t["backward"][b])
        m["fwd_bwd_s"] = m["forward_s"] if forward_only else statistics.median(t["fwd_bwd"][b])
        # the fastest run: the op's own cost with the least of other processes' load in it
        m["fwd_bwd_min_s"] = min(t["forward" if forward_only else "fwd_bwd"][b])
        if memory:
            fn = fwd[b] if forward_only else fwd_bwd(b)
            m["peak_bytes"] = peak_bytes(fn, device, repeat=3)
        out[b] = m
    ratio = {k: paired_ratio(v["reference"], v["ext"]) for k, v in t.items()}
    ratios = {
        "fwd": ratio["forward"],
        "bwd": ratio.get("backward"),
        "fwd_bwd": ratio.get("fwd_bwd", ratio["forward"]),
    }
    return out, ratios


def _row(case, device, dtype):
    return {
        "op": case.op,
        "size": case.size,
        "shape": list(case.shape) if case.shape else None,
        "pixels": case.pixels,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
    }


def run_ops(cases, device, dtypes, warmup, repeat, bandwidth=None):
    rows = []
    for dtype in dtypes:
        for case in cases:
            row = _row(case, device, dtype)
            measured, ratios = measure_pair(case, device, dtype, warmup=warmup, repeat=repeat)
            row.update(measured)
            for backend in BACKENDS:
                log(f"  {case.op} {case.size} {row['dtype']} {backend}: {row[backend]}")
            e, r = row["ext"], row["reference"]
            # speed-ups: reference / ext per round of the interleaved runs, median
            row["speedup_fwd"] = ratios["fwd"]
            row["speedup_bwd"] = ratios["bwd"]
            row["speedup_fwd_bwd"] = ratios["fwd_bwd"]
            row["memory_ratio"] = e["peak_bytes"] / max(r["peak_bytes"], 1)
            if case.bytes_moved:
                row["bytes_moved"] = case.bytes_moved(dtype)
                row["ext_GBps"] = row["bytes_moved"] / e["fwd_bwd_s"] / 1e9
                if bandwidth:
                    row["fraction_of_copy"] = row["ext_GBps"] * 1e9 / bandwidth
            rows.append(row)
    return rows


def run_scaling(base_name, base, device, warmup, repeat, skipped):
    """Each op at SCALE_FACTORS x the pixels of `base` (side lengths x sqrt(factor))."""
    B, H, W = base
    rows = []
    per_op = {}
    for factor in SCALE_FACTORS:
        s = math.sqrt(factor)
        h, w = int(round(H * s)), int(round(W * s))
        for case in all_cases(
            {f"{base_name} x{factor:g}": (B, h, w)}, skipped if factor == 1 else None
        ):
            point = {"factor": factor, "pixels": B * h * w, "size": case.size}
            m, _ = measure_pair(
                case, device, torch.float32, warmup=warmup, repeat=repeat, memory=False
            )
            for backend in BACKENDS:
                # fastest of the repeats: on a shared machine the median drifts with the load,
                # which would bend the growth curve; the minimum tracks the op's own cost
                point[backend] = m[backend]["fwd_bwd_min_s"]
                point[f"{backend}_median"] = m[backend]["fwd_bwd_s"]
            log(f"  scaling {case.op} {case.size}: {point}")
            # one series per op and variant (e.g. photometric_error per SSIM window)
            label = " ".join([case.op] + [f"{k}={v}" for k, v in sorted(case.meta.items())])
            per_op.setdefault(label, []).append(point)
    for op, points in per_op.items():
        points.sort(key=lambda p: p["factor"])
        row = {
            "op": op,
            "base": f"{base_name} B{B} {H}x{W}",
            "device": str(device),
            "points": points,
        }
        lo, hi = points[0], points[-1]
        for backend in ("ext", "reference"):
            # exponent k in t ~ pixels^k between the smallest and the largest size (1: linear)
            row[f"{backend}_exponent"] = math.log(hi[backend] / lo[backend]) / math.log(
                hi["pixels"] / lo["pixels"]
            )
        rows.append(row)
    return rows


# --- tables ------------------------------------------------------------------------------------


def _ms(x):
    return "-" if x is None else f"{x * 1e3:.1f}"


def ops_table(rows):
    head = (
        f"{'op':<22}{'size':<24}{'dtype':<9}{'ext fwd':>9}{'ref fwd':>9}{'ext bwd':>9}"
        f"{'ref bwd':>9}{'ext f+b':>9}{'ref f+b':>9}{'x f+b':>7}{'ext MB':>8}{'ref MB':>8}"
    )
    lines = ["times in ms", head, "-" * len(head)]
    for r in rows:
        e, f = r["ext"], r["reference"]
        lines.append(
            f"{r['op']:<22}{r['size']:<24}{r['dtype']:<9}"
            f"{_ms(e['forward_s']):>9}{_ms(f['forward_s']):>9}"
            f"{_ms(e['backward_s']):>9}{_ms(f['backward_s']):>9}"
            f"{_ms(e['fwd_bwd_s']):>9}{_ms(f['fwd_bwd_s']):>9}"
            f"{r['speedup_fwd_bwd']:>6.1f}x"
            f"{e['peak_bytes'] / 2**20:>8.1f}{f['peak_bytes'] / 2**20:>8.1f}"
        )
    return "\n".join(lines)


# kept for callers of the first version of this module
table = ops_table


def other_tables(result):
    lines = []
    for r in result.get("scaling", []):
        pts = ", ".join(
            f"x{p['factor']:g}: {_ms(p['ext'])}/{_ms(p['reference'])} ms" for p in r["points"]
        )
        lines.append(
            f"scaling {r['op']} (ext/ref) {pts}; exponent ext {r['ext_exponent']:.2f}"
            f" ref {r['reference_exponent']:.2f}"
        )
    bw = result.get("bandwidth")
    if bw:
        lines.append(f"copy bandwidth: {bw['copy_GBps']:.1f} GB/s")
    for r in result.get("losses", []):
        lines.append(
            f"loss stack {r['method']} {r['size']}: public {r['public']['fwd_bwd_s']:.3f} s,"
            f" ext {r['ext']['fwd_bwd_s']:.3f} s ({r['ours_over_public']['ext']:.2f} of public),"
            f" reference {r['reference']['fwd_bwd_s']:.3f} s"
        )
    for r in result.get("step", []):
        lines.append(
            f"step {r['method']} {r['size']} amp={r['amp']}: ext {r['ext']['it_per_s']:.3f} it/s,"
            f" reference {r['reference']['it_per_s']:.3f} it/s (x{r['speedup']:.2f}),"
            f" memory ext/ref {r['memory_ratio']:.2f},"
            f" losses {r['ext']['loss_share']:.0%} of the ext step"
        )
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def _names(value, known, what):
    out = [v for v in value.split(",") if v]
    unknown = [v for v in out if known is not None and v not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; known: {', '.join(known)}")
    return out


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts (default: all)")
    p.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--dtypes", default=None, help="default: float32 on the CPU, float32,bfloat16 on CUDA"
    )
    p.add_argument("--dtype", default=None, help=argparse.SUPPRESS)  # the first version's flag
    p.add_argument("--sizes", default="", help="comma-separated size names (KITTI, DDAD, NYU)")
    p.add_argument(
        "--step-sizes",
        default=None,
        help="sizes of the step part (default: KITTI on the CPU, all on CUDA)",
    )
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument(
        "--step-repeat", type=int, default=None, help="default: 3 on the CPU, 10 on CUDA"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 warm-up, 2 repeats (checks the machinery)",
    )
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--label", default=None, help="a name for this run in RESULTS.md")
    p.add_argument(
        "--md", default=None, help="render RESULTS.md here from the results (and --md-with)"
    )
    p.add_argument(
        "--md-with", default="", help="comma-separated JSON files to render with these results"
    )
    a = p.parse_args(argv)
    a.parts = _names(a.parts, PARTS, "parts")
    a.ops = _names(a.ops, None, "ops")
    cuda = torch.device(a.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device")
    dtypes = a.dtypes or a.dtype or ("float32,bfloat16" if cuda else "float32")
    a.dtypes = [
        getattr(torch, d) for d in _names(dtypes, ("float32", "bfloat16", "float16"), "dtypes")
    ]
    if a.quick:
        a.sizes, a.step_sizes, a.base = (
            dict(QUICK_SIZES),
            dict(QUICK_SIZES),
            next(iter(QUICK_SIZES.items())),
        )
        a.warmup, a.repeat, a.step_repeat = 1, 1, 1
    else:
        names = _names(a.sizes, SIZES, "sizes") or list(SIZES)
        a.sizes = {n: SIZES[n] for n in names}
        step = a.step_sizes if a.step_sizes is not None else (",".join(SIZES) if cuda else "KITTI")
        a.step_sizes = {n: SIZES[n] for n in _names(step, SIZES, "step sizes")}
        a.base = ("KITTI", SIZES["KITTI"])
    if a.step_repeat is None:
        a.step_repeat = 10 if cuda else 3
    return a


def main(argv=None):
    a = parse(argv)
    device = a.device
    result = {
        "schema": 2,
        "machine": machine(device),
        "device": device,
        "quick": a.quick,
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "parts": a.parts,
        "label": a.label,
        "skipped": [],
        "errors": {},
    }
    print(f"machine: {describe(result['machine'])}")

    def save():
        result["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        )
        result["load_after"] = load_average()
        if a.json:
            os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
            with open(a.json + ".tmp", "w") as f:
                json.dump(result, f, indent=1)
            os.replace(a.json + ".tmp", a.json)

    def part(name, fn):
        if name not in a.parts:
            return
        log(f"== {name}")
        try:
            fn()
        except Exception as e:  # a part that fails is reported; the others still run
            result["errors"][name] = f"{type(e).__name__}: {e}"
            log(f"part {name} failed: {type(e).__name__}: {e}")
        save()

    def ops_part():
        bw = result.get("bandwidth", {}).get("copy_GBps")
        cases = [c for c in all_cases(None if not a.quick else a.sizes, result["skipped"])]
        cases = [c for c in cases if (not a.ops or c.op in a.ops)]
        if not a.quick:
            cases = [c for c in cases if any(c.size.startswith(s) for s in a.sizes)]
        result["ops"] = run_ops(
            cases, device, a.dtypes, a.warmup, a.repeat, bw * 1e9 if bw else None
        )
        print(ops_table(result["ops"]))

    def bandwidth_part():
        nbytes = (1 << 30) if torch.device(device).type == "cuda" else (1 << 28)
        nbytes = nbytes // 8 if a.quick else nbytes
        result["bandwidth"] = {"copy_GBps": copy_bandwidth(device, nbytes) / 1e9, "bytes": nbytes}
        log(f"  copy bandwidth {result['bandwidth']['copy_GBps']:.1f} GB/s")

    def scaling_part():
        rows = run_scaling(
            *a.base, device, min(a.warmup, 1), max(1, min(a.repeat, 5)), result["skipped"]
        )
        result["scaling"] = [r for r in rows if not a.ops or r["op"].split()[0] in a.ops]

    def losses_part():
        from benchmarks import bench_losses

        name, shape = a.base
        result["losses"] = [
            bench_losses.run(
                m, name, shape, device, warmup=1, repeat=max(2, min(a.repeat, 5)), log=log
            )
            for m in ("v1", "v3")
        ]

    def step_part():
        from benchmarks import bench_step

        rows = []
        amps = [None] + [d for d in a.dtypes if d != torch.float32]
        for name, shape in a.step_sizes.items():
            for amp in amps:
                rows.append(
                    bench_step.run(
                        name, shape, device, amp_dtype=amp, warmup=1, repeat=a.step_repeat, log=log
                    )
                )
                result["step"] = rows
                save()

    # bandwidth first: the ops part reports each kernel's bytes/s against it
    part("bandwidth", bandwidth_part)
    part("ops", ops_part)
    part("scaling", scaling_part)
    part("losses", losses_part)
    part("step", step_part)
    print(other_tables(result))
    if a.md:
        from tools import report

        extra = [p for p in a.md_with.split(",") if p]
        report.write(a.md, [result] + [report.load(p) for p in extra])
        print(f"wrote {a.md}")
    if result["errors"]:
        print(f"errors: {result['errors']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
