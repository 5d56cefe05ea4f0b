#!/usr/bin/env bash
# The data stages at scale, each as its own mdlm process: ~300 MB of JSON-lines
# text (Debian fortunes + perl pods + the embedded KJV, repeated with variations,
# deterministic) through download --hold-out, tokenize (GPT-2) and pack (L 1024).
# Prints wall time and peak RSS per stage and the artifact sizes.
# MDLM_SCALE_MB sets the corpus size (default 300). MDLM_BENCH_SMOKE=1: 3 MB (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
work=${MDLM_BENCH_DIR:-/tmp/mdlm-datascale}
mb=${MDLM_SCALE_MB:-300}
[ -n "${MDLM_BENCH_SMOKE:-}" ] && mb=3
mkdir -p "$work"
if [ ! -d /usr/share/games/fortunes ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes perl-doc >/dev/null
fi
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
go build -o "$work/mdlm" ./cmd/mdlm
python3 - "$work/corpus.jsonl" "$mb" <<'PY'
import gzip, glob, json, os, sys
out, mb = sys.argv[1], int(sys.argv[2])
docs = []
for f in sorted(glob.glob("/usr/share/games/fortunes/*")):
    if "." in os.path.basename(f) or os.path.isdir(f): continue
    docs += [d for d in open(f, encoding="utf-8", errors="replace").read().split("\n%\n") if d.strip()]
for f in sorted(glob.glob("/usr/share/perl/*/pod/*.pod"))[:200]:
    docs += [d for d in open(f, encoding="utf-8", errors="replace").read().split("\n\n") if d.strip()]
docs += [json.loads(l)["text"] for l in gzip.open("testdata/kjv/kjv.jsonl.gz", "rt")]
size, i, w = 0, 0, open(out, "w")
while size < mb * 1_000_000:
    d = docs[i % len(docs)]
    rnd = i // len(docs)
    if rnd % 2: d = d.upper() if i % 3 == 0 else " ".join(reversed(d.split(" ")))
    w.write(json.dumps({"text": d}) + "\n"); size += len(d); i += 1
print(f"corpus: {i} documents, {size/1e6:.0f} MB of text", file=sys.stderr)
PY
cd "$work"
rm -rf text tokens packed
run() { /usr/bin/time -f "%e s, peak RSS %M KB: mdlm $*" ./mdlm "$@" 2>&1 >/dev/null | grep 'peak RSS' ; }
run download corpus.jsonl --hold-out 5000 -o text
run tokenize text -o tokens --tokenizer gpt2
run pack tokens -o packed --length 1024
du -sh text tokens packed
