/* Pre-tokenization: added tokens are cut out first, then the rest is split
 * with the GPT-2 regex of the ByteLevel pre-tokenizer (PCRE2, UTF mode).
 *
 * The Digits pre-tokenizer that StarCoder2 runs before ByteLevel cuts the text
 * around every numeric character (Rust's char::is_numeric = \p{N}), and
 * ByteLevel's regex then runs on each part separately. That is folded into one
 * regex here: numeric characters match alone (`\p{N}`, no optional leading
 * space), and the whitespace lookahead `\s+(?!\S)` treats a following numeric
 * character like the end of the text, which is what it sees in the split
 * parts. No other alternative of the regex can cross a numeric character, so
 * the pieces are the same as running the two pre-tokenizers in turn.
 *
 * `\s` is spelled out as the Unicode White_Space property, which is what
 * Oniguruma (the Rust crate's regex engine) uses; PCRE2's \s with UCP differs
 * at U+0085. */
#include "tok_internal.h"

#include <string.h>

#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define CONTRACTIONS "'s|'t|'re|'ve|'m|'ll|'d"

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static const char k_gpt2_split[] =
    CONTRACTIONS "| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";
static const char k_digits_split[] =
    CONTRACTIONS "| ?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "\\p{N}])|[" WS "]+";
static const char k_digit_runs_split[] =
    CONTRACTIONS "| ?\\p{L}+|\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "\\p{N}])|[" WS "]+";
/* The Rust regex crate's Unicode \w (used for single_word added tokens). */
static const char k_word_char[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";

static ap_status compile(const char *pattern, uint32_t options, pcre2_code **out, ap_error *err) {
    int code;
    PCRE2_SIZE offset;
    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | options, &code, &offset, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return ap_fail(err, AP_ERR_INTERNAL, "cannot compile the tokenizer regex (at %zu): %s", (size_t)offset,
                       (const char *)msg);
    }
    /* JIT makes matching several times faster; without it PCRE2 interprets. */
    pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return AP_OK;
}

ap_status tok_compile_regexes(ap_tokenizer *tok, ap_error *err) {
    const char *split = tok->digits == TOK_DIGITS_INDIVIDUAL   ? k_digits_split
                        : tok->digits == TOK_DIGITS_CONTIGUOUS ? k_digit_runs_split
                                                               : k_gpt2_split;
    ap_status st = compile(split, 0, &tok->split_re, err);
    if (st) return st;
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].single_word) return compile(k_word_char, PCRE2_ANCHORED, &tok->word_re, err);
    return AP_OK;
}

typedef struct split_ctx {
    const ap_tokenizer *tok;
    pcre2_match_data *md;
    tok_piece_fn fn;
    void *ctx;
} split_ctx;

/* The regex split of text without added tokens. Like the Rust crate's split
 * with the Isolated behaviour, text between matches would be a piece of its
 * own; the regex matches every character, so there is none in practice. */
static ap_status split_regex(const split_ctx *c, const char *s, size_t n, ap_error *err) {
    size_t prev = 0;
    while (prev < n) {
        int rc = pcre2_match(c->tok->split_re, (PCRE2_SPTR)s, n, prev, PCRE2_NO_UTF_CHECK, c->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ap_fail(err, AP_ERR_INTERNAL, "tokenizer regex failed: %s", (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) return ap_fail(err, AP_ERR_INTERNAL, "tokenizer regex matched an empty piece at %zu", ms);
        ap_status st;
        if (ms > prev && (st = c->fn(c->ctx, s + prev, ms - prev, -1, err))) return st;
        if ((st = c->fn(c->ctx, s + ms, me - ms, -1, err))) return st;
        prev = me;
    }
    return prev < n ? c->fn(c->ctx, s + prev, n - prev, -1, err) : AP_OK;
}

/* Index of the longest added token of the pass matching at s, or -1. */
static long longest_added(const ap_tokenizer *tok, int normalized, const char *s, size_t n) {
    long best = -1;
    for (size_t i = 0; i < tok->n_added; i++) {
        const tok_added *a = &tok->added[i];
        if (a->normalized != normalized || a->content[0] != s[0] || a->len > n) continue;
        if ((best < 0 || a->len > tok->added[best].len) && memcmp(a->content, s, a->len) == 0) best = (long)i;
    }
    return best;
}

static int word_char_at(const split_ctx *c, const char *s, size_t n) {
    uint32_t cp;
    size_t k = tok_utf8_get(s, n, &cp);
    return pcre2_match(c->tok->word_re, (PCRE2_SPTR)s, k, 0, PCRE2_NO_UTF_CHECK, c->md, NULL) >= 0;
}

/* Start of the character that ends s[0..end). */
static size_t prev_char(const char *s, size_t end) {
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

static int white_space_at(const char *s, size_t n, size_t *len) {
    uint32_t cp;
    *len = tok_utf8_get(s, n, &cp);
    return tok_is_white_space(cp);
}

/* One pass of the added-token split, as the Rust crate's AddedVocabulary
 * find_matches: leftmost-longest matches, scanning on after each raw match;
 * single_word drops a match touching a word character; lstrip/rstrip pull
 * the neighbouring whitespace into the token. Pass 0 matches the tokens with
 * normalized=false on the whole text, pass 1 the others on what is left. */
static ap_status split_added(const split_ctx *c, int pass, const char *s, size_t n, ap_error *err) {
    const ap_tokenizer *tok = c->tok;
    if (pass == 2) return split_regex(c, s, n, err);
    if (!tok->n_added_pass[pass]) return split_added(c, pass + 1, s, n, err);
    size_t start_offset = 0, p = 0;
    ap_status st;
    while (p < n) {
        long k = tok->added_first[pass][(unsigned char)s[p]] ? longest_added(tok, pass, s + p, n - p) : -1;
        if (k < 0) {
            p++;
            continue;
        }
        const tok_added *a = &tok->added[k];
        size_t start = p, stop = p + a->len;
        p = stop;
        if (a->single_word && ((start > 0 && word_char_at(c, s + prev_char(s, start), start - prev_char(s, start))) ||
                               (stop < n && word_char_at(c, s + stop, n - stop))))
            continue;
        size_t w;
        if (a->lstrip) {
            size_t new_start = start;
            while (new_start > 0) {
                size_t q = prev_char(s, new_start);
                if (!white_space_at(s + q, new_start - q, &w)) break;
                new_start = q;
            }
            start = new_start > start_offset ? new_start : start_offset;
        }
        if (a->rstrip)
            while (stop < n && white_space_at(s + stop, n - stop, &w)) stop += w;
        if (start_offset < start && (st = split_added(c, pass + 1, s + start_offset, start - start_offset, err)))
            return st;
        if ((st = c->fn(c->ctx, NULL, 0, a->id, err))) return st;
        start_offset = stop;
    }
    return start_offset < n ? split_added(c, pass + 1, s + start_offset, n - start_offset, err) : AP_OK;
}

ap_status tok_pretokenize(const ap_tokenizer *tok, const char *text, size_t len, pcre2_match_data *md, tok_piece_fn fn,
                          void *ctx, ap_error *err) {
    split_ctx c = {tok, md, fn, ctx};
    return split_added(&c, 0, text, len, err);
}
