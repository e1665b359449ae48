#!/usr/bin/env bash
# SC-Depth V1 against SC-DepthV2 on the synthetic indoor preset with strong hand-held rotation
# (benchmarks/RESULTS.md: "SC-DepthV2 against SC-Depth V1 under hand-held rotation"). Both runs use the same
# data, seed, image size and schedule; only `method` differs. Run from the repository root:
#
#   experiments/v2_compare.sh                 # two training runs (their time: RESULTS.md)
#   DATA=/tmp/d OUT=/tmp/r EPOCHS=1 EPOCH_SIZE=2 SIZE='[64,64]' \
#     SYNTH_ARGS='--size 64 80 --scenes 2 --frames 10' experiments/v2_compare.sh   # smoke test
#
# A run that was interrupted is resumed; a finished one (test_metrics.json) is not rerun.
# Prints a Markdown table of the test split: abs_rel etc. (all pixels) and, for V2, the mean
# |angle| of r1 and r2 (rotation before / after rectification) on the validation pairs at the
# end of training; with poses.txt in the scenes also the true mean |angle| of the data.
set -euo pipefail
PY=${PYTHON:-python}
DATA=${DATA:-data/synthetic-indoor-rot}
OUT=${OUT:-runs/v2_compare}
ROTATION=${ROTATION:-0.06}
EPOCHS=${EPOCHS:-4}
EPOCH_SIZE=${EPOCH_SIZE:-60}
SIZE=${SIZE:-[96,128]}
SEED=${SEED:-0}
if [ ! -d "$DATA/training" ]; then
    # shellcheck disable=SC2086  # SYNTH_ARGS is a list of options
    $PY -m scdepth.cli.synth --preset indoor --rotation "$ROTATION" --seed "$SEED" \
        --out "$DATA" --no-progress ${SYNTH_ARGS:-}
fi
for method in sc_depth_v1 sc_depth_v2; do
    run="$OUT/$method"
    [ -f "$run/test_metrics.json" ] && continue
    resume=()
    [ -f "$run/last.pt" ] && resume=(--resume)
    start=$(date +%s)
    $PY -m scdepth.cli.train --out "$run" "${resume[@]}" --no-progress --epochs "$EPOCHS" \
        --epoch-size "$EPOCH_SIZE" data_root="$DATA" image_size="$SIZE" seed="$SEED" \
        method="$method"
    echo "$method: $(($(date +%s) - start)) s" | tee -a "$OUT/times.txt"
done
$PY - "$DATA" "$OUT" <<'PY'
import json
import sys
from pathlib import Path

import numpy as np
import torch

from scdepth.data.poses import read_poses, relative_pose
from scdepth.geometry import mat2euler

data, out = Path(sys.argv[1]), Path(sys.argv[2])
angles = []
for poses in sorted((data / "training").glob("*/poses.txt")):
    T = read_poses(poses)
    rel = relative_pose(T[1:], T[:-1])  # T_ref<-tgt of consecutive frames
    angles.append(mat2euler(torch.from_numpy(rel[:, :3, :3])).abs().mean().item())
if angles:
    print(f"true mean |angle| between consecutive frames: {np.mean(angles):.4f} rad")
print("| method | abs_rel | sq_rel | rmse | δ < 1.25 | rotation before → after (rad) |")
print("| --- | --- | --- | --- | --- | --- |")
for method, name in (("sc_depth_v1", "SC-Depth V1"), ("sc_depth_v2", "SC-DepthV2")):
    m = json.loads((out / method / "test_metrics.json").read_text())["all"]
    log = [json.loads(x) for x in (out / method / "log.jsonl").read_text().splitlines()]
    val = [x for x in log if x["kind"] == "val" and "rot_before" in x]
    rot = f"{val[-1]['rot_before']:.4f} → {val[-1]['rot_after']:.4f}" if val else "–"
    print(
        f"| {name} | {m['abs_rel']:.3f} | {m['sq_rel']:.3f} | {m['rmse']:.3f} | {m['a1']:.3f} "
        f"| {rot} |"
    )
PY
