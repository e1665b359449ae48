"""Input generators and oracles shared by the tests."""

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scdepth.data.poses import quaternion_to_rotation
from scdepth.data.sources.tum import read_trajectory
from scdepth.geometry import pose_vec2mat

ROOT = Path(__file__).resolve().parent.parent


def build_host(source, out, *flags):
    """Compiles tests/<source> (a host harness of CUDA kernel code) into `out` against csrc,
    torch's headers and c10, with tests/simt standing in for cuda_runtime.h. Skips the test
    without g++; returns the finished subprocess."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ to build the host harness")
    torch_dir = Path(torch.__file__).parent
    cmd = [compiler, "-std=c++20", "-pthread", "-Wall", "-Werror"]
    cmd += ["-Wno-unknown-pragmas", *flags]  # CUDA's #pragma unroll
    cmd += [f"-I{ROOT / 'tests' / 'simt'}", f"-I{ROOT / 'csrc'}", f"-I{torch_dir / 'include'}"]
    cmd += [str(ROOT / "tests" / source), "-o", str(out), f"-L{torch_dir / 'lib'}", "-lc10"]
    cmd += [f"-Wl,-rpath,{torch_dir / 'lib'}"]
    return subprocess.run(cmd, capture_output=True, text=True)


def smooth_field(B, C, H, W, *, generator, dtype=torch.float64, cells=4):
    """Random images with content at every scale down to a few pixels."""
    coarse = torch.randn(
        B, C, max(H // cells, 2), max(W // cells, 2), generator=generator, dtype=torch.float64
    )
    return F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=True).to(dtype)


def intrinsics(B, H, W, dtype=torch.float64):
    f = 0.9 * max(H, W)
    K = torch.tensor(
        [[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    return K.expand(B, 3, 3).to(dtype).contiguous()


def warp_inputs(
    B=3, C=4, H=12, W=16, *, seed=0, dtype=torch.float64, device="cpu", smooth=False, extreme=True
):
    """src, depth, pose, K. With `extreme`, the last image moves the camera so that part of
    the target lands outside the source and part behind it (z' <= 1e-3)."""
    g = torch.Generator().manual_seed(seed)
    src = (
        smooth_field(B, C, H, W, generator=g)
        if smooth
        else torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    )
    depth = 1.0 + 4.0 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    vec = torch.cat(
        [
            0.3 * torch.randn(B, 3, generator=g, dtype=torch.float64),
            0.05 * torch.randn(B, 3, generator=g, dtype=torch.float64),
        ],
        1,
    )
    if extreme and B > 1:
        vec[-1] = torch.tensor([0.2, 0.1, -2.0, 0.05, 0.1, 0.0], dtype=torch.float64)
    pose = pose_vec2mat(vec)
    K = intrinsics(B, H, W)
    return tuple(t.to(device=device, dtype=dtype) for t in (src, depth, pose, K))


def python_label(a, b, tau):
    """The contract's label rule in plain Python floats (float64)."""
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        return 0
    if a >= (1.0 + tau) * b:
        return 1
    if b >= (1.0 + tau) * a:
        return -1
    return 0


def chi2_sf(x, df):
    """P(X > x) for X ~ chi-square(df): the regularised upper incomplete gamma Q(df/2, x/2),
    by its series (x < a + 1) or continued fraction (Numerical Recipes, gser / gcf)."""
    a, x = df / 2.0, x / 2.0
    if x <= 0:
        return 1.0
    lead = math.exp(-x + a * math.log(x) - math.lgamma(a))
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= x / n
            total += term
        return 1.0 - lead * total
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return lead * h


def read_tum(path):
    """(times [N], camera-to-world [N, 4, 4]) of a TUM trajectory file, read as the importer
    reads groundtruth.txt."""
    times, rows = read_trajectory(Path(path))
    poses = np.tile(np.eye(4), (len(times), 1, 1))
    poses[:, :3, 3], poses[:, :3, :3] = rows[:, :3], quaternion_to_rotation(rows[:, 3:])
    return times, poses


def edge_guided_pairs(magnitude, theta, u, dist):
    """The pairs (a, b), (b, c), (c, d) of losses.edge_guided_points as flat indices (A, B)
    into [B * H * W] and the pairs' weights, each [3 * B * M]: the form the tests check."""
    from scdepth import losses

    pixel, weight = losses.edge_guided_points(magnitude, theta, u, dist)
    B, H, W = magnitude.shape
    flat = pixel + torch.arange(B).view(1, B, 1) * (H * W)
    return flat[:3].reshape(-1), flat[1:].reshape(-1), weight.expand(3, -1, -1).reshape(-1)
