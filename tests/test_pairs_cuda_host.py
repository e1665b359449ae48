"""sample_dynamic_pairs' CUDA kernels run on the host, on machines without a GPU.

tests/pairs_cuda_host.cpp launches the kernels of csrc/ranking/pairs_kernels.cuh in the order
the CUDA entry point does, through tests/simt/cuda_runtime.h: every block runs as 256 threads
with real barriers, warp shuffles and atomics. The radix select over tiles, the block scans
and the Philox partners must then give the CPU kernels' result bit for bit; built with
ThreadSanitizer, the same run stands in for compute-sanitizer's racecheck (a missing
__syncthreads shows as a data race).
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pairs import FLOAT_TYPES, k_of, random_inputs

import scdepth.ops as ops

ROOT = Path(__file__).resolve().parent.parent
NAMES = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}


def build(out, *flags):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ to build the host harness")
    torch_dir = Path(torch.__file__).parent
    cmd = [
        compiler,
        "-std=c++20",
        "-pthread",
        "-Wall",
        "-Werror",
        "-Wno-unknown-pragmas",  # CUDA's #pragma unroll
        *flags,
        f"-I{ROOT / 'tests' / 'simt'}",  # before any real cuda_runtime.h
        f"-I{ROOT / 'csrc'}",
        f"-I{torch_dir / 'include'}",
        str(ROOT / "tests" / "pairs_cuda_host.cpp"),
        "-o",
        str(out),
        f"-L{torch_dir / 'lib'}",
        "-lc10",
        f"-Wl,-rpath,{torch_dir / 'lib'}",
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    exe = tmp_path_factory.mktemp("pairs") / "pairs_cuda_host"
    done = build(exe, "-O2")
    assert done.returncode == 0, done.stderr
    return exe


@pytest.fixture(scope="module")
def tsan_harness(tmp_path_factory):
    exe = tmp_path_factory.mktemp("pairs_tsan") / "pairs_cuda_host"
    probe = tmp_path_factory.mktemp("probe")
    (probe / "t.cpp").write_text("int main() { return 0; }\n")
    if subprocess.run(["g++", "-fsanitize=thread", probe / "t.cpp", "-o", probe / "t"]).returncode:
        pytest.skip("g++ cannot build with -fsanitize=thread here")
    done = build(exe, "-O1", "-g", "-fsanitize=thread")
    assert done.returncode == 0, done.stderr
    return exe


def run_host(exe, score, pd, ratio, seed, tau=0.15, env=None):
    """(idx_a, idx_b, label) from the CUDA kernels run on the host."""
    B, _, H, W = score.shape
    N, k = H * W, k_of(H * W, ratio)
    folder = Path(exe).parent
    for name, t in (("score", score), ("pd", pd)):
        t.contiguous().view(-1).view(torch.uint8).numpy().tofile(folder / name)
    args = [NAMES[score.dtype], NAMES[pd.dtype], B, N, k, seed, repr(tau)]
    args += [folder / "score", folder / "pd", folder / "out"]
    done = subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
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
def test_cuda_kernels_on_the_host_are_bit_identical_to_cpu(harness, dtype, shape, kind):
    B, H, W = shape
    if kind == "ties":
        score, pd = random_inputs(B, H, W, seed=H, dtype=dtype, pd_dtype=torch.float32, ties=True)
    else:
        score = wide_scores(B, H, W, H + W, dtype)
        pd = random_inputs(B, H, W, seed=W, dtype=torch.float64)[1]
    for ratio, seed in ((0.2, 0), (0.6, 2**63 + 3)):
        host = run_host(harness, score, pd, ratio, seed)
        cpu = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=seed)
        for name, h, c in zip(("idx_a", "idx_b", "label"), host, cpu, strict=True):
            assert torch.equal(h, c.to(h.dtype)), (name, ratio, seed)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_cuda_kernels_on_the_host_have_no_data_race(tsan_harness, dtype):
    """2, 4 and 8 digit passes, two tiles: every barrier and warp exchange of the select,
    the scans and the partners, under ThreadSanitizer."""
    score, pd = wide_scores(1, 64, 80, 7, dtype), random_inputs(1, 64, 80, seed=8)[1]
    env = {"TSAN_OPTIONS": "halt_on_error=1 exitcode=66 report_signal_unsafe=0"}
    host = run_host(tsan_harness, score, pd, 0.2, 11, env=env)
    cpu = ops.sample_dynamic_pairs(score, pd, ratio=0.2, seed=11)
    for h, c in zip(host, cpu, strict=True):
        assert torch.equal(h, c.to(h.dtype))
