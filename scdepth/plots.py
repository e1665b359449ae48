"""Training curves drawn with matplotlib.

Only matplotlib's object-oriented API is used (Figure, no pyplot state), so plotting works
headless and in worker processes.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from .metrics import METRICS

# depth metrics in the order of the evaluation table, then anything else alphabetically
METRIC_ORDER = METRICS


def _metric_order(key: str):
    name = key.split("/", 1)[1]
    return (METRIC_ORDER.index(name), "") if name in METRIC_ORDER else (len(METRIC_ORDER), name)


def curve_panels(history: dict) -> list[tuple[str, list[str]]]:
    """(title, keys) per panel: the total training loss, the loss terms together, then one
    panel per validation metric. ``history`` maps "kind/name" to [(step, value), ...]."""
    train = sorted(
        k for k in history if k.startswith("train/") and k not in ("train/loss", "train/lr")
    )
    val = sorted((k for k in history if k.startswith("val/")), key=_metric_order)
    panels = [("training loss (total)", ["train/loss"])] if "train/loss" in history else []
    if train:
        panels.append(("training loss terms (unweighted)", train))
    if "train/lr" in history:
        panels.append(("learning rate", ["train/lr"]))
    panels += [(f"validation {k.split('/', 1)[1]}", [k]) for k in val]
    return panels


def save_curves(history: dict, path, *, epoch_size: int | None = None) -> bool:
    """Write a grid of panels (axes, step ticks, legend) of the logged curves to ``path``.

    Returns False when nothing was logged."""
    panels = curve_panels(history)
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.4 * rows), layout="constrained")
    for ax, (title, keys) in zip(
        fig.subplots(rows, cols, squeeze=False).flat, panels, strict=False
    ):
        for key in keys:
            pts = [(x, y) for x, y in history[key] if math.isfinite(y)]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            many = len(pts) > 20
            ax.plot(xs, ys, marker=None if many else "o", ms=3, lw=1.2, label=key.split("/")[1])
            if not many:  # few points (validation epochs): print the values at them
                for x, y in pts:
                    ax.annotate(
                        f"{y:.3g}",
                        (x, y),
                        textcoords="offset points",
                        xytext=(0, 4),
                        ha="center",
                        fontsize=7,
                    )
        if len(keys) > 1:
            ax.set_yscale("log")  # the terms differ by orders of magnitude
            ax.legend(fontsize=7, ncols=2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step" + (f" ({epoch_size} per epoch)" if epoch_size else ""))
        ax.grid(True, alpha=0.3)
    for ax in list(fig.axes)[len(panels) :]:
        ax.set_visible(False)
    fig.savefig(Path(path), dpi=100)
    return True
