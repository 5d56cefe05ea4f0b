// norm_probe.js: used by TestUnicodeNormOracle (unicode_norm_test.go). Reads a
// list of code points, writes the NFC, NFD, NFKC and NFKD of five probe strings
// around each, as Hugging Face tokenizers (npm 0.23.2) normalizes them.
const t = require('tokenizers');
const fs = require('fs');
const forms = [t.nfcNormalizer(), t.nfdNormalizer(), t.nfkcNormalizer(), t.nfkdNormalizer()];
const cands = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n').map(Number);
const out = [];
for (const c of cands) {
  const s = String.fromCodePoint(c);
  const probes = ['x' + s + 'x', 'a\u0301' + s + '\u0316\u0334x', s + '\u0301', 'e' + s, s + s + '\u0300'];
  out.push([c, probes.map((p) => forms.map((f) => f.normalizeString(p)))]);
}
fs.writeFileSync(process.argv[3], JSON.stringify(out));
