#!/usr/bin/env bash
# The device run behind benchmarks/results/step_profile (issues 15 and 14): one prepared
# call on a GPU machine, each stage under its own timeout so one slow stage cannot eat
# the rest; rows are appended to $OUT/step_profile/rows.jsonl as they are measured.
#
#   run from the project root on the GPU machine, with .device/site.tgz carried along
#   (bash ../shared/device/bundle.sh); OUT defaults to /tmp/step_profile_out.
set -u
OUT=${OUT:-/tmp/step_profile_out}
mkdir -p /tmp/site "$OUT/step_profile" && tar xzf .device/site.tgz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD
export JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache  # stages share compiled programs
unset MUJOCO_GL
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
bench() { local limit=$1; shift; timeout "$limit" python3 -m benchmarks.step_profile --out "$OUT/step_profile" "$@" \
  >> "$OUT/log.txt" 2>&1; echo "stage rc=$? ($limit s): $*" >> "$OUT/stages.txt"; }

if [ "${STAGES:-all}" = third ]; then  # session 4: what the first session's timeouts cut
  bench 170 --presets 1.5m --variants all pack8 pack16 pack32 --batch-size 256 --steps 60 --all-attention xla
  bench 110 --presets 160m --variants all --steps 15 --all-attention xla
  XLA_FLAGS=--xla_gpu_enable_triton_gemm=false bench 80 --presets 30m --variants all --steps 30 --all-attention xla
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 bench 150 --presets --max-batch 160m:512:1024 --all-attention xla
  tail -c 20000 "$OUT/log.txt" > "$OUT/log_tail.txt"; rm -f "$OUT/log.txt"; exit 0
fi
if [ "${STAGES:-all}" = second ]; then  # the second, shorter call of this session
  bench 125 --presets --passes 30m --steps 20
  bench 120 --presets 160m --variants baseline all --steps 20
  tail -c 20000 "$OUT/log.txt" > "$OUT/log_tail.txt"; rm -f "$OUT/log.txt"; exit 0
fi
# A. Before and after at the sizes (bf16, batch 512).
bench 200 --presets 1.5m 30m 160m --variants baseline all --steps 30
# B. Small cells: K updates per dispatch, and C cells of 1.5m as one program (batch 256).
bench 60 --presets 1.5m --variants chunk8 pack8 pack16 --steps 60
# C. Where the baseline step's time goes (its parts timed apart).
bench 60 --presets --passes 30m 160m --steps 20
# D. Each setting alone at 30m.
bench 90 --presets 30m --variants cudnn xla merged donate icdf --steps 30
# E. The largest batch that fits (XLA's memory plan at two batches, then one run).
XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 bench 100 --presets --max-batch 160m:512:1024 400m:256:512
tail -c 20000 "$OUT/log.txt" > "$OUT/log_tail.txt"; rm -f "$OUT/log.txt"
