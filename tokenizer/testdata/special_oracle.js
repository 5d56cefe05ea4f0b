// special_oracle.js: used by TestEncodeSpecialOracle (special_oracle_test.go).
// Arguments: a JSON array of texts, the output file, then tokenizer.json
// files. Writes, for each file in order, the ids Hugging Face tokenizers (npm)
// gives each text with encode(text, add_special_tokens=true): the
// post-processor's tokens added.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

(async () => {
  const [textsFile, out, ...files] = process.argv.slice(2);
  const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
  const res = [];
  for (const file of files) {
    const tok = Tokenizer.fromFile(file);
    const ids = [];
    for (const t of texts) {
      const enc = await tok.encode(t, null, { addSpecialTokens: true });
      ids.push(Array.from(enc.getIds()));
    }
    res.push(ids);
  }
  fs.writeFileSync(out, JSON.stringify(res));
})().catch((e) => { console.error(e); process.exit(1); });
