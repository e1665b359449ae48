"""Checkpoints: written atomically, read without executing pickled code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, saved with
torch.save and loaded with torch.load(weights_only=True): a tampered file cannot run code,
and a truncated or corrupt one gives CheckpointError naming the file. Saving writes a
temporary file in the same folder, fsyncs it, then renames it over the old one, so a kill at
any moment leaves either the previous checkpoint or the new one, never half of one.
"""

import errno
import os
import tempfile
from pathlib import Path

import torch

from .config import from_dict
from .models import DepthNet, PoseNet, RectifyNet

FORMAT = "scdepth-checkpoint-1"


class CheckpointError(RuntimeError):
    pass


def check_writable(folder):
    """Fails early, with the reason, when checkpoints cannot be written into `folder`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        raise CheckpointError(f"output folder {folder} is not writable: {e.strerror}") from None


def remove_stale_temporaries(folder):
    """Deletes temporaries that a killed save left behind (never a finished checkpoint)."""
    for tmp in Path(folder).glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)


def save(state, path):
    """Atomically writes `state` (a dict) to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            why = "the disk is full" if e.errno == errno.ENOSPC else e.strerror
            raise CheckpointError(
                f"could not write checkpoint {path}: {why}; the previous checkpoint is intact"
            ) from e
        raise
    _fsync_dir(path.parent)


def link(src, dst):
    """Makes `dst` the finished checkpoint `src` too, atomically, without writing its bytes
    again: a hard link. save() only ever replaces a checkpoint with a new file, so `dst` keeps
    this content when `src` is saved again. False (and `dst` untouched) where the file system
    has no hard links: save there instead."""
    dst = Path(dst)
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.link.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
    except OSError:
        return False
    os.replace(tmp, dst)
    _fsync_dir(dst.parent)
    return True


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path, map_location="cpu"):
    """The state dict saved by `save`; CheckpointError for a missing, truncated, corrupt or
    foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # zip errors, unpickling refused, EOF: all mean "not a good file"
        raise CheckpointError(
            f"checkpoint {path} is truncated, corrupt or not a scdepth checkpoint ({e})"
        ) from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"checkpoint {path} is not a scdepth checkpoint ({FORMAT})")
    if state["format"] != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} was written as {state['format']!r}; this version of scdepth "
            f"reads {FORMAT!r}"
        )
    return state


def load_weights(net, state, key, path):
    """net with the weights state[key] of checkpoint `path`; CheckpointError when the
    checkpoint has none or they do not fit (another architecture)."""
    if key not in state:
        raise CheckpointError(f"checkpoint {path} holds no {key} (written by scdepth-train?)")
    try:
        net.load_state_dict(state[key])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path}: {key} does not fit the network ({e})") from None
    return net


def load_depth_model(path, device="cpu"):
    """(model, image_size) from a training checkpoint: model(img) takes a normalised
    [B, 3, H, W] batch (H, W multiples of 32; image_size is the training size) and returns
    depth [B, 1, H, W]."""
    state = load(path)
    if not {"config", "depth_net"} <= set(state):
        raise CheckpointError(f"checkpoint {path} holds no depth network")
    cfg = from_dict(state["config"])
    net = load_weights(DepthNet(cfg.resnet_layers, pretrained=False), state, "depth_net", path)
    return net.to(device).eval(), tuple(cfg.image_size)


def load_pose_model(path, device="cpu"):
    """(PoseNet, image_size, RectifyNet or None) in eval mode from a training checkpoint; the
    RectifyNet of an SC-DepthV2 run, whose poses compose its rotation (rectify.predict_pose)."""
    state = load(path)
    if "pose_net" not in state:
        raise CheckpointError(
            f"checkpoint {path} holds no PoseNet weights ('pose_net'); pose evaluation needs "
            "a checkpoint written by scdepth-train"
        )
    cfg = from_dict(state["config"])
    scale = cfg.pose_rotation_scale
    net = load_weights(PoseNet(18, rotation_scale=scale), state, "pose_net", path)
    rectify_net = None
    if cfg.method == "sc_depth_v2":
        rectify_net = RectifyNet(18, rotation_scale=scale)
        rectify_net = load_weights(rectify_net, state, "rectify_net", path).to(device).eval()
    return net.to(device).eval(), tuple(cfg.image_size), rectify_net


def init_networks(path, nets, resnet_layers: int):
    """Loads into each network of `nets` ({"depth_net": DepthNet, "pose_net": ..., None
    values skipped; the DepthNet a ResNet-`resnet_layers`) the weights that checkpoint `path`
    (scdepth-train's or scdepth-import-weights') holds for it: the start of a fine-tuning
    run (config init_from). Returns the names loaded; the networks it holds no weights for
    keep theirs. CheckpointError when it holds no depth network, or one that does not fit."""
    state = load(path)
    if not {"config", "depth_net"} <= set(state):
        raise CheckpointError(f"init_from {path}: holds no depth network")
    theirs = from_dict(state["config"]).resnet_layers
    if theirs != resnet_layers:
        raise CheckpointError(
            f"init_from {path}: its DepthNet is ResNet-{theirs}, this run's resnet_layers is "
            f"{resnet_layers}; set resnet_layers: {theirs}"
        )
    loaded = []
    for key, net in nets.items():
        if net is not None and key in state:
            load_weights(net, state, key, path)
            loaded.append(key)
    return loaded
