// Anchors for bench/tokenizers.sh: Hugging Face tokenizers (npm, Rust core) and
// tiktoken (npm), on the same corpus. Prints "name MB/s". Arguments: corpus,
// repetitions, then name=tokenizer.json pairs (the families).
// MDLM_BENCH_BATCH_ONLY=1: encodeBatch only (the HF scaling rounds of
// tokenizers.sh); MDLM_BENCH_SUFFIX is appended to every name.
// MDLM_BENCH_LOAD=1 (bench/tokenizer_load.sh): only the loading of each
// family's file, "hf-load-<name>-<way> seconds", best of the repetitions, for
// Tokenizer.fromFile and for fromString on the file read in JavaScript.
const fs = require("fs");
const [corpus, reps, ...families] = process.argv.slice(2);
const text = fs.readFileSync(corpus, "utf8");
const docs = text.split(/(?<=\n\n)/);
const mb = Buffer.byteLength(text, "utf8") / 1e6;
const batch = Number(process.env.MDLM_BENCH_HF_BATCH || 4096);

async function measure(name, fn) {
  let best = Infinity;
  for (let r = 0; r < Number(reps || 3); r++) {
    const t0 = process.hrtime.bigint();
    await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(`${(name + (process.env.MDLM_BENCH_SUFFIX || "")).padEnd(28)} ${(mb / best).toFixed(2).padStart(8)} MB/s`);
}

function measureLoad(name, fn) {
  let best = Infinity;
  for (let r = 0; r < Number(reps || 3); r++) {
    const t0 = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(`${name.padEnd(36)} ${best.toFixed(4).padStart(9)} s`);
}

(async () => {
  const { Tokenizer } = require("tokenizers");
  if (process.env.MDLM_BENCH_LOAD === "1") {
    for (const pair of families) {
      const [name, file] = pair.split("=");
      measureLoad("hf-load-" + name + "-fromFile", () => Tokenizer.fromFile(file));
      measureLoad("hf-load-" + name + "-fromString", () => Tokenizer.fromString(fs.readFileSync(file, "utf8")));
    }
    return;
  }
  for (const pair of families) {
    const [name, file] = pair.split("=");
    const tok = Tokenizer.fromFile(file);
    if (process.env.MDLM_BENCH_BATCH_ONLY !== "1") {
      await measure("hf-tokenizers-" + name, async () => {
        for (const d of docs) await tok.encode(d, null, { addSpecialTokens: false });
      });
    }
    // One call per 4,096 documents (MDLM_BENCH_HF_BATCH): no per-call promise
    // overhead. With RAYON_NUM_THREADS=1 it stays on one core.
    await measure("hf-tokenizers-" + name + "-encodeBatch", async () => {
      for (let i = 0; i < docs.length; i += batch) await tok.encodeBatch(docs.slice(i, i + batch), { addSpecialTokens: false });
    });
  }
  if (process.env.MDLM_BENCH_TIKTOKEN !== "0") {
    const { get_encoding } = require("tiktoken");
    const enc = get_encoding("gpt2");
    await measure("tiktoken-npm-gpt2", () => {
      for (const d of docs) enc.encode(d, "all");
    });
    enc.free();
  }
})();
