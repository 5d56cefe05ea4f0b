#!/usr/bin/env bash
# The main job: the demo pipeline (pipelines/demo.yaml) on the embedded corpus, CPU
# only, no network: download the KJV (last 60 chapters held out) -> tokenize
# (bytes) -> pack (L 64) -> train a small MDLM -> eval (NELBO perplexity against the
# unigram perplexity) -> sample. Stage outputs are cached under $MDLM_WORK (default
# work/demo) by content: a rerun skips every unchanged stage.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd # the CPU backend's fast matmul kernels need it
work=${MDLM_WORK:-work/demo}
mkdir -p "$work"

go build -o mdlm ./cmd/mdlm
./mdlm doctor
start=$(date +%s)
./mdlm run pipelines/demo.yaml --cache-dir "$work" ${MDLM_DEMO_STEPS:+--set steps=$MDLM_DEMO_STEPS} | tee "$work/run.log"
out() { awk -v s="$1" '$1 == s && NF == 2 { p = $2 } END { print p }' "$work/run.log"; }
echo "--- evaluation ($(out ppl)/metrics.json) ---"
python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
print("valid perplexity %.3f (NELBO bound, %.4f nats/token over %d tokens); unigram perplexity %.3f"
      % (m["ppl"], m["nll"], m["tokens"], m["unigram_ppl"]))
' "$(out ppl)/metrics.json" 2>/dev/null || cat "$(out ppl)/metrics.json"
echo "--- samples (bytes tokenizer; <|endoftext|> marks BOS/EOS) ---"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("[%d] NFE %d: %s" % (r["index"], r["nfe"], r["text"].replace("\n", " ")))
' "$(out samples)/samples.jsonl" 2>/dev/null || head -c 2000 "$(out samples)/samples.jsonl"
echo "--- pipeline took $(( $(date +%s) - start )) s; loss curve: $(out model)/loss.png"
