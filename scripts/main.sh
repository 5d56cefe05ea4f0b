#!/usr/bin/env bash
# The main job: the demo pipeline (pipelines/demo.yaml) on the embedded corpus, CPU
# only, no network: download the KJV (last 60 chapters held out) -> learn a
# byte-level BPE on the train split (train-tokenizer) -> tokenize with it -> pack
# -> train a small MDLM -> eval (NELBO perplexity against the unigram perplexity,
# and bits per byte) -> sample (the summary says how many sample words, and
# adjacent word pairs, occur in the corpus). Stage outputs are cached under $MDLM_WORK (default
# work/demo) by content: a rerun skips every unchanged stage. Needs only Go (GOTOOLCHAIN=go1.27.3 fetches 1.27.3 through the module proxy).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd # the CPU backend's fast matmul kernels need it
command -v go >/dev/null || { echo "main.sh: Go 1.27 is required (GOTOOLCHAIN=go1.27.3 fetches it) (https://go.dev/dl/)" >&2; exit 1; }
work=${MDLM_WORK:-work/demo}
mkdir -p "$work"

go build -o mdlm ./cmd/mdlm
./mdlm doctor
start=$(date +%s)
# mdlm run prints each stage's output directory, then a summary: the
# perplexity and bits per byte, the first samples with their share of corpus
# words, and where the loss curve is.
./mdlm run pipelines/demo.yaml --cache-dir "$work" ${MDLM_DEMO_STEPS:+--set steps=$MDLM_DEMO_STEPS}
echo "--- pipeline took $(( $(date +%s) - start )) s"
