"""Validation during training: abs_rel against GT depth when the val scenes have it, the
photometric loss when they have none (or best_metric is photo), the snippet ATE when they
have poses.txt; each epoch's picture sheet.
For SC-DepthV2 also the mean rotation before and after rectification (rot_before, rot_after:
mean |angle| of r1 and r2, rad) of the validation pairs, and their rectified references in
the sheet."""

from pathlib import Path

import torch

from . import pose_eval, rectify, viz
from .data.folders import TrainFolder, ValFolder
from .data.layout import DatasetError
from .evaluate import evaluate_model, spread
from .step import compute_losses


class Validator:
    def __init__(self, cfg):
        self.cfg, self.mode, self.pairs = cfg, None, None
        scenes = Path(cfg.data_root) / "training" / "val.txt"
        if not scenes.is_file() or not scenes.read_text().strip():
            return  # no validation split: best.pt follows last.pt
        self.pose_scenes = pose_eval.val_pose_scenes(cfg.data_root)  # [] without poses.txt

        def sequences():  # the val scenes as (target, references), unaugmented
            return TrainFolder(
                cfg.data_root,
                image_size=cfg.image_size,
                split="val",
                sequence_length=cfg.sequence_length,
                skip_frames=cfg.skip_frames,
                use_pseudo_depth=cfg.uses_pseudo_depth(),
                augment=False,
            )

        try:
            self.folder = ValFolder(cfg.data_root, image_size=cfg.image_size, dataset=cfg.dataset)
            self.mode = "depth"
        except DatasetError:
            self.folder, self.mode = None, "photo"
        # the val scenes as sequences: without GT depth they are the validation (an error in
        # them is the user's to see); with GT their photometric error costs a pass per epoch,
        # taken only when it picks best.pt (experiments.best_epoch reads such runs' logs)
        self.sequences = []
        if self.mode == "photo" or cfg.best_metric == "photo" or cfg.method == "sc_depth_v2":
            try:
                self.sequences = sequences()
            except DatasetError:
                if self.mode == "photo":
                    raise
        if cfg.method == "sc_depth_v2":  # (target, references) to rectify
            self.pairs = self.sequences

    def indices(self, folder):
        """The val_max_frames (0: all) indices of `folder` validated, spread over its scenes."""
        return spread(len(folder), self.cfg.val_max_frames or len(folder))

    @torch.no_grad()
    def __call__(self, depth_net, pose_net, ops, device, rectify_net=None):
        """{metric: value} over val_max_frames validation frames spread over the val scenes;
        "ate_snippet" over the first val_max_frames frames of each val scene with poses."""
        if self.mode is None:
            return {}
        nets = [n for n in (depth_net, pose_net, rectify_net) if n is not None]
        for net in nets:
            net.eval()
        try:
            extra = {}
            if self.pose_scenes:
                extra["ate_snippet"] = pose_eval.snippet_ate(
                    pose_net,
                    self.pose_scenes,
                    self.cfg.image_size,
                    device,
                    self.cfg.val_max_frames,
                    rectify_net=rectify_net,
                )
            if self.pairs is not None and rectify_net is not None:
                extra.update(self.rotation(rectify_net, ops, device))
            if len(self.sequences) and (self.mode == "photo" or self.cfg.best_metric == "photo"):
                extra["photo"] = self.photo(depth_net, pose_net, ops, device, rectify_net)
            if self.mode == "depth":
                m = evaluate_model(
                    depth_net,
                    self.cfg.data_root,
                    self.cfg.dataset,
                    image_size=self.cfg.image_size,
                    split="val",
                    device=device,
                    progress=False,
                    max_images=self.cfg.val_max_frames,
                )
                return {**{k: v for k, v in m["all"].items() if k != "count"}, **extra}
            return extra
        finally:
            for net in nets:
                net.train()

    def photo(self, depth_net, pose_net, ops, device, rectify_net=None) -> float:
        """The photometric loss over val_max_frames validation sequences (eval mode)."""
        total, picks = 0.0, self.indices(self.sequences)
        for i in picks:
            batch = torch.utils.data.default_collate([self.sequences[i]])
            batch = {k: v.to(device) for k, v in batch.items()}
            _, terms, _ = compute_losses(
                depth_net, pose_net, batch, self.cfg, ops, 0, rectify_net=rectify_net
            )
            total += float(terms["photo"])
        return total / max(len(picks), 1)

    def rectified(self, rectify_net, ops, device, index):
        """(pair, rectify.Rectified) of validation pair `index`, r3_gt drawn from seed `index`."""
        pair = torch.utils.data.default_collate([self.pairs[index]])
        pair = {k: v.to(device) for k, v in pair.items()}
        gen = torch.Generator().manual_seed(index)
        return pair, rectify.rectify(rectify_net, pair["tgt"], pair["refs"], pair["K"], ops, gen)

    def rotation(self, rectify_net, ops, device):
        """Mean |r1| and |r2| over val_max_frames validation pairs (eval mode)."""
        picks = self.indices(self.pairs)
        if not picks:
            return {}
        terms = [self.rectified(rectify_net, ops, device, i)[1].terms for i in picks]
        n = len(terms)
        return {k: sum(float(t[k]) for t in terms) / n for k in ("rot_before", "rot_after")}

    @torch.no_grad()
    def sheet(self, depth_net, device, rectify_net=None, ops=None):
        """A PNG-ready picture of a few validation frames: image, prediction, GT, error,
        dynamic mask (without GT: None); for SC-DepthV2 then a few pairs rectified
        (viz.rectification_sheet)."""
        parts = [self.depth_sheet(depth_net, device)] if self.mode == "depth" else []
        parts = [p for p in parts if p is not None]
        if self.pairs is not None and rectify_net is not None and len(self.pairs):
            rectify_net.eval()
            rows = []
            for i in self.picks(len(self.pairs)):
                pair, rect = self.rectified(rectify_net, ops, device, i)
                rows.append(
                    {
                        "tgt": pair["tgt"][0],
                        "ref": pair["refs"][0, 0],
                        "rectified": rect.refs[0, 0],
                        "valid": rect.valid[0, 0],
                        "angle": float(rect.angles[0, 0].abs().mean()),
                    }
                )
            rectify_net.train()
            parts.append(viz.rectification_sheet(rows))
        return viz.stack(parts) if parts else None

    def picks(self, n):
        """sheet_frames indices spread over range(n)."""
        return spread(n, max(self.cfg.sheet_frames, 1))

    def depth_sheet(self, depth_net, device):
        depth_net.eval()
        rows = []
        for i in self.picks(len(self.folder)):
            item = self.folder[i]
            pred = depth_net(item["img"][None].to(device))[0, 0].float().cpu().numpy()
            rows.append(
                {
                    "img": item["img"],
                    "pred": pred,
                    "gt": item["depth"][0].numpy(),
                    "mask": item["mask"][0].numpy() if "mask" in item else None,
                }
            )
        depth_net.train()
        return viz.validation_sheet(rows) if rows else None
