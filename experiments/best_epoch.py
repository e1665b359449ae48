"""Which epoch would each best.pt criterion pick, and how good is it? Measured on runs whose
validation scenes have GT depth (and poses), so that the truth is known.

    python -m experiments.best_epoch RUN [RUN ...]

Runs with GT log the validation photometric error only when trained with best_metric=photo
(it costs a pass per epoch); the regrets below come from the logs, not from best.pt.
For each run (a scdepth-train output folder) reads log.jsonl's per-epoch validation lines and,
for each criterion that needs no GT (the validation photometric error, the last epoch) and
for the GT's own abs_rel, reports the chosen epoch's validation abs_rel and snippet ATE as a
ratio to the best epoch's ("regret": 1.00 = it picked the best). Runs whose validation lines
lack a metric are left out of that criterion.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

CRITERIA = ("photo", "last", "abs_rel")
TARGETS = ("abs_rel", "ate_snippet")


def epochs(run: Path) -> list[dict]:
    lines = [json.loads(s) for s in (run / "log.jsonl").read_text().splitlines()]
    return [x for x in lines if x["kind"] == "val"]


def pick(val: list[dict], criterion: str) -> int | None:
    if criterion == "last":
        return len(val) - 1
    if not all(criterion in v for v in val):
        return None
    return min(range(len(val)), key=lambda i: val[i][criterion])


def regrets(run: Path) -> dict:
    """{criterion: {target: chosen / best}} for one run."""
    val = epochs(run)
    out = {}
    for c in CRITERIA:
        i = pick(val, c)
        if i is None:
            continue
        out[c] = {"epoch": i}
        for t in TARGETS:
            if all(t in v for v in val):
                best = min(v[t] for v in val)
                out[c][t] = val[i][t] / best
    return out


def table(runs: list[Path]) -> str:
    per = {r: regrets(r) for r in runs}
    lines = [
        "| criterion | runs | abs_rel / best epoch's | snippet ATE / best epoch's "
        "| epochs picked |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in CRITERIA:
        rows = [per[r][c] for r in runs if c in per[r]]
        if not rows:
            continue
        cells = []
        for t in TARGETS:
            v = [x[t] for x in rows if t in x]
            cells.append(f"{statistics.mean(v):.3f} (worst {max(v):.3f})" if v else "-")
        picked = ", ".join(str(x["epoch"]) for x in rows)
        lines.append(f"| {c} | {len(rows)} | {cells[0]} | {cells[1]} | {picked} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="scdepth-train output folders")
    a = ap.parse_args(argv)
    runs = [Path(r) for r in a.runs]
    for r in runs:
        if not (r / "log.jsonl").is_file():
            ap.error(f"{r}: no log.jsonl (not a scdepth-train output folder)")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
