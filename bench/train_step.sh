#!/usr/bin/env bash
# Times one MDLM training step (forward, loss, backward, clip, AdamW) for the
# fixture-size model and the reference's tiny DiT (GPT-2 vocabulary) on the CPU
# backend, and reports peak memory. On a GPU machine, build with -tags xla and set
# GOMLX_BACKEND=xla:cuda to add the small config at 16 x 1024.
# MDLM_BENCH_SMOKE=1: one step of the fixture-size model (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
tags=${MDLM_BENCH_TAGS:-}
go test -c ${tags:+-tags $tags} -o /tmp/mdlm-train.test ./train/
bench=BenchmarkTrainStep steps=${MDLM_BENCH_STEPS:-5}
[ -n "${MDLM_BENCH_SMOKE:-}" ] && bench='BenchmarkTrainStep/fixture' steps=1
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
/usr/bin/time -v /tmp/mdlm-train.test -test.run '^$' -test.bench "$bench" \
  -test.benchtime "${steps}x" 2>&1 | grep -E 'Benchmark|Maximum resident' |
  sed 's/Maximum resident set size (kbytes)/peak RSS of the whole run (KiB)/'
