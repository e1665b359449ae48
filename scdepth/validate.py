"""Validation during training: abs_rel against GT depth when the val scenes have it, else
the photometric loss; the snippet ATE when they have poses.txt; each epoch's picture sheet."""

from pathlib import Path

import torch

from . import pose_eval, viz
from .data.dataset import TrainFolder, ValFolder
from .data.layout import DatasetError
from .evaluate import evaluate_model
from .step import compute_losses


class Validator:
    def __init__(self, cfg):
        self.cfg, self.mode = cfg, None
        scenes = Path(cfg.data_root) / "training" / "val.txt"
        if not scenes.is_file() or not scenes.read_text().strip():
            return  # no validation split: best.pt follows last.pt
        self.pose_scenes = pose_eval.val_pose_scenes(cfg.data_root)  # [] without poses.txt
        try:
            self.folder = ValFolder(cfg.data_root, image_size=cfg.image_size, dataset=cfg.dataset)
            self.mode = "depth"
        except DatasetError:
            self.folder = TrainFolder(
                cfg.data_root,
                image_size=cfg.image_size,
                split="val",
                sequence_length=cfg.sequence_length,
                skip_frames=cfg.skip_frames,
                use_pseudo_depth=cfg.uses_pseudo_depth(),
                augment=False,
            )
            self.mode = "photo"

    def frames(self):
        n = len(self.folder)
        return n if not self.cfg.val_max_frames else min(n, self.cfg.val_max_frames)

    @torch.no_grad()
    def __call__(self, depth_net, pose_net, ops, device):
        """{metric: value} over the first val_max_frames validation frames; "ate_snippet"
        over the first val_max_frames frames of each val scene with poses."""
        if self.mode is None:
            return {}
        depth_net.eval()
        pose_net.eval()
        try:
            pose = {}
            if self.pose_scenes:
                pose["ate_snippet"] = pose_eval.snippet_ate(
                    pose_net, self.pose_scenes, self.cfg.image_size, device, self.cfg.val_max_frames
                )
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
                return {**{k: v for k, v in m["all"].items() if k != "count"}, **pose}
            total = 0.0
            for i in range(self.frames()):
                batch = torch.utils.data.default_collate([self.folder[i]])
                batch = {k: v.to(device) for k, v in batch.items()}
                _, terms, _ = compute_losses(depth_net, pose_net, batch, self.cfg, ops, 0)
                total += float(terms["photo"])
            return {"photo": total / max(self.frames(), 1), **pose}
        finally:
            depth_net.train()
            pose_net.train()

    @torch.no_grad()
    def sheet(self, depth_net, device):
        """A PNG-ready picture of a few validation frames: image, prediction, GT, error,
        dynamic mask (None without GT)."""
        if self.mode != "depth":
            return None
        depth_net.eval()
        rows = []
        stride = max(1, len(self.folder) // max(self.cfg.sheet_frames, 1))
        for i in list(range(0, len(self.folder), stride))[: self.cfg.sheet_frames]:
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
