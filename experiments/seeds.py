"""Learning over seeds: train one configuration with N seeds, report mean ± std and each seed.

    python -m experiments.seeds --out runs/seeds-v3 [--seeds 3] [--config FILE] [key=value ...]
    python -m experiments.seeds --out runs/seeds-v1 method=sc_depth_v1 --compare runs/seeds-v3

Each seed trains into OUT/seed<N>/ exactly as `scdepth-train --out OUT/seed<N> seed=<N>` would
(the runs go one after another: two trainings at once on a small CPU slow each other far more
than 2x). A seed whose run already finished is reused, so an interrupted benchmark continues.
Writes OUT/seeds.json (per seed: test metrics per region, the validation curve, the best and
the last epoch), OUT/seeds.md (tables) and OUT/seeds.png (validation abs_rel per seed).

With --compare OTHER, the table also holds OTHER's figures, and a difference in a metric's
mean counts as one only when it exceeds the larger of the two standard deviations; smaller
ones are reported as "no difference" (every learning claim in the docs and RESULTS.md
follows that rule).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

REGIONS = ("all", "dynamic", "static")
METRICS = ("abs_rel", "sq_rel", "rmse", "a1", "spread")  # spread: nan in older runs


def run_seed(cfg_path, overrides, seed, out: Path) -> dict:
    """Train (or reuse) one seed; return its record."""
    from scdepth import config, train

    if not (out / "test_metrics.json").is_file():
        cfg = config.load(cfg_path, [*overrides, f"seed={seed}"])
        train.train(cfg, out, resume=(out / "last.pt").exists(), progress=False)
    return record(out, seed)


def record(out: Path, seed: int) -> dict:
    lines = [json.loads(s) for s in (out / "log.jsonl").read_text().splitlines()]
    curve = [(x["step"], x["abs_rel"]) for x in lines if x["kind"] == "val" and "abs_rel" in x]
    metrics = json.loads((out / "test_metrics.json").read_text())
    values = [v for _, v in curve]
    best = min(range(len(values)), key=values.__getitem__) if values else None
    return {
        "seed": seed,
        "test": metrics,
        "val_abs_rel": curve,
        "best_epoch": best,
        "last_within_10pct_of_best": bool(values) and values[-1] <= 1.1 * values[best],
    }


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


def summary(records: list[dict]) -> dict:
    """{region: {metric: (mean, std)}} over the seeds (std with n - 1; 0 for one seed)."""
    out = {}
    for region in REGIONS:
        rows = [r["test"][region] for r in records if region in r["test"]]
        if not rows:
            continue
        out[region] = {}
        for m in METRICS:
            if any(m not in row for row in rows):
                out[region][m] = (math.nan, math.nan)
                continue
            out[region][m] = mean_std([row[m] for row in rows])
    return out


def verdict(a: tuple, b: tuple) -> str:
    """'lower'/'higher' when a's mean differs from b's by more than the larger std."""
    (ma, sa), (mb, sb) = a, b
    if abs(ma - mb) <= max(sa, sb):
        return "no difference"
    return "lower" if ma < mb else "higher"


def markdown(name: str, records: list[dict], other: tuple | None = None) -> str:
    s = summary(records)
    lines = [f"### {name}: {len(records)} seeds ({', '.join(str(r['seed']) for r in records)})", ""]
    head = "| run | region | " + " | ".join(METRICS) + " |"
    lines += [head, "|" + " --- |" * (len(METRICS) + 2)]
    runs = [(name, s)] + ([(other[0], summary(other[1]))] if other else [])
    for run, stats in runs:
        for region, ms in stats.items():
            cells = " | ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in ms.values())
            lines.append(f"| {run} | {region} | {cells} |")
    if other:
        o = summary(other[1])
        lines += [
            "",
            f"{name} against {other[0]} (a difference counts when it exceeds the larger std):",
            "",
        ]
        for region in s:
            if region in o:
                v = verdict(s[region]["abs_rel"], o[region]["abs_rel"])
                lines.append(f"- abs_rel {region}: {v}")
    lines += [
        "",
        "| seed | "
        + " | ".join(f"{r} abs_rel" for r in REGIONS)
        + " | val abs_rel per epoch | last within 10% of best |",
        "|" + " --- |" * (len(REGIONS) + 3),
    ]
    for r in records:
        cells = " | ".join(
            f"{r['test'][g]['abs_rel']:.3f}" if g in r["test"] else "–" for g in REGIONS
        )
        curve = ", ".join(f"{v:.3f}" for _, v in r["val_abs_rel"])
        lines.append(f"| {r['seed']} | {cells} | {curve} | {r['last_within_10pct_of_best']} |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path, title: str) -> bool:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    for r in records:
        if r["val_abs_rel"]:
            xs, ys = zip(*r["val_abs_rel"], strict=True)
            ax.plot(xs, ys, marker="o", ms=3, label=f"seed {r['seed']}")
    ax.set(xlabel="step", ylabel="validation abs_rel", title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder of the runs (OUT/seed<N>/)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--config", help="YAML config, as for scdepth-train")
    ap.add_argument("--compare", help="another seeds benchmark folder to set against this one")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    a = ap.parse_args(argv)
    if a.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {a.seeds}")
    out = Path(a.out)
    records = []
    for seed in range(a.seeds):
        print(f"seed {seed}: training into {out / f'seed{seed}'}", file=sys.stderr)
        records.append(run_seed(a.config, a.overrides, seed, out / f"seed{seed}"))
    other = None
    if a.compare:
        path = Path(a.compare) / "seeds.json"
        if not path.is_file():
            ap.error(f"--compare {a.compare}: no seeds.json there (run the benchmark into it)")
        other = (Path(a.compare).name, json.loads(path.read_text())["records"])
    (out / "seeds.json").write_text(
        json.dumps(
            {
                "overrides": a.overrides,
                "config": a.config,
                "records": records,
                "summary": summary(records),
            },
            indent=2,
        )
        + "\n"
    )
    text = markdown(out.name, records, other)
    (out / "seeds.md").write_text(text)
    plot(records, out / "seeds.png", out.name)
    print(text)
    return 0 if all(math.isfinite(r["test"]["all"]["abs_rel"]) for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main())
