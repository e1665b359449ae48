"""The loss stack of one training step, networks excluded: the public SC-Depth code
(benchmarks/public_baseline.py) against ours on the extension and on the reference ops.

The inputs are what the networks would hand the losses (target and 2 reference images,
their depths, the 6-DoF pose vectors of both directions, K, the pseudo-depth); the timed
call computes every loss term of the method, the weighted total and its backward to the
depths and poses. The three variants run in turns, so that the machine's load hits them
alike. Then each term is timed alone (forward+backward), and the profiler names the aten
ops that take the time: where a target is missed, this says which term and kernel to fix.
"""

import statistics

import torch
import torch.nn.functional as F

from benchmarks import public_baseline
from benchmarks.common import interleaved_timings, paired_ratio, peak_bytes, top_ops
from scdepth import config, losses
from scdepth.geometry import pose_vec2mat
from scdepth.step import loss_terms

METHODS = {"v1": "sc_depth_v1", "v3": "sc_depth_v3"}
NUM_REFS = 2
SSIM_WINDOW = 7  # the public code's window, so that both compute the same SSIM


def _smooth(B, C, H, W, cells, g):
    coarse = torch.rand(B, C, max(H // cells, 2), max(W // cells, 2), generator=g)
    return F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=True)


def synthetic_batch(B, H, W, *, num_refs=NUM_REFS, seed=0):
    """Images and depths with structure at several scales (so that edge detection and the
    normal ranking loss see a realistic share of edge pixels, not white noise), normalised
    like the data loader does ((x - 0.45) / 0.225), small camera motions."""
    g = torch.Generator().manual_seed(seed)

    def image():
        x = 0.7 * _smooth(B, 3, H, W, 16, g) + 0.3 * _smooth(B, 3, H, W, 4, g)
        return (x - 0.45) / 0.225

    def depth():
        return 1.0 + 9.0 * _smooth(B, 1, H, W, 32, g) + 0.5 * _smooth(B, 1, H, W, 8, g)

    f = 0.6 * W
    K = torch.tensor([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]])

    def pose():
        return torch.cat(
            [0.05 * torch.randn(B, 3, generator=g), 0.01 * torch.randn(B, 3, generator=g)], 1
        )

    tgt_depth = depth()
    return {
        "tgt": image(),
        "refs": [image() for _ in range(num_refs)],
        "tgt_depth": tgt_depth,
        "ref_depths": [depth() for _ in range(num_refs)],
        "poses": [pose() for _ in range(num_refs)],
        "poses_inv": [pose() for _ in range(num_refs)],
        "K": K.expand(B, 3, 3).contiguous(),
        "pseudo_depth": tgt_depth * (1 + 0.05 * _smooth(B, 1, H, W, 4, g)),
    }


def to_device(batch, device, requires_grad=True):
    """The batch on `device`; depths and poses (the networks' outputs) as leaves that
    require grad."""

    def move(t, grad):
        t = t.to(device)
        return t.requires_grad_() if grad else t

    out = {}
    for key, value in batch.items():
        grad = requires_grad and key in ("tgt_depth", "ref_depths", "poses", "poses_inv")
        out[key] = [move(v, grad) for v in value] if isinstance(value, list) else move(value, grad)
    return out


def make_config(method, ssim_window=SSIM_WINDOW):
    return config.load(overrides=[f"method={METHODS[method]}", f"ssim_window={ssim_window}"])


def ours(ops, cfg, b, *, step=0):
    """(total, terms) of our losses for cfg.method on batch b (networks excluded): exactly
    the loss part of the trainer's step (scdepth.step.loss_terms)."""
    batch = {
        "tgt": b["tgt"],
        "refs": torch.stack(b["refs"], 1),
        "K": b["K"],
        "pseudo_depth": b["pseudo_depth"],
    }
    return loss_terms(
        ops, cfg, batch, b["tgt_depth"], b["ref_depths"], b["poses"], b["poses_inv"], step
    )


def public(method, b):
    return public_baseline.loss_stack(
        method,
        b["tgt"],
        b["refs"],
        b["tgt_depth"],
        b["ref_depths"],
        b["poses"],
        b["poses_inv"],
        b["K"],
        b["pseudo_depth"],
    )


def _zero_grads(b):
    for value in b.values():
        for t in value if isinstance(value, list) else [value]:
            t.grad = None


def step_fn(variant, method, b, cfg):
    """fn() computing the variant's loss stack and its backward."""
    from scdepth.ops import get_backend

    def run():
        _zero_grads(b)
        if variant == "public":
            total, _ = public(method, b)
        else:
            total, _ = ours(get_backend(variant), cfg, b)
        total.backward()

    return run


# --- each term alone --------------------------------------------------------------------------


def term_fns(variant, method, b, cfg):
    """{term: fn} where fn() runs one term (forward+backward) from given inputs; upstream
    results a term needs (dynamic score, normals) are computed once, outside the timing."""
    from scdepth.ops import get_backend

    K, tgt, pseudo = b["K"], b["tgt"], b["pseudo_depth"]
    fns = {}
    if variant == "public":
        opt = public_baseline.Options(model_version=method)

        def photo_geometry():
            out = public_baseline.photo_and_geometry_loss(
                tgt, b["refs"], b["tgt_depth"], b["ref_depths"], K, b["poses"], b["poses_inv"], opt
            )
            (out[0] + 0.1 * out[1]).backward()

        fns["photo+geometry"] = photo_geometry
        if method == "v1":
            fns["smooth"] = lambda: public_baseline.smooth_loss(b["tgt_depth"], tgt).backward()
            return fns
        with torch.no_grad():
            dynamic = public_baseline.photo_and_geometry_loss(
                tgt, b["refs"], b["tgt_depth"], b["ref_depths"], K, b["poses"], b["poses_inv"], opt
            )[2]
            pseudo_normal = public_baseline.depth_to_normals(pseudo, K)
            normal0 = public_baseline.depth_to_normals(b["tgt_depth"], K)

        def normals():
            n = public_baseline.depth_to_normals(b["tgt_depth"], K)
            pn = public_baseline.depth_to_normals(pseudo, K)
            (n - pn).abs().mean().backward()

        fns["normals+matching"] = normals
        fns["mask_rank"] = lambda: public_baseline.mask_ranking_loss(
            b["tgt_depth"], pseudo, dynamic
        ).backward()
        normal = normal0.clone().requires_grad_()
        fns["normal_rank"] = lambda: public_baseline.normal_ranking_loss(
            pseudo, tgt, normal, pseudo_normal
        ).backward()
        return fns

    ops = get_backend(variant)
    poses = [pose_vec2mat(p) for p in b["poses"]]
    poses_inv = [pose_vec2mat(p) for p in b["poses_inv"]]

    def photo_geometry():
        p = [pose_vec2mat(v) for v in b["poses"]]
        pi = [pose_vec2mat(v) for v in b["poses_inv"]]
        out = losses.photo_and_geometry_loss(
            ops, tgt, b["refs"], b["tgt_depth"], b["ref_depths"], p, pi, K, cfg
        )
        (out[0] + 0.1 * out[1]).backward()

    fns["photo+geometry"] = photo_geometry
    with torch.no_grad():
        score = losses.photo_and_geometry_loss(
            ops, tgt, b["refs"], b["tgt_depth"], b["ref_depths"], poses, poses_inv, K, cfg
        )[2]
    if method == "v1":
        fns["smooth"] = lambda: losses.edge_aware_smoothness(b["tgt_depth"], tgt).backward()
        return fns
    with torch.no_grad():
        pseudo_normal = ops.depth_normals(pseudo, K)
        normal0 = ops.depth_normals(b["tgt_depth"], K)

    def normals():
        n = ops.depth_normals(b["tgt_depth"], K)
        with torch.no_grad():
            pn = ops.depth_normals(pseudo, K)
        losses.normal_matching_loss(n, pn).backward()

    fns["normals+matching"] = normals
    fns["mask_rank"] = lambda: losses.dynamic_region_refinement(
        ops, b["tgt_depth"], pseudo, score, cfg, seed=0
    ).backward()
    normal = normal0.clone().requires_grad_()
    g = torch.Generator()
    fns["normal_rank"] = lambda: losses.normal_ranking_loss(
        ops, tgt, pseudo, normal, pseudo_normal, generator=g.manual_seed(0)
    ).backward()
    return fns


# --- the benchmark ----------------------------------------------------------------------------

VARIANTS = ("public", "ext", "reference")


def run(method, name, shape, device, *, warmup=1, repeat=5, peak_repeat=2, profile=True, log=print):
    """Measures one method at one size; returns the JSON row."""
    B, H, W = shape
    cfg = make_config(method)
    b = to_device(synthetic_batch(B, H, W), device)

    row = {
        "method": method,
        "size": f"{name} B{B} {H}x{W}",
        "shape": list(shape),
        "device": str(device),
        "num_refs": NUM_REFS,
        "ssim_window": SSIM_WINDOW,
    }
    fns = {v: step_fn(v, method, b, cfg) for v in VARIANTS}
    times = interleaved_timings(fns, device, warmup=warmup, repeat=repeat)
    for v in VARIANTS:
        row[v] = {
            "fwd_bwd_s": statistics.median(times[v]),
            "min_s": min(times[v]),
            "times_s": times[v],
            "peak_bytes": peak_bytes(fns[v], device, repeat=peak_repeat),
        }
        log(f"  losses {method} {row['size']} {v}: {row[v]['fwd_bwd_s']:.3f} s")
    # ratios paired by round: robust to the load of a shared machine changing between rounds
    row["ours_over_public"] = {
        v: paired_ratio(times[v], times["public"]) for v in ("ext", "reference")
    }
    row["ext_over_reference"] = paired_ratio(times["ext"], times["reference"])
    # each term alone
    row["terms"] = {}
    for v in VARIANTS:
        tf = term_fns(v, method, b, cfg)
        t = interleaved_timings(tf, device, warmup=warmup, repeat=max(1, repeat // 2))
        row["terms"][v] = {k: statistics.median(s) for k, s in t.items()}
        log(
            f"  losses {method} terms {v}: "
            + ", ".join(f"{k} {s:.3f}" for k, s in row["terms"][v].items())
        )
    if profile:
        row["top_ops"] = {v: top_ops(fns[v], device) for v in ("public", "ext")}
    return row
