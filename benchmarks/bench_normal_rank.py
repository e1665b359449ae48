"""normal_rank_error: the trainer's call (two edge maps, M = edge_anchor_count(H, W) anchors
per image and map, points 3-19 px apart) at the dataset sizes, forward and backward."""

import torch

from benchmarks.common import Case

MAPS = 2  # image edges and pseudo-normal edges


def inputs(B, H, W, device, dtype):
    from scdepth.losses import EDGE_DISTANCES, edge_anchor_count

    g = torch.Generator().manual_seed(0)
    M = edge_anchor_count(H, W)
    normal = torch.nn.functional.normalize(torch.randn(B, 3, H, W, generator=g), dim=1)
    pseudo = torch.nn.functional.normalize(torch.randn(B, 3, H, W, generator=g), dim=1)
    valid = torch.rand(B, 1, H, W, generator=g) > 0.02
    anchor = torch.randint(0, H * W, (MAPS, 1, B, M), generator=g)
    step = torch.randint(*EDGE_DISTANCES, (MAPS, 4, B, M), generator=g)
    step = step * torch.tensor([-2, -1, 1, 2]).view(1, 4, 1, 1) // 2  # along a row
    points = (anchor + step).clamp(0, H * W - 1)
    weight = torch.full((MAPS, B, M), 0.5)
    to = dict(device=device, dtype=dtype)
    return normal.to(**to), pseudo.to(**to), valid.to(device), points.to(device), weight.to(**to)


def make(B, H, W):
    def build(backend, device, dtype, backward):
        from scdepth.ops import get_backend

        op = get_backend(backend).normal_rank_error
        normal, pseudo, valid, points, weight = inputs(B, H, W, device, dtype)
        normal.requires_grad_(backward)

        def forward():
            return [op(normal, pseudo, valid, points, weight)[0]]

        grads = [torch.ones_like(weight)] if backward else None
        return forward, grads

    return build


def bytes_moved(B, H, W):
    # forward, per anchor: 4 indices, 4 validity bytes, the 3 components of 4 points in both
    # normal maps, its weight; writes its error, pair weight and 3 pair slopes. Backward, per
    # anchor: grad_error, the slopes, the indices and the predicted normals; grad_normal
    # written once per pixel.
    def count(dtype):
        from scdepth.losses import edge_anchor_count

        e = torch.finfo(dtype).bits // 8
        anchors = MAPS * B * edge_anchor_count(H, W)
        return anchors * ((36 + 30 * e) + (32 + 16 * e)) + 3 * e * B * H * W

    return count


def case_at(name, B, H, W):
    """The benchmark at one size (run.py calls it for every size it runs)."""
    return Case.at("normal_rank_error", f"{name} B{B} {H}x{W}", (B, H, W), make, bytes_moved)
