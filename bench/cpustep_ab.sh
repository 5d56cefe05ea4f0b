#!/usr/bin/env bash
# mdlm's CPU training step (bench/cpustep) at two revisions, the two binaries
# alternating in one run: the before/after figures of a change, measured on
# the same machine at the same time (bench/README's per-change figures).
#   bash bench/cpustep_ab.sh [OLD [NEW]]
# OLD and NEW are git revisions, or "." for the working tree; the defaults are
# HEAD~1 and ".". Cases: $MDLM_BENCH_CASES (default "demo d128 d128-forward";
# also tiny, demo-dimamba, tiny-dimamba), $MDLM_BENCH_ROUNDS rounds (default 4)
# of $MDLM_BENCH_STEPS timed steps (default 10). Prints each round's median step
# time per side, and per case one line:
#   speedup <case> <old median of medians / new median of medians>
# MDLM_BENCH_SMOKE=1: HEAD against the working tree, one round of 3 steps on d128
# (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
old=${1:-HEAD~1} new=${2:-.}
cases=${MDLM_BENCH_CASES:-demo d128 d128-forward}
rounds=${MDLM_BENCH_ROUNDS:-4}
steps=${MDLM_BENCH_STEPS:-10}
if [ -n "${MDLM_BENCH_SMOKE:-}" ]; then old=HEAD new=. cases=d128 rounds=1 steps=3; fi
work=${MDLM_BENCH_DIR:-/tmp/mdlm-cpustep-ab}
mkdir -p "$work"
trees=()
cleanup() { for t in "${trees[@]}"; do git worktree remove --force "$t" 2>/dev/null || true; done; }
trap cleanup EXIT

# toolchain DIR: the Go toolchain a tree builds with. Revisions before the
# gomlx v0.28.16 upgrade (go.mod's "go 1.26.x") need Go 1.26: their compute
# v0.1.2 does not compile under Go 1.27's simd package.
toolchain() {
  case $(awk '$1 == "go" {print $2}' "$1/go.mod") in
    1.26*) echo go1.26.8 ;;
    *) echo go1.27.3 ;;
  esac
}

# build REV OUT: cpustep from a revision (checked out in a temporary worktree)
# or from the working tree.
build() {
  if [ "$1" = . ]; then
    GOTOOLCHAIN=$(toolchain .) go build -o "$2" ./bench/cpustep
    return
  fi
  local tree
  tree=$(mktemp -d "$work/tree.XXXXXX")
  git worktree add --detach --quiet "$tree" "$1" || { echo "cpustep_ab: no revision $1" >&2; exit 1; }
  trees+=("$tree")
  [ -d "$tree/bench/cpustep" ] || { echo "cpustep_ab: revision $1 has no bench/cpustep" >&2; exit 1; }
  (cd "$tree" && GOTOOLCHAIN=$(toolchain .) go build -o "$2" ./bench/cpustep)
}
build "$old" "$work/cpustep-old"
build "$new" "$work/cpustep-new"

median() { python3 -c 'import json, statistics, sys; print(round(statistics.median(json.load(sys.stdin)["ms"]), 1))'; }
for c in $cases; do
  base=${c%-forward}
  fw=()
  [ "$c" != "$base" ] && fw=(-forward)
  [ -f "$work/$base/batches.safetensors" ] || "$work/cpustep-new" -case "$base" -dir "$work/$base" -steps "$steps" -init
  declare -A med=([old]="" [new]="")
  for r in $(seq "$rounds"); do
    for side in old new; do
      m=$("$work/cpustep-$side" -case "$base" -dir "$work/$base" -steps "$steps" "${fw[@]}" | median)
      med[$side]+="$m "
      echo "$c round $r $side $m ms"
    done
  done
  python3 - "$c" "${med[old]}" "${med[new]}" <<'PY'
import statistics, sys
c, old, new = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
print(f"{c}: old medians {old}, new medians {new}")
print(f"speedup {c} {statistics.median(old) / statistics.median(new):.3f}")
PY
  unset med
done
