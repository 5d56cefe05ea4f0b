#!/usr/bin/env bash
# Sampler benchmark: wall time and denoiser evaluations (NFE per row) of ddpm, the
# reference's ddpm_cache and the per-row cache (ddpm_rowcache) at batch 1 and 8,
# 1000 steps ($MDLM_BENCH_SAMPLER_STEPS), small random DiT on the CPU backend.
# Prints each figure and the ratios against ddpm (target: row cache at batch 8
# needs at most 1/2.5 of ddpm's evaluations).
# MDLM_BENCH_SMOKE=1: 20 steps (what CI runs).
set -euo pipefail
[ -n "${MDLM_BENCH_SMOKE:-}" ] && export MDLM_BENCH_SAMPLER_STEPS=20
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
go test -c -o /tmp/mdlm-sampler.test ./sampler/
/tmp/mdlm-sampler.test -test.run '^$' -test.bench 'BenchmarkSamplers' -test.benchtime 1x | tee /tmp/mdlm-sampler-bench.txt |
  awk '/^BenchmarkSamplers/ {
    split($1, p, "/"); kind = p[2]; b = p[3]; sub(/-[0-9]+$/, "", b)
    nfe[kind "," b] = $5; sec[kind "," b] = $7; batches[b] = 1
    printf "%-14s %-4s NFE/row %8.1f   %8.2f s/batch\n", kind, b, $5, $7
  }
  END {
    for (b in batches) {
      printf "%s: NFE ddpm/ddpm_rowcache = %.1fx, ddpm/ddpm_cache = %.1fx; wall ddpm/ddpm_rowcache = %.2fx\n", b,
        nfe["ddpm," b] / nfe["ddpm_rowcache," b], nfe["ddpm," b] / nfe["ddpm_cache," b], sec["ddpm," b] / sec["ddpm_rowcache," b]
    }
  }'
