"""A small vectorised ray caster: boxes and ellipsoids with procedural textures, Lambert shading.

World and camera axes are OpenCV's (x right, y down, z forward). Rays are built as
R K^-1 [u, v, 1], not normalised, so the ray parameter t of a hit is its z-depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import textures

EPS = 1e-4


@dataclass
class Prim:
    """A box (half sizes ``size``) or ellipsoid (radii ``size``) turned by ``yaw`` about y.

    ``inside`` boxes are seen from within (a room). ``texture`` names a function of
    textures.TEXTURES; colours and seed vary it. ``dynamic`` marks moving objects.
    """

    kind: str  # "box" | "ellipsoid"
    center: np.ndarray
    size: np.ndarray
    yaw: float = 0.0
    texture: str = "noise"
    colors: tuple = ((0.6, 0.6, 0.6), (0.3, 0.3, 0.3))
    scale: float = 1.0  # texture scale in metres
    seed: int = 0
    dynamic: bool = False
    inside: bool = False


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about y, then pitch about x, then roll about z."""
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rot_y(yaw) @ rx @ rz


def camera_rays(K: np.ndarray, size, R: np.ndarray, ss: int = 1) -> np.ndarray:
    """World directions [3, H*ss, W*ss] whose z in camera space is 1; ss x ss samples a pixel."""
    h, w = size
    off = (np.arange(ss) + 0.5) / ss - 0.5
    v = (np.arange(h)[:, None] + off[None]).ravel()
    u = (np.arange(w)[:, None] + off[None]).ravel()
    uu, vv = np.meshgrid(u, v)
    pix = np.stack([uu, vv, np.ones_like(uu)])
    return np.einsum("ij,jhw->ihw", R @ np.linalg.inv(K), pix).astype(np.float32)


def _local(p: Prim, o, d):
    """Ray origin (3 floats) and directions (3 arrays) in the primitive's frame."""
    ox, oy, oz = (np.asarray(o, np.float64) - p.center).tolist()
    if p.yaw == 0:
        return (ox, oy, oz), (d[0], d[1], d[2])
    c, s = float(np.cos(p.yaw)), float(np.sin(p.yaw))
    return (c * ox - s * oz, oy, s * ox + c * oz), (c * d[0] - s * d[2], d[1], s * d[0] + c * d[2])


def intersect(p: Prim, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Ray parameter of the first hit in front of the camera, inf for a miss. d: [3, ...]."""
    ol, dl = _local(p, o, d)
    if p.kind == "box":
        tmin = tmax = None
        for k in range(3):
            inv = 1.0 / np.where(np.abs(dl[k]) < 1e-9, np.float32(1e-9), dl[k])
            t1, t2 = (-p.size[k] - ol[k]) * inv, (p.size[k] - ol[k]) * inv
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            tmin = lo if tmin is None else np.maximum(tmin, lo)
            tmax = hi if tmax is None else np.minimum(tmax, hi)
        t = tmax if p.inside else np.where(tmin > EPS, tmin, np.inf)
        return np.where((tmax >= tmin) & (t > EPS), t, np.inf)
    r = p.size
    ox, oy, oz = ol[0] / r[0], ol[1] / r[1], ol[2] / r[2]
    dx, dy, dz = dl[0] / r[0], dl[1] / r[1], dl[2] / r[2]
    a = dx * dx + dy * dy + dz * dz
    b = 2 * (ox * dx + oy * dy + oz * dz)
    c = ox * ox + oy * oy + oz * oz - 1
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    return np.where((disc > 0) & (t > EPS), t, np.inf)


def surface(p: Prim, o, d, t):
    """World normals [N, 3] and texture coordinates [N, 2] (metres) of hits; d: [3, N]."""
    ol, dl = _local(p, o, d)
    q = np.stack([ol[k] + t * dl[k] for k in range(3)], -1)
    dl = np.stack(dl, -1)
    if p.kind == "box":
        axis = np.abs(q / p.size).argmax(-1)
        n = np.zeros_like(q)
        n[np.arange(len(q)), axis] = -np.sign(dl[np.arange(len(q)), axis])
        # the two coordinates in the face plane
        a = axis[:, None]
        uv = np.where(a == 0, q[:, [2, 1]], np.where(a == 1, q[:, [0, 2]], q[:, :2]))
    else:
        n = q / (p.size * p.size)
        r = float(np.mean(p.size[[0, 2]]))
        uv = np.stack([np.arctan2(q[:, 2], q[:, 0]) * r, q[:, 1]], -1)
    n = n @ rot_y(p.yaw).astype(np.float32).T
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    return n, uv


def screen_box(p: Prim, K, R, o, shape, ss):
    """Sample rectangle (y0, y1, x0, x1) that holds the primitive's projection, or the whole
    image when a corner of its bounding box is behind the camera (or it is seen from inside)."""
    full = (0, shape[0], 0, shape[1])
    if p.inside:
        return full
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
    corners = p.center + (signs * p.size) @ rot_y(p.yaw).T
    cam = (corners - o) @ R  # camera coordinates, rows
    if (cam[:, 2] < 0.05).any():
        return full
    pix = cam @ K.T
    u, v = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
    x0, x1 = int(np.floor((u.min() + 0.5) * ss)) - 1, int(np.ceil((u.max() + 0.5) * ss)) + 1
    y0, y1 = int(np.floor((v.min() + 0.5) * ss)) - 1, int(np.ceil((v.max() + 0.5) * ss)) + 1
    return max(y0, 0), min(y1, shape[0]), max(x0, 0), min(x1, shape[1])


@dataclass
class Frame:
    rgb: np.ndarray  # float32 [H, W, 3] in [0, 1]
    depth: np.ndarray  # float32 [H, W] z-depth, 0 where nothing is hit
    dynamic: np.ndarray  # bool [H, W]


def render(prims, K, size, R, center, light, sky, ss: int = 2) -> Frame:
    """Colour supersampled ss x ss, depth and dynamic mask exact at pixel centres."""
    h, w = size
    o = np.asarray(center, np.float64)
    d = camera_rays(K, size, R, ss)
    t, idx = _first_hits(prims, K, R, o, d, ss)
    t, idx, d = t.ravel(), idx.ravel(), d.reshape(3, -1)
    rgb = np.empty((len(t), 3), np.float32)
    hit = idx >= 0
    rgb[~hit] = sky(d[:, ~hit].T)
    footprint = t / (K[0, 0] * ss)  # metres per sample across the ray, for texture filtering
    for i in np.unique(idx[hit]):
        m = np.flatnonzero(idx == i)
        p = prims[i]
        n, uv = surface(p, o, d[:, m], t[m])
        albedo = textures.TEXTURES[p.texture](uv / p.scale, footprint[m] / p.scale, p)
        lambert = np.clip(n @ np.asarray(light, np.float32), 0, None)
        rgb[m] = albedo * (0.45 + 0.55 * lambert)[:, None]
    rgb = rgb.reshape(h, ss, w, ss, 3).mean((1, 3))
    tc, ic = _first_hits(prims, K, R, o, camera_rays(K, size, R, 1), 1)
    dyn = np.array([p.dynamic for p in prims] + [False])[ic]
    depth = np.where(np.isfinite(tc), tc, 0).astype(np.float32)
    return Frame(rgb, depth, dyn)


def _first_hits(prims, K, R, o, d, ss):
    """Nearest hit t [H, W] and primitive index (-1: none) for rays d [3, H, W]."""
    t = np.full(d.shape[1:], np.inf, np.float32)
    idx = np.full(d.shape[1:], -1, np.int64)
    for i, p in enumerate(prims):
        y0, y1, x0, x1 = screen_box(p, K, R, o, d.shape[1:], ss)
        if y0 >= y1 or x0 >= x1:
            continue
        ti = intersect(p, o, d[:, y0:y1, x0:x1])
        tw, iw = t[y0:y1, x0:x1], idx[y0:y1, x0:x1]
        closer = ti < tw
        tw[closer], iw[closer] = ti[closer], i
    return t, idx
