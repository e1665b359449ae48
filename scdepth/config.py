"""Training configuration: defaults in one place, YAML files and `key=value` overrides on top.

The defaults train SC-DepthV3 on the built-in synthetic dataset. `method` picks the loss set:
- sc_depth_v3: photometric + geometry consistency + normal matching + mask (depth) ranking
  + normal ranking (SC-DepthV3, TPAMI 2023: weights 1, 0.1, 0.1, 0.1, 0.1; no smoothness)
- sc_depth_v1: photometric + geometry consistency + smoothness (SC-Depth, weights 1, 0.1, 0.1)
- sc_depth_v2: V1's losses on references rectified by a RectifyNet (scdepth/rectify.py), plus
  rotation consistency and rotation triplet (SC-DepthV2, TPAMI 2022: weights 1, 1)
- monodepth2: photometric only, with the auto-mask and the per-pixel minimum
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

METHODS = ("sc_depth_v3", "sc_depth_v1", "sc_depth_v2", "monodepth2")

# The loss terms that read the pseudo-depth of leres_depth/ (step.loss_terms).
PSEUDO_DEPTH_TERMS = ("mask_rank", "normal_matching", "normal_rank")

# Loss weights per method (papers' defaults); `weights.<term>` overrides one.
METHOD_WEIGHTS = {
    "sc_depth_v3": dict(
        photo=1.0, geometry=0.1, smooth=0.0, normal_matching=0.1, mask_rank=0.1, normal_rank=0.1
    ),
    "sc_depth_v1": dict(
        photo=1.0, geometry=0.1, smooth=0.1, normal_matching=0.0, mask_rank=0.0, normal_rank=0.0
    ),
    "sc_depth_v2": dict(
        photo=1.0,
        geometry=0.1,
        smooth=0.1,
        normal_matching=0.0,
        mask_rank=0.0,
        normal_rank=0.0,
        rot_consistency=1.0,
        rot_triplet=1.0,
    ),
    "monodepth2": dict(
        photo=1.0, geometry=0.0, smooth=0.0, normal_matching=0.0, mask_rank=0.0, normal_rank=0.0
    ),
}


# best_metric auto on validation scenes without GT depth.
NO_GT_BEST_METRIC = "last"

# The settings that take one of a few words.
CHOICES = {
    "backend": ("ext", "reference"),
    "device": ("auto", "cpu", "cuda"),
    "amp": ("none", "auto", "bf16", "fp16"),
    "compile": ("none", "losses", "all"),
    "lr_schedule": ("constant", "cosine"),
    "min_rule": ("valid_first", "public"),
    "rank_scale": ("raw", "mean"),
    "pretrained": ("none", "imagenet"),
    "host_memory": ("cache", "system"),
    "best_metric": ("auto", "abs_rel", "photo", "last"),
}


@dataclass
class Config:
    # what to train
    method: str = "sc_depth_v3"
    dataset: str = "synthetic"
    data_root: str = "data/synthetic-indoor-24"
    synth_preset: str = "indoor"  # generated into data_root when it is missing (synthetic only)
    synth_scenes: int = 24  # training scenes generated (plus synth.VAL_SCENES val, one test)
    # (H, W), multiples of 32; below the synthetic data's own size (data/specs.py), so that the
    # default run fits a small CPU's time
    image_size: tuple = (96, 128)
    sequence_length: int = 3
    skip_frames: int = 1
    # model
    resnet_layers: int = 18
    # raw output x this = radians, for the PoseNet's and RectifyNet's rotations (the public
    # SC-Depth code's 0.01, the translation's; models/pose_net.py)
    pose_rotation_scale: float = 0.01
    pretrained: str = (
        "none"  # none | imagenet (torchvision weights, needs them cached or a network)
    )
    # a checkpoint (scdepth-train's, or public weights through scdepth-import-weights) whose
    # networks start the run instead of `pretrained`; those it lacks start as `pretrained`
    # says. Only the weights are taken: this config holds for everything else ("": none)
    init_from: str = ""
    # optimisation
    lr: float = 1e-4
    # cosine (default: lr to 0 over the run; the validation curve settles, RESULTS.md) |
    # constant (the public code); both after warmup_steps of a linear ramp. A function of
    # the step, so a resume follows it.
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    batch_size: int = 4
    epochs: int = 12
    epoch_size: int = 60  # random batches per epoch
    seed: int = 0
    # auto (bf16 where the CPU or GPU computes it natively, else none) | none | bf16 | fp16:
    # the networks' autocast dtype; the losses always run in float32
    amp: str = "auto"
    # losses (SC-Depth names); None = the method's default weights
    weights: dict = field(default_factory=dict)
    ssim_window: int = 3  # SC-Depth paper / Monodepth2; the public V3 code uses 7
    ssim_alpha: float = 0.85
    drr_ratio: float = 0.2  # share of pixels treated as dynamic (SC-DepthV3)
    drr_global_ratio: float = 0.1  # extra random pairs over the whole image (SC-DepthV3)
    rank_tau: float = 0.15  # ordinal-label margin of the ranking losses (SC-DepthV3)
    # depth the mask ranking loss compares: raw (the public code; not scale-invariant, so it
    # can move the global contrast) | mean (depth / its per-image mean: scale-invariant)
    rank_scale: str = "raw"
    no_ssim: bool = False
    no_auto_mask: bool = False
    no_dynamic_mask: bool = False
    no_min_optimize: bool = False
    # per-pixel minimum over the 2N warps: valid_first (lowest error among the valid ones) |
    # public (lowest error over all, the pixel dropped when that one is invalid: SC_Depth_pl's
    # compute_photo_and_geometry_loss)
    min_rule: str = "valid_first"
    no_drr: bool = False
    no_lsr: bool = False
    # running
    backend: str = "ext"  # ext | reference
    device: str = "auto"  # auto | cpu | cuda
    num_workers: int = 2
    # Same seed, data and thread count -> bit-identical runs on the CPU (torch's deterministic
    # algorithms; costs nothing measurable here). On a GPU the atomics of inverse_warp's
    # grad_src and of some torch kernels stay nondeterministic: reported once, not refused.
    deterministic: bool = True
    # torch.compile: none | losses (the loss terms, one whole graph) | all (and the networks)
    compile: str = "none"
    # the networks' weights (and so their activations) channels-last: faster convolutions on
    # the CPU (measured in benchmarks/RESULTS.md; not yet on a GPU); checkpoints are the same
    # either way
    channels_last: bool = True
    # cache (the extension's host cache keeps freed tensor memory for the next step instead
    # of mapping it anew: no page faults after the first step, scdepth/host_memory.py) |
    # system (torch's default allocator)
    host_memory: str = "cache"
    log_every: int = 10
    val_max_frames: int = 64  # validation frames per epoch (0: all)
    # what picks best.pt among the epochs: abs_rel (val GT depth), photo (val photometric
    # error), last (the last epoch), auto (abs_rel where the val scenes have GT depth, else
    # NO_GT_BEST_METRIC; benchmarks/RESULTS.md has the measurement behind it)
    best_metric: str = "auto"
    max_bad_steps: int = 20  # consecutive non-finite steps before training stops
    checkpoint_every: int = 0  # also write last.pt every N steps (0: at each epoch's end only)
    sheet_frames: int = 4  # validation frames drawn in each epoch's PNG sheet

    def self_discovered_mask(self) -> bool:
        """SC-Depth's 1 - D_diff weighting of the photometric error (not in Monodepth2)."""
        return not self.no_dynamic_mask and self.method != "monodepth2"

    def uses_pseudo_depth(self) -> bool:
        """Whether a loss term reads leres_depth/: only SC-DepthV3's dynamic region refinement
        (mask_rank) and local structure refinement (normal_matching, normal_rank) do, so V1,
        Monodepth2 and V3 with both no_drr and no_lsr train on scenes without it."""
        w = self.loss_weights()
        return any(w[k] for k in PSEUDO_DEPTH_TERMS)

    def loss_weights(self) -> dict:
        w = dict(METHOD_WEIGHTS[self.method])
        unknown = set(self.weights) - set(w)
        if unknown:
            raise ValueError(f"weights has unknown terms {sorted(unknown)}; known: {sorted(w)}")
        w.update({k: float(v) for k, v in self.weights.items()})
        if self.no_drr:
            w["mask_rank"] = 0.0
        if self.no_lsr:
            w["normal_matching"] = w["normal_rank"] = 0.0
        return w

    def validate(self) -> Config:
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)

        need(self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            words = ", ".join(allowed[:-1]) + f" or {allowed[-1]}"
            need(value in allowed, f"{key} must be {words}, got {value!r}")
        need(
            self.resnet_layers in (18, 50),
            f"resnet_layers must be 18 or 50, got {self.resnet_layers}",
        )
        h, w = self.image_size
        need(
            h % 32 == 0 and w % 32 == 0 and h > 0 and w > 0,
            f"image_size must be (H, W) multiples of 32, got {tuple(self.image_size)}",
        )
        need(
            self.sequence_length >= 3 and self.sequence_length % 2 == 1,
            f"sequence_length must be odd and >= 3, got {self.sequence_length}",
        )
        for name in (
            "batch_size",
            "epochs",
            "epoch_size",
            "skip_frames",
            "synth_scenes",
            "log_every",
            "max_bad_steps",
        ):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(
            isinstance(self.init_from, str) and self.init_from == self.init_from.strip(),
            f"init_from must be a checkpoint path (or empty), got {self.init_from!r}",
        )
        need(
            self.pose_rotation_scale > 0,
            f"pose_rotation_scale must be > 0, got {self.pose_rotation_scale}",
        )
        need(
            self.checkpoint_every >= 0,
            f"checkpoint_every must be >= 0, got {self.checkpoint_every}",
        )
        need(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        need(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        from .ops._checks import MAX_WINDOW, MIN_WINDOW  # the kernels' range

        need(
            self.ssim_window % 2 == 1 and MIN_WINDOW <= self.ssim_window <= MAX_WINDOW,
            f"ssim_window must be odd in [{MIN_WINDOW}, {MAX_WINDOW}], got {self.ssim_window}",
        )
        need(0 < self.drr_ratio < 1, f"drr_ratio must be in (0, 1), got {self.drr_ratio}")
        need(
            0 <= self.drr_global_ratio < 1,
            f"drr_global_ratio must be in [0, 1), got {self.drr_global_ratio}",
        )
        self.loss_weights()
        return self


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name, value):
    """A YAML or command-line value turned into the type of field `name`."""
    default = FIELDS[name].default if FIELDS[name].default is not dataclasses.MISSING else None
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = float(value) if isinstance(default, float) else yaml.safe_load(value)
        except ValueError:
            pass  # reported below as "must be a number"
        # yaml: "4" -> 4, "true" -> True, "[128, 160]" -> [128, 160]
    if name == "image_size":
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise ValueError(f"image_size must be [H, W], got {value!r}")
        return tuple(int(v) for v in value)
    if name == "weights":
        if not isinstance(value, dict):
            raise ValueError(f"weights must be a mapping term -> weight, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)) and not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool):
        if float(value) != int(value):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        return float(value)
    return str(value) if isinstance(default, str) else value


def apply(cfg: Config, values: dict, source: str) -> Config:
    """Sets `values` on cfg; keys `weights.<term>` set one loss weight."""
    for key, value in values.items():
        if key.startswith("weights."):
            cfg.weights = {**cfg.weights, key[len("weights.") :]: float(yaml.safe_load(str(value)))}
            continue
        if key not in FIELDS:
            raise ValueError(
                f"{source}: unknown config key {key!r}; known keys: {', '.join(FIELDS)}"
            )
        try:
            setattr(cfg, key, _coerce(key, value))
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    return cfg


def load(path=None, overrides=()) -> Config:
    """Defaults, then the YAML file `path`, then `key=value` overrides; validated."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except OSError as e:
            raise ValueError(f"cannot read config {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ValueError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of config keys")
        apply(cfg, values, str(path))
    pairs = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override must be key=value, got {item!r}")
        k, v = item.split("=", 1)
        pairs[k.strip()] = v
    apply(cfg, pairs, "command line")
    return cfg.validate()


def keys_set(path=None, overrides=()) -> set[str]:
    """The keys that the YAML file `path` and the `key=value` overrides set (as `load` reads
    them; call it after `load` succeeded)."""
    keys = {item.split("=", 1)[0].strip() for item in overrides}
    if path is not None:
        keys |= set(yaml.safe_load(Path(path).read_text()) or {})
    return keys


def to_dict(cfg: Config) -> dict:
    d = dataclasses.asdict(cfg)
    d["image_size"] = list(cfg.image_size)
    return d


def from_dict(d: dict) -> Config:
    """The config saved in a checkpoint."""
    return apply(Config(), d, "checkpoint").validate()
