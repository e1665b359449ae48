"""Renders benchmarks/RESULTS.md from the JSON files of benchmarks.run.

    python -m tools.report cpu.json [gpu.json ...] [-o benchmarks/RESULTS.md]

One file per machine (a CPU run, a GPU run); the speed targets (OP_TARGETS, STEP_TARGETS) are
checked against each, and every figure no file holds (e.g. all GPU figures on a machine
without a GPU) is listed as unmeasured.
"""

import argparse
import json
import os
import sys

from benchmarks.common import PARTS, describe

TARGET_SIZE = "KITTI"

# (device kind, op, minimum speed-up of forward+backward over the reference at KITTI, fp32)
OP_TARGETS = [
    ("cpu", "photometric_error", 5.0),
    ("cpu", "inverse_warp", 2.0),
    ("cpu", "sample_dynamic_pairs", 5.0),
    ("cuda", "photometric_error", 10.0),
    ("cuda", "inverse_warp", 3.0),
    ("cuda", "sample_dynamic_pairs", 10.0),
]
# (device kind, minimum step speed-up, maximum ext/reference peak memory)
STEP_TARGETS = [("cpu", 1.2, 1.0), ("cuda", 1.5, 0.7)]
LOSS_STACK_RATIO = 0.25  # ours <= 1/4 of the public code's time
LOSS_STACK_V3_CPU_S = 0.75  # on the project's 2-core CPU
BANDWIDTH_FRACTION = 0.5  # memory-bound kernels at >= 50% of the copy bandwidth
MEMORY_BOUND_OPS = ("inverse_warp", "photometric_error")


def load(path):
    with open(path) as f:
        result = json.load(f)
    if "ops" not in result and "results" in result:  # the first version's files
        result["ops"] = result["results"]
    result.setdefault("device", "cuda" if "cuda" in str(result.get("machine", {})) else "cpu")
    result["_path"] = path
    return result


def where(result):
    """The machine column of the tables: the device kind, and the run's label if any."""
    return kind(result) + (f" ({result['label']})" if result.get("label") else "")


def title(result):
    """A section title's parenthesis: the device kind, and the run's label if any (a file
    with several runs of a part shows one section per run)."""
    return kind(result).upper() + (f", {result['label']}" if result.get("label") else "")


def kind(result):
    return result.get("machine", {}).get("kind") or (
        "cuda" if "cuda" in result["device"] else "cpu"
    )


def _ms(x):
    return "–" if x is None else (f"{x * 1e3:.1f}" if x < 10 else f"{x * 1e3:.0f}")


def _s(x):
    return "–" if x is None else f"{x:.3f}"


def _mb(x):
    return "–" if x is None else f"{x / 2**20:.1f}"


def _x(x):
    return "–" if x is None else f"{x:.2f}×"


def _at_target_size(row):
    return row["size"].startswith(TARGET_SIZE)


# --- targets -----------------------------------------------------------------------------------


def check_targets(results):
    """[(target, machine, measured, status)] for every speed target, each machine kind
    without a result listed as unmeasured."""
    by_kind = {}
    for r in results:
        by_kind.setdefault(kind(r), []).append(r)
    rows = []

    def status(ok, quick, incomplete=None):
        if quick:
            return "quick run: not judged"
        if incomplete:
            return f"incomplete ({incomplete})"
        return "**met**" if ok else "**MISSED**"

    for k, op, minimum in OP_TARGETS:
        label = f"{op} forward+backward ≥ {minimum:g}× the reference ({TARGET_SIZE}, fp32)"
        found = [
            (r, row)
            for r in by_kind.get(k, [])
            for row in r.get("ops", [])
            if row["op"] == op
            and row["dtype"] == "float32"
            and (_at_target_size(row) or r.get("quick"))
        ]
        if not found:
            rows.append((label, k, "unmeasured", "unmeasured"))
            continue
        for r, row in found:
            rows.append(
                (
                    label,
                    where(r),
                    f"{_x(row['speedup_fwd_bwd'])} ({row['size']})",
                    status(row["speedup_fwd_bwd"] >= minimum, r.get("quick")),
                )
            )
    for k, minimum, mem in STEP_TARGETS:
        label = (
            f"V3 training step ≥ {minimum:g}× the reference, peak memory ≤ {mem:g}×"
            f" ({TARGET_SIZE}, fp32)"
        )
        found = [
            (r, row)
            for r in by_kind.get(k, [])
            for row in r.get("step", [])
            if row["amp"] == "none" and (_at_target_size(row) or r.get("quick"))
        ]
        if not found:
            rows.append((label, k, "unmeasured", "unmeasured"))
        for r, row in found:
            missing = ", ".join(row.get("missing_terms") or [])
            rows.append(
                (
                    label,
                    where(r),
                    f"{_x(row['speedup'])}, memory {_x(row['memory_ratio'])}",
                    status(
                        row["speedup"] >= minimum and row["memory_ratio"] <= mem,
                        r.get("quick"),
                        missing and f"terms not yet in this checkout: {missing}",
                    ),
                )
            )
    for r in by_kind.get("cpu", []) + by_kind.get("cuda", []):
        for row in r.get("losses", []):
            ratio = row["ours_over_public"]["ext"]
            missing = ", ".join(row.get("missing_terms", {}).get("ext") or [])
            inc = missing and f"terms not yet in this checkout: {missing}"
            rows.append(
                (
                    f"loss stack {row['method'].upper()}: ours ≤ {LOSS_STACK_RATIO:g}"
                    " of the public code's time",
                    where(r),
                    f"{ratio:.3f} ({_s(row['ext']['fwd_bwd_s'])} s"
                    f" vs {_s(row['public']['fwd_bwd_s'])} s)",
                    status(ratio <= LOSS_STACK_RATIO, r.get("quick"), inc),
                )
            )
            if row["method"] == "v3" and kind(r) == "cpu":
                t = row["ext"]["fwd_bwd_s"]
                cores = r["machine"].get("cores")
                rows.append(
                    (
                        f"loss stack V3 ≤ {LOSS_STACK_V3_CPU_S} s on the 2-core CPU",
                        f"{where(r)}, {cores} cores",
                        f"{t:.3f} s",
                        status(t <= LOSS_STACK_V3_CPU_S, r.get("quick"), inc),
                    )
                )
    if not any(r.get("losses") for r in results):
        rows.append(
            (
                "loss stack V1/V3: ours ≤ 1/4 of the public code's time",
                "cpu",
                "unmeasured",
                "unmeasured",
            )
        )
    bw_found = [
        (r, row)
        for r in by_kind.get("cuda", [])
        for row in r.get("ops", [])
        if row["op"] in MEMORY_BOUND_OPS
        and row.get("fraction_of_copy") is not None
        and (_at_target_size(row) or r.get("quick"))
    ]
    label = (
        f"memory-bound kernels ≥ {BANDWIDTH_FRACTION:.0%} of the copy bandwidth (forward+backward)"
    )
    if not bw_found:
        rows.append((label, "cuda", "unmeasured", "unmeasured"))
    for r, row in bw_found:
        rows.append(
            (
                f"{label}: {row['op']} {row['dtype']}",
                "cuda",
                f"{row['fraction_of_copy']:.0%} ({row['ext_GBps']:.0f} GB/s)",
                status(row["fraction_of_copy"] >= BANDWIDTH_FRACTION, r.get("quick")),
            )
        )
    return rows


# --- sections ------------------------------------------------------------------------------------


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def machines_section(results):
    lines = ["## Machines", ""]
    kinds = {kind(r) for r in results}
    for r in results:
        m = r["machine"]
        load = f"load average {m.get('load_average')} before, {r.get('load_after')} after"
        title = kind(r).upper() + " run" + (f", {r['label']}" if r.get("label") else "")
        lines.append(
            f"- **{title}** (`{os.path.basename(r['_path'])}`): {describe(m)}; "
            f"{r.get('started', '?')}; {load}; `{r.get('command', '')}`"
            + (" — **quick run: tiny sizes, figures not meaningful**" if r.get("quick") else "")
        )
        if r.get("skipped"):
            lines.append(f"  - skipped: {'; '.join(r['skipped'])}")
        if r.get("errors"):
            lines.append(f"  - errors: {r['errors']}")
    if "cuda" not in kinds:
        lines.append(
            "- **GPU: not measured yet.** No GPU was available for these figures; every GPU "
            "figure and GPU target below is unmeasured. On a GPU machine, "
            "`tools/gpu_check.sh OUTDIR` builds, tests, sanitises and measures, and writes "
            "the JSON to render here."
        )
    return lines


def targets_section(results):
    lines = ["## Speed targets", ""]
    lines += _table(["target", "machine", "measured", "status"], check_targets(results))
    return lines


def losses_section(results):
    lines = []
    for r in results:
        rows = r.get("losses", [])
        if not rows:
            continue
        lines += [
            "",
            f"## Loss stack vs the public SC-Depth code ({title(r)})",
            "",
            "One step's losses, networks excluded (depths and 6-DoF poses given): 2 reference "
            "frames, both warp directions, forward+backward; SSIM window 7 for all three "
            "(the public code's). *public*: `benchmarks/public_baseline.py`, a re-implementation "
            "of the public code's computation pattern. Run in turns, median of "
            f"{len(rows[0]['public']['times_s'])}; ratios are medians of per-round ratios."
            + (
                f" Dynamic region refinement: {rows[-1]['dynamic_region_refinement']}."
                if rows[-1].get("dynamic_region_refinement")
                else ""
            ),
            "",
        ]
        table = []
        for row in rows:
            miss = ", ".join(row.get("missing_terms", {}).get("ext") or []) or "–"
            table.append(
                [
                    row["method"].upper(),
                    row["size"],
                    _s(row["public"]["fwd_bwd_s"]),
                    _s(row["ext"]["fwd_bwd_s"]),
                    f"{row['ours_over_public']['ext']:.3f}",
                    _s(row["reference"]["fwd_bwd_s"]),
                    f"{row['ours_over_public']['reference']:.3f}",
                    f"{row['ext_over_reference']:.2f}",
                    " / ".join(_mb(row[v]["peak_bytes"]) for v in ("public", "ext", "reference")),
                    miss,
                ]
            )
        lines += _table(
            [
                "method",
                "size",
                "public s",
                "ours ext s",
                "ext / public",
                "ours reference s",
                "reference / public",
                "ext / reference",
                "peak MB public / ext / ref",
                "terms missing in this checkout",
            ],
            table,
        )
        for row in rows:
            terms = row.get("terms", {})
            names = []
            for v in ("public", "ext", "reference"):
                names += [t for t in terms.get(v, {}) if t not in names]
            lines += ["", f"Each term alone, forward+backward, {row['method'].upper()} (s):", ""]
            lines += _table(
                ["term", "public", "ours ext", "ours reference"],
                [
                    [t] + [_s(terms.get(v, {}).get(t)) for v in ("public", "ext", "reference")]
                    for t in names
                ],
            )
            for v, top in row.get("top_ops", {}).items():
                lines += [
                    "",
                    f"Top aten ops by self time, {row['method'].upper()} {v} (one call):",
                    "",
                ]
                lines += _table(
                    ["op", "self ms", "calls"],
                    [[o["name"], f"{o['self_ms']:.1f}", o["calls"]] for o in top[:8]],
                )
    return lines


def step_section(results):
    lines = []
    for r in results:
        rows = r.get("step", [])
        if not rows:
            continue
        lines += [
            "",
            f"## Training step ({title(r)})",
            "",
            "One V3 step: DepthNet on the target and 2 reference frames, PoseNet both ways, "
            "every loss, backward, Adam. *losses share*: 1 − (the same step with a trivial loss) "
            "/ (the step). The step is the trainer's (`scdepth.step.compute_losses`).",
            "",
        ]
        lines += _table(
            [
                "size",
                "amp",
                "ext it/s",
                "reference it/s",
                "speed-up",
                "ext peak MB",
                "ref peak MB",
                "memory ext/ref",
                "losses share ext / ref",
                "missing terms",
            ],
            [
                [
                    row["size"],
                    row["amp"],
                    f"{row['ext']['it_per_s']:.3f}",
                    f"{row['reference']['it_per_s']:.3f}",
                    _x(row["speedup"]),
                    _mb(row["ext"]["peak_bytes"]),
                    _mb(row["reference"]["peak_bytes"]),
                    _x(row["memory_ratio"]),
                    f"{row['ext']['loss_share']:.0%} / {row['reference']['loss_share']:.0%}",
                    ", ".join(row.get("missing_terms") or []) or "–",
                ]
                for row in rows
            ],
        )
    return lines


def ops_section(results):
    lines = []
    for r in results:
        rows = r.get("ops", [])
        if not rows:
            continue
        bw = r.get("bandwidth", {}).get("copy_GBps")
        cuda = kind(r) == "cuda"
        lines += [
            "",
            f"## Ops, extension vs reference ({kind(r).upper()})",
            "",
            "Median times in ms after warm-up; *peak MB*: memory allocated by one "
            "forward+backward beyond its inputs. Forward-only ops have no backward.",
            "",
        ]
        head = [
            "op",
            "size",
            "dtype",
            "ext fwd",
            "ref fwd",
            "ext bwd",
            "ref bwd",
            "ext f+b",
            "ref f+b",
            "speed-up f+b",
            "ext peak MB",
            "ref peak MB",
        ]
        if cuda:
            head += ["ext GB/s", "of copy BW"]
        table = []
        for row in rows:
            e, f = row["ext"], row["reference"]
            cells = [
                row["op"],
                row["size"],
                row["dtype"],
                _ms(e["forward_s"]),
                _ms(f["forward_s"]),
                _ms(e["backward_s"]),
                _ms(f["backward_s"]),
                _ms(e["fwd_bwd_s"]),
                _ms(f["fwd_bwd_s"]),
                _x(row["speedup_fwd_bwd"]),
                _mb(e["peak_bytes"]),
                _mb(f["peak_bytes"]),
            ]
            if cuda:
                gbps = row.get("ext_GBps")
                frac = row.get("fraction_of_copy")
                cells += [
                    "–" if gbps is None else f"{gbps:.0f}",
                    "–" if frac is None else f"{frac:.0%}",
                ]
            table.append(cells)
        lines += _table(head, table)
        if bw:
            lines += [
                "",
                f"Copy bandwidth of this device (read + write, large tensor copy): {bw:.1f} GB/s.",
            ]
    return lines


def scaling_section(results):
    lines = []
    for r in results:
        rows = r.get("scaling", [])
        if not rows:
            continue
        factors = [p["factor"] for p in rows[0]["points"]]
        lines += [
            "",
            f"## Scaling with resolution ({kind(r).upper()}, fp32, forward+backward)",
            "",
            "Times in ms at 0.25×, 1× and 4× the pixels of the base size (fastest of the "
            "repeats: the op's own cost, least disturbed by other processes); *exponent* k in "
            "t ∝ pixels^k between the smallest and the largest (1 = linear).",
            "",
        ]
        head = ["op", "base"] + [f"ext ×{f:g}" for f in factors] + [f"ref ×{f:g}" for f in factors]
        head += ["exponent ext", "exponent ref"]
        lines += _table(
            head,
            [
                [row["op"], row["base"]]
                + [_ms(p["ext"]) for p in row["points"]]
                + [_ms(p["reference"]) for p in row["points"]]
                + [f"{row['ext_exponent']:.2f}", f"{row['reference_exponent']:.2f}"]
                for row in rows
            ],
        )
    return lines


def unmeasured_section(results):
    kinds = {kind(r) for r in results}
    lines = ["", "## Unmeasured", ""]
    items = []
    if "cuda" not in kinds:
        items += [
            "every GPU figure: ops in fp32 and bf16 (CUDA events), training step fp32 and bf16 "
            "autocast, loss stack on the GPU, achieved bytes/s of the memory-bound kernels next to "
            "the copy bandwidth, and the GPU targets above",
            "compute-sanitizer memcheck and racecheck of the CUDA kernels, and the CUDA tests "
            "(`pytest -m cuda`), which skip without a GPU",
        ]
    for r in results:
        for s in r.get("skipped", []):
            items.append(f"{kind(r).upper()}: {s}")
        for part, err in r.get("errors", {}).items():
            items.append(f"{kind(r).upper()}: part {part} failed: {err}")
    for k in sorted(kinds):  # a part is unmeasured where no run on that device ran it
        ran = set().union(*(r.get("parts", []) for r in results if kind(r) == k))
        items += [f"{k.upper()}: part {p} not run" for p in PARTS if p not in ran]
    if not items:
        items = ["nothing"]
    return lines + [f"- {i}" for i in items]


def diagnosis_section(results):
    """For every missed target, where the time goes, from the measured data."""
    items = []
    for r in results:
        if r.get("quick"):
            continue
        k = kind(r).upper()
        targets = {op: m for kk, op, m in OP_TARGETS if kk == kind(r)}
        for row in r.get("ops", []):
            need = targets.get(row["op"])
            if need is None or row["dtype"] != "float32" or not _at_target_size(row):
                continue
            if row["speedup_fwd_bwd"] >= need:
                continue
            e, f = row["ext"], row["reference"]
            parts = [f"forward {_ms(e['forward_s'])} vs {_ms(f['forward_s'])} ms"]
            if e.get("backward_s"):
                parts.append(f"backward {_ms(e['backward_s'])} vs {_ms(f['backward_s'])} ms")
            items.append(
                f"{k} {row['op']} {row['size']}: {_x(row['speedup_fwd_bwd'])} < {need:g}× "
                f"(ext vs reference: {', '.join(parts)})"
            )
        for row in r.get("losses", []):
            ratio = row["ours_over_public"]["ext"]
            slow = ratio > LOSS_STACK_RATIO or (
                row["method"] == "v3"
                and kind(r) == "cpu"
                and row["ext"]["fwd_bwd_s"] > LOSS_STACK_V3_CPU_S
            )
            if not slow:
                continue
            terms = row.get("terms", {}).get("ext", {})
            total = sum(terms.values()) or 1.0
            ranked = sorted(terms.items(), key=lambda kv: -kv[1])
            share = ", ".join(f"{t} {v:.3f} s ({v / total:.0%})" for t, v in ranked)
            top = row.get("top_ops", {}).get("ext", [])[:3]
            ops = ", ".join(f"{o['name']} {o['self_ms']:.0f} ms" for o in top)
            items.append(
                f"{k} loss stack {row['method'].upper()}: ours ext {_s(row['ext']['fwd_bwd_s'])} s"
                f" = {ratio:.3f} of public. Terms alone (ext): {share}."
                + (f" Top aten ops (self time): {ops}." if ops else "")
            )
        for row in r.get("step", []):
            need = {kk: (m, mem) for kk, m, mem in STEP_TARGETS}.get(kind(r))
            if not need or row["amp"] != "none" or not _at_target_size(row):
                continue
            if row["speedup"] >= need[0] and row["memory_ratio"] <= need[1]:
                continue
            t_ref, t_net = row["reference"].get("step_s"), row.get("networks_s")
            limit = row.get("speedup_bound") or (t_ref / t_net if t_net and t_ref else None)
            bound = (
                f"; the networks alone take {t_net:.2f} s (median) against the reference"
                f" step's {t_ref:.2f} s, so even free losses would give at most {limit:.2f}×"
                if t_net and t_ref and limit
                else ""
            )
            items.append(
                f"{k} training step {row['size']}: {_x(row['speedup'])}, memory "
                f"{_x(row['memory_ratio'])}; losses are {row['ext']['loss_share']:.0%} of the ext "
                f"step and {row['reference']['loss_share']:.0%} of the reference step{bound}"
            )
    if not items:
        return []
    return ["", "## Where the time goes (missed targets)", ""] + [f"- {i}" for i in items]


def render(results, sources=None, notes=None):
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m tools.report` from "
        + ", ".join(f"`{s}`" for s in (sources or [r["_path"] for r in results]))
        + "; regenerate rather than edit. Measured with `python -m benchmarks.run` "
        "(see docs/benchmarks.md).",
        "",
    ]
    lines += machines_section(results)
    lines += [""] + targets_section(results)
    lines += diagnosis_section(results)
    if notes:
        lines += ["", "## Notes", "", notes.strip()]
    lines += losses_section(results)
    lines += step_section(results)
    lines += ops_section(results)
    lines += scaling_section(results)
    lines += unmeasured_section(results)
    return "\n".join(lines) + "\n"


# Sections other scripts write (kernel resources, real data, compile, loader, ...) follow this
# line in RESULTS.md; rewriting the file keeps everything from it on.
KEPT = "<!-- sections below are written by other scripts; tools.report keeps them -->"


def with_kept_sections(text, path):
    """text, then the part of the file at ``path`` from the KEPT line on (if any)."""
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        return text
    return text if KEPT not in old else text.rstrip("\n") + "\n\n" + old[old.index(KEPT) :]


def write(path, results, notes=None):
    for r in results:
        r.setdefault("_path", "(this run)")
    text = with_kept_sections(render(results, notes=notes), path)
    with open(path, "w") as f:
        f.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("json", nargs="+", help="result files of benchmarks.run")
    p.add_argument("-o", "--output", default=None, help="write here (default: print)")
    p.add_argument("--notes", default=None, help="a Markdown file of analysis to include")
    a = p.parse_args(argv)
    results = [load(path) for path in a.json]
    notes = None
    if a.notes:
        with open(a.notes) as f:
            notes = f.read()
    text = render(results, notes=notes)
    if a.output:
        text = with_kept_sections(text, a.output)
        with open(a.output, "w") as f:
            f.write(text)
        print(f"wrote {a.output}", file=sys.stderr)
    else:
        print(text)


if __name__ == "__main__":
    main()
