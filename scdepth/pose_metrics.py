"""Pose metrics of one predicted trajectory against its GT, per scene and pooled over scenes:
the snippet ATE (SfMLearner / Monodepth2 protocol), the whole-trajectory ATE after Umeyama's
Sim(3) alignment, and the RPE -- KITTI's over path-length segments for driving data, per
frame for hand-held data -- at the Sim(3) scale. Pure functions of arrays."""

from __future__ import annotations

import numpy as np

from . import trajectory as tj

SNIPPET = 5  # frames a snippet (SfMLearner, Monodepth2)


def scene_errors(gt, pred, motion: str) -> dict:
    """Per-scene metrics and the raw errors that pool into the overall ones ("_"-keys)."""
    snip = tj.snippet_errors(gt, pred, SNIPPET)
    ate, align = tj.ate(gt, pred)
    aligned = align.poses(pred)
    m = {"frames": len(gt), "ate_snippet": float(snip.mean()), "ate_snippet_std": float(snip.std())}
    m.update(snippets=len(snip), ate=ate, ate_scale=align.s)
    m["alignment"] = {"s": align.s, "R": align.R.tolist(), "t": align.t.tolist()}
    if motion == "driving":
        lengths = tj.kitti_lengths(gt)
        t, r, seg = tj.rpe_kitti(gt, aligned, lengths)
        m.update(rpe_lengths_m=sorted({int(v) for v in seg}), _t=t, _r=r)
    else:
        t, r = tj.rpe_frames(gt, aligned)
        m.update(_t=t, _r=r)
    m.update(_snip=snip, aligned=aligned)
    return _rpe(m, motion)


def _rpe(m: dict, motion: str) -> dict:
    t, r = m["_t"], m["_r"]
    if motion == "driving":  # devkit: mean over segments; % and deg per 100 m
        ok = t.size > 0
        m["rpe_t_pct"] = float(100 * t.mean()) if ok else None
        m["rpe_r_deg_100m"] = float(100 * np.degrees(r.mean())) if ok else None
        m["rpe_segments"] = int(t.size)
    else:  # RMSE over consecutive frame pairs
        m["rpe_t_m"] = float(np.sqrt(np.mean(t**2)))
        m["rpe_r_deg"] = float(np.sqrt(np.mean(r**2)))
        m["rpe_pairs"] = int(t.size)
    return m


def overall(scenes: dict, motion: str) -> dict:
    """Snippets and RPE pooled over the scenes; whole-trajectory ATE averaged over scenes."""
    rows = list(scenes.values())
    snip = np.concatenate([s["_snip"] for s in rows])
    m = {"frames": sum(s["frames"] for s in rows), "scenes": len(rows)}
    m.update(ate_snippet=float(snip.mean()), ate_snippet_std=float(snip.std()))
    m.update(snippets=len(snip), ate=float(np.mean([s["ate"] for s in rows])))
    m.update(_t=np.concatenate([s["_t"] for s in rows]), _r=np.concatenate([s["_r"] for s in rows]))
    if motion == "driving":
        m["rpe_lengths_m"] = sorted({v for s in rows for v in s["rpe_lengths_m"]})
    return _rpe(m, motion)


def public(m: dict) -> dict:
    return {k: v for k, v in m.items() if not k.startswith("_") and k != "aligned"}
