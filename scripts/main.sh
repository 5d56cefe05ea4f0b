#!/usr/bin/env bash
# The main job: the demo pipeline on the embedded corpus, CPU only, no network.
# download (KJV, last 60 chapters held out) -> tokenize (bytes) -> pack (L 64) ->
# train a small MDLM -> eval (NELBO perplexity vs. the unigram perplexity) ->
# sample. Every stage writes a typed artifact under $MDLM_WORK (default work/demo).
# (The declarative pipeline engine is not built yet; this script chains the stages.)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd # the CPU backend's fast matmul kernels need it
work=${MDLM_WORK:-work/demo}
steps=${MDLM_DEMO_STEPS:-500}
rm -rf "$work"
mkdir -p "$work"

go build -o mdlm ./cmd/mdlm
./mdlm doctor
start=$(date +%s)
./mdlm download testdata/kjv/kjv.jsonl.gz --hold-out 60 -o "$work/text"
./mdlm tokenize "$work/text" -o "$work/tokens" --tokenizer bytes
./mdlm pack "$work/tokens" -o "$work/packed" --length 64
./mdlm train --data "$work/packed" -o "$work/run" --steps "$steps" --batch 32 --warmup 30 --lr 3e-3 \
  --dropout 0 --hidden 128 --heads 4 --blocks 2 --cond 64 --log-every 50 --eval-every 250 --eval-blocks 256 \
  --checkpoint-every 250
./mdlm eval --checkpoint "$work/run" --data "$work/packed" --split valid -o "$work/eval" --batch 32
./mdlm sample --checkpoint "$work/run" -o "$work/samples" --sampler ddpm_rowcache --steps 256 --num 4 --seed 1
echo "--- samples (bytes tokenizer; <|endoftext|> marks BOS/EOS) ---"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("[%d] NFE %d: %s" % (r["index"], r["nfe"], r["text"].replace("\n", " ")))
' "$work/samples/samples.jsonl" 2>/dev/null || head -c 2000 "$work/samples/samples.jsonl"
echo "--- pipeline took $(( $(date +%s) - start )) s; loss curve: $work/run/loss.png, metrics: $work/run/metrics.jsonl"
