#!/usr/bin/env bash
# Tokenizer throughput, all on one corpus in one run: mdlm's pure-Go tokenizers
# (GPT-2, BERT and the hub families Llama 2, Llama 3, Gemma 3, Qwen 3,
# DeepSeek-V3, GPT-4o; the Unigram and WordLevel test families of
# tokenizer/testdata/families) beside Hugging Face tokenizers (npm, Rust core) on the
# same tokenizer.json files, plus tiktoken (npm) and
# github.com/tiktoken-go/tokenizer; mdlm's batch encoder on 1 and 2 workers
# (BatchEncode) for every family, with a cold cache every pass and with a warm
# one (the steady state of a long corpus). The batch passes are interleaved:
# MDLM_BENCH_SCALE_REPS rounds (25 by default), each timing every family's 1- and
# 2-worker passes, so each family's passes spread over the whole measurement; the
# fastest pass of each and the median of the rounds' 2/1 ratios are reported, with
# a 95% distribution-free interval for that median (order statistics) (and
# the same for three controls in the same rounds, on 1 and 2 goroutines, what
# the machine gives a second thread at those moments: a register-only loop of
# dependent multiplies, one of eight independent chains that keeps the core's
# execution units busy, and dependent reads over one shared 8 MB table), with
# CPU seconds per MB (a second worker that burns more CPU per MB than one is the
# scaling loss, whatever else runs);
# allocations and bytes allocated (alloc-MB) per MB of text. Prints MB/s, mdlm's ratio to HF and the batch scaling for
# every family, then the lowest of each.
#
# HF runs on one thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false),
# per call and with encodeBatch; then its own batch scaling, encodeBatch on 1
# and 2 threads in MDLM_BENCH_HF_SCALING_ROUNDS rounds (3 by default; the median
# of the rounds' ratios per family is printed beside ours; MDLM_BENCH_HF_BATCH
# sets the documents per encodeBatch call, 4,096 by default);
# MDLM_BENCH_HF_DEFAULT=1 adds a run with its default thread pool beside.
# Installs what it needs (Debian text packages for the corpus; npm packages,
# the family files through tokenizer/testdata/gen_goldens.sh's oracle folder).
# MDLM_BENCH_SMOKE=1: a 300 KB corpus, one repetition (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${MDLM_BENCH_DIR:-/tmp/mdlm-tokbench}
oracle=${MDLM_ORACLE_DIR:-$HOME/.cache/mdlm-tokenizer-oracle}
mkdir -p "$work" "$oracle"
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

# Anchors and family files from npm.
if [ ! -d "$work/node_modules/tiktoken" ]; then
  npm install --silent --no-audit --no-fund --prefix "$work" tiktoken >/dev/null
fi
source bench/lib/families.sh

(cd bench/tokbench && GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd go build -o "$work/tokbench" .)
reps=${MDLM_BENCH_REPS:-3}
scale_reps=${MDLM_BENCH_SCALE_REPS:-25}
[ -n "${MDLM_BENCH_SMOKE:-}" ] && reps=1 && scale_reps=1
out="$work/results.txt"
{
  "$work/tokbench" -corpus "$corpus" -reps "$reps" -scale-reps "$scale_reps" "${ours[@]}"
  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false NODE_PATH="$oracle/node_modules:$work/node_modules" \
    node bench/tokenizers.js "$corpus" "$reps" "${pairs[@]}"
  # HF's own batch scaling: encodeBatch on 1 and 2 threads (RAYON_NUM_THREADS is
  # read once per process, so each side is its own node process), rounds with
  # the order alternating from round to round, best of 2 passes per side and round.
  hf_rounds=${MDLM_BENCH_HF_SCALING_ROUNDS:-3}
  [ -n "${MDLM_BENCH_SMOKE:-}" ] && hf_rounds=1
  for r in $(seq "$hf_rounds"); do
    for th in 1 2; do
      [ $((r % 2)) = 0 ] && th=$((3 - th))
      RAYON_NUM_THREADS=$th TOKENIZERS_PARALLELISM=true MDLM_BENCH_BATCH_ONLY=1 MDLM_BENCH_TIKTOKEN=0 \
        MDLM_BENCH_SUFFIX="-threads$th-round$r" NODE_PATH="$oracle/node_modules:$work/node_modules" \
        node bench/tokenizers.js "$corpus" 2 "${pairs[@]}"
    done
  done
  if [ -n "${MDLM_BENCH_HF_DEFAULT:-}" ]; then
    NODE_PATH="$oracle/node_modules:$work/node_modules" MDLM_BENCH_TIKTOKEN=0 MDLM_BENCH_SUFFIX=-default-threads \
      node bench/tokenizers.js "$corpus" "$reps" "${pairs[@]}"
  fi
} | tee "$out"
awk '{ speed[$1] = $2; if ($7 == "cpu-s/MB") cpu[$1] = $6; if ($1 ~ /-scaling$/) { med[$1] = $5 + 0; if ($10 == "median-95%") { split($11, ci, "-"); cilo[$1] = ci[1] + 0; cihi[$1] = ci[2] + 0 } } if ($1 ~ /^control-.*-scaling$/) cbest[$1] = $3 + 0
    # hf-tokenizers-<family>-encodeBatch-threads<T>-round<R>: hfs[family, R, T] = MB/s
    if (match($1, /-encodeBatch-threads[12]-round[0-9]+$/)) {
      fam = substr($1, 1, RSTART - 1); sub(/^hf-tokenizers-/, "", fam)
      split(substr($1, RSTART), tr, /-threads|-round/)
      hfs[fam, tr[3] + 0, tr[2] + 0] = $2; if (tr[3] + 0 > hfr) hfr = tr[3] + 0
    }
  }
  # ci95(row): prints a scaling row'"'"'s 95% interval for its median and counts
  # the rows whose interval lies wholly above, or wholly below, 1.8x.
  function ci95(row) {
    if (!(row in cilo)) return
    printf " (95%% %.2f-%.2fx)", cilo[row], cihi[row]
    nci++; if (cilo[row] >= 1.8) nabove++; if (cihi[row] < 1.8) nbelow++
  }
  # hfmedian(f): the median over the rounds of HF encodeBatch 2 threads / 1 for family f.
  function hfmedian(f,   r, k, x, i, j, t) {
    k = 0
    for (r = 1; r <= hfr; r++) if (hfs[f, r, 1] > 0 && hfs[f, r, 2] > 0) x[++k] = hfs[f, r, 2] / hfs[f, r, 1]
    for (i = 2; i <= k; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
    if (k == 0) return 0
    return (k % 2) ? x[(k + 1) / 2] : (x[k / 2] + x[k / 2 + 1]) / 2
  }
  END {
    lowhf = 1e9
    n = split("gpt2 bert llama2 llama3 gemma3 qwen3 deepseek_v3 gpt4o albert t5style unigram_bytes wordlevel bytelevel_unigram", fams, " ")
    worst = 1e9; lowscale = 1e9; lowwarm = 1e9; lowmed = 1e9
    for (i = 1; i <= n; i++) {
      f = fams[i]; ours = speed["mdlm-" f]; hf = speed["hf-tokenizers-" f]; hfb = speed["hf-tokenizers-" f "-encodeBatch"]
      if (ours == "" || hf == "") continue
      best = (hfb > hf) ? hfb : hf
      r = ours / best
      if (r < worst) worst = r
      printf "%-12s mdlm %7.2f MB/s  HF %6.2f MB/s (encodeBatch %6.2f)  ratio %5.1fx", f, ours, hf, hfb, r
      b1 = "mdlm-" f "-batch-1workers"; b2 = "mdlm-" f "-batch-2workers"
      if (speed[b1] != "" && speed[b2] != "") {
        s = speed[b2] / speed[b1]
        if (s < lowscale) { lowscale = s; lowfam = f }
        printf "  batch 2 workers / 1: %.2fx", s
        if (cpu[b1] > 0) printf " (CPU per MB %.2fx)", cpu[b2] / cpu[b1]
        m = med["mdlm-" f "-batch-scaling"]
        if (m != "") { printf " median %.2fx", m; if (m < lowmed) { lowmed = m; lowmfam = f; lowmrow = "mdlm-" f "-batch-scaling" }; ci95("mdlm-" f "-batch-scaling") }
      }
      w1 = "mdlm-" f "-warm-batch-1workers"; w2 = "mdlm-" f "-warm-batch-2workers"
      if (speed[w1] != "" && speed[w2] != "") {
        s = speed[w2] / speed[w1]
        if (s < lowwarm) { lowwarm = s; lowwfam = f }
        printf ", warm cache %.2fx", s
        m = med["mdlm-" f "-warm-batch-scaling"]
        if (m != "") { printf " median %.2fx", m; if (m < lowmed) { lowmed = m; lowmfam = f " warm"; lowmrow = "mdlm-" f "-warm-batch-scaling" }; ci95("mdlm-" f "-warm-batch-scaling") }
      }
      h = hfmedian(f)
      if (h > 0) { printf "; HF encodeBatch 2 threads / 1: median %.2fx", h; if (h < lowhf) { lowhf = h; lowhfam = f } }
      printf "\n"
    }
    printf "lowest ratio to HF (its faster mode, one thread): %.1fx (target >= 5x)\n", worst
    if (speed["tiktoken-go-r50k"] != "") printf "mdlm-gpt2 / tiktoken-go: %.2fx\n", speed["mdlm-gpt2"] / speed["tiktoken-go-r50k"]
    if (lowscale < 1e9) printf "batch scaling, 2 workers / 1 worker (fastest passes): lowest %.2fx (%s)\n", lowscale, lowfam
    if (lowwarm < 1e9) printf "batch scaling with a warm cache (a long corpus'"'"'s steady state): lowest %.2fx (%s)\n", lowwarm, lowwfam
    if (lowmed < 1e9) {
      printf "batch scaling, median of the rounds'"'"' paired ratios: lowest %.2fx (%s)", lowmed, lowmfam
      if (lowmrow in cilo) printf ", its 95%% interval %.2f-%.2fx", cilo[lowmrow], cihi[lowmrow]
      printf " (target >= 1.8x)\n"
      if (nci > 0) printf "medians whose 95%% interval lies above 1.8x: %d of %d; wholly below: %d\n", nabove, nci, nbelow
    }
    if (lowhf < 1e9) printf "HF'"'"'s own batch scaling, encodeBatch on 2 threads / 1 (%d rounds, median): lowest %.2fx (%s)\n", hfr, lowhf, lowhfam
    c = "control-spin-scaling"
    if (c in med) printf "the machine'"'"'s own 2-thread scaling in the same rounds (a register-only loop): best %.2fx, median %.2fx\n", cbest[c], med[c]
    c = "control-ilp-scaling"
    if (c in med) printf "the same for a throughput-bound loop (eight independent chains): best %.2fx, median %.2fx\n", cbest[c], med[c]
    c = "control-mem-scaling"
    if (c in med) printf "the same for dependent reads over one shared 8 MB table: best %.2fx, median %.2fx\n", cbest[c], med[c]
  }' "$out"
# What sharing a cache between the two workers costs on this machine (the
# scaling's bound): a cache line's trip between two cores, and load latency by
# working-set size.
if [ -z "${MDLM_BENCH_SMOKE:-}" ]; then
  GOTOOLCHAIN=go1.27.3 go run ./bench/corelat | tee -a "$out"
fi
