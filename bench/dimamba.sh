#!/usr/bin/env bash
# DiMamba against the DiT on CPU, in one run (issue 11's benchmark):
#  1. one training step (forward, SUBS loss, backward, clip, AdamW; float32,
#     dropout 0) of the reference's tiny DiT and tiny-dimamba at 2 x 128 with
#     the GPT-2 vocabulary, and of the demo-sized pair (D 128, 2 blocks, 32 x 64,
#     bytes), alternating, several rounds: median step time, tokens/s, peak RSS;
#  2. the selective scan alone (Din 1024, N 16, one sequence) at L 1024 and
#     4096, forward and forward + backward (BenchmarkSelectiveScan).
# MDLM_BENCH_SMOKE=1: one round of 2 steps of the demo pair, the scan at 1024
# forward once (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
work=${MDLM_BENCH_DIR:-/tmp/mdlm-dimamba-bench}
rounds=${MDLM_BENCH_ROUNDS:-3}
steps=${MDLM_BENCH_STEPS:-5}
cases="demo demo-dimamba tiny tiny-dimamba"
scan=(-bench 'SelectiveScan' -benchtime 3x)
if [ -n "${MDLM_BENCH_SMOKE:-}" ]; then
  rounds=1 steps=2 cases="demo demo-dimamba"
  scan=(-bench 'SelectiveScan/L=1024/forward$' -benchtime 1x)
fi
mkdir -p "$work"
go build -o "$work/cpustep" ./bench/cpustep
for c in $cases; do
  [ -f "$work/$c/batches.safetensors" ] || "$work/cpustep" -case "$c" -dir "$work/$c" -steps "$steps" -init
done
rm -f "$work"/*.json
for r in $(seq "$rounds"); do
  for c in $cases; do
    "$work/cpustep" -case "$c" -dir "$work/$c" -steps "$steps" >"$work/$c.$r.json"
  done
done
python3 - "$work" $cases <<'PY'
import glob, json, statistics, sys
work, cases = sys.argv[1], sys.argv[2:]
tokens = {"demo": 32 * 64, "demo-dimamba": 32 * 64, "tiny": 2 * 128, "tiny-dimamba": 2 * 128}
print(f"{'case':<14}{'median ms':>10}{'min ms':>9}{'tokens/s':>10}{'first ms':>10}{'peak MB':>9}")
for c in cases:
    runs = [json.load(open(p)) for p in sorted(glob.glob(f"{work}/{c}.*.json"))]
    ms = [m for r in runs for m in r["ms"]]
    med = statistics.median(ms)
    print(f"{c:<14}{med:>10.1f}{min(ms):>9.1f}{tokens[c] / med * 1000:>10.0f}"
          f"{statistics.median(r['first_ms'] for r in runs):>10.1f}{max(r['peak_rss_mb'] for r in runs):>9.0f}")
PY
go test ./backbone -run '^$' "${scan[@]}" | grep -E '^(Benchmark|ok|FAIL)'
