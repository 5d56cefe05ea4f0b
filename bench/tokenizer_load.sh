#!/usr/bin/env bash
# Loading a tokenizer.json, which every process that tokenizes or decodes pays
# before its first document: mdlm's tokenizer.LoadFile (bench/tokload) beside
# Hugging Face tokenizers (npm 0.23.2, Rust core) on the same files, its
# Tokenizer.fromFile and fromString (on the file read in JavaScript), in one
# run. MDLM_BENCH_ROUNDS rounds (3 by default), each loading every family
# MDLM_BENCH_REPS times (3) in mdlm and then in HF, so both sides spread over
# the whole measurement; the fastest load of each is reported. Prints a table:
# seconds, HF's faster way over mdlm's, and the heap mdlm's loaded tokenizer
# keeps. Installs what it needs (bench/lib/families.sh). MDLM_BENCH_SMOKE=1:
# one round of one load (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
work=${MDLM_BENCH_DIR:-/tmp/mdlm-tokbench}
oracle=${MDLM_ORACLE_DIR:-$HOME/.cache/mdlm-tokenizer-oracle}
mkdir -p "$work" "$oracle"
source bench/lib/families.sh
reps=${MDLM_BENCH_REPS:-3}
rounds=${MDLM_BENCH_ROUNDS:-3}
[ -n "${MDLM_BENCH_SMOKE:-}" ] && reps=1 && rounds=1
go build -o "$work/tokload" ./bench/tokload
out="$work/load.txt"
for round in $(seq "$rounds"); do
  for pair in "${pairs[@]}"; do
    "$work/tokload" -reps "$reps" "$pair"
    MDLM_BENCH_LOAD=1 NODE_PATH="$oracle/node_modules" node bench/tokenizers.js /dev/null "$reps" "$pair"
  done
done | tee "$out"
echo
awk '
  function keep(a, n, v) { if (!(n in a) || v < a[n]) a[n] = v }
  $1 ~ /^mdlm-load-/ { n = substr($1, 11); if (!(n in ours)) order[++k] = n; keep(ours, n, $2); kept[n] = $4 }
  $1 ~ /^hf-load-/ { n = $1; sub(/^hf-load-/, "", n); way = n; sub(/-from(File|String)$/, "", n); sub(/^.*-/, "", way)
                     if (way == "fromFile") keep(file, n, $2); else keep(str, n, $2) }
  END {
    printf "%-18s %9s %12s %14s %10s %12s\n", "family", "mdlm s", "HF fromFile", "HF fromString", "HF/mdlm", "mdlm kept MB"
    for (i = 1; i <= k; i++) { n = order[i]; hf = file[n] < str[n] ? file[n] : str[n]
      printf "%-18s %9.3f %12.3f %14.3f %9.1fx %12.1f\n", n, ours[n], file[n], str[n], hf / ours[n], kept[n] }
  }' "$out"
