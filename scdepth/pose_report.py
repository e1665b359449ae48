"""What a pose evaluation writes: its tables (terminal and Markdown) and its output folder
(metrics JSON, trajectories in KITTI and TUM formats, top-view plots)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from . import trajectory as tj
from .data.poses import write_poses
from .pose_metrics import SNIPPET


def write_outputs(out: Path, results, scenes, per) -> None:
    """Everything into a temporary sibling folder, then renamed: never a half-written OUT."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "pose_metrics.json").write_text(json.dumps(results, indent=2) + "\n")
        (tmp / "pose_table.md").write_text(markdown_table(results) + "\n")
        for s in scenes:
            d = tmp / s.name
            d.mkdir()
            write_poses(d / "gt.kitti.txt", s.gt)
            tj.write_tum(d / "gt.tum.txt", s.times, s.gt)
            aligned = {name: rows[s.name]["aligned"] for name, rows in per.items()}
            for name, poses in aligned.items():
                write_poses(d / f"{name}.kitti.txt", poses)
                tj.write_tum(d / f"{name}.tum.txt", s.times, poses)
            labelled = {
                f"{name} (ATE {m['ate']:.3g} m, scale {m['ate_scale']:.3g})": poses
                for name, poses in aligned.items()
                for m in [per[name][s.name]]
            }
            title = (
                f"{s.name}: {len(s.frames)} frames, {tj.path_distances(s.gt)[-1]:.3g} m; "
                "predictions Sim(3)-aligned to the GT"
            )
            tj.plot_top_view(d / "trajectory.png", s.gt, labelled, title)
        if out.exists():  # empty, or --overwrite: the old one goes only once the new is whole
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            try:
                tmp.rename(out)
            except OSError:
                old.rename(out)
                raise
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# (key, header, format); the RPE columns depend on the motion
_COMMON = [
    ("frames", "frames", "{:d}"),
    ("ate_snippet", "snip_ate", "{:.4f}"),
    ("ate_snippet_std", "std", "{:.4f}"),
    ("ate", "ate", "{:.4f}"),
    ("ate_scale", "scale", "{:.3f}"),
]
_RPE = {
    "driving": [("rpe_t_pct", "rpe_t%", "{:.2f}"), ("rpe_r_deg_100m", "rpe_r/100m", "{:.3f}")],
    "handheld": [("rpe_t_m", "rpe_t[m]", "{:.4f}"), ("rpe_r_deg", "rpe_r[deg]", "{:.3f}")],
}


def _rows(results, per_scene=True):
    for name, r in results["methods"].items():
        scenes = [*r["scenes"].items()] if per_scene else []
        for scene, m in [*scenes, ("overall", r["overall"])]:
            yield name, scene, m


def _cell(m, key, fmt):
    v = m.get(key)
    return "-" if v is None else fmt.format(v)


def legend(results) -> str:
    return (
        f"snip_ate: {SNIPPET}-frame snippet ATE in m, mean and std over snippets (scale per "
        "snippet, sqrt(sum)/n as in SfMLearner); ate: RMSE in m after Sim(3) alignment with "
        f"that scale (overall: mean over scenes); {rpe_legend(results)}, at the Sim(3) scale."
    )


def rpe_legend(results) -> str:
    if results["motion"] != "driving":
        return (
            f"RPE over frame pairs {results['rpe_delta']} apart (RMSE, m and deg, as TUM's "
            "evaluate_rpe.py --fixed_delta); pose_metrics.json also holds the consecutive-frame "
            "RPE (rpe_consecutive_*)"
        )
    overall = next(iter(results["methods"].values()))["overall"]
    if overall["rpe_lengths_m"] is None:
        return (
            "KITTI RPE: the scenes have different segment-length sets, which are not pooled "
            "(overall: '-'; each set in pose_metrics.json, rpe_by_set)"
        )
    if not overall["rpe_by_length"]:
        return "KITTI RPE: no segment of 10 m or more"
    lengths = overall["rpe_lengths_m"]
    short = ", the short set: no 100 m segment" if min(lengths) < 100 else ""
    return (
        f"KITTI RPE over segments of {min(lengths)}-{max(lengths)} m{short}: the mean over all "
        "segments, as the devkit's stats.txt (translation %, rotation deg/100 m; each length's "
        "mean in pose_metrics.json, rpe_by_length)"
    )


def format_pose_table(results) -> str:
    cols = _COMMON + _RPE[results["motion"]]
    width = max(12, *(len(s) + 2 for _, s, _ in _rows(results)))
    head = f"{'method':<18}{'scene':<{width}}" + "".join(f"{h:>12}" for _, h, _ in cols)
    lines = [head]
    for name, scene, m in _rows(results):
        cells = "".join(f"{_cell(m, k, f):>12}" for k, _, f in cols)
        lines.append(f"{name:<18}{scene:<{width}}{cells}")
    return "\n".join(lines + [legend(results)])


def markdown_table(results, per_scene=True) -> str:
    """The overall rows (and per scene) as a Markdown table, e.g. for benchmarks/RESULTS.md."""
    cols = _COMMON + _RPE[results["motion"]]
    lines = [
        "| method | scene | " + " | ".join(h for _, h, _ in cols) + " |",
        "| --- | --- | " + " | ".join("---" for _ in cols) + " |",
    ]
    for name, scene, m in _rows(results, per_scene):
        cells = " | ".join(_cell(m, k, f) for k, _, f in cols)
        lines.append(f"| {name} | {scene} | {cells} |")
    lengths = length_table(results)
    return "\n".join(lines + ["", legend(results)] + (["", lengths] if lengths else []))


def length_table(results) -> str:
    """Driving data: KITTI RPE per segment length, a row per length of each method's overall
    figures (each length set of its own, never pooled), then the set's mean over all its
    segments; "" for hand-held data or without segments."""
    if results["motion"] != "driving":
        return ""
    lines = []
    for name, r in results["methods"].items():
        o = r["overall"]
        sets = o.get("rpe_by_set") or {f"{min(o['rpe_lengths_m'])}-{max(o['rpe_lengths_m'])} m": o}
        for set_name, m in sets.items():
            for L, row in m["rpe_by_length"].items():
                lines.append(
                    f"| {name} | {set_name} | {L} | {row['segments']} | "
                    f"{row['t_pct']:.2f} | {row['r_deg_100m']:.3f} |"
                )
            if m["rpe_by_length"]:
                lines.append(
                    f"| {name} | {set_name} | all | {m['rpe_segments']} | "
                    f"{m['rpe_t_pct']:.2f} | {m['rpe_r_deg_100m']:.3f} |"
                )
    if not lines:
        return ""
    head = [
        "KITTI RPE per segment length (all scenes of one length set; 'all': the mean over "
        "all the set's segments, as the devkit's stats.txt):",
        "",
        "| method | length set | length [m] | segments | rpe_t% | rpe_r/100m |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    return "\n".join(head + lines)
