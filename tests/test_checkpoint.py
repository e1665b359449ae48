import os

import pytest
import torch

from scdepth import checkpoint


def test_round_trip_and_atomic_replace(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save({"step": 1, "w": torch.arange(3.0)}, path)
    checkpoint.save({"step": 2, "w": torch.arange(4.0)}, path)
    state = checkpoint.load(path)
    assert state["step"] == 2 and torch.equal(state["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_truncated_and_foreign_files_give_clear_errors(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save({"step": 1, "w": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated, corrupt"):
        checkpoint.load(path)
    torch.save({"step": 1}, path)
    with pytest.raises(checkpoint.CheckpointError, match="not a scdepth checkpoint"):
        checkpoint.load(path)
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nothing.pt")


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "payload": Evil()}, path)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(path)
    assert not (tmp_path / "pwned").exists()


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save({"step": 1}, path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(
        checkpoint.CheckpointError, match="disk is full.*previous checkpoint is intact"
    ):
        checkpoint.save({"step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_unwritable_folder_is_reported(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # unwritable for root too, unlike a chmod
    with pytest.raises(checkpoint.CheckpointError, match="not writable"):
        checkpoint.check_writable(blocker / "out")


def test_link_keeps_the_linked_content_when_the_source_is_saved_again(tmp_path, monkeypatch):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    checkpoint.save({"step": 1}, best)
    checkpoint.save({"step": 2}, last)
    assert checkpoint.link(last, best)
    checkpoint.save({"step": 3}, last)
    assert checkpoint.load(best)["step"] == 2 and checkpoint.load(last)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]

    def no_links(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert not checkpoint.link(last, best)
    assert checkpoint.load(best)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_weights_that_are_missing_or_do_not_fit_are_named(tmp_path):
    from scdepth.models import PoseNet

    state = {"pose_net": PoseNet(18).state_dict()}
    net = checkpoint.load_weights(PoseNet(18), state, "pose_net", "ck.pt")
    assert torch.equal(next(net.parameters()), next(iter(state["pose_net"].values())))
    with pytest.raises(checkpoint.CheckpointError, match="ck.pt holds no rectify_net"):
        checkpoint.load_weights(PoseNet(18), state, "rectify_net", "ck.pt")
    state["pose_net"].popitem()
    with pytest.raises(checkpoint.CheckpointError, match="ck.pt: pose_net does not fit"):
        checkpoint.load_weights(PoseNet(18), state, "pose_net", "ck.pt")
