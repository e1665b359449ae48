"""The CUDA kernels of sample_dynamic_pairs, inverse_warp, normal_rank_error and
depth_normals, run on the host.

tests/pairs_cuda_host.cpp, tests/warp_cuda_host.cpp, tests/normal_rank_cuda_host.cpp and
tests/depth_normals_cuda_host.cpp launch the kernels of csrc/ranking/pairs_kernels.cuh,
csrc/warp/warp_kernels.cuh, csrc/normals/normal_rank_kernels.cuh and
csrc/normals/depth_normals_kernels.cuh as the CUDA entry points do,
through tests/simt/cuda_runtime.h: every block runs as 256 threads with real barriers, warp
shuffles and atomics. The kernels must then give the CPU kernels' results (bit for bit where
no atomic or block reduction reorders a sum). The pair kernels also run under ThreadSanitizer,
in place of compute-sanitizer's racecheck: there a removed __syncthreads of the histogram or
of the block scan shows as a data race. (For inverse_warp's parameter barrier TSan stayed
silent when it was removed; the comparison with the CPU caught it.)
(photometric's tile code has its own host harness, in test_photometric.py.)
"""

import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import build_host, warp_inputs
from test_depth_normals import random_inputs as depth_normals_inputs
from test_normal_rank import random_inputs as normal_rank_inputs
from test_pairs import FLOAT_TYPES, k_of, random_inputs

import scdepth.ops as ops

F64 = torch.float64
NAMES = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}


def tsan_works(folder):
    (folder / "t.cpp").write_text("int main() { return 0; }\n")
    cmd = ["g++", "-fsanitize=thread", folder / "t.cpp", "-o", folder / "t"]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def build_all(folder, sources, *flags):
    """{source: executable} of the harnesses."""
    exes = {}
    for source in sources:
        (folder / source).mkdir()
        exes[source] = folder / source / "harness"
        done = build_host(source, exes[source], *flags)
        assert done.returncode == 0, done.stderr
    return exes


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    sources = (
        "pairs_cuda_host.cpp",
        "warp_cuda_host.cpp",
        "normal_rank_cuda_host.cpp",
        "depth_normals_cuda_host.cpp",
    )
    return build_all(tmp_path_factory.mktemp("plain"), sources, "-O2")


@pytest.fixture(scope="module")
def tsan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tsan")
    if not tsan_works(folder):
        pytest.skip("g++ cannot build with -fsanitize=thread here")
    return build_all(folder, ["pairs_cuda_host.cpp"], "-O1", "-g", "-fsanitize=thread")


TSAN_ENV = {"TSAN_OPTIONS": "halt_on_error=1 exitcode=66 report_signal_unsafe=0"}


def execute(exe, args):
    done = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **TSAN_ENV})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


# ---- sample_dynamic_pairs


def run_host(exe, score, pd, ratio, seed, tau=0.15):
    """(idx_a, idx_b, label) from the CUDA kernels run on the host."""
    B, _, H, W = score.shape
    N, k = H * W, k_of(H * W, ratio)
    folder = Path(exe).parent
    for name, t in (("score", score), ("pd", pd)):
        t.contiguous().view(-1).view(torch.uint8).numpy().tofile(folder / name)
    args = [NAMES[score.dtype], NAMES[pd.dtype], B, N, k, seed, repr(tau)]
    args += [folder / "score", folder / "pd", folder / "out"]
    execute(exe, args)
    out = [np.fromfile(folder / f"out.{n}", dtype=d) for n, d in
           (("idx_a", np.int64), ("idx_b", np.int64), ("label", np.int8))]  # fmt: skip
    return [torch.from_numpy(o).view(B, k) for o in out]


def wide_scores(B, H, W, seed, dtype):
    """Scores over many exponents and both signs, so that every digit pass of the radix
    select sees many nonzero bins (uniform scores in [0, 1) share their top byte)."""
    g = torch.Generator().manual_seed(seed)
    score = torch.randn(B, 1, H, W, generator=g) * torch.exp(
        4 * torch.randn(B, 1, H, W, generator=g)
    )
    return score.to(dtype)


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize(
    "shape, kind",
    [
        ((3, 13, 29), "ties"),  # one tile, NaN, ±inf and ±0 tied at the threshold
        ((2, 64, 80), "wide"),  # two tiles of 4096 pixels, the second partial
        ((1, 100, 130), "ties"),  # four tiles
    ],
)
def test_pairs_kernels_on_the_host_are_bit_identical_to_cpu(plain, dtype, shape, kind):
    B, H, W = shape
    if kind == "ties":
        score, pd = random_inputs(B, H, W, seed=H, dtype=dtype, pd_dtype=torch.float32, ties=True)
    else:
        score = wide_scores(B, H, W, H + W, dtype)
        pd = random_inputs(B, H, W, seed=W, dtype=torch.float64)[1]
    for ratio, seed in ((0.2, 0), (0.6, 2**63 + 3)):
        host = run_host(plain["pairs_cuda_host.cpp"], score, pd, ratio, seed)
        cpu = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=seed)
        for name, h, c in zip(("idx_a", "idx_b", "label"), host, cpu, strict=True):
            assert torch.equal(h, c.to(h.dtype)), (name, ratio, seed)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_pairs_kernels_under_thread_sanitizer(tsan, dtype):
    """2, 4 and 8 digit passes, two tiles: every barrier and warp exchange of the select,
    the scans and the partners, under ThreadSanitizer."""
    score, pd = wide_scores(1, 64, 80, 7, dtype), random_inputs(1, 64, 80, seed=8)[1]
    host = run_host(tsan["pairs_cuda_host.cpp"], score, pd, 0.2, 11)
    cpu = ops.sample_dynamic_pairs(score, pd, ratio=0.2, seed=11)
    for h, c in zip(host, cpu, strict=True):
        assert torch.equal(h, c.to(h.dtype))


# ---- inverse_warp


def warp_on_host(exe, src, depth, pose, K, gw, gz, grad_from=0):
    """warped, computed_depth, valid, grad_src, grad_depth, grad_pose from the CUDA kernels."""
    B, C, H, W = src.shape
    folder = Path(exe).parent
    torch.cat([t.reshape(-1) for t in (src, depth, pose, K, gw, gz)]).numpy().tofile(folder / "in")
    execute(exe, [NAMES[src.dtype], B, C, H, W, grad_from, folder / "in", folder / "out"])
    out = torch.from_numpy(np.fromfile(folder / "out", dtype=src.numpy().dtype))
    shapes = [src.shape, depth.shape, depth.shape, src.shape, depth.shape, pose.shape]
    return [
        o.view(s) for o, s in zip(out.split([math.prod(s) for s in shapes]), shapes, strict=True)
    ]


def assert_warp_matches_cpu(exe, dtype, shape, grad_from=0):
    B, C, H, W = shape
    src, depth, pose, K = warp_inputs(B=B, C=C, H=H, W=W, seed=H, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    gw, gz = (torch.randn(s, generator=g, dtype=F64).to(dtype) for s in (src.shape, depth.shape))
    host = warp_on_host(exe, src, depth, pose, K, gw, gz, grad_from)
    cpu = [
        *torch.ops.scdepth.inverse_warp(src, depth, pose, K),
        *torch.ops.scdepth.inverse_warp_backward(gw, gz, src, depth, pose, K, grad_from),
    ]
    names = ["warped", "computed_depth", "valid", "grad_src", "grad_depth", "grad_pose"]
    tol = {F64: 1e-13, torch.float32: 2e-6}[dtype]
    for name, h, c in zip(names, host, cpu, strict=True):
        if name in ("grad_src", "grad_pose"):  # summed by atomics / per block: another order
            scale = c.abs().max().item()
            torch.testing.assert_close(h / scale, c / scale, rtol=tol, atol=tol, msg=name)
        else:  # the same per-pixel math as the CPU kernels, one writer per element
            assert torch.equal(h, c), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(3, 4, 12, 16), (2, 3, 33, 70)])  # 1 and 10 blocks per image
def test_warp_kernels_on_the_host_match_cpu(plain, dtype, shape):
    assert_warp_matches_cpu(plain["warp_cuda_host.cpp"], dtype, shape)


def test_warp_kernel_on_the_host_scatters_from_the_first_channel_asked(plain):
    """With src_grad_from = 2 the channels below get no scatter, those above the same one."""
    assert_warp_matches_cpu(plain["warp_cuda_host.cpp"], torch.float64, (2, 4, 33, 70), 2)


# ---- normal_rank_error


def normal_rank_on_host(exe, normal, pseudo, valid, points, weight, grad_error):
    """error, pair_weight, pair_slope and grad_normal from the CUDA kernels."""
    S, _, B, M = points.shape
    H, W = normal.shape[2:]
    folder = Path(exe).parent
    with open(folder / "in", "wb") as f:
        torch.cat([t.reshape(-1) for t in (normal, pseudo, weight, grad_error)]).numpy().tofile(f)
        points.numpy().tofile(f)
        valid.to(torch.uint8).numpy().tofile(f)
    execute(exe, [NAMES[normal.dtype], S, B, H, W, M, folder / "in", folder / "out"])
    out = torch.from_numpy(np.fromfile(folder / "out", dtype=normal.numpy().dtype))
    n = S * B * M
    error, pair_weight, slope, grad = out.split([n, n, 3 * n, normal.numel()])
    return (
        error.view(S, B, M),
        pair_weight.view(S, B, M),
        slope.view(S, B, M, 3),
        grad.view(normal.shape),
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shared", [True, False])  # colliding adds, or mostly distinct
def test_normal_rank_kernels_on_the_host_match_cpu(plain, dtype, shared):
    normal, pseudo, valid, points, weight = normal_rank_inputs(
        B=2, H=20, W=24, M=700, seed=15, dtype=dtype, shared=shared
    )  # 3 blocks per sampler and image: anchors of one block span two images
    grad_error = torch.randn(weight.shape, generator=torch.Generator().manual_seed(16), dtype=dtype)
    host = normal_rank_on_host(
        plain["normal_rank_cuda_host.cpp"], normal, pseudo, valid, points, weight, grad_error
    )
    cpu = torch.ops.scdepth.normal_rank_error(normal, pseudo, valid, points, weight)
    grad = torch.ops.scdepth.normal_rank_error_backward(grad_error, normal, points, cpu[2])
    for name, h, c in zip(("error", "pair_weight", "pair_slope"), host[:3], cpu, strict=True):
        assert torch.equal(h, c), name  # one per-anchor math
    assert torch.isfinite(host[3]).all() and host[3].abs().sum() > 0
    scale = grad.abs().max().item()  # added with atomics: another order
    tol = {F64: 1e-13, torch.float32: 2e-6}[dtype]
    torch.testing.assert_close(host[3] / scale, grad / scale, rtol=tol, atol=tol)


# ---- depth_normals


def depth_normals_on_host(exe, depth, K, grad_normal):
    """normal and grad_depth from the CUDA kernels."""
    B, _, H, W = depth.shape
    folder = Path(exe).parent
    torch.cat([t.reshape(-1) for t in (depth, K, grad_normal)]).numpy().tofile(folder / "in")
    execute(exe, [NAMES[depth.dtype], B, H, W, folder / "in", folder / "out"])
    out = torch.from_numpy(np.fromfile(folder / "out", dtype=depth.numpy().dtype))
    normal, grad = out.split([3 * depth.numel(), depth.numel()])
    return normal.view(B, 3, H, W), grad.view(depth.shape)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "shape",
    [(2, 19, 70), (3, 8, 32), (1, 2, 3), (2, 1, 5), (1, 40, 1)],
)  # tiles cut by the image's edges on both sides, exact tiles, an image smaller than a tile
def test_depth_normals_kernels_on_the_host_are_bit_identical_to_cpu(plain, dtype, shape):
    depth, K, grad = depth_normals_inputs(*shape, seed=sum(shape), dtype=dtype)
    host = depth_normals_on_host(plain["depth_normals_cuda_host.cpp"], depth, K, grad)
    cpu = (
        torch.ops.scdepth.depth_normals(depth, K),
        torch.ops.scdepth.depth_normals_backward(grad, depth, K),
    )
    for name, h, c in zip(("normal", "grad_depth"), host, cpu, strict=True):
        assert torch.equal(h, c), name  # one per-pixel math, one writer, one order of sums
    if min(shape[1:]) > 1:
        assert host[1].abs().sum() > 0
