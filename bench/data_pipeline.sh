#!/usr/bin/env bash
# Data path benchmark on 2 cores: text/v1 -> tokens/v1 -> packed/v1 (GPT-2, wrap,
# L 1024) on a real corpus, against the tokenizer alone on the same documents and
# cores; prints corpus MB/s for both and the share the tables add (target < 15%).
# Corpora: the embedded KJV, and Debian's fortunes + perl-doc (installed here).
# MDLM_BENCH_SMOKE=1: the KJV only, one repetition (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
work=${MDLM_BENCH_DIR:-/tmp/mdlm-databench}
mkdir -p "$work"
corpora=("$PWD/testdata/kjv/kjv.jsonl.gz" "$work/fortunes.jsonl")
reps=${MDLM_BENCH_REPS:-5}
if [ -n "${MDLM_BENCH_SMOKE:-}" ]; then corpora=("$PWD/testdata/kjv/kjv.jsonl.gz") reps=1; fi
if [ ${#corpora[@]} -gt 1 ] && [ ! -d /usr/share/games/fortunes ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes perl-doc >/dev/null
fi
# Fortunes and perl pods as JSON lines, one document per fortune / paragraph.
python3 - "$work/fortunes.jsonl" <<'PY'
import json, sys, glob, os
out = open(sys.argv[1], "w")
for f in sorted(glob.glob("/usr/share/games/fortunes/*")):
    if "." in os.path.basename(f) or os.path.isdir(f): continue
    for doc in open(f, encoding="utf-8", errors="replace").read().split("\n%\n"):
        if doc.strip(): out.write(json.dumps({"text": doc}) + "\n")
for f in sorted(glob.glob("/usr/share/perl/*/pod/*.pod"))[:200]:
    for doc in open(f, encoding="utf-8", errors="replace").read().split("\n\n"):
        if doc.strip(): out.write(json.dumps({"text": doc}) + "\n")
PY
go test -c -o "$work/mdlm.test" ./cmd/mdlm/
# The benchmark runs tokenize and pack through the command line in process, at
# the collector's default setting (stage.DataGC is only for download and
# train-tokenizer), as the tokenizer-alone anchor.
for corpus in "${corpora[@]}"; do
  echo "corpus: $corpus"
  (cd cmd/mdlm && MDLM_DATA_CORPUS="$corpus" "$work/mdlm.test" -test.run '^$' \
    -test.bench BenchmarkTextToPacked -test.benchtime "${reps}x" | grep Benchmark)
done
