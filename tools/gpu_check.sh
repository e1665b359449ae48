#!/usr/bin/env bash
# GPU validation kit: proves the CUDA kernels on the present card and measures them.
#
#   tools/gpu_check.sh [options] OUTDIR
#
# Stages (each logs to OUTDIR/<stage>.log; a summary goes to OUTDIR/summary.txt):
#   env        python, torch, CUDA, nvidia-smi, compute-sanitizer found or not
#   build      scdepth._C in place with FORCE_CUDA=1 for this card's architecture
#              (TORCH_CUDA_ARCH_LIST from the device); checks that the CUDA kernels loaded
#   tests      pytest -m cuda (the CUDA tests; they skip without a GPU)
#   memcheck   compute-sanitizer --tool memcheck over tools/sanitize_ops.py
#   racecheck  compute-sanitizer --tool racecheck over tools/sanitize_ops.py
#   bench      python -m benchmarks.run on the GPU, float32 and bfloat16 -> results-gpu.json
#   report     OUTDIR/RESULTS.md from results-gpu.json and the repository's CPU results
#   resources  every kernel's registers, shared memory, spills and occupancy on paper, and the
#              DRAM bytes each must move, next to the measured kernel times, achieved bandwidth
#              and (with Nsight Compute's ncu) occupancy and DRAM bytes: python -m
#              tools.kernel_resources --measure, appended to OUTDIR/RESULTS.md and
#              OUTDIR/kernel-resources.json (without a GPU: the paper figures only)
#
# Options:
#   --dry-run     no GPU needed: build with FORCE_CUDA=1 for sm_90 (proves the CUDA code
#                 compiles), run the CUDA tests (they skip), run sanitize_ops.py on the CPU
#                 (the sanitizers are skipped, said so), a quick CPU benchmark, the report,
#                 the kernel resources on paper
#   --skip-build  use the extension already built in place
#   --quick       benchmarks at a tiny size (checks the machinery only)
#   --only LIST   comma-separated stages to run (default: all)
#   -h, --help
#
# Needs nothing from the network. Exit status: 0 when every stage that ran passed, 1 when
# any failed (the summary says which and where its log is), 2 on a usage error.
# Environment: PYTHON (default: python3, or python), KIT_BUDGET_S (default 570, 3600 with
# --dry-run: stages are cut at it, so that the kit ends within 10 minutes on an H100),
# KIT_BUILD_S (default 420: the build stage's own limit; a loaded 2-core CPU needs ~900).
set -u -o pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

DRY_RUN=0; SKIP_BUILD=0; QUICK=0; ONLY=""; OUTDIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --skip-build) SKIP_BUILD=1 ;;
    --quick) QUICK=1 ;;
    --only) [ $# -ge 2 ] || { echo "gpu_check: --only needs a list of stages" >&2; exit 2; }
            ONLY="$2"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "gpu_check: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$OUTDIR" ] || { echo "gpu_check: one OUTDIR only (got $OUTDIR and $1)" >&2; exit 2; }
       OUTDIR="$1" ;;
  esac
  shift
done
[ -n "$OUTDIR" ] || { echo "gpu_check: OUTDIR is required" >&2; usage >&2; exit 2; }

STAGES="env build tests memcheck racecheck bench report resources"
if [ -n "$ONLY" ]; then
  for s in ${ONLY//,/ }; do
    case " $STAGES " in *" $s "*) ;; *) echo "gpu_check: unknown stage $s (stages: $STAGES)" >&2; exit 2 ;; esac
  done
fi
wanted() { [ -z "$ONLY" ] || case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
mkdir -p "$OUTDIR" || { echo "gpu_check: cannot create $OUTDIR" >&2; exit 1; }
OUTDIR="$(cd "$OUTDIR" && pwd)"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
BUDGET="${KIT_BUDGET_S:-$([ $DRY_RUN -eq 1 ] && echo 3600 || echo 570)}"
START=$(date +%s)
SUMMARY="$OUTDIR/summary.txt"
: > "$SUMMARY"
FAILED=0

say() { echo "gpu_check: $*"; }
record() {  # stage status seconds note
  printf '%-12s %-5s %5ss  %s\n' "$1" "$2" "$3" "$4" >> "$SUMMARY"
  [ "$2" = FAIL ] && FAILED=1
  say "$1: $2 ($3 s) $4"
}
remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }

# run_stage NAME CAP_S NOTE COMMAND...: runs COMMAND with its output in OUTDIR/NAME.log,
# stopped after min(CAP_S, what is left of the budget).
run_stage() {
  local name="$1" cap="$2" note="$3"; shift 3
  local left; left=$(remaining)
  if [ "$left" -le 10 ]; then
    record "$name" FAIL 0 "not started: the ${BUDGET} s budget is spent"
    return 1
  fi
  [ "$cap" -gt "$left" ] && cap="$left"
  local t0=$(date +%s) rc
  say "== $name (limit ${cap} s): $*"
  timeout --kill-after=10 "$cap" "$@" > "$OUTDIR/$name.log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    record "$name" PASS "$dt" "$note"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    record "$name" FAIL "$dt" "timed out after ${cap} s; see $name.log"
  else
    record "$name" FAIL "$dt" "exit $rc; see $name.log: $(tail -n 3 "$OUTDIR/$name.log" | tr '\n' ' ' | cut -c1-200)"
  fi
  return $rc
}

# --- env ----------------------------------------------------------------------------------------
HAS_GPU=$("$PYTHON" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
SANITIZER=""
for c in "$(command -v compute-sanitizer 2>/dev/null)" \
         "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" \
         "${CUDA_HOME:-/usr/local/cuda}/compute-sanitizer/compute-sanitizer" \
         /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer; do
  if [ -n "$c" ] && [ -x "$c" ]; then SANITIZER="$c"; break; fi
done
if wanted env; then
  {
    echo "date: $(date -u +%FT%TZ)"; echo "root: $ROOT"; echo "python: $PYTHON"
    "$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda); print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
    command -v nvidia-smi > /dev/null && nvidia-smi || echo "nvidia-smi: not found"
    command -v nvcc > /dev/null && nvcc --version | tail -n 2 || echo "nvcc: not on PATH"
    echo "compute-sanitizer: ${SANITIZER:-not found}"
    echo "git: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed files"
  } > "$OUTDIR/env.log" 2>&1
  record env PASS 0 "gpu=$HAS_GPU dry_run=$DRY_RUN sanitizer=${SANITIZER:-none}"
fi
if [ "$HAS_GPU" != 1 ] && [ $DRY_RUN -eq 0 ]; then
  record gpu FAIL 0 "torch sees no CUDA device; run with --dry-run to exercise the kit on a CPU"
  echo; cat "$SUMMARY"; exit 1
fi
if [ "$HAS_GPU" = 1 ]; then
  ARCH=$("$PYTHON" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))")
  DEVICE=cuda
else
  ARCH=9.0  # dry run: compile for an H100 anyway, to prove the CUDA code builds
  DEVICE=cpu
fi

# --- build --------------------------------------------------------------------------------------
if wanted build; then
  if [ $SKIP_BUILD -eq 1 ]; then
    record build SKIP 0 "--skip-build: using the extension built in place"
  else
    run_stage build "${KIT_BUILD_S:-420}" "FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$ARCH, in place" \
      env FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$PYTHON" setup.py build_ext --inplace
  fi
  if "$PYTHON" -c "import scdepth.ops as o, sys; sys.exit(0 if o.with_cuda() else 1)" \
      >> "$OUTDIR/build.log" 2>&1; then
    record build-check PASS 0 "scdepth._C imports and has its CUDA kernels"
  else
    record build-check FAIL 0 "scdepth._C does not import or was built without CUDA; see build.log"
  fi
fi

# --- tests --------------------------------------------------------------------------------------
if wanted tests; then
  run_stage tests 240 "pytest -m cuda$([ "$HAS_GPU" = 1 ] || echo ' (no GPU: they skip)')" \
    "$PYTHON" -m pytest -m cuda -q -rs --junitxml="$OUTDIR/tests.xml" tests
fi

# --- sanitizers ---------------------------------------------------------------------------------
for tool in memcheck racecheck; do
  wanted "$tool" || continue
  if [ "$HAS_GPU" != 1 ] || [ -z "$SANITIZER" ]; then
    why=$([ "$HAS_GPU" != 1 ] && echo "no GPU" || echo "compute-sanitizer not found")
    if [ "$tool" = memcheck ]; then
      # the sanitizers' workload still runs, on the CPU kernels, to prove the script
      run_stage sanitize-cpu 120 "sanitize_ops.py on the CPU (the workload of the sanitizers)" \
        "$PYTHON" tools/sanitize_ops.py --device cpu
    fi
    record "$tool" SKIP 0 "NOT RUN: $why; the CUDA kernels are not sanitised by this run"
    continue
  fi
  extra=() envs=()
  [ "$tool" = racecheck ] && extra=(--racecheck-report hazard)
  # no caching allocator under memcheck: an overrun must reach memory cudaMalloc did not give
  # (PyTorch reads only whether the variable is set)
  [ "$tool" = memcheck ] && envs=(PYTORCH_NO_CUDA_MEMORY_CACHING=1)
  run_stage "$tool" 240 "compute-sanitizer --tool $tool: no errors" \
    env "${envs[@]}" "$SANITIZER" --tool "$tool" "${extra[@]}" --error-exitcode 1 \
    --print-limit 50 "$PYTHON" tools/sanitize_ops.py --device cuda
done

# --- benchmarks ---------------------------------------------------------------------------------
RESULTS="$OUTDIR/results-$DEVICE.json"
if wanted bench; then
  args=(--device "$DEVICE" --json "$RESULTS")
  if [ "$DEVICE" = cuda ]; then args+=(--dtypes float32,bfloat16); fi
  if [ $QUICK -eq 1 ] || [ "$DEVICE" = cpu ]; then args+=(--quick); fi
  run_stage bench 300 "python -m benchmarks.run ${args[*]}" "$PYTHON" -m benchmarks.run "${args[@]}"
fi

# --- report -------------------------------------------------------------------------------------
if wanted report; then
  inputs=()
  [ -f "$ROOT/benchmarks/results/cpu.json" ] && [ "$DEVICE" = cuda ] && inputs+=("$ROOT/benchmarks/results/cpu.json")
  [ -f "$RESULTS" ] && inputs+=("$RESULTS")
  if [ ${#inputs[@]} -eq 0 ]; then
    record report FAIL 0 "no results to render ($RESULTS missing)"
  else
    notes=()
    [ -f "$ROOT/benchmarks/results/notes.md" ] && notes=(--notes "$ROOT/benchmarks/results/notes.md")
    run_stage report 60 "$OUTDIR/RESULTS.md" \
      "$PYTHON" -m tools.report "${inputs[@]}" "${notes[@]}" -o "$OUTDIR/RESULTS.md"
  fi
fi

# --- kernel resources -------------------------------------------------------------------------
if wanted resources; then
  res_args=(--json "$OUTDIR/kernel-resources.json" --md "$OUTDIR/RESULTS.md")
  if [ "$HAS_GPU" = 1 ]; then
    res_args+=(--measure)
    NCU=$(command -v ncu || ls "${CUDA_HOME:-/usr/local/cuda}/bin/ncu" 2>/dev/null || true)
    note="on paper and measured (ncu: ${NCU:-not found, so no occupancy or DRAM bytes measured})"
  else
    note="on paper only: no GPU, the measured figures are NOT RUN"
  fi
  run_stage resources 240 "$note" "$PYTHON" -m tools.kernel_resources "${res_args[@]}"
fi

echo
echo "gpu_check summary ($(( $(date +%s) - START )) s, logs in $OUTDIR):"
cat "$SUMMARY"
if [ $FAILED -ne 0 ]; then
  echo "gpu_check: FAILED"
  exit 1
fi
echo "gpu_check: all stages that ran passed"
exit 0
