#!/usr/bin/env bash
# mdlm's CPU training step against PyTorch's on the same cores, in one run.
# Each case runs the identical computation on both sides: bench/cpustep writes
# the initial weights and the noised batches, then times mdlm's step (forward,
# SUBS loss, backward, global-norm clip, AdamW; float32, dropout 0);
# bench/torch_step.py loads the same files into a PyTorch DiT and times the same
# step. Rounds alternate between the two; the script checks that both give the
# same losses over the first 5 steps (1e-4 relative), prints median and minimum
# step times and peak memory, and ends with one line per case:
#   ratio <case> <mdlm median / torch median>
# Cases: d128 (D128 N2 L128 B16 V1000), demo (the demo pipeline's model), tiny
# (the reference's tiny config, 2 x 128, GPT-2 vocabulary), d128-forward (the
# forward pass and loss only, what eval and sampling run).
# MDLM_BENCH_SMOKE=1: one round of 3 steps on d128 only (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
work=${MDLM_BENCH_DIR:-/tmp/mdlm-cpu-vs-torch}
rounds=${MDLM_BENCH_ROUNDS:-3}
steps=${MDLM_BENCH_STEPS:-10}
cases="d128 demo tiny d128-forward"
if [ -n "${MDLM_BENCH_SMOKE:-}" ]; then rounds=1 steps=5 cases="d128 d128-forward"; fi
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
# OpenBLAS's core-type pinning is unset for PyTorch here only (see the env notes).
torch_step() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" bench/torch_step.py --threads "$(nproc)" "$@"; }
rm -f "$work"/*.json
for r in $(seq "$rounds"); do
  for c in $cases; do
    base=${c%-forward}
    fw=()
    [ "$c" != "$base" ] && fw=(--forward)
    "$work/cpustep" -case "$base" -dir "$work/$base" -steps "$steps" ${fw:+-forward} >"$work/$c.mdlm.$r.json"
    torch_step --case "$base" --dir "$work/$base" --steps "$steps" "${fw[@]}" >"$work/$c.torch.$r.json"
  done
done
"$py" - "$work" $cases <<'PY'
import glob, json, statistics, sys
work, cases = sys.argv[1], sys.argv[2:]
ok = True
ratios = []
print(f"{'case':<14}{'side':<7}{'median ms':>10}{'min ms':>9}{'first ms':>10}{'peak MB':>9}")
for c in cases:
    side = {}
    for who in ("mdlm", "torch"):
        runs = [json.load(open(p)) for p in sorted(glob.glob(f"{work}/{c}.{who}.*.json"))]
        ms = [m for r in runs for m in r["ms"]]
        side[who] = (runs, statistics.median(ms), min(ms))
        print(f"{c:<14}{who:<7}{side[who][1]:>10.1f}{side[who][2]:>9.1f}{statistics.median(r['first_ms'] for r in runs):>10.1f}"
              f"{max(r['peak_rss_mb'] for r in runs):>9.0f}")
    a, b = side["mdlm"][0][0]["losses"][:5], side["torch"][0][0]["losses"][:5]
    worst = max(abs(x - y) / max(1e-12, abs(y)) for x, y in zip(a, b))
    agree = worst <= 1e-4
    ok &= agree
    print(f"{c:<14}losses (first 5) mdlm {['%.6f' % x for x in a]}\n{'':<14}               torch {['%.6f' % x for x in b]}"
          f"  max relative difference {worst:.2e} {'ok' if agree else 'MISMATCH'}")
    ratios.append((c, side["mdlm"][1] / side["torch"][1]))
for c, r in ratios:
    print(f"ratio {c} {r:.3f}")
sys.exit(0 if ok else 1)
PY
