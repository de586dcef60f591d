/* Tests of src/text: the byte-level BPE tokenizer on a small hand-made
 * tokenizer.json (fixtures/text/tiny: 2 special tokens, the 256 ByteLevel
 * characters, 19 merges chosen to expose rank order, the Digits split and the
 * whitespace rules). Variants of it are written on the fly to test options and
 * malformed files. Agreement with Hugging Face on a real vocabulary is tested
 * by cli_tokenize_oracle.sh. Expected pieces are written in ByteLevel form:
 * "Ġ" is a space, "Ċ" a newline. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/text.h"

#define TINY "fixtures/text/tiny/tokenizer.json"
#define TINY_IDS 277

static ap_tokenizer *load(const char *path) {
    ap_tokenizer *tok = NULL;
    TU_OK(ap_tokenizer_load(path, &tok, tu_err()));
    return tok;
}

/* The tokens of text joined by '|', e.g. "a|bc" (malloc'ed). */
static char *pieces_n(const ap_tokenizer *tok, const char *text, size_t len) {
    int32_t *ids;
    size_t n;
    TU_OK(ap_tokenizer_encode(tok, text, len, &ids, &n, tu_err()));
    ap_buf b = {0};
    ap_buf_append(&b, "", 0, NULL);
    for (size_t i = 0; i < n; i++) {
        const char *t = ap_tokenizer_id_to_token(tok, ids[i]);
        assert_non_null(t);
        if (i) ap_buf_append(&b, "|", 1, NULL);
        ap_buf_append(&b, t, strlen(t), NULL);
    }
    free(ids);
    return b.data;
}

#define ASSERT_PIECES(tok, text, expected)                                                                             \
    do {                                                                                                               \
        char *got_ = pieces_n(tok, text, strlen(text));                                                                \
        assert_string_equal(got_, expected);                                                                           \
        free(got_);                                                                                                    \
    } while (0)

/* Write a variant of the tiny tokenizer, changed by edit, and return its path. */
static char *variant(const char *name, void (*edit)(cJSON *root)) {
    char *text;
    size_t len;
    TU_OK(ap_read_file(TINY, &text, &len, tu_err()));
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    free(text);
    edit(root);
    char *out = cJSON_PrintUnformatted(root);
    char *path = tu_tmp_path(name);
    tu_write_file(path, out, strlen(out));
    free(out);
    cJSON_Delete(root);
    return path;
}

static cJSON *model(cJSON *root) { return cJSON_GetObjectItemCaseSensitive(root, "model"); }
static cJSON *vocab(cJSON *root) { return cJSON_GetObjectItemCaseSensitive(model(root), "vocab"); }

static void add_token(cJSON *root, int id, const char *content, int lstrip, int rstrip, int single_word,
                      int normalized) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", single_word);
    cJSON_AddBoolToObject(t, "lstrip", lstrip);
    cJSON_AddBoolToObject(t, "rstrip", rstrip);
    cJSON_AddBoolToObject(t, "normalized", normalized);
    cJSON_AddBoolToObject(t, "special", !normalized);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), t);
}

/* Load path expecting failure with code; the message must name the file and
 * contain what. */
static void assert_load_fails(const char *path, ap_status code, const char *what) {
    ap_tokenizer *tok = NULL;
    ap_error err = {0};
    assert_int_equal(ap_tokenizer_load(path, &tok, &err), code);
    assert_null(tok);
    if (!strstr(err.msg, path) || !strstr(err.msg, what))
        fail_msg("message '%s' lacks '%s' or '%s'", err.msg, path, what);
}

static void test_merge_rank_order(void **state) {
    (void)state;
    ap_tokenizer *tok = load(TINY);
    ASSERT_PIECES(tok, "abc", "a|bc");  /* "b c" ranks before "a b" */
    ASSERT_PIECES(tok, "xyz", "xy|z");  /* "x y" ranks before "y z" */
    ASSERT_PIECES(tok, "aaa", "aa|a");  /* equal ranks: leftmost first */
    ASSERT_PIECES(tok, "aaaa", "aaaa"); /* "aa aa" after both "a a" */
    ASSERT_PIECES(tok, "aaaaa", "aaaa|a");
    ASSERT_PIECES(tok, " the", "Ġthe"); /* "Ġ t", "h e", then "Ġt he" */
    ASSERT_PIECES(tok, "the", "t|he");
    ASSERT_PIECES(tok, "caf\xC3\xA9", "c|a|f|Ã©"); /* é = C3 A9 -> "Ã" "©" merged */
    ap_tokenizer_free(tok);
}

static void swap_ab_bc(cJSON *root) {
    /* Move "a b" (rank 4) in front of "b c" (rank 3). */
    cJSON *merges = cJSON_GetObjectItemCaseSensitive(model(root), "merges");
    cJSON_ReplaceItemInArray(merges, 3, cJSON_CreateString("a b"));
    cJSON_ReplaceItemInArray(merges, 4, cJSON_CreateString("b c"));
}

static void test_merge_order_from_file(void **state) {
    (void)state;
    char *path = variant("swapped.json", swap_ab_bc);
    ap_tokenizer *tok = load(path);
    ASSERT_PIECES(tok, "abc", "ab|c");
    ap_tokenizer_free(tok);
    free(path);
}

static void lone_byte_level(cJSON *root) {
    cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    cJSON *bl = cJSON_DetachItemFromArray(cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers"), 1);
    cJSON_ReplaceItemInObjectCaseSensitive(root, "pre_tokenizer", bl);
}

static void contiguous_digits(cJSON *root) {
    cJSON *pre = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pretokenizers"), 0);
    cJSON_ReplaceItemInObjectCaseSensitive(pre, "individual_digits", cJSON_CreateFalse());
}

static void test_digits(void **state) {
    (void)state;
    ap_tokenizer *tok = load(TINY);
    /* Each digit alone: neither "1 2" nor "Ġ 1" can merge. */
    ASSERT_PIECES(tok, "x 12", "x|Ġ|1|2");
    ASSERT_PIECES(tok, "x12y", "x|1|2|y");
    /* Every Unicode number (\p{N}) is split off, not only ASCII: ٣ is D9 A3. */
    ASSERT_PIECES(tok, "a \xD9\xA3", "a|Ġ|Ù|£");
    /* The space before a digit ends its run: two spaces stay together. */
    ASSERT_PIECES(tok, "x  1", "x|ĠĠ|1");
    ap_tokenizer_free(tok);

    char *path = variant("gpt2_style.json", lone_byte_level); /* GPT-2: no Digits */
    tok = load(path);
    ASSERT_PIECES(tok, "x 12", "x|Ġ|12"); /* " 12" one piece: "1 2" before "Ġ 1" */
    ASSERT_PIECES(tok, "a \xD9\xA3", "a|ĠÙ|£");
    ASSERT_PIECES(tok, "x  1", "x|Ġ|Ġ1");
    ap_tokenizer_free(tok);
    free(path);

    path = variant("digit_runs.json", contiguous_digits);
    tok = load(path);
    ASSERT_PIECES(tok, "x 12", "x|Ġ|12");
    ASSERT_PIECES(tok, "x 123", "x|Ġ|12|3");
    ap_tokenizer_free(tok);
    free(path);
}

static void test_whitespace(void **state) {
    (void)state;
    ap_tokenizer *tok = load(TINY);
    /* \s+(?!\S): a run before a word leaves its last space to the word. */
    ASSERT_PIECES(tok, "a   b", "a|ĠĠ|Ġ|b");
    ASSERT_PIECES(tok, "a  \n\nb", "a|ĠĠ|Ċ|Ċ|b");
    ASSERT_PIECES(tok, "a  ", "a|ĠĠ");
    ASSERT_PIECES(tok, "\n\n\n", "ĊĊ|Ċ");
    ASSERT_PIECES(tok, "a\r\nb", "a|č|Ċ|b");
    ASSERT_PIECES(tok, "a\t b", "a|ĉ|Ġ|b");
    /* U+0085 is whitespace (Unicode White_Space, as Oniguruma's \s): the
     * space before it stays alone instead of joining it as punctuation. */
    ASSERT_PIECES(tok,
                  "a \xC2\x85"
                  "b",
                  "a|Ġ|Â|ħ|b");
    /* U+FEFF is not whitespace: " \uFEFF" is one punctuation piece. */
    ASSERT_PIECES(tok, "a \xEF\xBB\xBF", "a|Ġï|»|¿");
    /* U+00A0 is whitespace. */
    ASSERT_PIECES(tok,
                  "a \xC2\xA0"
                  "b",
                  "a|Ġ|Â|ł|b");
    ap_tokenizer_free(tok);
}

static void test_contractions_and_punctuation(void **state) {
    (void)state;
    ap_tokenizer *tok = load(TINY);
    ASSERT_PIECES(tok, "it's", "it|'s");
    ASSERT_PIECES(tok, "IT'S", "I|T|'|S"); /* case-sensitive */
    ASSERT_PIECES(tok, "'sa", "'s|a");
    ASSERT_PIECES(tok, "a+=b", "a|+|=|b");
    ASSERT_PIECES(tok, "", "");
    ap_tokenizer_free(tok);
}

static void test_added_tokens(void **state) {
    (void)state;
    ap_tokenizer *tok = load(TINY);
    ASSERT_PIECES(tok, "a<fim_prefix>b<|endoftext|>", "a|<fim_prefix>|b|<|endoftext|>");
    ASSERT_PIECES(tok, "<<fim_prefix>>", "<|<fim_prefix>|>");
    ASSERT_PIECES(tok, "<fim_prefix", "<|f|i|m|_|p|r|e|f|i|x");
    ASSERT_PIECES(tok, " <fim_prefix> the", "Ġ|<fim_prefix>|Ġthe");
    int32_t *ids;
    size_t n;
    TU_OK(ap_tokenizer_encode(tok, "<|endoftext|><fim_prefix>", 25, &ids, &n, tu_err()));
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    free(ids);
    ap_tokenizer_free(tok);
}

static void strip_options(cJSON *root) {
    add_token(root, 277, "<both>", 1, 1, 0, 0);
    add_token(root, 278, "<left>", 1, 0, 0, 0);
    add_token(root, 279, "<right>", 0, 1, 0, 0);
    add_token(root, 280, "xyz", 0, 0, 1, 0);
    /* Two passes: normalized=false tokens first, then the others. */
    add_token(root, 281, "<ab", 0, 0, 0, 1);
    add_token(root, 282, "b>", 0, 0, 0, 0);
}

static void test_added_token_options(void **state) {
    (void)state;
    char *path = variant("options.json", strip_options);
    ap_tokenizer *tok = load(path);
    assert_int_equal(ap_tokenizer_vocab_size(tok), 283);
    ASSERT_PIECES(tok, "a <both>\t b", "a|<both>|b");
    ASSERT_PIECES(tok, "a  <left> b", "a|<left>|Ġ|b");
    ASSERT_PIECES(tok, "a <right>  b", "a|Ġ|<right>|b");
    ASSERT_PIECES(tok, "<left><left>", "<left>|<left>");
    /* single_word: only where no word character touches it. */
    ASSERT_PIECES(tok, "xyz", "xyz");
    ASSERT_PIECES(tok, "a xyz.", "a|Ġ|xyz|.");
    ASSERT_PIECES(tok, "axyz", "a|xy|z");
    ASSERT_PIECES(tok, "xyz_", "xy|z|_");
    ASSERT_PIECES(tok, "\xC3\xA9xyz", "Ã©|xy|z"); /* é is a word character */
    /* "b>" (pass 1) wins over the earlier "<ab" (pass 2). */
    ASSERT_PIECES(tok, "<ab>", "<|a|b>");
    ASSERT_PIECES(tok, "<ab", "<ab");
    ap_tokenizer_free(tok);
    free(path);
}

static void pair_merges(cJSON *root) {
    cJSON *merges = cJSON_GetObjectItemCaseSensitive(model(root), "merges");
    cJSON *pairs = cJSON_CreateArray();
    for (cJSON *m = merges->child; m; m = m->next) {
        char *s = m->valuestring, *sp = strchr(s, ' ');
        *sp = '\0';
        const char *two[2] = {s, sp + 1};
        cJSON_AddItemToArray(pairs, cJSON_CreateStringArray(two, 2));
    }
    cJSON_ReplaceItemInObjectCaseSensitive(model(root), "merges", pairs);
}

static void test_pair_merges(void **state) {
    (void)state;
    char *path = variant("pairs.json", pair_merges);
    ap_tokenizer *tok = load(path);
    ASSERT_PIECES(tok, "abc xyz aaaa the 12", "a|bc|Ġ|xy|z|Ġ|aaaa|Ġthe|Ġ|1|2");
    ap_tokenizer_free(tok);
    free(path);
}

static void whole_words(cJSON *root) {
    cJSON_AddNumberToObject(vocab(root), "abc", 277);
    cJSON_ReplaceItemInObjectCaseSensitive(model(root), "ignore_merges", cJSON_CreateTrue());
}

static void unk_for_q(cJSON *root) {
    cJSON *v = vocab(root);
    int id = cJSON_GetObjectItemCaseSensitive(v, "q")->valueint;
    cJSON_DeleteItemFromObjectCaseSensitive(v, "q");
    cJSON_AddNumberToObject(v, "<unk>", id);
    cJSON_ReplaceItemInObjectCaseSensitive(model(root), "unk_token", cJSON_CreateString("<unk>"));
}

static void unk_fused(cJSON *root) {
    unk_for_q(root);
    cJSON_ReplaceItemInObjectCaseSensitive(model(root), "fuse_unk", cJSON_CreateTrue());
}

static void q_missing(cJSON *root) {
    cJSON *v = vocab(root);
    int id = cJSON_GetObjectItemCaseSensitive(v, "q")->valueint;
    cJSON_DeleteItemFromObjectCaseSensitive(v, "q");
    cJSON_AddNumberToObject(v, "<not-q>", id);
}

static void test_model_options(void **state) {
    (void)state;
    char *path = variant("ignore_merges.json", whole_words);
    ap_tokenizer *tok = load(path);
    ASSERT_PIECES(tok, "abc abcd", "abc|Ġ|a|bc|d"); /* a whole-word token wins over merges */
    ap_tokenizer_free(tok);
    free(path);

    path = variant("unk.json", unk_for_q);
    tok = load(path);
    ASSERT_PIECES(tok, "aqqb", "a|<unk>|<unk>|b");
    ap_tokenizer_free(tok);
    free(path);
    path = variant("unk_fused.json", unk_fused);
    tok = load(path);
    ASSERT_PIECES(tok, "aqqb", "a|<unk>|b");
    ASSERT_PIECES(tok, "q", "<unk>");
    ap_tokenizer_free(tok);
    free(path);
    /* No unk_token: unknown characters are dropped, as the Rust crate does,
     * and their neighbours then merge. */
    path = variant("no_q.json", q_missing);
    tok = load(path);
    ASSERT_PIECES(tok, "aqqb", "ab");
    ap_tokenizer_free(tok);
    free(path);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xFF"
         "b",
         "a\xEF\xBF\xBD"
         "b"},
        {"\xE2\x82", "\xEF\xBF\xBD"}, /* truncated: one U+FFFD */
        {"\xE2\x82x", "\xEF\xBF\xBDx"},
        {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate: 3 */
        {"\xF0\x9F\x98"
         "x",
         "\xEF\xBF\xBDx"},
        {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong */
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"ok \xC3\xA9", "ok \xC3\xA9"},
    };
    ap_tokenizer *tok = load(TINY);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *fixed;
        size_t n;
        TU_OK(ap_utf8_lossy(cases[i].in, strlen(cases[i].in), &fixed, &n, tu_err()));
        assert_int_equal(n, strlen(cases[i].out));
        assert_memory_equal(fixed, cases[i].out, n);
        /* Encoding invalid bytes equals encoding their lossy form. */
        char *a = pieces_n(tok, cases[i].in, strlen(cases[i].in));
        char *b = pieces_n(tok, fixed, n);
        assert_string_equal(a, b);
        free(a);
        free(b);
        free(fixed);
    }
    ASSERT_PIECES(tok, "\xFF", "ï|¿|½");
    ap_tokenizer_free(tok);
}

static void test_decode(void **state) {
    (void)state;
    ap_tokenizer *tok = load(TINY);
    static const char *const texts[] = {
        "public static void main(String[] args) {\n\tint x = 42;\r\n}",
        "a<fim_prefix>b<|endoftext|>  \xC2\xA0 caf\xC3\xA9 \xF0\x9F\x98\x80 \xD9\xA3\xD9\xA4 it's",
        "",
        "   ",
        "\x01\x7F",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids;
        size_t n, len;
        char *text;
        TU_OK(ap_tokenizer_encode(tok, texts[i], strlen(texts[i]), &ids, &n, tu_err()));
        TU_OK(ap_tokenizer_decode(tok, ids, n, &text, &len, tu_err()));
        assert_int_equal(len, strlen(texts[i]));
        assert_string_equal(text, texts[i]);
        free(ids);
        free(text);
    }
    /* A token that ends inside a character decodes to the raw byte. */
    int32_t one[1] = {ap_tokenizer_token_id(tok, "Ã")};
    char *text;
    size_t len;
    TU_OK(ap_tokenizer_decode(tok, one, 1, &text, &len, tu_err()));
    assert_int_equal(len, 1);
    assert_int_equal((unsigned char)text[0], 0xC3);
    free(text);

    ap_error err = {0};
    int32_t bad[3] = {5, TINY_IDS, 6};
    assert_int_equal(ap_tokenizer_decode(tok, bad, 3, &text, &len, &err), AP_ERR_RANGE);
    assert_non_null(strstr(err.msg, "277"));
    assert_null(text);
    int32_t neg[1] = {-1};
    assert_int_equal(ap_tokenizer_decode(tok, neg, 1, &text, &len, &err), AP_ERR_RANGE);
    ap_tokenizer_free(tok);
}

static void test_vocab_api(void **state) {
    (void)state;
    ap_tokenizer *tok = load("fixtures/text/tiny"); /* a directory holding tokenizer.json */
    assert_int_equal(ap_tokenizer_vocab_size(tok), TINY_IDS);
    assert_int_equal(ap_tokenizer_token_id(tok, "<fim_prefix>"), 1);
    assert_int_equal(ap_tokenizer_token_id(tok, "a"), 2 + 'a');
    assert_int_equal(ap_tokenizer_token_id(tok, "Ġ"), 2 + ' ');
    assert_int_equal(ap_tokenizer_token_id(tok, "Ġthe"), 260);
    assert_int_equal(ap_tokenizer_token_id(tok, "nope"), -1);
    assert_string_equal(ap_tokenizer_id_to_token(tok, 0), "<|endoftext|>");
    assert_string_equal(ap_tokenizer_id_to_token(tok, 2 + '\n'), "Ċ");
    assert_null(ap_tokenizer_id_to_token(tok, TINY_IDS));
    assert_null(ap_tokenizer_id_to_token(tok, -1));
    ap_tokenizer_free(tok);
}

static void long_inputs_case(const ap_tokenizer *tok, char fill, size_t n, const char *tail, size_t expect) {
    size_t tl = strlen(tail);
    char *s = malloc(n + tl);
    memset(s, fill, n);
    memcpy(s + n, tail, tl);
    int32_t *ids;
    size_t k;
    TU_OK(ap_tokenizer_encode(tok, s, n + tl, &ids, &k, tu_err()));
    assert_int_equal(k, expect);
    free(ids);
    free(s);
}

static void test_long_inputs(void **state) {
    (void)state;
    ap_tokenizer *tok = load(TINY);
    long_inputs_case(tok, ' ', 1000001, "x", 500002); /* 500000 "ĠĠ", then " x": "Ġ", "x" */
    long_inputs_case(tok, 'a', 1000000, "", 250000);  /* "aaaa" each */
    long_inputs_case(tok, '7', 300000, "", 300000);   /* one per digit */
    ap_tokenizer_free(tok);
}

/* Malformed and foreign tokenizers. */
static void wordpiece(cJSON *root) {
    cJSON_ReplaceItemInObjectCaseSensitive(model(root), "type", cJSON_CreateString("WordPiece"));
}
static void unigram(cJSON *root) {
    cJSON_ReplaceItemInObjectCaseSensitive(model(root), "type", cJSON_CreateString("Unigram"));
}
static void nfc(cJSON *root) {
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "type", "NFC");
    cJSON_ReplaceItemInObjectCaseSensitive(root, "normalizer", n);
}
static void prefix_space(cJSON *root) {
    lone_byte_level(root);
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "add_prefix_space",
                                           cJSON_CreateTrue());
}
static void whitespace_pre(cJSON *root) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "Whitespace");
    cJSON_ReplaceItemInObjectCaseSensitive(root, "pre_tokenizer", p);
}
static void byte_fallback(cJSON *root) {
    cJSON_ReplaceItemInObjectCaseSensitive(model(root), "byte_fallback", cJSON_CreateTrue());
}
static void template_post(cJSON *root) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "TemplateProcessing");
    cJSON_ReplaceItemInObjectCaseSensitive(root, "post_processor", p);
}
static void dup_id(cJSON *root) {
    cJSON_ReplaceItemInObjectCaseSensitive(vocab(root), "b", cJSON_CreateNumber(2 + 'a'));
}
static void id_too_big(cJSON *root) {
    cJSON_ReplaceItemInObjectCaseSensitive(vocab(root), "b", cJSON_CreateNumber(100000));
}
static void id_fraction(cJSON *root) {
    cJSON_ReplaceItemInObjectCaseSensitive(vocab(root), "b", cJSON_CreateNumber(3.5));
}
static void merge_unknown(cJSON *root) {
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(model(root), "merges"), cJSON_CreateString("q z"));
}
static void merge_three(cJSON *root) {
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(model(root), "merges"), cJSON_CreateString("a b c"));
}
static void added_clash(cJSON *root) { add_token(root, 5, "<new>", 0, 0, 0, 0); }
static void added_wrong_id(cJSON *root) { add_token(root, 277, "ab", 0, 0, 0, 0); }

static void test_load_errors(void **state) {
    (void)state;
    static const struct {
        const char *name;
        void (*edit)(cJSON *);
        const char *what;
    } cases[] = {
        {"wordpiece.json", wordpiece, "model type 'WordPiece'"},
        {"unigram.json", unigram, "Unigram"},
        {"nfc.json", nfc, "normalizer 'NFC'"},
        {"prefix.json", prefix_space, "add_prefix_space true"},
        {"whitespace.json", whitespace_pre, "pre_tokenizer type 'Whitespace'"},
        {"fallback.json", byte_fallback, "byte_fallback"},
        {"template.json", template_post, "TemplateProcessing"},
        {"dup_id.json", dup_id, "used twice"},
        {"id_big.json", id_too_big, "vocab token 'b'"},
        {"id_frac.json", id_fraction, "not an integer"},
        {"merge_unknown.json", merge_unknown, "merges[19]"},
        {"merge_three.json", merge_three, "merges[19]"},
        {"added_clash.json", added_clash, "id 5"},
        {"added_wrong_id.json", added_wrong_id, "vocab id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = variant(cases[i].name, cases[i].edit);
        assert_load_fails(path, AP_ERR_FORMAT, cases[i].what);
        free(path);
    }
    char *path = tu_tmp_path("broken.json");
    tu_write_file(path, "{\"model\": {", 11);
    assert_load_fails(path, AP_ERR_FORMAT, "not valid JSON");
    free(path);
    assert_load_fails("fixtures/text/does-not-exist.json", AP_ERR_IO, "cannot open");
    path = tu_tmp_path("empty-dir");
    tu_run(NULL, "mkdir -p '%s'", path);
    assert_load_fails(path, AP_ERR_IO, "tokenizer.json");
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_rank_order),
        cmocka_unit_test(test_merge_order_from_file),
        cmocka_unit_test(test_digits),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_contractions_and_punctuation),
        cmocka_unit_test(test_added_tokens),
        cmocka_unit_test(test_added_token_options),
        cmocka_unit_test(test_pair_merges),
        cmocka_unit_test(test_model_options),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_vocab_api),
        cmocka_unit_test(test_long_inputs),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
