"""Synthetic data (scdepth-synth): photo-textured video with exact depth, camera motion and
movers.

Writes the SC-Depth layout (see layout.py) with ``num_scenes`` training scenes,
``val_scenes`` validation scenes (GT depth in ``depth/*.npy``, float32 metres, 0 where nothing
was hit) and one test scene in ``testing/`` (color, depth .npy, seg_mask). Every scene also gets
``seg_mask/`` (255 on dynamic pixels) and a simulated LeReS pseudo-depth in ``leres_depth/``;
every training and val scene the exact camera path in ``poses.txt`` (camera-to-world, see
poses.py) and ``times.txt`` (FRAME_RATE).
``contact_sheet.png`` shows a few test samples; ``synth.json`` records the parameters and the
measured share of dynamic pixels. The output depends only on the arguments (not on timing or
the machine's core count).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..losses import ordinal_labels
from .poses import POSES_FILE, TIMES_FILE, write_poses, write_times
from .render import render
from .scenes import DEFAULT_DYNAMIC, DEFAULT_SIZE, PRESETS

OUTPUTS = ("training", "testing", "contact_sheet.png", "synth.json")
# Strength of the simulated pseudo-depth's errors (simulate_pseudo_depth). 1.35 gives an
# abs_rel after scale-and-shift alignment of about 0.09 on the indoor preset (synth.json
# records it), LeReS's zero-shot figure on NYUv2 (AbsRel 9.0, Yin et al., CVPR 2021), the
# model SC-DepthV3 takes its pseudo-depth from. 1 is the model of earlier releases (0.07).
PSEUDO_ERROR = 1.35
# Validation scenes: best.pt and the validation curve follow them, and one 50-frame scene made
# both follow that scene's quirks (RESULTS.md 'Learning').
VAL_SCENES = 3
FRAME_RATE = 10.0  # frames per second of times.txt: the presets move about 0.1 s per frame


def simulate_pseudo_depth(
    depth: np.ndarray, rng: np.random.Generator, error: float = PSEUDO_ERROR
) -> np.ndarray:
    """GT depth -> LeReS-like relative depth as uint16 (larger = farther).

    Unknown scale and shift, a smooth monotone distortion (a random power), blurred edges,
    a low-frequency multiplicative error and pixel noise, so that ordinal labels agree
    with the GT for most pixel pairs but not all. `error` scales the distortion, the blur and
    both errors (0: GT up to scale and shift; pseudo_depth_quality measures the result).
    Pixels without GT (sky) count as far.
    """
    d = np.where(depth > 0, depth, 0)
    far = d.max() * 1.5 if d.max() > 0 else 1.0
    x = np.where(d > 0, d, far) / far
    x = x ** (rng.uniform(0.75, 1.3) ** error)
    if error > 0:
        x = cv2.GaussianBlur(x, (0, 0), 1.2 * error)
    h, w = x.shape
    coarse = rng.normal(size=(4, 4)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 0.02, x.shape).astype(np.float32)
    x = x * (1 + error * (0.06 * field + noise))
    x = x + rng.uniform(0.0, 0.05) * x.max()
    x = x / max(float(x.max()), 1e-6)
    return np.clip(np.round(x * 65535), 1, 65535).astype(np.uint16)


def pseudo_depth_quality(pairs, rng, tau=0.15, n_pairs=4000) -> dict:
    """How good the pseudo-depth of (GT depth, pseudo-depth) frames is, as a real model's
    would be judged: "ordinal_agreement", the share of the pairs the ranking loss would use
    (random pixel pairs that the pseudo-depth labels unequal at tau, both with GT) whose order
    the GT confirms; "aligned_abs_rel", abs_rel after a least-squares scale and shift (the
    zero-shot protocol of LeReS and MiDaS)."""
    agree, used, rel = 0, 0, []
    for gt, pseudo in pairs:
        ok = gt > 0
        g, p = gt[ok].astype(np.float64), pseudo[ok].astype(np.float64)
        a, b = rng.integers(0, g.size, (2, n_pairs))
        label = ordinal_labels(torch.from_numpy(p[a]), torch.from_numpy(p[b]), tau).numpy()
        keep = label != 0
        agree += int((np.sign(g[a] - g[b])[keep] == label[keep]).sum())
        used += int(keep.sum())
        scale, shift = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), g, rcond=None)[0]
        rel.append(float(np.mean(np.abs(np.maximum(scale * p + shift, 1e-3) - g) / g)))
    return {"ordinal_agreement": agree / max(used, 1), "aligned_abs_rel": float(np.mean(rel))}


def _to_uint8(rgb):
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def _colorize_depth(depth):
    """Inverse depth, colour-mapped (near = bright)."""
    inv = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0)
    inv = inv / max(np.percentile(inv[inv > 0], 99) if (inv > 0).any() else 1, 1e-6)
    return cv2.applyColorMap(_to_uint8(np.clip(inv, 0, 1)), cv2.COLORMAP_MAGMA)


def contact_sheet(samples, path: Path) -> None:
    """Rows of (frame, GT depth, pseudo-depth, dynamic mask over the frame)."""
    rows = []
    for rgb, depth, pseudo, dyn in samples:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        pseudo_bgr = _colorize_depth(pseudo.astype(np.float32) / 65535.0)
        overlay = bgr.copy()
        overlay[dyn] = (0.4 * overlay[dyn] + 0.6 * np.array([0, 0, 255])).astype(np.uint8)
        rows.append(np.concatenate([bgr, _colorize_depth(depth), pseudo_bgr, overlay], 1))
    cv2.imwrite(str(path), np.concatenate(rows, 0))


def _write_png(path: Path, img) -> None:
    if not cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")


def _render_scene(setup, size, n_frames, exposure_change, supersample, pseudo_error, rng, tick):
    """Yield (rgb uint8, depth, dynamic, pseudo uint16) per frame."""
    gain = np.exp(np.cumsum(rng.normal(0, exposure_change, n_frames))) if exposure_change else None
    for t in range(n_frames):
        R, c = setup.poses[t]
        f = render(
            setup.prims(t),
            setup.K,
            size,
            R,
            c,
            setup.light / np.linalg.norm(setup.light),
            setup.sky,
            ss=supersample,
        )
        rgb = f.rgb if gain is None else f.rgb * np.clip(gain[t], 0.6, 1.6)
        tick(1)
        yield _to_uint8(rgb), f.depth, f.dynamic, simulate_pseudo_depth(f.depth, rng, pseudo_error)


def _write_scene(out: Path, name: str, K, poses, frames):
    """Write one scene's frames; yield (t, share of dynamic pixels, sample for the sheet).

    Training and val scenes go to training/<name>/ (val ones with depth/) with poses.txt and
    times.txt, the test scene to testing/ with file names prefixed by the scene name.
    """
    if name.startswith("test"):
        dirs = {k: out / "testing" / k for k in ("color", "depth", "seg_mask")}
        prefix = f"{name}_"
    else:
        scene = out / "training" / name
        dirs = {"color": scene, "pseudo": scene / "leres_depth", "seg_mask": scene / "seg_mask"}
        if name.startswith("val"):
            dirs["depth"] = scene / "depth"
        prefix = ""
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    if "pseudo" in dirs:
        np.savetxt(dirs["color"] / "cam.txt", K, fmt="%.6f")
        # the renderer's camera: a camera point X sits at R X + c in the world
        world_from_cam = np.tile(np.eye(4), (len(poses), 1, 1))
        for T, (R, c) in zip(world_from_cam, poses, strict=True):
            T[:3, :3], T[:3, 3] = R, c
        write_poses(dirs["color"] / POSES_FILE, world_from_cam)
        write_times(dirs["color"] / TIMES_FILE, np.arange(len(poses)) / FRAME_RATE)
    for t, (rgb, depth, dyn, pseudo) in enumerate(frames):
        stem = f"{prefix}{t:06d}"
        _write_png(dirs["color"] / f"{stem}.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        _write_png(dirs["seg_mask"] / f"{stem}.png", dyn.astype(np.uint8) * 255)
        if "pseudo" in dirs:
            _write_png(dirs["pseudo"] / f"{stem}.png", pseudo)
        if "depth" in dirs:
            np.save(dirs["depth"] / f"{stem}.npy", depth)
        yield t, float(dyn.mean()), (rgb, depth, pseudo, dyn)


def _make_scene(
    out,
    name,
    ss,
    preset,
    image_size,
    n_frames,
    dynamic_fraction,
    exposure_change,
    supersample,
    rotation,
    pseudo_error,
    tick,
):
    """Render and write one scene: [(share of dynamic pixels, sample | None)] per frame; four
    frames keep their (rgb, depth, pseudo, dynamic) sample, for the contact sheet (test
    scene) and the pseudo-depth's quality."""
    rng = np.random.default_rng(ss)
    setup = PRESETS[preset](rng, image_size, n_frames, dynamic_fraction, rotation)
    frames = _render_scene(
        setup, image_size, n_frames, exposure_change, supersample, pseudo_error, rng, tick
    )
    every = max(1, n_frames // 4)
    return [
        (share, sample if t % every == 0 else None)
        for t, share, sample in _write_scene(out, name, setup.K, setup.poses, frames)
    ]


_PROGRESS = None  # a worker process's queue of rendered-frame counts


def _init_worker(q) -> None:
    global _PROGRESS
    _PROGRESS = q


def _worker(job):
    return _make_scene(*job, _PROGRESS.put)


def _run_parallel(jobs, workers, bar):
    """Scenes in worker processes (the renderer is bound by Python overhead, so threads do not
    help). 'spawn' avoids forking a parent whose thread pools (torch, OpenCV) are running."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(q,)
    ) as pool:
        futures = [pool.submit(_worker, job) for job in jobs]
        while not all(f.done() for f in futures):
            try:
                bar.update(q.get(timeout=0.2))
            except queue.Empty:
                pass
        wait(futures)
        results = [f.result() for f in futures]
    while bar.n < bar.total:  # counts still in the pipe
        try:
            bar.update(q.get(timeout=1.0))
        except queue.Empty:
            break
    return results


def _check_args(
    preset,
    image_size,
    num_scenes,
    val_scenes,
    frames_per_scene,
    dynamic_fraction,
    exposure_change,
    rotation,
    pseudo_error,
):
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if len(image_size) != 2 or min(image_size) < 16:
        raise ValueError(f"image_size must be (H, W) with both >= 16, got {image_size}")
    if num_scenes < 1:
        raise ValueError(f"num_scenes must be >= 1, got {num_scenes}")
    if frames_per_scene < 3:
        raise ValueError(f"frames_per_scene must be >= 3, got {frames_per_scene}")
    if not 0 <= dynamic_fraction < 1:
        raise ValueError(f"dynamic_fraction must be in [0, 1), got {dynamic_fraction}")
    if not 0 <= exposure_change <= 0.5:
        raise ValueError(f"exposure_change must be in [0, 0.5], got {exposure_change}")
    if not 0 <= rotation <= 0.3:
        raise ValueError(f"rotation must be in [0, 0.3] rad, got {rotation}")
    if not 1 <= val_scenes <= 100:
        raise ValueError(f"val_scenes must be in [1, 100], got {val_scenes}")
    if not 0 <= pseudo_error <= 10:
        raise ValueError(f"pseudo_error must be in [0, 10], got {pseudo_error}")


def _clear_output(out: Path, overwrite: bool) -> None:
    """Refuses a non-empty ``out`` unless ``overwrite``, which removes only what generate writes."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: not empty; pass overwrite=True (--overwrite) to replace")
        for name in OUTPUTS:
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def generate(
    out_dir,
    *,
    preset: str = "indoor",
    seed: int = 0,
    image_size=None,
    num_scenes: int = 4,
    val_scenes: int = VAL_SCENES,
    frames_per_scene: int = 50,
    dynamic_fraction: float | None = None,
    exposure_change: float = 0.02,
    rotation: float = 0.0,
    pseudo_error: float = PSEUDO_ERROR,
    supersample: int = 2,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Render ``num_scenes`` training scenes, ``val_scenes`` val scenes and one test scene
    into ``out_dir``.

    image_size (H, W) defaults to 128x160 indoor and 128x416 outdoor; dynamic_fraction
    (rough share of dynamic pixels) to 0.25 indoor and 0.1 outdoor; exposure_change is the
    per-frame standard deviation of the log exposure. rotation (rad) is the amplitude of an
    extra hand-held rotation shake (consecutive frames then differ by about 0.45 x rotation
    more per axis; 0: none; the scenes of a seed are otherwise the same). pseudo_error scales
    the simulated pseudo-depth's errors (simulate_pseudo_depth; its measured quality goes
    into synth.json). Scenes render in ``workers`` processes (default: one per core); the
    files do not depend on it. Refuses a
    non-empty ``out_dir`` unless ``overwrite`` (which then replaces only what this function writes).
    """
    # an unknown preset gets no size here: the check below names the preset
    image_size = tuple(int(v) for v in (image_size or DEFAULT_SIZE.get(preset, (0, 0))))
    if dynamic_fraction is None:
        dynamic_fraction = DEFAULT_DYNAMIC.get(preset, 0.2)
    _check_args(
        preset,
        image_size,
        num_scenes,
        val_scenes,
        frames_per_scene,
        dynamic_fraction,
        exposure_change,
        rotation,
        pseudo_error,
    )
    out = Path(out_dir)
    _clear_output(out, overwrite)
    training = out / "training"
    val = [f"val_{i:02d}" for i in range(val_scenes)]
    names = [f"scene_{i:02d}" for i in range(num_scenes)] + val + ["test_00"]
    # Each scene's random stream comes from (seed, its name): more training or val scenes
    # leave the others as they were, so runs on different amounts of data compare.
    seeds = [np.random.SeedSequence([seed, zlib.crc32(name.encode())]) for name in names]
    jobs = [
        (
            out,
            name,
            ss,
            preset,
            image_size,
            frames_per_scene,
            dynamic_fraction,
            exposure_change,
            supersample,
            rotation,
            pseudo_error,
        )
        for name, ss in zip(names, seeds, strict=True)
    ]
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    with tqdm(
        total=frames_per_scene * len(names),
        desc=f"scdepth-synth {preset}",
        unit="frame",
        disable=not progress,
    ) as bar:
        per_scene = (
            _run_parallel(jobs, workers, bar)
            if workers > 1
            else [_make_scene(*job, bar.update) for job in jobs]
        )
    per_frame = [row for rows in per_scene for row in rows]
    dyn_pixels = [share for share, _ in per_frame]
    samples = [[x for _, x in rows if x is not None] for rows in per_scene]
    sheet = samples[-1]  # the test scene's
    quality = pseudo_depth_quality(
        [(depth, pseudo) for rows in samples for _, depth, pseudo, _ in rows],
        np.random.default_rng(seed),
    )
    (training / "train.txt").write_text("".join(f"{n}\n" for n in names[:num_scenes]))
    (training / "val.txt").write_text("".join(f"{n}\n" for n in val))
    contact_sheet(sheet[:4], out / "contact_sheet.png")
    meta = {
        "preset": preset,
        "seed": seed,
        "image_size": list(image_size),
        "num_scenes": num_scenes,
        "val_scenes": val_scenes,
        "frames_per_scene": frames_per_scene,
        "dynamic_fraction": dynamic_fraction,
        "measured_dynamic_fraction": round(float(np.mean(dyn_pixels)), 4),
        "exposure_change": exposure_change,
        "rotation": rotation,
        "pseudo_error": pseudo_error,
        "pseudo_depth_quality": {k: round(v, 4) for k, v in quality.items()},
        "supersample": supersample,
        "depth": "float32 metres in .npy, 0 = no surface",
        "poses": f"training/<scene>/poses.txt camera-to-world; times.txt at {FRAME_RATE:g} fps",
    }
    (out / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
