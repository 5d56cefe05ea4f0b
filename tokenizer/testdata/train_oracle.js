// train_oracle.js: used by TestTrainBPEOracle (train_test.go). Arguments: a
// tokenizer.json written by TrainBPE, a JSON array of texts, the output file.
// Writes the ids Hugging Face tokenizers (npm) gives each text with
// encode(text, add_special_tokens=false), and its decode of them.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

(async () => {
  const [file, textsFile, out] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(file);
  const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
  const res = [];
  for (const t of texts) {
    const enc = await tok.encode(t, null, { addSpecialTokens: false });
    const ids = Array.from(enc.getIds());
    res.push({ ids, text: await tok.decode(ids, false) });
  }
  fs.writeFileSync(out, JSON.stringify({ vocab: tok.getVocabSize(true), docs: res }));
})().catch((e) => { console.error(e); process.exit(1); });
