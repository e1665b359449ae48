"""Public weights as scdepth checkpoints (scdepth-import-weights).

Two layouts, read by name and shape (the mapping below is this project's own):

- ``sc_depth_pl``: SC-Depth V1/V2/V3's PyTorch Lightning ``.ckpt``. Its ``state_dict`` holds
  ``depth_net.*`` (``encoder.encoder.<torchvision ResNet>``, ``decoder.upconvs0.<i>.conv.conv``,
  ``decoder.upconvs1.<i>.conv.conv``, ``decoder.dispconvs.<scale>.conv``), ``pose_net.*``
  (``encoder.encoder.<ResNet-18 on 6 channels>``, ``decoder.conv_squeeze``,
  ``decoder.convs_pose.<0..2>``) and for V2 ``rectify_net.*``; ``hyper_parameters`` the run's
  options (``resnet_layers``, ``dataset_name``, ``model_version``).
- ``monodepth2``: a model folder: ``encoder.pth`` (``encoder.<ResNet>``, ``height``, ``width``),
  ``depth.pth`` (``decoder.<n>.conv.conv`` for the ten up-convolutions in order,
  ``decoder.<10 + scale>.conv`` for the disparity heads), ``pose_encoder.pth`` and ``pose.pth``
  (``net.0`` squeeze, ``net.1..3``; 6 outputs per predicted frame, axis-angle then translation).

Each part either maps exactly, maps with a difference of computation that is recorded as an
approximation (refused with ``strict``), or is refused with the keys and shapes that do not
fit. docs/models.md lists which is which.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import checkpoint, config
from .data.specs import DATASETS
from .models import DepthNet, PoseNet

LAYOUTS = ("sc_depth_pl", "monodepth2")
MONODEPTH2_FILES = ("encoder.pth", "depth.pth", "pose_encoder.pth", "pose.pth")
MAX_LISTED = 8  # problems named in one refusal message

UPSAMPLING = (
    "depth decoder: SC-Depth's upsamples its features bilinearly, ours by nearest neighbour "
    "(Monodepth2's); the weights are the same, the depth differs slightly"
)
DISPARITY_RANGE = (
    "depth: Monodepth2's disparity is 0.01 + 9.99 sigmoid (min_depth 0.1, max_depth 100), "
    "ours 0.01 + 10 sigmoid: depth differs by less than 0.1%"
)
AXIS_ANGLE = (
    "pose: Monodepth2's rotation outputs are an axis-angle vector, ours reads them as Euler "
    "angles (x, y, z): equal to first order, so for the small rotations between consecutive "
    "frames the poses differ by a term of second order in the angle"
)


class ImportRefused(ValueError):
    """What does not fit our networks, naming keys and shapes."""


@dataclass
class Imported:
    """Our state dicts ({"depth_net": ..., "pose_net": ...}) and what the source said."""

    nets: dict
    resnet_layers: int
    image_size: tuple[int, int] | None
    method: str
    dataset: str | None = None
    approximations: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)


# --- reading foreign pickles -----------------------------------------------------------------


class Opaque(dict):
    """Stands in for any class a foreign checkpoint names (argparse.Namespace, Lightning's
    AttributeDict, numpy scalars): keeps the pickled arguments and state, runs no code."""

    origin = "?"

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):  # a stand-in for a function the file would call
        return Opaque(*args)


_TRUSTED = {
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("collections", "OrderedDict"),
    ("torch", "Size"),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _TRUSTED:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return type(name, (Opaque,), {"origin": f"{module}.{name}"})


def _load(f, **kwargs):
    return _Unpickler(f, **kwargs).load()


# torch.load reads through pickle_module.Unpickler, and for pre-1.6 files also .load
_RESTRICTED = types.SimpleNamespace(Unpickler=_Unpickler, load=_load, __name__="restricted")


def read_foreign(path) -> dict:
    """A public checkpoint's dict: tensors are rebuilt, every other class the file names is
    an Opaque stand-in, so that reading it never runs code from the file."""
    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"{path} does not exist")
    try:
        out = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RESTRICTED)
    except Exception as e:  # zip, pickle and EOF errors all mean "not a readable checkpoint"
        raise ImportRefused(f"{path} is not a readable PyTorch checkpoint ({e})") from None
    if not isinstance(out, dict):
        raise ImportRefused(f"{path} holds a {type(out).__name__}, not a dict of tensors")
    return out


def plain(value):
    """Numbers, strings and booleans of an options object (Namespace stand-in or dict)."""
    if isinstance(value, Opaque):
        value = value.state if isinstance(getattr(value, "state", None), dict) else dict(value)
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, (str, int, float, bool))}


# --- mapping names ---------------------------------------------------------------------------


def _shape(t) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def rename(src: dict, prefix: str, rules, unused=()) -> tuple[dict, list[str]]:
    """{our key: (their key, tensor)} for the tensors of `src` under `prefix`, renamed by the
    first of `rules` ((regex, replacement or function of the match)) that matches the rest of
    the name; names matching `unused` ((regex, why)) are listed instead. A name no rule knows
    keeps its own name, so that place() reports it as having no place."""
    mapped, skipped = {}, []
    for key, t in src.items():
        if not key.startswith(prefix) or not torch.is_tensor(t):
            continue
        rest = key[len(prefix) :]
        why = next((w for pattern, w in unused if re.fullmatch(pattern, rest)), None)
        if why is not None:
            skipped.append(f"{key} {_shape(t)}: {why}")
            continue
        ours = rest
        for pattern, repl in rules:
            m = re.fullmatch(pattern, rest)
            if m:
                ours = repl(m) if callable(repl) else m.expand(repl)
                break
        mapped[ours] = (key, t)
    return mapped, skipped


def encoder_rules(their_prefix: str):
    """A torchvision ResNet under `their_prefix` -> our ResnetEncoder's `encoder.net.`."""
    rules = [(re.escape(their_prefix) + r"(.+)", r"encoder.net.\1")]
    unused = [(re.escape(their_prefix) + r"fc\..+", "ImageNet classifier, unused by an encoder")]
    return rules, unused


def place(template: dict, mapped: dict, what: str) -> dict:
    """Our state dict for a network whose state_dict() is `template`, from `mapped`; a
    refusal naming every tensor missing, without a place, or of another shape."""
    problems, out = [], {}
    for key, ref in template.items():
        if key not in mapped:
            if key.endswith("num_batches_tracked"):  # files from before torch 0.4.1 lack it
                out[key] = torch.zeros_like(ref)
                continue
            problems.append(f"nothing for our {key} {_shape(ref)}")
            continue
        theirs, t = mapped[key]
        if t.shape != ref.shape:
            problems.append(f"{theirs} {_shape(t)} where our {key} is {_shape(ref)}")
            continue
        out[key] = t.detach().to(ref.dtype).clone()
    problems += [
        f"{theirs} {_shape(t)} has no place"
        for k, (theirs, t) in mapped.items()
        if k not in template
    ]
    if problems:
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise ImportRefused(f"{what} does not fit: " + "; ".join(problems[:MAX_LISTED]) + more)
    return out


def resnet_layers(src: dict, prefix: str) -> int:
    """50 when the encoder has bottleneck blocks (conv3), else 18; a ResNet-34/101/152 is
    refused by place() with the blocks it has beyond ours."""
    return 50 if f"{prefix}layer1.0.conv3.weight" in src else 18


# --- SC-Depth (sc_depth_pl) ------------------------------------------------------------------

SC_DEPTH_DECODER = [
    (r"decoder\.upconvs0\.(\d)\.conv\.conv\.(weight|bias)", r"decoder.up0.\1.1.\2"),
    (r"decoder\.upconvs1\.(\d)\.conv\.conv\.(weight|bias)", r"decoder.up1.\1.1.\2"),
    (r"decoder\.dispconvs\.0\.conv\.(weight|bias)", r"decoder.disp.1.\1"),
]
SC_DEPTH_POSE = [
    (r"decoder\.conv_squeeze\.(weight|bias)", r"decoder.0.\1"),
    (r"decoder\.convs_pose\.(\d)\.(weight|bias)", lambda m: f"decoder.{2 * int(m[1]) + 2}.{m[2]}"),
]
COARSE_HEADS = "disparity head of a coarser scale, used in training only"
SC_DEPTH_METHODS = {"v1": "sc_depth_v1", "v3": "sc_depth_v3"}


def from_sc_depth(path) -> Imported:
    ckpt = read_foreign(path)
    src = ckpt.get("state_dict")
    if not isinstance(src, dict) or not any(k.startswith("depth_net.") for k in src):
        raise ImportRefused(
            f"{path}: no state_dict with depth_net.* tensors (an SC-Depth PyTorch Lightning "
            f".ckpt has one; keys found: {sorted(ckpt)[:MAX_LISTED]})"
        )
    options = plain(plain_hparams(ckpt))
    layers = resnet_layers(src, "depth_net.encoder.encoder.")
    method = SC_DEPTH_METHODS.get(str(options.get("model_version")), "sc_depth_v1")
    out = Imported({}, layers, None, method, options=options)
    dataset = options.get("dataset_name")
    out.dataset = dataset if dataset in DATASETS else None
    enc_rules, enc_unused = encoder_rules("encoder.encoder.")
    depth = (f"depth_net (DepthNet, ResNet-{layers})", DepthNet(layers))
    unused = [*enc_unused, (r"decoder\.dispconvs\.[1-3]\.conv\.(weight|bias)", COARSE_HEADS)]
    out.nets["depth_net"] = _map(
        src, "depth_net.", [*enc_rules, *SC_DEPTH_DECODER], unused, *depth, out
    )
    out.approximations.append(UPSAMPLING)
    pose = _optional(
        any(k.startswith("pose_net.") for k in src),
        "pose_net.*",
        lambda: _map(
            src,
            "pose_net.",
            [*enc_rules, *SC_DEPTH_POSE],
            enc_unused,
            "pose_net (PoseNet, ResNet-18)",
            PoseNet(18),
            out,
        ),
        out,
    )
    if pose is not None:
        out.nets["pose_net"] = pose
    rectify = [k for k in src if k.startswith("rectify_net.")]
    if rectify:
        out.refused.append(_rectify_refusal(src, rectify))
    return out


def _rectify_refusal(src, keys) -> str:
    last = "rectify_net.decoder.convs_pose.2.weight"
    shape = _shape(src[last]) if last in src else "?"
    return (
        f"rectify_net.* ({len(keys)} tensors, e.g. {last} {shape}): SC-DepthV2's RectifyNet "
        "halves the image pair (bilinear) before its encoder and leaves its output unscaled, "
        "ours runs on the full-size pair; not imported, so the PoseNet predicts without "
        "rectification"
    )


def plain_hparams(ckpt: dict):
    """The run's options of a Lightning checkpoint: hyper_parameters, or its "hparams"."""
    hp = ckpt.get("hyper_parameters", {})
    inner = hp.get("hparams") if isinstance(hp, dict) else None
    return inner if inner is not None else hp


def _map(src, prefix, rules, unused, what, net, imported):
    mapped, skipped = rename(src, prefix, rules, unused)
    imported.unused += skipped
    return place(net.state_dict(), mapped, what)


def _optional(present: bool, what: str, build, imported):
    """A part that may be absent or refused without refusing the whole import."""
    if not present:
        imported.refused.append(f"{what}: not in the file")
        return None
    try:
        return build()
    except ImportRefused as e:
        imported.refused.append(str(e))
        return None


# --- Monodepth2 ------------------------------------------------------------------------------


def _md2_decoder(m) -> str:
    n = int(m[1])
    return f"decoder.up{n % 2}.{n // 2}.1.{m[2]}"


MD2_DECODER = [
    (r"decoder\.(\d)\.conv\.conv\.(weight|bias)", _md2_decoder),
    (r"decoder\.10\.conv\.(weight|bias)", r"decoder.disp.1.\1"),
]
MD2_POSE = [
    (r"net\.0\.(weight|bias)", r"decoder.0.\1"),
    (r"net\.([1-3])\.(weight|bias)", lambda m: f"decoder.{2 * int(m[1])}.{m[2]}"),
]


def monodepth2_files(source) -> dict[str, Path]:
    """The model folder's files ({name: path}); `source` is the folder or one file in it."""
    folder = Path(source)
    folder = folder.parent if folder.is_file() else folder
    if not (folder / "encoder.pth").is_file() or not (folder / "depth.pth").is_file():
        raise ImportRefused(
            f"{folder}: a Monodepth2 model folder holds encoder.pth and depth.pth (and "
            "pose_encoder.pth, pose.pth for a PoseNet)"
        )
    return {n: folder / n for n in MONODEPTH2_FILES if (folder / n).is_file()}


def from_monodepth2(source) -> Imported:
    files = monodepth2_files(source)
    enc, dec = read_foreign(files["encoder.pth"]), read_foreign(files["depth.pth"])
    layers = resnet_layers(enc, "encoder.")
    size = (enc.get("height"), enc.get("width"))
    size = size if all(isinstance(v, int) for v in size) else None
    out = Imported({}, layers, size, "monodepth2", options=plain(enc))
    rules, unused = encoder_rules("encoder.")
    unused = [*unused, (r"decoder\.1[1-3]\.conv\.(weight|bias)", COARSE_HEADS)]
    what = f"encoder.pth + depth.pth (DepthNet, ResNet-{layers})"
    out.nets["depth_net"] = _map(
        {**enc, **dec}, "", [*rules, *MD2_DECODER], unused, what, DepthNet(layers), out
    )
    out.approximations.append(DISPARITY_RANGE)
    present = "pose_encoder.pth" in files and "pose.pth" in files
    pose = _optional(present, "pose_encoder.pth, pose.pth", lambda: _md2_pose(files, out), out)
    if pose is not None:
        out.nets["pose_net"] = pose
        out.approximations.append(AXIS_ANGLE)
    return out


def _md2_pose(files, imported) -> dict:
    enc, dec = read_foreign(files["pose_encoder.pth"]), read_foreign(files["pose.pth"])
    bottleneck = "encoder.layer1.0.conv3.weight"
    if bottleneck in enc:
        raise ImportRefused(
            f"pose_encoder.pth is a ResNet-50 ({bottleneck} {_shape(enc[bottleneck])}), our "
            "PoseNet a ResNet-18: not imported"
        )
    rules, unused = encoder_rules("encoder.")
    mapped, skipped = rename({**enc, **dec}, "", [*rules, *MD2_POSE], unused)
    imported.unused += skipped
    last = mapped.get("decoder.6.weight")
    if last is not None and last[1].shape[0] % 6 == 0 and last[1].shape[0] >= 6:
        for key in ("decoder.6.weight", "decoder.6.bias"):
            theirs, t = mapped[key]
            # their first frame's [axis-angle, translation] -> our [translation, rotation];
            # the outputs of further frames are not used by Monodepth2's own pose either
            mapped[key] = (theirs, torch.cat([t[3:6], t[0:3]]))
    return place(PoseNet(18).state_dict(), mapped, "pose_encoder.pth + pose.pth (PoseNet)")


# --- a public file given where a scdepth checkpoint is expected -------------------------------

MONODEPTH2_KEYS = ("encoder.conv1.weight", "decoder.0.conv.conv.weight", "net.0.weight")


def public_layout(path) -> str | None:
    """The public layout of `path` ("sc_depth_pl" or "monodepth2") when it is one, else None;
    read as read_foreign reads, running none of the file's code."""
    try:
        content = read_foreign(path)
    except ImportRefused:
        return None
    state = content.get("state_dict")
    if isinstance(state, dict) and any(str(k).startswith("depth_net.") for k in state):
        return "sc_depth_pl"
    if any(k in content for k in MONODEPTH2_KEYS):
        return "monodepth2"
    return None


def import_hint(path) -> str | None:
    """What to run when a public checkpoint is given to a command that reads ours."""
    layout = public_layout(path)
    if layout is None:
        return None
    path = Path(path)
    what, source = {
        "sc_depth_pl": ("an SC-Depth PyTorch Lightning checkpoint", path),
        "monodepth2": ("a file of a Monodepth2 model folder", path.parent),
    }[layout]
    return (
        f"{path} is {what}, not a scdepth checkpoint: convert it first with "
        f"scdepth-import-weights {source} --from {layout} --out CHECKPOINT"
    )


# --- the command's work ----------------------------------------------------------------------

READERS = {"sc_depth_pl": from_sc_depth, "monodepth2": from_monodepth2}


def read_public(source, layout: str) -> Imported:
    if layout not in READERS:
        raise ValueError(f"--from must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return READERS[layout](source)


def image_size_of(imported: Imported, size) -> tuple[int, int]:
    """--size, else the source's training size (Monodepth2's height/width, SC-Depth's
    dataset's); a refusal when neither is known."""
    if size is not None:
        return tuple(int(v) for v in size)
    if imported.image_size is not None:
        return tuple(imported.image_size)
    if imported.dataset is not None:
        return tuple(DATASETS[imported.dataset].image_size)
    raise ImportRefused("the file does not say its training size: give --size H W")


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_weights(source, layout, out, *, size=None, strict=False, log=print) -> Imported:
    """Reads `source` in `layout`, writes our checkpoint `out` (config, depth_net, pose_net
    when mapped, and "source": layout, files with their SHA-256, approximations, refusals
    and unused tensors). With `strict`, any approximation or refused part is an error."""
    imported = read_public(source, layout)
    if strict and (imported.approximations or imported.refused):
        inexact = "; ".join(imported.approximations + imported.refused)
        raise ImportRefused(f"--strict: not an exact import: {inexact}")
    values = {
        "method": imported.method,
        "resnet_layers": imported.resnet_layers,
        "image_size": list(image_size_of(imported, size)),
        "pose_rotation_scale": 0.01,  # both layouts scale the raw pose output by 0.01
    }
    if imported.dataset is not None:
        values["dataset"] = imported.dataset
    cfg = config.apply(config.Config(), values, f"{layout} import").validate()
    files = monodepth2_files(source).values() if layout == "monodepth2" else [Path(source)]
    record = {
        "layout": layout,
        "files": {str(p): _sha256(p) for p in files},
        "approximations": imported.approximations,
        "refused": imported.refused,
        "unused": imported.unused,
        "options": imported.options,
    }
    checkpoint.save({"config": config.to_dict(cfg), **imported.nets, "source": record}, out)
    for line in imported.approximations:
        log(f"approximation: {line}")
    for line in imported.refused:
        log(f"not imported: {line}")
    return imported
