"""Pose metrics of one predicted trajectory against its GT, per scene and pooled over scenes:
the snippet ATE (SfMLearner / Monodepth2 protocol), the whole-trajectory ATE after Umeyama's
Sim(3) alignment, and the RPE at the Sim(3) scale: KITTI's over path-length segments for
driving data (a row per length, and the devkit's mean over all segments), TUM's over pairs
RPE_DELTA apart for hand-held data (and, named as such, the one over consecutive frames).
Pure functions."""

from __future__ import annotations

import numpy as np

from . import trajectory as tj

SNIPPET = 5  # frames a snippet (SfMLearner, Monodepth2)
RPE_DELTA = 1.0  # s between the frames of a hand-held RPE pair (TUM's evaluate_rpe.py)


def scene_errors(gt, pred, motion: str, times=None, delta: float = RPE_DELTA) -> dict:
    """Per-scene metrics and the raw errors that pool into the overall ones ("_"-keys).
    times: the frames' timestamps (default: the frame index) for the hand-held RPE."""
    snip = tj.snippet_errors(gt, pred, SNIPPET)
    ate, align = tj.ate(gt, pred)
    aligned = align.poses(pred)
    m = {"frames": len(gt), "ate_snippet": float(snip.mean()), "ate_snippet_std": float(snip.std())}
    m.update(snippets=len(snip), ate=ate, ate_scale=align.s)
    m["alignment"] = {"s": align.s, "R": align.R.tolist(), "t": align.t.tolist()}
    m.update(_snip=snip, aligned=aligned)
    if motion == "driving":
        lengths = tj.kitti_lengths(gt)
        t, r, seg = tj.rpe_kitti(gt, aligned, lengths)
        m.update(rpe_lengths_m=list(lengths), _t=t, _r=r, _seg=seg)
        return {**m, **kitti_rpe(t, r, seg)}
    times = np.arange(len(gt), dtype=np.float64) if times is None else times
    m.update(_t=tj.rpe_time(gt, aligned, times, delta), _c=tj.rpe_frames(gt, aligned))
    return {**m, **handheld_rpe(m["_t"], m["_c"])}


def kitti_rpe(t, r, seg) -> dict:
    """KITTI RPE of segments of one length set (t in m/m, r in rad/m, their lengths): a row
    per length (the mean over its segments, % and deg/100 m), and the headline figure as the
    devkit's stats.txt gives it: the mean over all the segments (so a length weighs by its
    number of segments, not equally)."""
    by_length = {}
    for L in sorted(set(seg.tolist())):
        sel = seg == L
        by_length[f"{L:g}"] = {
            "t_pct": float(100 * t[sel].mean()),
            "r_deg_100m": float(100 * np.degrees(r[sel].mean())),
            "segments": int(sel.sum()),
        }
    return {
        "rpe_t_pct": float(100 * t.mean()) if t.size else None,
        "rpe_r_deg_100m": float(100 * np.degrees(r.mean())) if r.size else None,
        "rpe_segments": int(t.size),
        "rpe_by_length": by_length,
    }


def handheld_rpe(pairs, consecutive) -> dict:
    """RMSE of TUM's RPE (pairs RPE_DELTA apart) and of the consecutive-frame one, each
    from (translations, rotations in degrees)."""
    rmse = lambda v: float(np.sqrt(np.mean(v**2))) if v.size else None  # noqa: E731
    return {
        "rpe_t_m": rmse(pairs[0]),
        "rpe_r_deg": rmse(pairs[1]),
        "rpe_pairs": int(pairs[0].size),
        "rpe_consecutive_t_m": rmse(consecutive[0]),
        "rpe_consecutive_r_deg": rmse(consecutive[1]),
    }


def overall(scenes: dict, motion: str) -> dict:
    """Snippets and RPE pooled over the scenes; whole-trajectory ATE averaged over scenes.
    KITTI RPE pools only scenes of one length set: with several, each set gets its own
    figures (rpe_by_set) and the overall ones are None."""
    rows = list(scenes.values())
    snip = np.concatenate([s["_snip"] for s in rows])
    m = {"frames": sum(s["frames"] for s in rows), "scenes": len(rows)}
    m.update(ate_snippet=float(snip.mean()), ate_snippet_std=float(snip.std()))
    m.update(snippets=len(snip), ate=float(np.mean([s["ate"] for s in rows])))
    cat = lambda key, i=None: np.concatenate([s[key] if i is None else s[key][i] for s in rows])  # noqa: E731
    if motion != "driving":
        return {**m, **handheld_rpe((cat("_t", 0), cat("_t", 1)), (cat("_c", 0), cat("_c", 1)))}
    sets = {}
    for s in rows:
        sets.setdefault(tuple(s["rpe_lengths_m"]), []).append(s)
    pooled = {
        f"{min(k)}-{max(k)} m": kitti_rpe(
            *(np.concatenate([s[x] for s in v]) for x in ("_t", "_r", "_seg"))
        )
        for k, v in sets.items()
    }
    if len(pooled) == 1:
        (lengths,) = sets
        return {**m, "rpe_lengths_m": list(lengths), **next(iter(pooled.values()))}
    return {
        **m,
        "rpe_lengths_m": None,
        "rpe_t_pct": None,
        "rpe_r_deg_100m": None,
        "rpe_by_set": pooled,
    }


def public(m: dict) -> dict:
    return {k: v for k, v in m.items() if not k.startswith("_") and k != "aligned"}
