#!/usr/bin/env bash
# Every benchmark script under bench/ in its short smoke mode (MDLM_BENCH_SMOKE=1),
# so none can rot unnoticed: each must run to the end from a clean checkout,
# installing what it needs. Part of the test command (scripts/test.sh).
# Output of each goes to /tmp/mdlm-bench-smoke/<script>.log.
set -uo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd MDLM_BENCH_SMOKE=1
logs=/tmp/mdlm-bench-smoke
mkdir -p "$logs"
failed=0
for script in bench/*.sh; do
  name=$(basename "$script" .sh)
  args=()
  [ "$name" = gpu_check ] && args=(smoke)
  start=$(date +%s)
  if MDLM_BENCH_DIR="$logs/$name" bash "$script" "${args[@]}" >"$logs/$name.log" 2>&1; then
    echo "bench smoke: $name ok ($(( $(date +%s) - start )) s)"
  else
    echo "bench smoke: $name FAILED ($(( $(date +%s) - start )) s); last lines of $logs/$name.log:" >&2
    tail -20 "$logs/$name.log" >&2
    failed=1
  fi
done
exit "$failed"
