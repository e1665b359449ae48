"""The fault matrix (docs/cluster.md), each row a test: a training process killed with
SIGKILL at random moments and while writing a checkpoint, stopped with SIGTERM, or losing a
data-loading worker; two runs started into one folder; a checkpoint of another method or
version. Nothing saved is ever half-written, and a resume continues exactly."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from scdepth import checkpoint, config, run_control, train
from scdepth.cli import train as train_cli

TOTAL = 3 * 3  # epochs x epoch_size


def command(root, out, resume, *extra):
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
        *extra,
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


def weights(out):
    state = checkpoint.load(out / "last.pt")
    return state["step"], {k: v for net in ("depth_net", "pose_net") for k, v in state[net].items()}


def assert_same_weights(a, b):
    (step_a, wa), (step_b, wb) = a, b
    assert step_a == step_b == TOTAL and wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "the resumed run differs"


@pytest.fixture(scope="module")
def uninterrupted(tiny_synthetic, tmp_path_factory):
    """The reference: the same run, never interrupted (one loading worker, like the
    interrupted ones)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    cmd = command(tiny_synthetic, out, False, "num_workers=1", "log_every=1")
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return weights(out)


def resume_to_the_end(root, out):
    resumed = subprocess.run(
        command(root, out, True, "num_workers=1", "log_every=1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    return resumed


def children(pid):
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the worker")
def test_a_killed_loader_worker_stops_with_a_clear_error_and_resume_is_exact(
    tiny_synthetic, tmp_path, uninterrupted
):
    out = tmp_path / "run"
    cmd = command(tiny_synthetic, out, False, "num_workers=1", "log_every=1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert wait_for(proc, lambda: (out / "last.pt").exists() and children(proc.pid))
    for child in children(proc.pid):
        os.kill(child, signal.SIGKILL)  # what the out-of-memory killer does to a worker
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "a data-loading worker died" in err and "--resume continues from" in err
    saved = checkpoint.load(out / "last.pt")["step"]  # intact
    assert f"(step {saved})" in err
    resumed = resume_to_the_end(tiny_synthetic, out)
    assert f"at step {saved}" in resumed.stderr
    assert_same_weights(weights(out), uninterrupted)


def test_sigterm_saves_the_current_step_and_resume_is_exact(
    tiny_synthetic, tmp_path, uninterrupted
):
    out = tmp_path / "run"
    # no checkpoint before an epoch's end but the one SIGTERM asks for
    cmd = command(tiny_synthetic, out, False, "num_workers=1", "log_every=1")
    cmd[cmd.index("checkpoint_every=1")] = "checkpoint_every=0"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = out / "log.jsonl"
    assert wait_for(proc, lambda: log.exists() and '"kind": "train"' in log.read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    step = checkpoint.load(out / "last.pt")["step"]
    assert 0 < step < TOTAL and f"stopped by SIGTERM at step {step}" in err
    assert f"at step {step}" in resume_to_the_end(tiny_synthetic, out).stderr
    assert_same_weights(weights(out), uninterrupted)


def test_a_second_run_into_a_folder_in_use_is_refused_and_touches_nothing(
    tiny_synthetic, tmp_path, capsys
):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from scdepth.run_control import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(120)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        (out / "mine.txt").write_text("the other run's")
        before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
        argv = ["--out", str(out), "--no-progress", f"data_root={tiny_synthetic}"]
        assert train_cli.main([*argv, "image_size=[64, 64]", "epochs=1", "epoch_size=1"]) == 2
        assert f"{out} is in use by another scdepth-train" in capsys.readouterr().err
        assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before
    finally:
        holder.kill()
        holder.wait()
    with run_control.output_lock(out):  # the system dropped the dead holder's lock
        pass


def test_a_resume_that_would_change_the_method_is_refused(tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "run"
    train.train(tiny_config(tiny_synthetic, epochs=1), out, progress=False)
    saved = (out / "last.pt").read_bytes()
    argv = ["--out", str(out), "--no-progress", "--resume", f"data_root={tiny_synthetic}"]
    args = [*argv, "image_size=[64, 64]", "batch_size=2", "epoch_size=2"]
    assert train_cli.main([*args, "method=sc_depth_v1", "lr=0.001"]) == 2
    err = capsys.readouterr().err
    assert "method: the checkpoint has 'sc_depth_v3', the command asks 'sc_depth_v1'" in err
    assert "lr: the checkpoint has 0.0001, the command asks 0.001" in err
    assert (out / "last.pt").read_bytes() == saved
    # how it runs may change: workers, and epochs to train longer
    assert train_cli.main([*args, "num_workers=1", "--epochs", "2"]) == 0
    assert checkpoint.load(out / "last.pt")["step"] == 4


def test_a_checkpoint_of_another_version_is_refused_saying_what_differs(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    train.train(tiny_config(tiny_synthetic, epochs=1), out, progress=False)
    state = checkpoint.load(out / "last.pt")
    older = {**state, "format": "scdepth-checkpoint-0"}
    torch.save(older, tmp_path / "old.pt")
    with pytest.raises(checkpoint.CheckpointError, match="written as 'scdepth-checkpoint-0'"):
        checkpoint.load(tmp_path / "old.pt")
    newer = {**state, "config": {**state["config"], "a_later_setting": 1}}
    checkpoint.save(newer, out / "last.pt")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read.*a_later_setting"):
        train.train(tiny_config(tiny_synthetic, epochs=2), out, resume=True, progress=False)
    assert config.from_dict(state["config"]).method == "sc_depth_v3"


def test_a_connection_lost_to_a_worker_mid_batch_counts_as_its_death():
    # a worker killed while handing a batch over: the socket breaks before torch sees the death
    from types import SimpleNamespace

    from scdepth import train

    def batches():
        raise ConnectionResetError(104, "Connection reset by peer")
        yield

    with pytest.raises(RuntimeError) as e:
        train.Trainer.next_batch(SimpleNamespace(device=torch.device("cpu")), batches())
    assert train.loader_worker_died(e.value)
    assert "Connection reset by peer" in train.worker_death_message(e.value, Path("none.pt"))


def test_the_death_message_reads_the_checkpoint_again_when_the_death_interrupts_it(
    tiny_synthetic, tmp_path, monkeypatch
):
    # torch's SIGCHLD handler raises the worker's death wherever the main thread is: also
    # inside the read of last.pt that the message quotes
    from scdepth import train

    out = tmp_path / "run"
    train.train(tiny_config(tiny_synthetic, epochs=1), out, progress=False)
    real, calls = torch.load, []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Killed.")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", interrupted_once)
    message = train.worker_death_message(RuntimeError("DataLoader worker"), out / "last.pt")
    assert len(calls) == 2 and "--resume continues from" in message
