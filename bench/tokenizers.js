// Anchors for bench/tokenizers.sh: Hugging Face tokenizers (npm, Rust core) and
// tiktoken (npm), single-threaded, on the same corpus. Prints "name MB/s".
const fs = require("fs");
const [corpus, gpt2Json, bertJson, reps] = process.argv.slice(2);
const text = fs.readFileSync(corpus, "utf8");
const docs = text.split(/(?<=\n\n)/);
const mb = Buffer.byteLength(text, "utf8") / 1e6;

async function measure(name, fn) {
  let best = Infinity;
  for (let r = 0; r < Number(reps || 3); r++) {
    const t0 = process.hrtime.bigint();
    await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(`${name.padEnd(28)} ${(mb / best).toFixed(2).padStart(8)} MB/s`);
}

(async () => {
  const { Tokenizer } = require("tokenizers");
  for (const [name, file] of [["hf-tokenizers-gpt2", gpt2Json], ["hf-tokenizers-bert", bertJson]]) {
    const tok = Tokenizer.fromFile(file);
    await measure(name, async () => {
      for (const d of docs) await tok.encode(d);
    });
    // One call for the whole corpus: no per-call promise overhead (RAYON_NUM_THREADS=1
    // keeps it on one core).
    await measure(name + "-encodeBatch", async () => {
      for (let i = 0; i < docs.length; i += 4096) await tok.encodeBatch(docs.slice(i, i + 4096));
    });
  }
  const { get_encoding } = require("tiktoken");
  const enc = get_encoding("gpt2");
  await measure("tiktoken-npm-gpt2", () => {
    for (const d of docs) enc.encode(d, "all");
  });
  enc.free();
})();
