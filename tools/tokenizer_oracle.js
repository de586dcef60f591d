#!/usr/bin/env node
// Test oracle for apmae's tokenizer: encodes text with the pure-JS port of
// Hugging Face tokenizers (npm @huggingface/tokenizers, installed by
// scripts/setup.sh into third_party/) and prints the ids as JSON.
//
// usage:
//   node tools/tokenizer_oracle.js TOKENIZER.json --jsonl IN.jsonl [--rust-compat]
//       IN holds one JSON string per line; prints one JSON array of ids per line
//   node tools/tokenizer_oracle.js TOKENIZER.json --file F [--file G ...] [--rust-compat]
//       encodes the bytes of each file (invalid UTF-8 replaced by U+FFFD,
//       maximal subparts, as Rust's String::from_utf8_lossy does); prints one
//       array per file
//
// --rust-compat: the JS port differs from the Rust `tokenizers` crate (what
// Hugging Face Python uses) in two places, both visible only outside ASCII:
//   * Digits splits on JS \d (ASCII 0-9); Rust splits on char::is_numeric
//     (Unicode categories Nd, Nl, No: "٣", "²", "½", "Ⅻ" ...);
//   * the ByteLevel regex uses JS \s, which adds U+FEFF and misses U+0085;
//     Rust (Oniguruma) \s is the Unicode White_Space property.
// With --rust-compat those two patterns are replaced by the Rust semantics,
// so the oracle predicts what the Rust crate (and apmae) produce.
// Other differences, in added-token options StarCoder2 does not use (so not
// patched): with no normalizer the JS port matches all added tokens in one
// pass where Rust matches normalized=false ones first; lstrip/rstrip strip JS
// whitespace (Rust: White_Space); single_word is ignored.
"use strict";
const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");
// The package is an ES module: import() it (require() of ESM needs node >= 20.19;
// Debian 12 ships node 18).
const TOKENIZERS_PKG = path.join(__dirname, "..", "third_party", "node_modules", "@huggingface", "tokenizers");

const WS = "\\p{White_Space}";
const RUST_BYTELEVEL = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${WS}+(?!\\P{White_Space})|${WS}+`,
  "gu"
);

function patchPreTokenizer(pt) {
  if (!pt) return;
  const name = pt.constructor.name;
  if (Array.isArray(pt.tokenizers)) pt.tokenizers.forEach(patchPreTokenizer);
  else if (name.startsWith("Digits")) {
    pt.pattern = new RegExp(pt.config.individual_digits ? "[^\\p{N}]+|\\p{N}" : "[^\\p{N}]+|\\p{N}+", "gu");
  } else if (name.startsWith("ByteLevel")) pt.pattern = RUST_BYTELEVEL;
  else throw new Error(`--rust-compat: unexpected pre-tokenizer ${name}`);
}

async function main(argv) {
  const { Tokenizer } = await import(pathToFileURL(require.resolve(TOKENIZERS_PKG)).href);
  const args = argv.slice(2);
  const flag = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const tokPath = args[0];
  if (!tokPath || (!flag("--jsonl") && !flag("--file"))) {
    process.stderr.write("usage: tokenizer_oracle.js TOKENIZER.json (--jsonl IN | --file F) [--rust-compat]\n");
    return 2;
  }
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(tokPath, "utf8")), {});
  if (args.includes("--rust-compat")) patchPreTokenizer(tok.pre_tokenizer);
  const encode = (text) => JSON.stringify(tok.encode(text).ids);

  const out = [];
  if (flag("--file")) {
    // Buffer#toString replaces invalid sequences like from_utf8_lossy (WHATWG).
    args.forEach((a, i) => {
      if (a === "--file") out.push(encode(fs.readFileSync(args[i + 1]).toString("utf8")));
    });
  } else {
    for (const line of fs.readFileSync(flag("--jsonl"), "utf8").split("\n")) {
      if (line.length > 0) out.push(encode(JSON.parse(line)));
    }
  }
  fs.writeSync(1, out.join("\n") + "\n");
  return 0;
}

main(process.argv).then(
  (code) => { process.exitCode = code; },
  (e) => { console.error(e); process.exitCode = 1; }
);
