#!/usr/bin/env bash
# The GPU figures the issues ask for, prepared as one run for the device tool
# (a session with a GPU has 15 minutes of device time in all).
#
#   here:    bash bench/gpu_check.sh build
#            (test binaries built with -tags xla, cgo, x86-64, stripped and
#            gzipped, plus the reference fixtures, into bench/out/gpu; ~40 MB)
#   device:  run(command="bash bench/gpu_check.sh run", carry=["bench/out/gpu"], timeout_s=560)
#
# On the GPU machine it finds the CUDA PJRT plugin of the machine's Python
# environment (jax_plugins/xla_cuda*/xla_cuda_plugin.so), links it as
# <dir>/lib/pjrt_c_api_cuda_plugin.so with <dir>/nvidia -> site-packages/nvidia,
# puts the nvidia/*/lib folders on LD_LIBRARY_PATH, and runs, each with a time
# limit, writing what each printed under $OUT:
#   1. the PyTorch parity tests on the XLA backend (backbone, diffusion, train, sampler);
#   2. the training step, small DiT at 16 x 1024, float32 and bf16 mixed precision
#      (the reference: 106,216 tokens/s, 0.154 s a step on an H100);
#   3. the samplers, small DiT at 8 x 1024, 1000 steps: ddpm, the reference's
#      ddpm_cache and the per-row cache (the reference: ddpm 42.6 s, ddpm_cache 44.4 s).
set -uo pipefail
cd "$(dirname "$0")/.."
out=bench/out/gpu

build() {
  set -e
  mkdir -p "$out"
  for pkg in backbone diffusion train sampler; do # stripped and gzipped: the carry limit is 64 MiB
    GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd CGO_ENABLED=1 go test -c -tags xla -ldflags='-s -w' -o "$out/$pkg.test" "./$pkg/"
    gzip -f -9 "$out/$pkg.test"
  done
  rm -rf "$out/fixtures" "$out/fixtures-dimamba"
  cp -r --no-preserve=mode "${MDLM_REFERENCE_FIXTURES:-../shared/fixtures/reference}" "$out/fixtures"
  cp -r --no-preserve=mode "${MDLM_DIMAMBA_FIXTURES:-../shared/fixtures/dimamba}" "$out/fixtures-dimamba"
  du -sh "$out"
}

plugin_env() {
  local so site dir=/tmp/mdlm-pjrt
  so=$(python3 - <<'PY' 2>/dev/null
import glob, site, sys
for base in site.getsitepackages() + [site.getusersitepackages()]:
    for p in sorted(glob.glob(base + "/jax_plugins/xla_cuda*/xla_cuda_plugin.so")):
        print(p); sys.exit(0)
PY
)
  [ -n "$so" ] || so=$(find / -name xla_cuda_plugin.so -path '*jax_plugins*' 2>/dev/null | head -1)
  if [ -z "$so" ]; then echo "gpu_check: no jax_plugins/xla_cuda*/xla_cuda_plugin.so found" >&2; return 1; fi
  site=${so%%/jax_plugins/*}
  mkdir -p "$dir/lib"
  ln -sf "$so" "$dir/lib/pjrt_c_api_cuda_plugin.so"
  ln -sfn "$site/nvidia" "$dir/nvidia"
  export PJRT_PLUGIN_LIBRARY_PATH=$dir/lib GOMLX_BACKEND=xla:cuda GOMLX_NO_AUTO_INSTALL=1
  local libs
  libs=$(ls -d "$site"/nvidia/*/lib 2>/dev/null | tr '\n' ':')
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
  local cuda
  cuda=$(ls -d /usr/local/cuda-* 2>/dev/null | sort -V | tail -1)
  [ -n "$cuda" ] && export XLA_FLAGS="--xla_gpu_cuda_data_dir=$cuda"
  echo "plugin $so; cuda ${cuda:-none}"
}

run() {
  local dest=${OUT:-/tmp/mdlm-gpu-out}
  mkdir -p "$dest"
  if [ "${MDLM_GPU_CHECK_CPU:-}" = 1 ]; then # check this script itself on a CPU machine
    echo "CPU dry run: Go backend, parity only" | tee "$dest/gpu.txt"
  else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$dest/gpu.txt"
    plugin_env >>"$dest/gpu.txt" || { cat "$dest/gpu.txt"; exit 1; }
    tail -1 "$dest/gpu.txt"
  fi
  export MDLM_REFERENCE_FIXTURES=$PWD/$out/fixtures MDLM_DIMAMBA_FIXTURES=$PWD/$out/fixtures-dimamba
  local bin=/tmp/mdlm-gpu-bin
  mkdir -p "$bin"
  for pkg in backbone diffusion train sampler; do gunzip -c "$out/$pkg.test.gz" >"$bin/$pkg.test" && chmod +x "$bin/$pkg.test"; done
  for pkg in backbone diffusion train sampler; do
    (cd "$pkg" && timeout 120 "$bin/$pkg.test" -test.run 'TestReference|TestDiMamba' -test.v 2>&1) | tail -40 >"$dest/parity-$pkg.txt"
    echo "parity $pkg: $(grep -cE '^--- PASS' "$dest/parity-$pkg.txt") passed, $(grep -cE '^--- FAIL' "$dest/parity-$pkg.txt") failed"
  done
  [ "${MDLM_GPU_CHECK_CPU:-}" = 1 ] && return 0
  (cd train && timeout 150 "$bin/train.test" -test.run '^$' -test.bench 'BenchmarkTrainStep/small' \
    -test.benchtime 20x 2>&1) | tee "$dest/train_step.txt" | grep -E 'Benchmark|FAIL|panic'
  (cd sampler && MDLM_BENCH_SAMPLER_MODEL=small timeout 240 "$bin/sampler.test" -test.run '^$' \
    -test.bench 'BenchmarkSamplers/.*/B8' -test.benchtime 1x 2>&1) | tee "$dest/samplers.txt" | grep -E 'Benchmark|FAIL|panic'
  (cd backbone && timeout 120 "$bin/backbone.test" -test.run '^$' -test.bench 'SelectiveScan' \
    -test.benchtime 5x 2>&1) | tee "$dest/scan.txt" | grep -E 'Benchmark|FAIL|panic'
}

case "${1:-}" in
  smoke) # CI: the script parses and the XLA-tagged packages it builds type-check
    bash -n "$0" && GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd go vet -tags xla ./backbone ./diffusion ./train ./sampler ./backend && echo "gpu_check smoke: ok" ;;
  build) build ;;
  run) run ;;
  *) echo "usage: bash bench/gpu_check.sh build|run|smoke" >&2; exit 2 ;;
esac
