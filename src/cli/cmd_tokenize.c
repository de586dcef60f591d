/* apmae tokenize: text -> token ids, or ids -> text, with a tokenizer.json. */
#include "apmae/text.h"
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag k_flags[] = {
    {"--tokenizer", CLI_PATH, "PATH", "tokenizer.json, or a model directory holding one", .required = 1},
    {"--text", CLI_STRING, "STR", "encode this text"},
    {"--file", CLI_PATH, "F", "encode the bytes of file F (invalid UTF-8 becomes U+FFFD first, as in HF)"},
    {"--jsonl", CLI_PATH, "F", "batch: F has one JSON value per line (a string to encode, or with --decode an id array)"},
    {"--decode", CLI_SWITCH, NULL, "decode instead of encode: ids from --ids or --jsonl"},
    {"--ids", CLI_INT_LIST, NULL, "ids to decode (with --decode)"},
    {0},
};

static ap_status print_ids(ap_buf *out, const int32_t *ids, size_t n, ap_error *err) {
    ap_status st = ap_buf_append(out, "[", 1, err);
    for (size_t i = 0; !st && i < n; i++) {
        /* Formatted by hand: batch runs print tens of millions of ids. */
        char tmp[16], *p = tmp + sizeof tmp;
        uint32_t v = ids[i] < 0 ? 0u - (uint32_t)ids[i] : (uint32_t)ids[i];
        do *--p = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        if (ids[i] < 0) *--p = '-';
        if (i) *--p = ',';
        st = ap_buf_append(out, p, (size_t)(tmp + sizeof tmp - p), err);
    }
    return st ? st : ap_buf_append(out, "]\n", 2, err);
}

/* A JSON string of text (made valid UTF-8 first). */
static ap_status print_json_string(ap_buf *out, const char *text, size_t len, ap_error *err) {
    char *valid;
    size_t n;
    ap_status st = ap_utf8_lossy(text, len, &valid, &n, err);
    if (st) return st;
    st = ap_buf_append(out, "\"", 1, err);
    for (size_t i = 0; !st && i < n; i++) {
        unsigned char c = (unsigned char)valid[i];
        if (c == '"' || c == '\\') st = ap_buf_printf(out, err, "\\%c", c);
        else if (c == '\n') st = ap_buf_append(out, "\\n", 2, err);
        else if (c < 0x20) st = ap_buf_printf(out, err, "\\u%04x", c);
        else st = ap_buf_append(out, &valid[i], 1, err);
    }
    free(valid);
    return st ? st : ap_buf_append(out, "\"\n", 2, err);
}

static ap_status flush(ap_buf *out, ap_error *err) {
    if (out->len && fwrite(out->data, 1, out->len, stdout) != out->len)
        return ap_fail_errno(err, AP_ERR_IO, "cannot write to stdout");
    out->len = 0;
    return AP_OK;
}

/* An id list from --ids or a JSONL line, checked to fit int32. */
static ap_status ids_from_json(const cJSON *arr, const char *where, int32_t **ids, size_t *n, ap_error *err) {
    *n = (size_t)cJSON_GetArraySize(arr);
    *ids = ap_malloc((*n ? *n : 1) * sizeof **ids, err);
    if (!*ids) return AP_ERR_NOMEM;
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int32_t)e->valuedouble) {
            free(*ids);
            *ids = NULL;
            return ap_fail(err, AP_ERR_ARG, "%s: item %zu is not an integer token id", where, i + 1);
        }
        (*ids)[i] = (int32_t)e->valuedouble;
    }
    return AP_OK;
}

static ap_status encode_one(const ap_tokenizer *tok, const char *text, size_t len, ap_buf *out, ap_error *err) {
    int32_t *ids;
    size_t n;
    ap_status st = ap_tokenizer_encode(tok, text, len, &ids, &n, err);
    if (st) return st;
    st = print_ids(out, ids, n, err);
    free(ids);
    return st;
}

static ap_status decode_one(const ap_tokenizer *tok, const int32_t *ids, size_t n, int as_json, ap_buf *out,
                            ap_error *err) {
    char *text;
    size_t len;
    ap_status st = ap_tokenizer_decode(tok, ids, n, &text, &len, err);
    if (st) return st;
    st = as_json ? print_json_string(out, text, len, err) : ap_buf_append(out, text, len, err);
    if (!st && !as_json) st = ap_buf_append(out, "\n", 1, err);
    free(text);
    return st;
}

/* One JSONL line: encode a string, or decode an id array. */
static ap_status jsonl_line(const ap_tokenizer *tok, int decode, const char *line, size_t len, const char *where,
                            ap_buf *out, ap_error *err) {
    cJSON *j = cJSON_ParseWithLength(line, len);
    ap_status st;
    if (!decode && cJSON_IsString(j)) {
        st = encode_one(tok, j->valuestring, strlen(j->valuestring), out, err);
    } else if (decode && cJSON_IsArray(j)) {
        int32_t *ids;
        size_t n;
        st = ids_from_json(j, where, &ids, &n, err);
        if (!st) {
            if ((st = decode_one(tok, ids, n, 1, out, err))) ap_error_prefix(err, "%s", where);
            free(ids);
        }
    } else {
        st = ap_fail(err, AP_ERR_FORMAT, "%s: expected a JSON %s", where, decode ? "array of ids" : "string");
    }
    cJSON_Delete(j);
    return st;
}

static ap_status run_jsonl(const ap_tokenizer *tok, const char *path, int decode, ap_error *err) {
    char *data;
    size_t len;
    ap_status st = ap_read_file(path, &data, &len, err);
    if (st) return st;
    ap_buf out = {0};
    double t0 = ap_now();
    size_t lines = 0;
    for (size_t pos = 0; !st && pos < len;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        lines++;
        if (end > pos) {
            char where[600];
            snprintf(where, sizeof where, "%s:%zu", path, lines);
            st = jsonl_line(tok, decode, data + pos, end - pos, where, &out, err);
            if (!st && out.len > (1u << 20)) st = flush(&out, err);
        }
        pos = end + 1;
    }
    if (!st) st = flush(&out, err);
    double dt = ap_now() - t0;
    if (!st)
        ap_info("tokenize: %zu lines, %.1f MB in %.2f s (%.1f MB/s of input)", lines, (double)len / 1e6, dt,
                dt > 0 ? (double)len / 1e6 / dt : 0.0);
    ap_buf_free(&out);
    free(data);
    return st;
}

static ap_status run(const cli_args *a, ap_error *err) {
    const char *text = cli_str(a, "--text"), *file = cli_str(a, "--file"), *jsonl = cli_str(a, "--jsonl");
    int decode = cli_switch(a, "--decode"), ids_arg = cli_has(a, "--ids");
    if (decode && (text || file))
        return ap_fail(err, AP_ERR_ARG, "--decode takes --ids or --jsonl, not --text or --file");
    if (decode && !!ids_arg + !!jsonl != 1)
        return ap_fail(err, AP_ERR_ARG, "--decode needs exactly one of --ids and --jsonl");
    if (!decode && ids_arg)
        return ap_fail(err, AP_ERR_ARG, "--ids is for --decode; to encode give --text, --file or --jsonl");
    if (!decode && !!text + !!file + !!jsonl != 1)
        return ap_fail(err, AP_ERR_ARG, "give exactly one of --text, --file and --jsonl (or --decode)");

    ap_tokenizer *tok;
    double t0 = ap_now();
    ap_status st = ap_tokenizer_load(cli_str(a, "--tokenizer"), &tok, err);
    if (st) return st;
    ap_debug("tokenizer loaded in %.1f ms (%zu ids)", 1e3 * (ap_now() - t0), ap_tokenizer_vocab_size(tok));

    ap_buf out = {0};
    if (jsonl) {
        st = run_jsonl(tok, jsonl, decode, err);
    } else if (decode) {
        int32_t *ids;
        size_t n;
        st = cli_int32s(a, "--ids", &ids, &n, err);
        if (!st) {
            st = decode_one(tok, ids, n, 0, &out, err);
            free(ids);
        }
    } else if (text) {
        st = encode_one(tok, text, strlen(text), &out, err);
    } else {
        char *data;
        size_t len;
        st = ap_read_file(file, &data, &len, err);
        if (!st) {
            st = encode_one(tok, data, len, &out, err);
            free(data);
        }
    }
    if (!st) st = flush(&out, err);
    ap_buf_free(&out);
    ap_tokenizer_free(tok);
    return st;
}

static const cli_spec k_spec = {
    .name = "tokenize",
    .summary = "encode text to token ids, or decode ids to text",
    .usage = "apmae tokenize --tokenizer PATH (--text STR | --file F | --jsonl F)\n"
             "       apmae tokenize --tokenizer PATH --decode (--ids I,J,... | --jsonl F)",
    .description =
        "Encode text to token ids, or decode ids to text, exactly as Hugging Face `tokenizers` does with a\n"
        "byte-level BPE tokenizer.json (StarCoder2, GPT-2). Added/special tokens in the text are recognised.\n"
        "\n"
        "Output on stdout:\n"
        "  encode        the ids as one JSON array and a newline, e.g. [1,2,3] (empty text: [])\n"
        "  --decode      the decoded bytes, then one newline; the bytes are raw: a sequence cut inside a\n"
        "                UTF-8 character is not replaced (HF would print U+FFFD there)\n"
        "  --jsonl       one output line per input line: a JSON array of ids when encoding, a JSON string\n"
        "                (invalid UTF-8 replaced by U+FFFD, as HF decode) when decoding; empty lines skipped.\n"
        "                Throughput goes to stderr.",
    .docs = "docs/lm.md",
    .flags = k_flags,
    .run = run,
};

int cmd_tokenize(int argc, char **argv) { return cli_run(&k_spec, argc, argv); }
