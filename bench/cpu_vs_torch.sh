#!/usr/bin/env bash
# mdlm's CPU training step against PyTorch's on the same cores, in one run,
# with PyTorch at its best thread setting as the anchor.
# Each case runs the identical computation on both sides: bench/cpustep writes
# the initial weights and the noised batches, then times mdlm's step (forward,
# SUBS loss, backward, global-norm clip, AdamW; float32, dropout 0);
# bench/torch_step.py loads the same files into a PyTorch DiT and times the same
# step. PyTorch runs in every thread setting: intra-op threads (torch
# set_num_threads) 1 and 2 times OpenBLAS threads (OPENBLAS_NUM_THREADS) 1 and
# 2, each with glibc's allocator and with jemalloc (settings ending in -je:
# glibc gives large tensors' pages back after every step), and its default
# (neither set, glibc). Rounds alternate between mdlm and every
# setting; the script checks that both sides give the same losses over the
# first 5 steps (1e-4 relative), prints each side's and setting's median and
# minimum step times and peak memory, the achieved GFLOP/s (the step's matmul
# FLOPs, counted from the model's sizes: forward 2·(params in products)·tokens
# plus attention's 4·L·D per token and block; a training step 3x the forward)
# and its share of the machine's practical peak (the best GFLOP/s of a 2048²
# float32 sgemm through OpenBLAS on all cores, measured in the same run), and
# ends with two lines per case:
#   ratio <case> <mdlm median / best PyTorch median>   (best: lowest median of all settings)
#   ratio-default <case> <mdlm median / PyTorch default median>
# Cases: d128 (D128 N2 L128 B16 V1000), demo (the demo pipeline's model with
# the bytes vocabulary, V259), demo-bpe (the same with its learned BPE, V4096), tiny
# (the reference's tiny config, 2 x 128, GPT-2 vocabulary), d128-forward (the
# forward pass and loss only, what eval and sampling run).
# MDLM_BENCH_CASES overrides the cases, MDLM_BENCH_SETTINGS the PyTorch
# settings (it must include default); MDLM_BENCH_SMOKE=1: one round of 3
# steps on d128 and d128-forward (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
work=${MDLM_BENCH_DIR:-/tmp/mdlm-cpu-vs-torch}
rounds=${MDLM_BENCH_ROUNDS:-3}
steps=${MDLM_BENCH_STEPS:-10}
cases=${MDLM_BENCH_CASES:-d128 demo demo-bpe tiny d128-forward}
if [ -n "${MDLM_BENCH_SMOKE:-}" ]; then rounds=1 steps=3 cases="d128 d128-forward"; fi
mkdir -p "$work"
# Debian's python3-torch lives in the system Python (/usr/bin/python3), which a
# pyenv or venv python3 on PATH does not see.
py=/usr/bin/python3
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
  echo "installing Debian's python3-torch and libopenblas0-pthread" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null
fi
go build -o "$work/cpustep" ./bench/cpustep
for c in $cases; do
  base=${c%-forward}
  [ -f "$work/$base/batches.safetensors" ] || "$work/cpustep" -case "$base" -dir "$work/$base" -steps "$steps" -init
done
# PyTorch's allocator: glibc returns every large tensor's pages to the kernel
# when it is freed, so each step faults them in again (torch.zeros(2048, 4096)
# takes 87 ms here, 1.1 ms under jemalloc that keeps its pages). Settings
# ending in -je run PyTorch with jemalloc preloaded and its decay off.
jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -1 || true)
if [ -z "$jemalloc" ]; then
  echo "installing Debian's libjemalloc2 (PyTorch's -je settings)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 >/dev/null
  jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 | head -1)
fi
# torch_step SETTING ARGS...: SETTING is "default" or "iINTRA-bBLAS", either
# with "-je" appended (jemalloc, above). OpenBLAS's core-type pinning is unset
# for PyTorch here only (see the env notes).
torch_step() {
  local s=$1 alloc=()
  shift
  case $s in *-je) alloc=(LD_PRELOAD="$jemalloc" MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1) s=${s%-je} ;; esac
  if [ "$s" = default ]; then
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS "${alloc[@]}" "$py" bench/torch_step.py "$@"
  else
    local intra=${s#i} && intra=${intra%%-*}
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="${s#*-b}" "${alloc[@]}" "$py" bench/torch_step.py --threads "$intra" "$@"
  fi
}
settings=${MDLM_BENCH_SETTINGS:-i1-b1 i1-b2 i2-b1 i2-b2 i1-b1-je i1-b2-je i2-b1-je i2-b2-je default}
rm -f "$work"/*.json
torch_step "i1-b$(nproc)" --sgemm 2048 >"$work/sgemm.json"
for r in $(seq "$rounds"); do
  for c in $cases; do
    base=${c%-forward}
    fw=()
    [ "$c" != "$base" ] && fw=(--forward)
    "$work/cpustep" -case "$base" -dir "$work/$base" -steps "$steps" ${fw:+-forward} >"$work/$c.mdlm.$r.json"
    for s in $settings; do
      torch_step "$s" --case "$base" --dir "$work/$base" --steps "$steps" "${fw[@]}" >"$work/$c.torch-$s.$r.json"
    done
  done
done
"$py" - "$work" "$settings" $cases <<'PY'
import glob, json, statistics, sys
work, settings, cases = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
SIZES = {"d128": (128, 4, 2, 64, 1000, 16, 128), "demo": (128, 4, 2, 64, 259, 32, 64), "demo-bpe": (128, 4, 2, 64, 4096, 32, 64), "tiny": (512, 8, 8, 128, 50258, 2, 128)}

def flops(case):
    """Matmul FLOPs of one step (training) or forward pass: torch_step.py's DiT."""
    base = case.removesuffix("-forward")
    D, H, N, C, V, B, L = SIZES[base]
    per_token = N * (2 * 12 * D * D + 4 * L * D) + 2 * D * V  # qkv, out, mlp; scores and AV; output layer
    per_seq = N * 2 * C * 6 * D + 2 * C * 2 * D + 2 * (256 * C + C * C)  # adaLN, final adaLN, sigma map
    fwd = B * L * per_token + B * per_seq
    return fwd if case.endswith("-forward") else 3 * fwd

peak = json.load(open(f"{work}/sgemm.json"))["gflops"]
print(f"practical peak: {peak:.1f} GFLOP/s (2048² sgemm, OpenBLAS on all cores)")
ok = True
lines = []
print(f"{'case':<14}{'side':<14}{'median ms':>10}{'min ms':>9}{'first ms':>10}{'peak MB':>9}{'GFLOP/s':>9}{'of peak':>9}")
for c in cases:
    side = {}
    for who in ["mdlm"] + [f"torch-{s}" for s in settings]:
        runs = [json.load(open(p)) for p in sorted(glob.glob(f"{work}/{c}.{who}.*.json"))]
        ms = [m for r in runs for m in r["ms"]]
        med = statistics.median(ms)
        side[who] = (runs, med)
        gf = flops(c) / med / 1e6
        print(f"{c:<14}{who:<14}{med:>10.1f}{min(ms):>9.1f}{statistics.median(r['first_ms'] for r in runs):>10.1f}"
              f"{max(r['peak_rss_mb'] for r in runs):>9.0f}{gf:>9.2f}{100 * gf / peak:>8.1f}%")
    a = side["mdlm"][0][0]["losses"][:5]
    for s in settings:
        b = side[f"torch-{s}"][0][0]["losses"][:5]
        worst = max(abs(x - y) / max(1e-12, abs(y)) for x, y in zip(a, b))
        if worst > 1e-4:
            ok = False
            print(f"{c:<14}losses differ from torch-{s}: mdlm {a} torch {b} (max relative {worst:.2e}) MISMATCH")
    print(f"{c:<14}losses (first 5) agree with every PyTorch setting: {ok}")
    best = min(settings, key=lambda s: side[f"torch-{s}"][1])
    lines.append(f"ratio {c} {side['mdlm'][1] / side[f'torch-{best}'][1]:.3f} (best PyTorch setting {best}, {side[f'torch-{best}'][1]:.1f} ms)")
    lines.append(f"ratio-default {c} {side['mdlm'][1] / side['torch-default'][1]:.3f}")
print("\n".join(lines))
sys.exit(0 if ok else 1)
PY
