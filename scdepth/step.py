"""One training step's losses: networks forward, then every loss term of the configured method.

Kept apart from the loop (train.py) so that tests and benchmarks can run exactly the step the
trainer runs, on either backend.
"""

import torch

from . import losses, rectify
from .geometry import pose_vec2mat

TERMS = (
    "photo",
    "geometry",
    "smooth",
    "normal_matching",
    "mask_rank",
    "normal_rank",
    "rot_triplet",
    "rot_consistency",
)


def predict(depth_net, pose_net, tgt, refs):
    """Depth of every frame and the poses tgt -> ref and ref -> tgt, batched into one forward
    pass per network. tgt [B, 3, H, W], refs [B, N, 3, H, W]."""
    B, N = refs.shape[:2]
    frames = torch.cat([tgt, refs.transpose(0, 1).reshape(B * N, *tgt.shape[1:])])
    depths = depth_net(frames).split(B)
    vecs = pose_net(*pose_pairs(tgt, refs)).split(B)
    return depths[0], list(depths[1:]), list(vecs[:N]), list(vecs[N:])


def pose_pairs(tgt, refs):
    """The PoseNet's batch of (src, dst) image pairs [2 N B, 3, H, W] each: every tgt -> ref,
    reference by reference, then every ref -> tgt."""
    N = refs.shape[1]
    ref_list = torch.cat(list(refs.unbind(1)))
    tgts = tgt.repeat(N, 1, 1, 1)
    return torch.cat([tgts, ref_list]), torch.cat([ref_list, tgts])


def full_precision(t):
    """Autocast outputs back to float32 for the losses (float64 stays float64)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def step_seed(cfg, step):
    """Seed of the step's random pair sampling: reproducible, and the same after a resume."""
    return (cfg.seed * 1_000_003 + step) % (2**62)


def draw(cfg, step, batch):
    """Every random number of the step's loss terms, drawn on the batch's device from one
    generator seeded with step_seed: kept out of loss_terms, which then compiles whole (a
    torch.Generator argument breaks a torch.compile graph). The dynamic pairs of
    sample_dynamic_pairs come from the op's own Philox stream keyed by the same seed."""
    tgt = batch["tgt"]
    B, _, H, W = tgt.shape
    gen = torch.Generator(device=tgt.device).manual_seed(step_seed(cfg, step))
    w = cfg.loss_weights()
    draws = {}
    if w["mask_rank"] and cfg.drr_global_ratio > 0:
        draws["global_pairs"] = losses.global_pair_draws(B, H, W, cfg.drr_global_ratio, gen)
    if w["normal_matching"] or w["normal_rank"]:
        draws["edge_pairs"] = losses.edge_pair_draws(B, H, W, gen)
    return draws


def compute_losses(depth_net, pose_net, batch, cfg, ops, step, *, amp_dtype=None, rectify_net=None):
    """Returns (total loss, {term: value}, target depth). The networks run under autocast
    when amp_dtype is given; the losses always run in float32.

    SC-DepthV2 (rectify_net required) first rectifies the references (scdepth.rectify); the
    DepthNet, PoseNet and V1 losses then see the rectified ones, and the terms also hold
    rot_before and rot_after, the mean |angle| (rad) of r1 and r2 (logged, not weighted)."""
    tgt = batch["tgt"]

    def autocast():
        return torch.autocast(tgt.device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    extra = {}
    if cfg.method == "sc_depth_v2":
        if rectify_net is None:
            raise ValueError("method sc_depth_v2 needs rectify_net (a RectifyNet)")

        def rectify_fn(a, b):
            with autocast():
                return full_precision(rectify_net(a, b))

        # its own stream (seeds >= 2**62 never equal a step_seed): the random r3_gt
        gen = torch.Generator(device=tgt.device).manual_seed(step_seed(cfg, step) + 2**62)
        rect = rectify.rectify(rectify_fn, tgt, batch["refs"], batch["K"], ops, gen)
        batch = {**batch, "refs": rect.refs, "ref_valid": rect.valid}
        extra = rect.terms
    with autocast():
        tgt_depth, ref_depths, poses, poses_inv = predict(depth_net, pose_net, tgt, batch["refs"])
    tgt_depth = full_precision(tgt_depth)
    total, terms = loss_function(cfg)(
        ops,
        cfg,
        batch,
        tgt_depth,
        [full_precision(d) for d in ref_depths],
        [full_precision(v) for v in poses],
        [full_precision(v) for v in poses_inv],
        step,
        extra,
        draw(cfg, step, batch),
    )
    return total, terms, tgt_depth


def loss_terms(
    ops, cfg, batch, tgt_depth, ref_depths, poses, poses_inv, step, extra=None, draws=None
):
    """Every loss term of cfg.method from the networks' outputs (depths [B, 1, H, W], pose
    vectors [B, 6] tgt -> ref and ref -> tgt): (weighted total, {term: value}).
    batch["ref_valid"] [B, N, 1, H, W], when present, marks the references' pixels that hold
    content (SC-DepthV2); `extra` holds terms computed before (SC-DepthV2's rotation terms);
    `draws` the step's random numbers (draw(cfg, step, batch); default: drawn here, which
    torch.compile cannot trace whole)."""
    if draws is None:
        draws = draw(cfg, step, batch)
    tgt, refs, K = batch["tgt"], batch["refs"], batch["K"]
    poses = [pose_vec2mat(v) for v in poses]
    poses_inv = [pose_vec2mat(v) for v in poses_inv]
    w = cfg.loss_weights()
    zero = tgt_depth.sum() * 0
    terms = dict.fromkeys(TERMS, zero)
    ref_valids = list(batch["ref_valid"].unbind(1)) if "ref_valid" in batch else None
    terms["photo"], terms["geometry"], score = losses.photo_and_geometry_loss(
        ops, tgt, list(refs.unbind(1)), tgt_depth, ref_depths, poses, poses_inv, K, cfg, ref_valids
    )
    terms.update(extra or {})
    if w["smooth"]:
        terms["smooth"] = losses.edge_aware_smoothness(tgt_depth, tgt)
    if w["mask_rank"]:
        terms["mask_rank"] = losses.dynamic_region_refinement(
            ops,
            tgt_depth,
            batch["pseudo_depth"],
            score,
            cfg,
            seed=step_seed(cfg, step),
            global_pairs=draws.get("global_pairs"),
        )
    if w["normal_matching"] or w["normal_rank"]:
        normal = ops.depth_normals(tgt_depth, K)
        pseudo_normal = ops.depth_normals(batch["pseudo_depth"], K)
        terms["normal_matching"] = losses.normal_matching_loss(normal, pseudo_normal)
        terms["normal_rank"] = losses.normal_ranking_loss(
            ops, tgt, batch["pseudo_depth"], normal, pseudo_normal, draws=draws["edge_pairs"]
        )
    total = sum(w[k] * terms[k] for k in TERMS if w.get(k))
    return total, terms


_compiled_loss_terms = None


def compile_loss_terms(backend="inductor"):
    """loss_terms compiled whole (torch.compile, fullgraph=True). The step, an int that seeds
    sample_dynamic_pairs, is traced as a symbol: one graph serves every step."""
    compiled = torch.compile(loss_terms, fullgraph=True, backend=backend)

    def run(*args, **kwargs):
        with torch.compiler.config.patch(dynamic_sources="L['step']"):
            return compiled(*args, **kwargs)

    return run


def loss_function(cfg):
    """loss_terms, compiled (compile_loss_terms) when cfg.compile is losses or all and
    gradients are on: validation (no_grad) stays eager rather than compile a second graph for
    a few frames. One compiled function per process; torch caches its graphs per input shapes
    and config."""
    global _compiled_loss_terms
    if cfg.compile == "none" or not torch.is_grad_enabled():
        return loss_terms
    if _compiled_loss_terms is None:
        _compiled_loss_terms = compile_loss_terms()
    return _compiled_loss_terms


def prepare_networks(cfg, *nets):
    """With cfg.channels_last, stores each network's weights channels-last (convolutions then
    run and return NHWC: oneDNN's faster layout on the CPU; a depth map with one channel is
    laid out as before); with cfg.compile = all, compiles each in place (nn.Module.compile:
    its state_dict keeps its keys, so checkpoints do not change); the losses follow
    cfg.compile in compute_losses (loss_function). None entries are skipped."""
    for net in nets:
        if net is None:
            continue
        if cfg.channels_last:
            net.to(memory_format=torch.channels_last)
        if cfg.compile == "all":
            net.compile()
