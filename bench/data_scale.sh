#!/usr/bin/env bash
# The data stages at scale, each as its own mdlm process: ~300 MB of JSON-lines
# text (Debian fortunes + perl pods + the embedded KJV, repeated with variations,
# deterministic) through download --hold-out, tokenizer train (a 4,096-id BPE on
# the train split), tokenize (GPT-2) and pack (L 1024). Prints wall time, CPU
# and peak RSS per stage and the artifact sizes.
# MDLM_SCALE_MB sets the corpus size (default 300). MDLM_BENCH_SMOKE=1 (CI): 3 MB,
# and in a git checkout the two-build mode below against HEAD, one round.
# MDLM_SCALE_BASE=<git ref>: also builds that commit (a temporary worktree) and
# runs every stage with both builds, alternating, MDLM_SCALE_ROUNDS times (3 by
# default); per stage it prints each build's range of wall times and peaks and
# the ratio of the medians (this tree / base), and checks that both builds
# wrote the same files (and fails if they did not when the base is HEAD and the
# tree has no changes: the stages are deterministic).
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
base=${MDLM_SCALE_BASE:-}
rounds=${MDLM_SCALE_ROUNDS:-3}
if [ -n "${MDLM_BENCH_SMOKE:-}" ] && git rev-parse --verify -q HEAD >/dev/null; then
  base=${base:-HEAD} rounds=1
fi
# Outputs must match only between a build and itself: HEAD against a clean tree.
must_match=
[ "$base" = HEAD ] && git diff --quiet HEAD && must_match=1
if [ -n "$base" ]; then
  tree=$(mktemp -d) repo=$PWD
  trap 'git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
  git worktree add --detach "$tree" "$base" >/dev/null
  (cd "$tree" && go build -o "$work/mdlm-base" ./cmd/mdlm)
  echo "base: $(git rev-parse --short "$base"), this tree: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with changes)')"
fi
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
stages=(
  "download|text|download corpus.jsonl --hold-out 5000 -o OUT"
  "train-tokenizer|bpe.json|tokenizer train --vocab-size 4096 -o OUT text"
  "tokenize|tokens|tokenize text -o OUT --tokenizer gpt2"
  "pack|packed|pack tokens -o OUT --length 1024"
)
# timed BIN OUT ARGS...: runs one stage into OUT (removed first); prints "wall cpu
# peak_kb".
timed() {
  local bin=$1 out=$2; shift 2
  rm -rf "$out"
  /usr/bin/time -f "%e %U %S %M" -o time.txt "$bin" "${@//OUT/$out}" >/dev/null 2>stage.log ||
    { cat stage.log >&2; echo "data_scale.sh: mdlm ${*//OUT/$out} failed" >&2; exit 1; }
  awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' time.txt
}
# digest DIR|FILE: one sha256 over the data files (artifact.json and the
# dot-files beside it hold times and paths).
digest() { find "$1" -type f ! -name artifact.json ! -name '.*' | sort | xargs cat | sha256sum | cut -c1-16; }
if [ -z "$base" ]; then
  for st in "${stages[@]}"; do
    IFS='|' read -r name out args <<<"$st"
    timed ./mdlm "$out" $args >stage.time
    read -r wall cpu kb <stage.time
    echo "$name: $wall s, $cpu s CPU, peak RSS $kb KB"
  done
  du -sh text bpe.json tokens packed
  exit 0
fi
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# range FIELD FILE [KB]: the lowest and highest of a field of timed's lines
# (KB: kilobytes shown as whole megabytes).
range() {
  cut -d' ' -f"$1" "$2" | sort -n | awk -v kb="${3:-}" 'NR == 1 {lo = $1} {hi = $1}
    END {if (kb) {lo = sprintf("%.0f", lo / 1024); hi = sprintf("%.0f", hi / 1024)}
         printf (lo == hi) ? "%s" : "%s-%s", lo, hi}'
}
for st in "${stages[@]}"; do
  IFS='|' read -r name out args <<<"$st"
  : >"new.$name" && : >"base.$name"
  for r in $(seq "$rounds"); do
    order=(new base); [ $((r % 2)) = 0 ] && order=(base new)
    for b in "${order[@]}"; do
      bin=./mdlm; [ "$b" = base ] && bin=./mdlm-base
      timed "$bin" "$out.$b" $args >>"$b.$name"
    done
  done
  # The next stage reads this tree's output under the plain name.
  rm -rf "$out" && mv "$out.new" "$out"
  same=yes; [ "$(digest "$out")" = "$(digest "$out.base")" ] || same=NO
  rm -rf "$out.base"
  # The base reads the same input as this tree (this tree's output of the
  # stage before), so a difference is this stage's alone.
  for b in base new; do
    printf '%-16s %-4s wall %s s, CPU %s s, peak %s MB\n' "$name" "$b" \
      "$(range 1 "$b.$name")" "$(range 2 "$b.$name")" "$(range 3 "$b.$name" kb)"
  done
  wn=$(cut -d' ' -f1 "new.$name" | median); wb=$(cut -d' ' -f1 "base.$name" | median)
  pn=$(cut -d' ' -f3 "new.$name" | median); pb=$(cut -d' ' -f3 "base.$name" | median)
  awk -v n="$name" -v wn="$wn" -v wb="$wb" -v pn="$pn" -v pb="$pb" -v same="$same" -v r="$rounds" \
    'BEGIN {printf "%-16s ratio this tree / base, medians of %d: wall %.2f, peak %.2f; same output: %s\n", n, r, wn/wb, pn/pb, same}'
  if [ -n "$must_match" ] && [ "$same" != yes ]; then
    echo "data_scale.sh: $name wrote other files than the same stage of $base" >&2
    exit 1
  fi
done
