#!/usr/bin/env bash
# Tokenizer throughput, single-threaded, all on one corpus in one run: mdlm's
# pure-Go GPT-2 and BERT tokenizers, Hugging Face tokenizers (npm, Rust core),
# tiktoken (npm) and github.com/tiktoken-go/tokenizer; mdlm's batch encoder across
# cores; allocations per MB. Prints our ratio to each anchor.
# Installs what it needs (Debian text packages for the corpus, npm packages).
# MDLM_BENCH_SMOKE=1: a 300 KB corpus, one repetition (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${MDLM_BENCH_DIR:-/tmp/mdlm-tokbench}
mkdir -p "$work"
export DEBIAN_FRONTEND=noninteractive

# Corpus: several MB of real English from Debian packages.
if [ ! -d /usr/share/games/fortunes ] || [ ! -d /usr/share/perl ] || ! ls /usr/share/perl/*/pod >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq fortunes perl-doc >/dev/null
fi
corpus="$work/corpus.txt"
# (head closes the pipe early: the writer's SIGPIPE must not stop the script
# under pipefail, hence the "|| true" inside the subshell.)
{
  find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.*' -exec cat {} + | grep -v '^%$'
  (find /usr/share/perl -name '*.pod' -path '*pod*' -exec cat {} + 2>/dev/null || true) | head -c 4000000
} > "$corpus"
[ -s "$corpus" ] || { echo "tokenizers.sh: the corpus $corpus is empty" >&2; exit 1; }
if [ -n "${MDLM_BENCH_SMOKE:-}" ]; then head -c 300000 "$corpus" >"$corpus.smoke" && mv "$corpus.smoke" "$corpus"; fi
echo "corpus: $(wc -c < "$corpus") bytes (fortunes, perl-doc)"

# Anchors from npm.
if [ ! -d "$work/node_modules/tokenizers" ] || [ ! -d "$work/node_modules/tiktoken" ]; then
  npm install --silent --prefix "$work" tokenizers tiktoken >/dev/null
fi

(cd bench/tokbench && GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd go build -o "$work/tokbench" .)
reps=${MDLM_BENCH_REPS:-3}
[ -n "${MDLM_BENCH_SMOKE:-}" ] && reps=1
out="$work/results.txt"
{
  "$work/tokbench" -corpus "$corpus" -reps "$reps"
  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false NODE_PATH="$work/node_modules" \
    node bench/tokenizers.js "$corpus" tokenizer/data/gpt2-tokenizer.json tokenizer/data/bert-base-uncased-tokenizer.json "$reps"
} | tee "$out"
awk '{ speed[$1] = $2 }
  END {
    ours = speed["mdlm-gpt2"]; bert = speed["mdlm-bert"]
    for (a in speed) if (a !~ /^mdlm/) {
      ref = (a ~ /bert/) ? bert : ours
      if (speed[a] > fastest) { fastest = speed[a]; fastestName = a }
      printf "ratio mdlm/%-24s %6.2fx\n", a, ref / speed[a]
    }
    printf "fastest anchor: %s; mdlm-gpt2 is %.2fx of it (target >= 2.5x)\n", fastestName, ours / fastest
    printf "batch scaling 2 workers / 1 worker: %.2fx\n", speed["mdlm-gpt2-batch-2workers"] / speed["mdlm-gpt2-batch-1workers"]
  }' "$out"
