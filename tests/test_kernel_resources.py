"""The CUDA kernels' resources, read from the built extension with cuobjdump
(tools/kernel_resources.py; no GPU needed, CI builds every CUDA source): no kernel
spills registers or keeps a stack frame, each launch fits its shared-memory budget, and no
kernel's registers cut its occupancy below the floor. Also the script's parts that need no
CUDA build: the occupancy rules, the name and output parsing, the traffic counter."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is not an installed package

import scdepth.ops as ops  # noqa: E402
from benchmarks import (  # noqa: E402
    bench_depth_normals,
    bench_normal_rank,
    bench_pairs,
    bench_photometric,
    bench_warp,
)
from tools import kernel_resources as kr  # noqa: E402

KIB = 1024
DTYPES = {"float", "double", "half", "bfloat16"}

# Registers may not limit occupancy below this (active warps / 64). A memory-bound kernel needs
# about bandwidth x latency in flight: 3.35 TB/s x ~0.7 µs ≈ 2.3 MB on an H100, ≈ 18 KB per
# SM. At 32 warps (50 %) that is 4-5 outstanding 128-byte warp loads per warp, which the tile
# and pixel loops issue; below it each warp would need ever more loads in flight. The float
# kernels are at 50-100 % today. float64 is the gradcheck type, not the training path: it
# only has to keep 2 blocks per SM. A change that needs more registers must lower this here,
# with its reason.
REGISTER_OCCUPANCY_FLOOR = {"float": 0.5, "half": 0.5, "bfloat16": 0.5, "double": 0.25}
# The largest per-block opt-in of any GPU of compute capability >= 8.0 that the +PTX build
# reaches: 99 KiB on 8.6, 8.9 and 12.0 (A100 163, H100 227). photometric_tile.h sizes its tiles
# so that every window fits it.
OPT_IN_BUDGET = 99 * KIB
# Stack frames that stay, with their reason (bytes at most). backward_kernel<double> on sm_80:
# ptxas keeps 64 registers and spills 12 bytes (ptxas -v: 16 bytes stack frame, 12 bytes
# spill stores / loads): stored once before the channel loop, 3 reloads per channel; float64
# is the gradcheck type.
STACK_ALLOWED = {("photometric::backward_kernel", "double", "sm_80"): 16}


@pytest.fixture(scope="module")
def table():
    if not ops.with_cuda():
        pytest.skip("the extension was built without CUDA (CI builds it with FORCE_CUDA=1)")
    rows = kr.resource_usage(kr.default_so())
    # the budgets and the allowed stack frames are those of CI's targets (setup.py's default
    # TORCH_CUDA_ARCH_LIST); a build for the local GPU's architecture alone is not checked
    archs = {r["arch"] for r in rows}
    if not archs & set(kr.ARCHS):
        pytest.skip(f"built for {sorted(archs)}; the checks cover {sorted(kr.ARCHS)}")
    return kr.kernel_table([r for r in rows if r["arch"] in kr.ARCHS], windows=kr.ALL_WINDOWS)


def test_every_kernel_has_a_launch_configuration_and_every_instantiation_is_built(table):
    unknown = sorted({k["mangled"] for k in table if not k["known"]})
    assert not unknown, f"add these kernels to tools/kernel_resources.py KERNELS: {unknown}"
    for arch in {k["arch"] for k in table}:
        built = {(k["kernel"], k["dtype"]) for k in table if k["arch"] == arch}
        expected = {(f"{ns}::{name}", d) for ns, name in kr.KERNELS for d in DTYPES}
        assert built == expected, arch


def test_no_spills_and_no_stack_frames(table):
    for k in table:
        where = f"{k['kernel']}<{k['dtype']}> on {k['arch']}"
        assert k["LOCAL"] == 0, f"{where} uses {k['LOCAL']} bytes of local memory"
        allowed = STACK_ALLOWED.get((k["kernel"], k["dtype"], k["arch"]), 0)
        assert k["STACK"] <= allowed, (
            f"{where} has a {k['STACK']}-byte stack frame: spills, a local array indexed at run "
            "time or a call (cuobjdump -sass shows STL/LDL); remove it or allow it here with "
            "the reason"
        )


def test_shared_memory_within_budget_for_every_window(table):
    for k in table:
        where = f"{k['kernel']}<{k['dtype']}> {k['launch']} on {k['arch']}"
        total = k["static_smem"] + k["dynamic_smem"]
        if k["opt_in"]:  # photometric_cuda.cu allow_smem: dynamic beyond 48 KiB
            assert k["kernel"].startswith("photometric::"), where
            assert total <= OPT_IN_BUDGET, f"{where} needs {total} bytes"
        else:
            assert total <= 48 * KIB, f"{where} needs {total} bytes without opting in"
        assert k["blocks_per_sm"] >= 1, f"{where} cannot launch"


def test_registers_keep_occupancy_above_the_floor(table):
    for k in table:
        floor = REGISTER_OCCUPANCY_FLOOR[k["dtype"]]
        assert k["register_occupancy"] >= floor, (
            f"{k['kernel']}<{k['dtype']}> on {k['arch']}: {k['REG']} registers allow "
            f"{k['register_occupancy']:.1%} occupancy, below the floor {floor:.0%}"
        )


def test_sm90_static_shared_memory_includes_the_reserved_kib(table):
    # kernel_resources.user_static_smem relies on it: sm_90 SHARED = sm_80 SHARED + 1 KiB for
    # every kernel that uses shared memory
    shared = {}
    for k in table:
        shared.setdefault((k["kernel"], k["dtype"]), {})[k["arch"]] = k["SHARED"]
    pairs = [s for s in shared.values() if {"sm_80", "sm_90"} <= set(s)]
    if not pairs:
        pytest.skip("needs a build for both sm_80 and sm_90")
    for s in pairs:
        assert s["sm_90"] == s["sm_80"] + KIB or s["sm_90"] == s["sm_80"] == 0, s


# --- the script's parts that need no CUDA build --------------------------------------------------


@pytest.mark.parametrize(
    "regs, dynamic, blocks, limited_by",
    [
        (32, 0, 8, {"warps", "registers"}),  # 16 warps per sub-partition: 64 warps
        (64, 0, 4, {"registers"}),  # 2048 registers per warp: 8 warps per sub-partition
        (65, 0, 3, {"registers"}),  # 2080 -> 2304 per warp: 7 per sub-partition, 28 warps
        (32, 46560, 3, {"shared"}),  # 47616 bytes per block with the reserved KiB: 164 KiB / it
        (32, 48 * KIB + 1, 0, {"shared"}),  # beyond 48 KiB without the opt-in: no launch
    ],
)
def test_occupancy_rules_on_sm80(regs, dynamic, blocks, limited_by):
    occ = kr.occupancy("sm_80", regs, 0, dynamic, opt_in=False)
    assert occ["blocks_per_sm"] == blocks
    assert set(occ["limited_by"]) == limited_by
    assert occ["occupancy"] == blocks * 8 / 64


def test_occupancy_opt_in_and_sm90_shared_memory():
    # 64 KiB + 1 KiB reserved per block: 2 blocks on 164 KiB, 3 on 228 KiB
    assert kr.occupancy("sm_80", 32, 0, 64 * KIB, opt_in=True)["blocks_per_sm"] == 2
    assert kr.occupancy("sm_90", 32, 0, 64 * KIB, opt_in=True)["blocks_per_sm"] == 3
    assert kr.occupancy("sm_90", 32, 0, 227 * KIB, opt_in=True)["blocks_per_sm"] == 1
    assert kr.occupancy("sm_90", 32, 0, 227 * KIB + 1, opt_in=True)["blocks_per_sm"] == 0


def test_photometric_smem_formulas_match_the_tile_header():
    # photometric_tile.h's own words: float64's 8-row backward tile needs at most 94 KiB (k 11)
    assert kr.photometric_smem("backward_kernel", "double", 11) == 96576
    # 16-row float tile at k = 3: x, y (18 x 34 each), 5 sums (18 x 32), 2 accumulators (16 x 32)
    elems = 2 * 18 * 34 + 5 * 18 * 32 + 2 * 16 * 32
    assert kr.photometric_smem("forward_kernel", "float", 3) == 4 * elems
    assert kr.photometric_smem("forward_kernel", "half", 3) == kr.photometric_smem(
        "forward_kernel", "float", 3
    )  # 16-bit types compute (and stage) in float


def test_demangle_and_parse_cuobjdump_output():
    text = """
Fatbin elf code:
================
arch = sm_90
code version = [1,8]

Resource usage:
 Common:
  GLOBAL:28 CONSTANT[4]:224
 Function _ZN7scdepth11photometric57_GLOBAL__N__6a373d97_19_photometric_cuda_cu_c187e408_532414forward_kernelIN3c108BFloat16EEEvPKT_S7_S7_PS5_S8_llliN2at10OpMathTypeIS5_E4typeEll:
  REG:32 STACK:0 SHARED:1024 LOCAL:0 CONSTANT[0]:616 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function _ZN7scdepth5pairs14partner_kernelIdEEvPKT_PKlPKiPlPallljmmd:
  REG:26 STACK:48 SHARED:0 LOCAL:8 CONSTANT[2]:16 CONSTANT[0]:624 TEXTURE:0
 Function _Z10other_kernelPf:
  REG:8 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:360
"""  # noqa: E501
    rows = kr.parse_resource_usage(text)
    assert [(r["arch"], r["REG"], r["STACK"], r["SHARED"], r["LOCAL"]) for r in rows] == [
        ("sm_90", 32, 0, 1024, 0),
        ("sm_90", 26, 48, 0, 8),
        ("sm_90", 8, 0, 0, 0),
    ]
    assert rows[1]["CONSTANT0"] == 624
    assert [kr.demangle(r["mangled"]) for r in rows] == [
        ("photometric", "forward_kernel", "bfloat16"),
        ("pairs", "partner_kernel", "double"),
        None,
    ]
    table = kr.kernel_table(rows)  # photometric: one entry per reported window
    assert [(k["kernel"], k["launch"], k["known"]) for k in table] == [
        ("photometric::forward_kernel", "k=3", True),
        ("photometric::forward_kernel", "k=7", True),
        ("pairs::partner_kernel", "", True),
        (None, None, False),
    ]
    assert table[0]["static_smem"] == 0  # sm_90's reserved KiB taken off
    assert table[0]["dynamic_smem"] == kr.photometric_smem("forward_kernel", "bfloat16", 3)


def test_errors_name_what_is_missing(tmp_path, monkeypatch):
    assert kr.main(["--so", str(tmp_path / "missing.so")]) == 1
    not_cuda = tmp_path / "plain.so"
    not_cuda.write_bytes(b"\x7fELF not a CUDA binary")
    try:
        kr.find_cuobjdump()
    except kr.ToolError:
        pass
    else:
        with pytest.raises(kr.ToolError, match="no CUDA kernels.*FORCE_CUDA=1"):
            kr.resource_usage(not_cuda)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    try:
        import nvidia

        monkeypatch.setattr(nvidia, "__path__", [str(tmp_path)])
    except ImportError:
        pass
    with pytest.raises(kr.ToolError, match="pip install nvidia-cuda-cuobjdump"):
        kr.find_cuobjdump()


def test_traffic_counter_reads_inputs_once_and_skips_views():
    x, y = torch.rand(10, 8), torch.rand(1, 8)  # y broadcasts: its 8 stored elements count
    with kr._TrafficMode() as mode:
        z = x + y  # reads 80 + 8, writes 80 elements
        z.t().reshape(-1, 10)  # views: nothing
        (z * z).sum()  # reads z once, writes 80; reads 80, writes 1
    assert mode.bytes == 4 * ((80 + 8 + 80) + (80 + 80) + (80 + 1))
    assert mode.ops == 3


def test_our_bytes_match_the_benchmarks_bytes_moved():
    # the per-kernel model and the benchmarks' op-level minimum agree (float32, KITTI)
    B, H, W = kr.KITTI
    t = kr.traffic_table(with_reference=False)
    by_op = {}
    for k in t["kernels"]:
        by_op[k["op"]] = by_op.get(k["op"], 0) + k["bytes"]
    f32 = torch.float32
    # inverse_warp: + the zero fill of grad_src and the pose partial sums, which the
    # benchmarks leave out
    blocks = B * -(-H * W // kr.THREADS)
    extras = bench_warp.C * 4 * B * H * W + 12 * 4 * blocks
    assert by_op["photometric_error"] == bench_photometric.bytes_moved(B, H, W)(f32)
    assert by_op["inverse_warp"] == bench_warp.bytes_moved(B, H, W)(f32) + extras
    # pairs: the benchmarks count the op's own inputs and outputs; the kernels move more
    # (5 more reads of the scores, S_b written and one element read per pair, idx_a read
    # back by the partner kernel); the benchmarks take k = 0.2 N unrounded
    n, k = B * H * W, B * round(0.2 * H * W)
    select = 5 * 4 * n + 4 * (n - k) + 4 * k + 8 * k
    assert by_op["sample_dynamic_pairs"] == pytest.approx(
        bench_pairs.bytes_moved(B, H, W)(f32) + select, rel=1e-5
    )
    # normal_rank_error: + the zero fill of grad_normal
    assert by_op["normal_rank_error"] == bench_normal_rank.bytes_moved(B, H, W)(f32) + 12 * n
    # depth_normals: the same (the backward's step 1 stays in shared memory)
    assert by_op["depth_normals"] == bench_depth_normals.bytes_moved(B, H, W)(f32)


NCU_CSV = """==PROF== Connected to process 1234
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","1234","python","host","void scdepth::warp::forward_kernel<float>(const float *)","1","7","(256, 1, 1)","(3328, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_read.sum","byte","30,000,000"
"0","1234","python","host","void scdepth::warp::forward_kernel<float>(const float *)","1","7","(256, 1, 1)","(3328, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_write.sum","byte","7,500,000"
"0","1234","python","host","void scdepth::warp::forward_kernel<float>(const float *)","1","7","(256, 1, 1)","(3328, 1, 1)","0","9.0","Command line profiler metrics","launch__registers_per_thread","register/thread","46"
"0","1234","python","host","void scdepth::warp::forward_kernel<float>(const float *)","1","7","(256, 1, 1)","(3328, 1, 1)","0","9.0","Command line profiler metrics","sm__warps_active.avg.pct_of_peak_sustained_active","%","55.5"
"1","1234","python","host","void scdepth::warp::forward_kernel<float>(const float *)","1","7","(256, 1, 1)","(3328, 1, 1)","0","9.0","Command line profiler metrics","launch__registers_per_thread","register/thread","99"
"""  # noqa: E501


def fake_ncu(folder, stdout, rc=0):
    (folder / "out.txt").write_text(stdout)
    ncu = folder / "ncu"
    ncu.write_text(f"#!/bin/sh\ncat '{folder / 'out.txt'}'\nexit {rc}\n")
    ncu.chmod(0o755)


def test_ncu_output_is_read_and_its_failures_are_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    fake_ncu(tmp_path, NCU_CSV)
    metrics, note = kr.measure_ncu()
    (name,) = metrics
    assert "warp::forward_kernel<float>" in name
    assert metrics[name] == {  # the first launch's values, thousands separators read
        "dram_read_bytes": 30e6,
        "dram_write_bytes": 7.5e6,
        "regs": 46.0,
        "achieved_occupancy_pct": 55.5,
    }
    fake_ncu(tmp_path, "==ERROR== ERR_NVGPUCTRPERM - no permission to the counters\n", rc=1)
    metrics, note = kr.measure_ncu()
    assert metrics == {} and "ncu failed (exit 1)" in note and "ERR_NVGPUCTRPERM" in note


def test_measured_figures_sit_next_to_the_paper_ones():
    traffic = kr.traffic_table(with_reference=False)
    warp_fwd = next(k for k in traffic["kernels"] if k["kernel"] == "warp::forward_kernel")
    name = "void scdepth::warp::forward_kernel<float>(float const*, float const*)"
    result = {
        "traffic": traffic,
        "measured": {
            "device": "Test GPU",
            "capability": "sm_90",
            "peak_bandwidth": 4e12,
            "times": {"inverse_warp": {name: {"launches": 1.0, "mean_us": 25.0}}},
            "ncu": {
                name: {
                    "regs": 46.0,
                    "theoretical_occupancy_pct": 62.5,
                    "achieved_occupancy_pct": 55.5,
                }
            },  # fmt: skip
            "ncu_note": "ncu: test",
        },
    }
    lines = kr.render_measured(result)
    (row,) = [x for x in lines if "| warp::forward_kernel |" in x]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    achieved = warp_fwd["bytes"] / 25e-6
    assert cells[:7] == [
        "inverse_warp",
        "warp::forward_kernel",
        "1",
        "25.0",
        f"{warp_fwd['bytes'] / 4e12 * 1e6:.1f}",
        f"{achieved / 1e9:.0f}",
        f"{achieved / 4e12:.0%}",
    ]
    assert cells[7] == "46" and cells[9] == "62% / 56%"
    # kernels that did not run show as such, not as zeros
    assert any("| photometric::forward_kernel | not seen |" in x for x in lines)
