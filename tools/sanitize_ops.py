"""Every op forward+backward once at small sizes: the workload compute-sanitizer checks.

    compute-sanitizer --tool memcheck --error-exitcode 1 python tools/sanitize_ops.py
    python tools/sanitize_ops.py --device cpu      # the same calls on the CPU kernels

Sizes are odd and not multiples of any block or tile size, so that every bounds guard and
halo load at an image edge runs; float32 and bfloat16; then a whole V3 loss stack (which
drives every op the way the trainer does) and empty batches (B = 0: no launch, or a clean
error). Exits non-zero on any exception, and prints what it ran.
"""

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks import bench_losses  # noqa: E402
from benchmarks.run import all_cases  # noqa: E402

SIZES = {"odd": (2, 37, 53), "one": (1, 9, 7)}
EMPTY = {"empty": (0, 16, 16)}


def run_case(case, device, dtype):
    """Forward, then backward when the op has one (grads None: forward only)."""
    forward, grads = case.make("ext", device, dtype, backward=True)
    outs = forward()
    if grads is not None:
        torch.autograd.backward(outs, grads)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda")
    a = p.parse_args(argv)
    device = a.device
    if torch.device(device).type == "cuda":
        import scdepth.ops

        if not (torch.cuda.is_available() and scdepth.ops.with_cuda()):
            sys.exit("sanitize_ops: needs a CUDA device and a CUDA build of scdepth._C")
    skipped = []
    ran = 0
    for dtype in (torch.float32, torch.bfloat16):
        for case in all_cases(SIZES, skipped):
            run_case(case, device, dtype)
            ran += 1
            print(f"ok  {case.op} {case.size} {str(dtype)[6:]}", flush=True)
    for case in all_cases(EMPTY, skipped):
        try:
            run_case(case, device, torch.float32)
            print(f"ok  {case.op} {case.size} (empty batch)", flush=True)
        except (ValueError, RuntimeError) as e:  # a clean error is fine, a crash is not
            print(f"ok  {case.op} {case.size} (empty batch rejected: {e})", flush=True)
        ran += 1
    for method in ("v1", "v3"):
        cfg = bench_losses.make_config(method, ssim_window=3)
        b = bench_losses.to_device(bench_losses.synthetic_batch(2, 40, 56), device)
        from scdepth.ops import get_backend

        total, terms = bench_losses.ours(get_backend("ext"), cfg, b)
        total.backward()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        print(f"ok  loss stack {method} ({', '.join(terms)})", flush=True)
        ran += 1
    for s in sorted(set(skipped)):
        print(f"note: {s}")
    print(f"sanitize_ops: {ran} runs on {device}, all completed")


if __name__ == "__main__":
    main()
