"""The benchmark machinery: the public-code baseline computes what it claims, the entry point
and the report run end to end at a tiny size, the report judges targets correctly, and the
GPU kit handles its arguments and its CPU path. No timing is asserted here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is not an installed package

from benchmarks import bench_losses, public_baseline  # noqa: E402
from benchmarks import run as bench_run  # noqa: E402
from scdepth import ops  # noqa: E402
from tools import report  # noqa: E402

KIT = ROOT / "tools" / "gpu_check.sh"


def tiny_batch():
    return bench_losses.to_device(bench_losses.synthetic_batch(2, 32, 48), "cpu")


def test_public_normals_match_ours():
    # kornia's depth_to_normals (re-implemented) and our op and its reference compute the
    # same thing
    b = tiny_batch()
    depth, K = b["tgt_depth"].detach().double(), b["K"].double()
    public = public_baseline.depth_to_normals(depth, K)
    torch.testing.assert_close(public, ops.depth_normals(depth, K))
    torch.testing.assert_close(public, ops.reference.depth_normals(depth, K))


def test_public_ssim_of_identical_images_is_zero():
    x = torch.rand(1, 3, 16, 16)
    assert public_baseline.ssim_loss(x, x).abs().max() < 1e-6


@pytest.mark.parametrize("method", ["v1", "v3"])
def test_public_loss_stack_runs_and_reaches_depths_and_poses(method):
    b = tiny_batch()
    total, terms = bench_losses.public(method, b)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    total.backward()
    for t in [b["tgt_depth"], *b["ref_depths"], *b["poses"], *b["poses_inv"]]:
        assert t.grad is not None and torch.isfinite(t.grad).all()


def test_run_quick_writes_json_and_results_md(tmp_path):
    out, md = tmp_path / "r.json", tmp_path / "RESULTS.md"
    rc = bench_run.main(
        ["--quick", "--device", "cpu", "--parts", "bandwidth,ops,scaling", "--ops",
         "inverse_warp", "--json", str(out), "--md", str(md)]
    )  # fmt: skip
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["quick"] and result["machine"]["kind"] == "cpu"
    (row,) = result["ops"]
    assert row["op"] == "inverse_warp" and row["dtype"] == "float32"
    for backend in ("ext", "reference"):
        assert {"forward_s", "backward_s", "fwd_bwd_s", "peak_bytes"} <= set(row[backend])
    (scaling,) = result["scaling"]
    assert [p["factor"] for p in scaling["points"]] == [0.25, 1.0, 4.0]
    assert [p["pixels"] for p in scaling["points"]] == [2 * 32 * 48, 2 * 64 * 96, 2 * 128 * 192]
    text = md.read_text()
    assert "# Benchmark results" in text and "quick run" in text
    assert "GPU: not measured yet" in text


def test_loss_stack_benchmark_row(tmp_path):
    quiet = dict(warmup=0, repeat=1, peak_repeat=1, profile=False, log=lambda m: None)
    row = bench_losses.run("v3", "TINY", (1, 32, 48), "cpu", **quiet)
    for v in ("public", "ext", "reference"):
        assert row[v]["fwd_bwd_s"] > 0 and row[v]["peak_bytes"] > 0
    assert set(row["terms"]["public"]) == {
        "photo+geometry",
        "normals+matching",
        "mask_rank",
        "normal_rank",
    }


@pytest.mark.slow
def test_step_benchmark_row():
    from benchmarks import bench_step

    quiet = dict(warmup=0, repeat=1, peak_repeat=1, log=lambda m: None)
    row = bench_step.run("TINY", (1, 64, 64), "cpu", **quiet)
    assert row["ext"]["it_per_s"] > 0 and row["reference"]["peak_bytes"] > 0
    assert 0 <= row["ext"]["loss_share"] <= 1


def test_public_step_benchmark_times_each_variant_in_its_own_process():
    from benchmarks import bench_public_step

    variants = ("public", "ours_system", "ours_channels_last")
    row = bench_public_step.run(
        (1, 128, 128), repeat=1, variants=variants, profile=True, log=lambda m: None
    )
    assert set(row["variants"]) == set(variants)
    for v in row["variants"].values():
        assert v["step_s"] > 0 and v["peak_bytes"] > 0 and v["maxrss_bytes"] > 0
        assert v["page_faults"] >= 0 and any("convolution" in op["name"] for op in v["top_ops"])
        assert v["speedup_over_public"] > 0 and len(v["first_step_s"]) == 1
        assert v["host_cache"]["enabled"] == (v["host_memory"] == "cache")
    assert row["variants"]["public"]["speedup_over_public"] == 1.0
    assert row["variants"]["ours_channels_last"]["host_cache"]["hits"] > 0  # 2nd step: cached


def test_public_step_variants_name_their_allocator_and_each_runs():
    from benchmarks import bench_public_step as bps
    from benchmarks.bench_step import batch_for

    assert all(bps.is_variant(v) for v in bps.VARIANTS)
    assert bps.is_variant("ours_channels_last_compile_system")
    for bad in ("ours_compile_channels_last", "public_bf16", "ours_system_cache", "oursx"):
        assert not bps.is_variant(bad), bad
    memory = {v: bps.host_memory_of(v) for v in bps.VARIANTS}
    assert memory["public"] == memory["ours_system"] == "system"
    assert memory["public_cache"] == memory["ours"] == memory["ours_channels_last_bf16"] == "cache"
    batch = batch_for(1, 64, 64, "cpu")
    for v in bps.VARIANTS:
        if "compile" not in v:  # compile=all: tests/test_compile.py
            bps.make_step(v, batch)()


def test_public_step_trains_both_networks():
    """The public pattern's loss reaches every DepthNet and PoseNet weight it should."""
    from benchmarks import bench_public_step
    from benchmarks.bench_step import batch_for
    from scdepth.models import DepthNet, PoseNet

    depth_net, pose_net = DepthNet(18), PoseNet(18)
    total, terms = bench_public_step.public_step(depth_net, pose_net, batch_for(1, 64, 64, "cpu"))
    total.backward()
    assert set(terms) == {"photo", "geometry", "normal_matching", "mask_rank", "normal_rank"}
    for net in (depth_net, pose_net):
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def fake_result(kind="cpu", quick=False, **parts):
    machine = {"kind": kind, "device": "Test CPU", "cpu": "Test CPU", "cores": 2, "threads": 2,
               "torch": "2.x", "cuda": None}  # fmt: skip
    if kind == "cuda":
        machine.update(device="Test GPU", capability="9.0", memory_gib=80, cuda="13.0")
    return {"machine": machine, "device": kind, "quick": quick, "parts": list(parts),
            "_path": f"{kind}.json", **parts}  # fmt: skip


def op_row(op, speedup, size="KITTI B4 256x832", dtype="float32", frac=None):
    m = {"forward_s": 0.1, "backward_s": 0.1, "fwd_bwd_s": 0.2, "peak_bytes": 1 << 20}
    row = {"op": op, "size": size, "dtype": dtype, "ext": m, "reference": dict(m),
           "speedup_fwd_bwd": speedup, "memory_ratio": 1.0}  # fmt: skip
    if frac is not None:
        row.update(fraction_of_copy=frac, ext_GBps=frac * 3000)
    return row


def statuses(results):
    return {(label.split(" ")[0], where): status for label, where, _, status in
            report.check_targets(results)}  # fmt: skip


def test_report_judges_targets_and_lists_unmeasured_gpu():
    cpu = fake_result(
        ops=[op_row("inverse_warp", 2.5), op_row("photometric_error", 4.0),
             op_row("photometric_error", 9.0, size="NYU B8 256x320")],
        step=[{"method": "v3", "size": "KITTI B4 256x832", "amp": "none", "speedup": 1.3,
               "memory_ratio": 1.1, "missing_terms": [],
               "networks_s": 0.8, "speedup_bound": 1.25,
               "ext": {"it_per_s": 1, "peak_bytes": 1, "loss_share": 0.2, "step_s": 1.0},
               "reference": {"it_per_s": 1, "peak_bytes": 1, "loss_share": 0.3,
                             "step_s": 1.3}}],
    )  # fmt: skip
    s = statuses([cpu])
    assert s[("inverse_warp", "cpu")] == "**met**"
    assert s[("photometric_error", "cpu")] == "**MISSED**"  # judged at KITTI only
    assert s[("sample_dynamic_pairs", "cpu")] == "unmeasured"
    assert s[("V3", "cpu")] == "**MISSED**"  # faster, but more memory than the reference
    for op in ("inverse_warp", "photometric_error", "sample_dynamic_pairs", "V3", "memory-bound"):
        assert s[(op, "cuda")] == "unmeasured"
    text = report.render([cpu])
    assert "GPU: not measured yet" in text and "**MISSED**" in text
    assert "even free losses would give at most 1.25×" in text  # the diagnosis of the miss


def test_report_lists_a_part_unmeasured_only_where_no_run_of_the_device_ran_it():
    ops_run = fake_result(ops=[op_row("inverse_warp", 2.5)])
    step_run = dict(fake_result(), parts=["step"], label="a later step run")
    unmeasured = report.render([ops_run, step_run]).split("## Unmeasured")[1]
    assert "part ops not run" not in unmeasured and "part step not run" not in unmeasured
    assert unmeasured.count("CPU: part scaling not run") == 1


def test_report_judges_gpu_bandwidth_and_quick_runs():
    gpu = fake_result("cuda", ops=[op_row("inverse_warp", 4.0, frac=0.6),
                                   op_row("photometric_error", 12.0, frac=0.4)])  # fmt: skip
    rows = report.check_targets([gpu])
    bw = {label.split(": ")[-1]: status for label, _, _, status in rows if "bandwidth" in label}
    assert bw == {"inverse_warp float32": "**met**", "photometric_error float32": "**MISSED**"}
    quick = fake_result(quick=True, ops=[op_row("inverse_warp", 0.5, size="TINY B2 64x96")])
    assert statuses([quick])[("inverse_warp", "cpu")] == "quick run: not judged"


def test_report_reads_first_version_files(tmp_path):
    path = tmp_path / "old.json"
    machine = {"device": "X", "cores": 2, "threads": 2, "torch": "2"}
    path.write_text(json.dumps({"machine": machine, "results": [op_row("inverse_warp", 3)]}))
    r = report.load(str(path))
    assert r["ops"] and report.render([r])


def test_rewriting_results_keeps_the_other_scripts_sections(tmp_path):
    out = tmp_path / "RESULTS.md"
    kept = f"{report.KEPT}\n\n<!-- real-data:begin -->\nreal figures\n<!-- real-data:end -->\n"
    out.write_text("old generated part\n\n" + kept)
    report.write(str(out), [fake_result(ops=[op_row("inverse_warp", 3.0)])])
    text = out.read_text()
    assert "old generated part" not in text and "inverse_warp" in text
    assert text.endswith(kept)
    report.write(str(out), [fake_result(ops=[op_row("inverse_warp", 3.0)])])
    assert out.read_text() == text  # idempotent


# --- the GPU kit ----------------------------------------------------------------------------------


def kit(*args, timeout=300):
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(KIT), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.parametrize(
    "args", [[], ["--bogus", "out"], ["--only", "nope", "out"], ["a", "b"], ["--only"]]
)
def test_gpu_kit_usage_errors(args):
    p = kit(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "gpu_check:" in p.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_gpu_kit_without_gpu_fails_clearly_unless_dry_run(tmp_path):
    p = kit(str(tmp_path / "out"))
    assert p.returncode == 1
    assert "no CUDA device" in p.stdout and "--dry-run" in p.stdout
    p = kit("--dry-run", "--only", "memcheck,racecheck", str(tmp_path / "dry"))
    assert p.returncode == 0, p.stdout + p.stderr
    summary = (tmp_path / "dry" / "summary.txt").read_text()
    status = {line.split()[0]: line.split()[1] for line in summary.splitlines()}
    assert status == {"sanitize-cpu": "PASS", "memcheck": "SKIP", "racecheck": "SKIP"}
    assert "NOT RUN: no GPU" in summary
    assert "sanitize_ops: " in (tmp_path / "dry" / "sanitize-cpu.log").read_text()
