"""A training process killed with SIGKILL at random moments, and while writing a checkpoint,
resumes from its last checkpoint; no checkpoint on disk is ever half-written."""

import random
import subprocess
import sys
import time

from scdepth import checkpoint

TOTAL = 3 * 3  # epochs x epoch_size


def command(root, out, resume):
    return [
        sys.executable,
        "-m",
        "scdepth.cli.train",
        "--out",
        str(out),
        "--no-progress",
        f"data_root={root}",
        "image_size=[64, 64]",
        "batch_size=1",
        "epochs=3",
        "epoch_size=3",
        "checkpoint_every=1",
        "num_workers=0",
        "val_max_frames=1",
        "sheet_frames=1",
    ] + (["--resume"] if resume else [])


def saved_step(out):
    path = out / "last.pt"
    return checkpoint.load(path)["step"] if path.exists() else 0  # raises if half-written


def kill(proc):
    proc.kill()
    proc.wait()


def wait_for(proc, condition, timeout=300):
    """Polls until condition() (True) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return False


def test_sigkill_at_random_moments_and_mid_write_then_resume(tiny_synthetic, tmp_path):
    out, rng = tmp_path / "run", random.Random(0)
    kills, mid_write, resumed_from = 0, 0, []
    # a random moment during start-up, then alternately: a random moment after the run has
    # saved again, and the instant a checkpoint write has begun (its temporary exists)
    for attempt, how in enumerate(["startup", "running", "writing", "running", "writing"]):
        before = saved_step(out)
        log = tmp_path / f"stderr{attempt}.txt"
        with open(log, "w") as err:
            proc = subprocess.Popen(
                command(tiny_synthetic, out, attempt > 0), stdout=subprocess.DEVNULL, stderr=err
            )
            if how == "startup":
                hit = not wait_for(proc, lambda: False, timeout=rng.uniform(0.5, 3.0))
            elif how == "running":
                m0 = mtime(out)
                hit = wait_for(proc, lambda m=m0: mtime(out) != m)  # saved once more
                time.sleep(rng.uniform(0.0, 1.5))
            else:
                hit = wait_for(proc, lambda: any(out.glob(".last.pt.*.tmp")))
            if proc.poll() is None:
                kill(proc)
        if proc.returncode == 0:
            break
        kills += 1
        mid_write += how == "writing" and hit
        after = saved_step(out)  # loadable: never half-written
        assert after >= before
        if before and after > before:  # it ran far enough to save again
            resumed_from.append((before, log.read_text()))
    assert kills >= 4 and mid_write >= 1 and resumed_from
    for step, err in resumed_from:
        assert f"at step {step}" in err  # each run continued from the last checkpoint
    final = subprocess.run(
        command(tiny_synthetic, out, True), capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stderr
    assert saved_step(out) == TOTAL
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def mtime(out):
    path = out / "last.pt"
    return path.stat().st_mtime_ns if path.exists() else None
