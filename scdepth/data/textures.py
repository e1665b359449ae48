"""Procedural textures: multi-scale value noise, bricks, tiles, planks, stripes, windows.

Each texture maps surface coordinates uv [N, 2] (in units of the primitive's texture scale)
to an albedo [N, 3]. ``fp`` is the footprint of one sample in the same units: detail finer
than it is faded out, so distant and grazing surfaces do not alias into flicker, which would
break the brightness constancy that photometric matching relies on.
"""

from __future__ import annotations

import numpy as np


def _hash(ix, iy, seed: int) -> np.ndarray:
    """Integer lattice -> uniform [0, 1), vectorised (a 32-bit integer mix, wrapping)."""
    h = ix.astype(np.uint32) * np.uint32(374761393) + iy.astype(np.uint32) * np.uint32(668265263)
    h += np.uint32((seed * 2246822519) & 0xFFFFFFFF)
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def value_noise(u, v, seed: int) -> np.ndarray:
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    iu, iv = iu.astype(np.int32), iv.astype(np.int32)
    a, b = _hash(iu, iv, seed), _hash(iu + 1, iv, seed)
    c, d = _hash(iu, iv + 1, seed), _hash(iu + 1, iv + 1, seed)
    return (a + (b - a) * fu) * (1 - fv) + (c + (d - c) * fu) * fv


def fbm(uv, fp, seed: int, base: float = 1.0, octaves: int = 5) -> np.ndarray:
    """Fractal noise in [-0.5, 0.5]; octaves with wavelength under ~2 samples fade out."""
    out = np.zeros(len(uv), np.float32)
    amp, freq = 0.5, base
    for k in range(octaves):
        keep = np.clip(1.5 - 2.0 * fp * freq, 0, 1)
        if not keep.any():  # finer octaves are all below the sampling rate
            break
        out += amp * keep * (value_noise(uv[:, 0] * freq, uv[:, 1] * freq, seed + k) - 0.5)
        amp, freq = amp * 0.55, freq * 2.1
    return out


def _lines(x, width, fp):
    """1 on thin grid lines of a unit-period coordinate x, faded when lines are sub-sample."""
    f = x - np.floor(x)
    line = (np.minimum(f, 1 - f) < width / 2).astype(np.float32)
    return line * np.clip(1.0 - fp / (4 * width + 1e-6) * 0.5, 0, 1)


def _mix(c1, c2, w):
    c1, c2 = np.asarray(c1, np.float32), np.asarray(c2, np.float32)
    return c1 + (c2 - c1) * np.clip(w, 0, 1)[:, None]


def _grain(albedo, uv, fp, seed, amount=0.6):
    return np.clip(albedo * (1 + amount * fbm(uv, fp, seed, base=2.0))[:, None], 0, 1)


def noise(uv, fp, p):
    return _grain(_mix(*p.colors, 0.5 + 1.6 * fbm(uv, fp, p.seed, 0.5)), uv, fp, p.seed + 9)


def bricks(uv, fp, p, bw=1.0, bh=0.4):
    row = np.floor(uv[:, 1] / bh)
    u = uv[:, 0] / bw + 0.5 * (row % 2)
    tone = _hash(np.floor(u), row, p.seed) - 0.5
    mortar = np.maximum(_lines(u, 0.06, fp / bw), _lines(uv[:, 1] / bh, 0.12, fp / bh))
    contrast = np.clip(1.0 - fp / bh, 0, 1)
    base = _mix(p.colors[0], p.colors[1], 0.5 + 0.9 * tone * contrast)
    albedo = base * (1 - 0.55 * mortar)[:, None] + 0.55 * mortar[:, None] * 0.8
    return _grain(albedo, uv, fp, p.seed + 3, 0.5)


def tiles(uv, fp, p, size=1.0):
    ix, iy = np.floor(uv[:, 0] / size), np.floor(uv[:, 1] / size)
    checker = ((ix + iy) % 2) * 0.6 + 0.4 * _hash(ix, iy, p.seed)
    contrast = np.clip(1.0 - fp / size, 0, 1)
    albedo = _mix(p.colors[0], p.colors[1], 0.5 + (checker - 0.5) * contrast)
    grout = np.maximum(_lines(uv[:, 0] / size, 0.05, fp / size), _lines(uv[:, 1] / size, 0.05, fp))
    albedo = albedo * (1 - 0.5 * grout)[:, None]
    return _grain(albedo, uv, fp, p.seed + 5, 0.5)


def planks(uv, fp, p, width=0.5):
    plank = np.floor(uv[:, 1] / width)
    tone = _hash(plank, plank * 3, p.seed) - 0.5
    streaks = fbm(np.stack([uv[:, 0] * 0.3, uv[:, 1] * 6.0], -1), fp * 6.0, p.seed + 1)
    albedo = _mix(p.colors[0], p.colors[1], 0.5 + 0.8 * tone + 1.5 * streaks)
    gap = _lines(uv[:, 1] / width, 0.05, fp / width)
    return albedo * (1 - 0.5 * gap)[:, None]


def stripes(uv, fp, p, period=1.0):
    s = 0.5 + 0.5 * np.sin(2 * np.pi * uv[:, 0] / period) * np.clip(1 - 2 * fp / period, 0, 1)
    return _grain(_mix(p.colors[0], p.colors[1], s), uv, fp, p.seed + 7, 0.7)


def facade(uv, fp, p, cell=(3.0, 3.2)):
    """Plaster or brick wall with a grid of dark windows."""
    wall = bricks(uv * 4.0, fp * 4.0, p) if p.seed % 2 else noise(uv, fp, p)
    fu, fv = uv[:, 0] / cell[0], uv[:, 1] / cell[1]
    fu, fv = fu - np.floor(fu), fv - np.floor(fv)
    window = (np.abs(fu - 0.5) < 0.28) & (np.abs(fv - 0.5) < 0.3)
    glass = np.array([0.15, 0.2, 0.28], np.float32) + 0.25 * fbm(uv, fp, p.seed + 11)[:, None]
    return np.where(window[:, None], np.clip(glass, 0, 1), wall)


def road(uv, fp, p):
    """Asphalt with dashed lane lines every 3.5 m (uv in metres, u across the road)."""
    asphalt = noise(uv * 2.0, fp * 2.0, p)
    lane = _lines(uv[:, 0] / 3.5 + 0.5, 0.12 / 3.5, fp / 3.5)
    dash = (uv[:, 1] / 6.0 - np.floor(uv[:, 1] / 6.0)) < 0.5
    paint = lane * dash * (np.abs(uv[:, 0]) < 5.5)
    return _mix_rows(asphalt, np.float32(0.9), paint)


def _mix_rows(a, value, w):
    return a * (1 - w)[:, None] + value * w[:, None]


TEXTURES = {
    "noise": noise,
    "bricks": bricks,
    "tiles": tiles,
    "planks": planks,
    "stripes": stripes,
    "facade": facade,
    "road": road,
}
