#!/usr/bin/env bash
# The project's test command (README, .ci/run): formatting, vet (including the
# build-tagged XLA backend), and every test with the reference parity fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd # compute compiles its fast matmul kernels only with it
command -v go >/dev/null || { echo "test.sh: Go 1.27 is required (GOTOOLCHAIN=go1.27.3 fetches it) (https://go.dev/dl/)" >&2; exit 1; }

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" $unformatted >&2
  exit 1
fi
# A private single-node Slurm cluster for the scheduler test (cmd/mdlm
# TestRunOnSlurm), from ../shared/scripts; the test skips when none starts.
slurm_dir=../shared/scripts
if [ -z "${SLURM_CONF:-}" ] && [ -x "$slurm_dir/start-local-slurm.sh" ] && [ "$(id -u)" = 0 ]; then
  if slurm_env=$("$slurm_dir/start-local-slurm.sh" 2>/tmp/mdlm-slurm-start.log); then
    eval "$slurm_env"
    trap '"$slurm_dir/stop-local-slurm.sh" >/dev/null 2>&1 || true' EXIT
  else
    echo "test.sh: the local Slurm cluster did not start (/tmp/mdlm-slurm-start.log); TestRunOnSlurm will skip" >&2
  fi
fi
go vet ./...
go vet -tags xla ./accel/
go vet -tags hftokenizers ./tokenizer/ # the optional Rust backend type-checks without libtokenizers.a
(cd bench/tokbench && go vet .)       # the tokenizer benchmark's own module still builds against this one
go test -count=1 -timeout 20m ./... 2>&1 | tee /tmp/mdlm-test.log
# The race detector over the concurrent I/O code (writers hashing on background
# goroutines, the shard protocol, the streamed tokenize, the pipelined pack, the
# stage pool). Not over
# the compute packages (internal/layers among them): compute's matmul
# kernels trip -race's checkptr.
go test -count=1 -race $(go list ./internal/... | grep -v /internal/layers) ./artifact ./datasets ./stage ./stages/tokenize ./stages/pack ./pipeline
# Short fuzz passes on every run: GPT-2 round trip, the safetensors reader, the
# token-table reader, pipeline files
# (minimisation capped: by default one new input may stall a 15 s pass).
go test -run '^$' -fuzz '^FuzzGPT2RoundTrip$' -fuzztime 15s -fuzzminimizetime 3s ./tokenizer/
go test -run '^$' -fuzz '^FuzzReader$' -fuzztime 15s -fuzzminimizetime 3s ./tensors/
go test -run '^$' -fuzz '^FuzzScanTokens$' -fuzztime 10s -fuzzminimizetime 3s ./datasets/
go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 10s -fuzzminimizetime 3s ./pipeline/
# Every benchmark script in its smoke mode (a few minutes; the first run installs
# PyTorch and the npm anchors).
bash scripts/bench-smoke.sh
