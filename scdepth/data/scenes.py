"""The two presets of scdepth-synth: a room with walking people (indoor, like Bonn/TUM) and a
street with parked and moving cars (outdoor, like KITTI). Units are metres; one time step
is one frame (about 0.1 s). Dynamic objects are placed at the distance at which their
projected area gives roughly the requested share of dynamic pixels. `shake` (rad) adds a
hand-held rotation shake to the camera path (scdepth-synth --rotation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .render import Prim, rotation
from .specs import DATASETS

# Effective area in view (m^2) per mover, measured so that the share of dynamic pixels over a
# dataset comes out near the requested dynamic_fraction (it includes time spent out of view).
AREA = {"person": 0.33, "car": 4.0}
CLOTHES = [(0.7, 0.15, 0.1), (0.1, 0.3, 0.7), (0.15, 0.55, 0.2), (0.8, 0.7, 0.1), (0.5, 0.2, 0.6)]


@dataclass
class Setup:
    K: np.ndarray
    static: list[Prim]
    movers: list = field(default_factory=list)  # callables t -> list[Prim]
    poses: list = field(default_factory=list)  # (R camera-to-world, centre) per frame
    light: np.ndarray = field(default_factory=lambda: np.array([0.3, -0.8, -0.5]))
    sky: object = None

    def prims(self, t: int) -> list[Prim]:
        return self.static + [p for m in self.movers for p in m(t)]


def _bounce(x, lo, hi):
    """Position x reflected into [lo, hi] (a walk that turns back at the walls)."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _color(rng, lo=0.2, hi=0.9):
    return tuple(float(c) for c in rng.uniform(lo, hi, 3))


def _box(center, half, **kw):
    return Prim("box", np.asarray(center, np.float32), np.asarray(half, np.float32), **kw)


def _ell(center, radii, **kw):
    return Prim("ellipsoid", np.asarray(center, np.float32), np.asarray(radii, np.float32), **kw)


def _intrinsics(size, fx_over_w, cy_over_h=0.5):
    h, w = size
    f = fx_over_w * w
    return np.array([[f, 0, (w - 1) / 2], [0, f, cy_over_h * (h - 1)], [0, 0, 1]])


def _distance_for(fraction, count, area, K, size):
    """Distance at which ``count`` objects of ``area`` m^2 cover ``fraction`` of the image."""
    return float(np.sqrt(count * area * K[0, 0] * K[1, 1] / (fraction * size[0] * size[1])))


def _sines(rng, n_frames, amp, period):
    t = np.arange(n_frames)
    return amp * np.sin(2 * np.pi * t / rng.uniform(*period) + rng.uniform(0, 2 * np.pi))


def _shake(rng, n_frames, amplitude):
    """Hand-held shake [3, n_frames]: (yaw, pitch, roll) offsets in rad, one sine per axis of
    `amplitude` with a period of 6 to 12 frames, so that consecutive frames differ by about
    0.45 * amplitude per axis on average. Zeros, drawing nothing, when amplitude is 0 (the
    scene is then the one generated without shake)."""
    if not amplitude:
        return np.zeros((3, n_frames))
    return np.stack([_sines(rng, n_frames, amplitude, (6, 12)) for _ in range(3)])


def _person(rng, floor, x_range, z_range, start, speed, heading, seed):
    """A walking body of ellipsoids: legs and arms swing, the whole body walks and turns back."""
    shirt, trousers = CLOTHES[rng.integers(len(CLOTHES))], _color(rng, 0.05, 0.5)
    skin = tuple(float(c) for c in np.array([0.85, 0.65, 0.5]) * rng.uniform(0.6, 1.1))
    shirt_tex = "stripes" if rng.random() < 0.5 else "noise"
    vel = speed * np.array([np.cos(heading), np.sin(heading)])

    def at(t):
        x = float(_bounce(start[0] + vel[0] * t, *x_range))
        z = float(_bounce(start[1] + vel[1] * t, *z_range))
        # direction of travel (it flips at a wall): derivative of the bounced walk
        dx = float(_bounce(start[0] + vel[0] * (t + 0.01), *x_range)) - x
        dz = float(_bounce(start[1] + vel[1] * (t + 0.01), *z_range)) - z
        f = np.array([dx, dz]) / (np.hypot(dx, dz) + 1e-9)
        side = np.array([f[1], -f[0]])
        yaw = float(np.arctan2(-side[1], side[0]))
        swing = 0.14 * np.sin(t * speed / 0.12)

        def part(lat, fwd, y, radii, tex, colors, s):
            cx = x + lat * side[0] + fwd * f[0]
            cz = z + lat * side[1] + fwd * f[1]
            return _ell(
                (cx, y, cz),
                radii,
                yaw=yaw,
                texture=tex,
                colors=colors,
                scale=0.15,
                seed=seed + s,
                dynamic=True,
            )

        dark = tuple(c * 0.5 for c in trousers)
        return [
            part(0.1, swing, floor - 0.43, (0.09, 0.43, 0.09), "noise", (trousers, dark), 1),
            part(-0.1, -swing, floor - 0.43, (0.09, 0.43, 0.09), "noise", (trousers, dark), 2),
            part(0, 0, floor - 1.16, (0.22, 0.34, 0.14), shirt_tex, (shirt, (0.9, 0.9, 0.85)), 3),
            part(0.29, -swing, floor - 1.12, (0.06, 0.31, 0.06), "noise", (shirt, skin), 4),
            part(-0.29, swing, floor - 1.12, (0.06, 0.31, 0.06), "noise", (shirt, skin), 5),
            part(0, 0, floor - 1.62, (0.1, 0.13, 0.11), "noise", (skin, (0.2, 0.12, 0.05)), 6),
        ]

    return at


def indoor(rng, size, n_frames, dynamic_fraction, shake=0.0) -> Setup:
    K = _intrinsics(size, 0.83)  # about 62 degrees across, like a Kinect
    hx, hy, hz = rng.uniform(2.8, 3.5), rng.uniform(1.3, 1.5), rng.uniform(4.5, 5.5)
    floor, z0 = 1.4, -2.5  # camera about 1.4 m above the floor; back wall 2.5 m behind it
    zc = z0 + hz
    wall_tex = ["stripes", "bricks", "noise"][rng.integers(3)]
    static = [
        _box(
            (0, floor - hy, zc),
            (hx, hy, hz),
            inside=True,
            texture=wall_tex,
            colors=(_color(rng, 0.5, 0.95), _color(rng, 0.3, 0.7)),
            scale=0.25,
            seed=1,
        ),
        _box(
            (0, floor - 0.005, zc),
            (hx - 0.01, 0.005, hz - 0.01),
            texture=["planks", "tiles"][rng.integers(2)],
            colors=(_color(rng, 0.3, 0.8), _color(rng, 0.1, 0.5)),
            scale=0.6,
            seed=2,
        ),
        _box(
            (0, floor - 2 * hy + 0.005, zc),
            (hx - 0.01, 0.005, hz - 0.01),
            texture="tiles",
            colors=((0.9, 0.9, 0.88), (0.7, 0.7, 0.7)),
            scale=0.6,
            seed=3,
        ),
    ]
    for i in range(int(rng.integers(4, 7))):  # furniture against the side and far walls
        w, h, d = rng.uniform(0.5, 1.6), rng.uniform(0.5, 1.9), rng.uniform(0.4, 0.9)
        if i % 3 == 2:
            cx, cz = rng.uniform(-hx + w, hx - w), z0 + 2 * hz - d - 0.02
        else:
            cx, cz = (hx - d - 0.02) * (1 if i % 3 else -1), rng.uniform(z0 + 1, z0 + 2 * hz - 1)
            w, d = d, w
        static.append(
            _box(
                (cx, floor - h / 2, cz),
                (w / 2, h / 2, d / 2),
                texture=["planks", "noise", "tiles", "bricks"][rng.integers(4)],
                colors=(_color(rng), _color(rng, 0.05, 0.5)),
                scale=0.2,
                seed=10 + i,
            )
        )
    for i in range(3):  # posters: strong features at eye height
        side = 1 if i % 2 else -1
        static.append(
            _box(
                (side * (hx - 0.01), floor - 1.5, rng.uniform(z0 + 2, z0 + 2 * hz - 1)),
                (0.01, rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.6)),
                texture="noise",
                colors=(_color(rng), _color(rng)),
                scale=0.08,
                seed=30 + i,
            )
        )
    setup = Setup(K, static, sky=lambda d: np.full((len(d), 3), 0.5, np.float32))
    cam_z = rng.uniform(-1.4, -0.6)
    if dynamic_fraction > 0:
        n = int(rng.integers(2, 5))
        dist = _distance_for(dynamic_fraction, n, AREA["person"], K, size)
        for j in range(n):
            z = float(np.clip(cam_z + dist * rng.uniform(0.8, 1.25), 0.8, z0 + 2 * hz - 1.2))
            # walk to and fro across the field of view at that distance (62 deg: +-0.6 z)
            half = min(hx - 0.7, 0.6 * (z - cam_z))
            heading = rng.uniform(-0.5, 0.5) + (np.pi if rng.random() < 0.5 else 0)
            setup.movers.append(
                _person(
                    rng,
                    floor,
                    (-half, half),
                    (0.8, z0 + 2 * hz - 1.0),
                    (rng.uniform(-half, half), z),
                    rng.uniform(0.04, 0.08),
                    heading,
                    100 + 10 * j,
                )
            )
    # hand-held camera: slow drift, jitter, panning
    drift = rng.normal(size=2)
    drift *= rng.uniform(0.015, 0.035) / np.linalg.norm(drift)
    t = np.arange(n_frames)
    x = _bounce(rng.uniform(-0.5, 0.5) + drift[0] * t, -1.5, 1.5)
    x = x + _sines(rng, n_frames, 0.01, (9, 17))
    z = _bounce(cam_z + drift[1] * t, -1.8, -0.2) + _sines(rng, n_frames, 0.01, (9, 17))
    y = _sines(rng, n_frames, 0.01, (11, 19)) + rng.uniform(-0.1, 0.1)
    yaw = rng.uniform(-0.2, 0.2) + _sines(rng, n_frames, 0.25, (60, 120))
    pitch = 0.08 + _sines(rng, n_frames, 0.04, (40, 90))
    roll = _sines(rng, n_frames, 0.02, (30, 70))
    jolt = _shake(rng, n_frames, shake)  # drawn last: the rest of the scene is unchanged
    yaw, pitch, roll = yaw + jolt[0], pitch + jolt[1], roll + jolt[2]
    setup.poses = [
        (rotation(yaw[i], -pitch[i], roll[i]), np.array([x[i], y[i], z[i]]))
        for i in range(n_frames)
    ]
    return setup


def _car(center, yaw, color, seed, dynamic):
    x, y, z = center  # y: road height
    glass = (0.12, 0.15, 0.2)
    return [
        _box(
            (x, y - 0.55, z),
            (0.9, 0.4, 2.1),
            yaw=yaw,
            texture="noise",
            colors=(color, glass),
            scale=0.7,
            seed=seed,
            dynamic=dynamic,
        ),
        _box(
            (x, y - 1.2, z + 0.2),
            (0.8, 0.3, 1.1),
            yaw=yaw,
            texture="stripes",
            colors=(glass, color),
            scale=0.4,
            seed=seed + 1,
            dynamic=dynamic,
        ),
    ]


def _sky(rng):
    seed = int(rng.integers(1 << 20))

    def sky(d):
        from .textures import fbm

        n = d / np.linalg.norm(d, axis=-1, keepdims=True)
        up = np.clip(-n[:, 1], 0, 1)
        uv = np.stack([np.arctan2(n[:, 0], n[:, 2]) * 6, up * 12], -1)
        cloud = np.clip(0.5 + 2.0 * fbm(uv, np.zeros(len(n), np.float32), seed), 0, 1)
        blue = np.array([0.35, 0.55, 0.9], np.float32) + (0.45 * (1 - up))[:, None]
        return np.clip(blue + (0.7 * cloud * np.sqrt(up))[:, None], 0, 1).astype(np.float32)

    return sky


def outdoor(rng, size, n_frames, dynamic_fraction, shake=0.0) -> Setup:
    K = _intrinsics(size, 0.58, 0.46)  # KITTI: fx / W = 721 / 1242, cy / H = 173 / 375
    road_y, speed = 1.65, rng.uniform(0.6, 1.0)  # KITTI camera height; metres per frame
    length = n_frames * speed + 250
    zc = length / 2 - 40
    static = [
        _box(
            (0, road_y + 0.5, zc),
            (7, 0.5, length),
            texture="road",
            colors=((0.35, 0.35, 0.37), (0.2, 0.2, 0.22)),
            seed=1,
        ),
        _box(
            (0, road_y + 0.5, zc),
            (200, 0.5 - 0.001, length),
            texture="noise",
            colors=((0.25, 0.45, 0.15), (0.4, 0.35, 0.2)),
            scale=0.5,
            seed=2,
        ),
    ]
    for side in (-1, 1):
        static.append(
            _box(
                (side * 9, road_y + 0.5 - 0.15, zc),
                (2, 0.5, length),
                texture="tiles",
                colors=((0.7, 0.68, 0.65), (0.5, 0.5, 0.5)),
                scale=0.8,
                seed=3 + side,
            )
        )
        z = -40.0
        while z < length - 40:  # facades of buildings of varying set-back, width and height
            w, h, x0 = rng.uniform(8, 22), rng.uniform(6, 20), 11 + rng.uniform(0, 2.5)
            colors = (_color(rng, 0.4, 0.9), _color(rng, 0.2, 0.6))
            static.append(
                _box(
                    (side * (x0 + 5), road_y - h / 2, z + w / 2),
                    (5, h / 2, w / 2),
                    texture="facade",
                    colors=colors,
                    seed=int(rng.integers(1 << 20)),
                )
            )
            z += w + rng.uniform(0, 5)
        z = rng.uniform(-10, 10)
        while z < n_frames * speed + 60:  # parked cars along the kerb
            static += _car(
                (side * 6.1, road_y, z),
                rng.uniform(-0.05, 0.05),
                _color(rng),
                int(rng.integers(1 << 20)),
                False,
            )
            z += rng.uniform(6, 18)
    setup = Setup(K, static, light=np.array([-0.4, -0.8, 0.3]), sky=_sky(rng))
    if dynamic_fraction > 0:
        n = int(rng.integers(2, 4))
        dist = np.clip(_distance_for(dynamic_fraction, n, AREA["car"], K, size), 6, 40)
        lanes = rng.permutation([0.0, 3.5, -3.5])
        for j in range(n):
            z_start = dist * rng.uniform(0.8, 1.3)
            # never closer than 5 m: the camera must not drive into it
            v = speed + rng.uniform(max(-0.15, (5 - z_start) / n_frames), 0.15)
            color, seed = _color(rng), int(rng.integers(1 << 20))
            setup.movers.append(
                lambda t, x=lanes[j % 3], z0=z_start, v=v, c=color, s=seed: _car(
                    (x, road_y, z0 + v * t), 0.0, c, s, True
                )
            )
        # an oncoming car in the far lane that passes the camera
        zo, vo = rng.uniform(20, 20 + n_frames * speed), -rng.uniform(0.6, 1.0)
        color, seed = _color(rng), int(rng.integers(1 << 20))
        setup.movers.append(lambda t: _car((-3.5, road_y, zo + vo * t), np.pi, color, seed, True))
    t = np.arange(n_frames)
    yaw = _sines(rng, n_frames, 0.03, (40, 90))
    pitch = _sines(rng, n_frames, 0.01, (20, 50))
    x = _sines(rng, n_frames, 0.15, (50, 120))
    y = _sines(rng, n_frames, 0.01, (8, 15))
    jolt = _shake(rng, n_frames, shake)
    yaw, pitch = yaw + jolt[0], pitch + jolt[1]
    setup.poses = [
        (rotation(yaw[i], pitch[i], jolt[2, i]), np.array([x[i], y[i], speed * t[i]]))
        for i in range(n_frames)
    ]
    return setup


PRESETS = {"indoor": indoor, "outdoor": outdoor}
DEFAULT_SIZE = {"indoor": DATASETS["synthetic"].image_size, "outdoor": (128, 416)}
DEFAULT_DYNAMIC = {"indoor": 0.25, "outdoor": 0.1}
