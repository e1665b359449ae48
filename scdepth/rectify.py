"""SC-DepthV2's rectification (Bian et al., "Auto-Rectify Network for Unsupervised Indoor Depth
Estimation", TPAMI 2022).

Hand-held indoor video rotates a lot and translates little between frames. Rotation moves
pixels whatever their depth, so it carries no signal for the DepthNet and hides the small
parallax that does. A RectifyNet predicts the rotation between the target and each reference
frame, the reference is warped by that rotation alone, and the DepthNet and PoseNet train on
the rectified pairs, whose remaining motion is mostly translation.

Direction. The warp's pose [R | t] maps target-camera points into the source camera
(scdepth.ops.inverse_warp). With unit depth and t = 0, target pixel p = [u, v, 1]^T gives
X = K^-1 p, X' = R K^-1 p and p' = K X' / z': the source is sampled at p' ~ H p with
H = K R K^-1, a homography. The depth does not matter: any depth d scales X' by d and the
projection divides it out. RectifyNet(tgt, ref) predicts R1, the rotation of T_ref<-tgt, so
rectified(p) = ref(K R1 K^-1 p) is the view of a virtual camera at the reference's centre
with points X_rect = R1^T X_ref. When T_ref<-tgt = [R | t] and R1 = R, T_rect<-tgt = [I | R^T t]:
only the translation is left, and for a pure rotation the rectified reference is the target
image (up to interpolation and the borders). The intrinsics do not change.

Borders. Where H p falls outside the reference the rectified image is 0; the rotation warp's
valid map marks those pixels, and the photometric and geometry losses skip every pixel whose
sample touches them in either warp direction (scdepth.losses.pairwise_terms).

Gradients. The rectified references stay connected to r1, so the V1 losses train the
RectifyNet end to end together with the two rotation losses (the paper's end-to-end training).
"""

from dataclasses import dataclass

import torch

from . import losses
from .geometry import euler2mat, pose_vec2mat
from .ops import get_backend

# r1 supervises r3 when the mean |angle| of the pair lies in this open range (rad); otherwise a
# random rotation does: early on r1 is near zero (it would teach the network to predict zero),
# and a very large r1 is more likely an error than hand-held motion.
CONSISTENCY_RANGE = (0.02, 0.1)
RANDOM_ROTATION = 0.05  # the random r3_gt is uniform in +-0.05 rad per axis


def rotation_pose(angles):
    """[R | 0] [B, 3, 4] of Euler angles [B, 3] (R = euler2mat(angles))."""
    R = euler2mat(angles)
    return torch.cat([R, torch.zeros_like(R[..., :1])], -1)


def rotation_warp(ops, img, angles, K):
    """img [B, C, H, W] sampled at K R K^-1 p for every pixel p (R = euler2mat(angles [B, 3]),
    K [B, 3, 3]): inverse_warp with unit depth and zero translation. Returns (warped, valid),
    valid [B, 1, H, W] = 1 where the sample lies inside img. Gradients reach img and angles."""
    B, _, H, W = img.shape
    depth = img.new_ones(B, 1, H, W)
    warped, _, valid = ops.inverse_warp(img, depth, rotation_pose(angles).to(img.dtype), K)
    return warped, valid


def consistency_target(r1, generator=None):
    """r3_gt [B, 3]: r1 (detached) for the pairs whose mean |angle| lies in CONSISTENCY_RANGE,
    else a rotation uniform in +-RANDOM_ROTATION rad per axis, drawn (for every pair, so the
    stream does not depend on r1) from `generator` on its device (default: the global
    generator of r1's device)."""
    lo, hi = CONSISTENCY_RANGE
    r1 = r1.detach()
    magnitude = r1.abs().mean(-1, keepdim=True)
    device = generator.device if generator is not None else r1.device
    draw = torch.rand(r1.shape, generator=generator, dtype=torch.float64, device=device)
    random = ((2 * draw - 1) * RANDOM_ROTATION).to(device=r1.device, dtype=r1.dtype)
    return torch.where((magnitude > lo) & (magnitude < hi), r1, random)


@dataclass
class Rectified:
    refs: torch.Tensor  # [B, N, C, H, W] the references rectified to the target's orientation
    valid: torch.Tensor  # [B, N, 1, H, W] 1 where a rectified reference holds content
    angles: torch.Tensor  # [B, N, 3] r1: RectifyNet(tgt, ref), the rotation removed
    terms: dict  # rot_triplet, rot_consistency (losses); rot_before, rot_after (mean |r1|, |r2|)


def rectify(net, tgt, refs, K, ops, generator=None):
    """SC-DepthV2's rectification of every reference and its two rotation losses.

    net(img1, img2) -> [B', 3]: the RectifyNet (float32 out). tgt [B, C, H, W], refs
    [B, N, C, H, W], K [B, 3, 3]. Per reference: r1 = net(tgt, ref); rectified = ref warped
    by r1; r2 = net(tgt, rectified); r3_gt = consistency_target(r1); r3 = net(ref warped by
    r3_gt, ref). Two network passes, all references batched."""
    B, N = refs.shape[:2]
    ref = refs.transpose(0, 1).reshape(B * N, *refs.shape[2:])  # reference-major, as in step
    tgt_n, K_n = tgt.repeat(N, 1, 1, 1), K.repeat(N, 1, 1)
    r1 = net(tgt_n, ref)
    rectified, valid = rotation_warp(ops, ref, r1, K_n)
    r3_gt = consistency_target(r1, generator)
    probe, _ = rotation_warp(ops, ref, r3_gt, K_n)
    r2, r3 = net(torch.cat([tgt_n, probe]), torch.cat([rectified, ref])).split(B * N)
    terms = {
        "rot_triplet": losses.rotation_triplet_loss(r1, r2),
        "rot_consistency": losses.rotation_consistency_loss(r3, r3_gt),
        "rot_before": r1.detach().abs().mean(),
        "rot_after": r2.detach().abs().mean(),
    }

    def per_batch(x):
        return x.reshape(N, B, *x.shape[1:]).transpose(0, 1)

    return Rectified(per_batch(rectified), per_batch(valid), per_batch(r1), terms)


def compose_pose(pose_vec, angles):
    """The full relative pose T_ref<-tgt [B, 3, 4] of a (tgt, ref) pair under SC-DepthV2.

    pose_vec [B, 6]: PoseNet(tgt, rectified ref), whose [R' | t'] = pose_vec2mat(pose_vec) maps
    target points into the rectified reference camera. angles [B, 3]: RectifyNet(tgt, ref);
    points of the rectified camera map into the reference camera by R1 = euler2mat(angles).
    So T_ref<-tgt = [R1 R' | R1 t'] (the warp's convention, as scdepth.data.poses.relative_pose)."""
    pose = pose_vec2mat(pose_vec)
    R1 = euler2mat(angles).to(pose.dtype)
    return R1 @ pose


@torch.no_grad()
def predict_pose(pose_net, tgt, ref, K, rectify_net=None, ops=None):
    """T_ref<-tgt [B, 3, 4] predicted for normalised images tgt, ref [B, 3, H, W] with
    intrinsics K [B, 3, 3], the pose to evaluate against ground truth (the networks are used
    as given: call .eval() first). With rectify_net (SC-DepthV2) the rectification rotation is
    composed with the PoseNet's pose on the rectified pair (compose_pose); without (V1, V3,
    Monodepth2) it is pose_vec2mat(pose_net(tgt, ref)). ops: a scdepth.ops backend (ext)."""
    if rectify_net is None:
        return pose_vec2mat(pose_net(tgt, ref))
    angles = rectify_net(tgt, ref).to(tgt.dtype)
    rectified, _ = rotation_warp(ops or get_backend("ext"), ref, angles, K.to(tgt.dtype))
    return compose_pose(pose_net(tgt, rectified), angles)
