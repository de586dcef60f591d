/* Tests of src/io: half-precision conversions, safetensors reading/writing
 * (single files, shards, and every kind of malformed file), JSON access. */
#include "testutil.h"

#include "apmae/io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int f16_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x03FF); }
static int bf16_is_nan(uint16_t h) { return (h & 0x7F80) == 0x7F80 && (h & 0x007F); }

/* ------------------------------------------------------------------ dtypes */

static void test_dtypes(void **state) {
    (void)state;
    const char *names[] = {"F32", "F16", "BF16", "I64", "I32", "U8"};
    const size_t sizes[] = {4, 2, 2, 8, 4, 1};
    for (int i = 0; i < AP_DTYPE_COUNT; i++) {
        ap_dtype dt;
        assert_int_equal(ap_dtype_from_name(names[i], &dt), 0);
        assert_int_equal(dt, i);
        assert_string_equal(ap_dtype_name(dt), names[i]);
        assert_int_equal(ap_dtype_size(dt), sizes[i]);
    }
    ap_dtype dt;
    assert_int_equal(ap_dtype_from_name("F64", &dt), -1);
    assert_int_equal(ap_dtype_from_name("f32", &dt), -1);
}

/* ------------------------------------------------------------------- half */

/* Independent reference for widening: value = mantissa * 2^exponent. */
static float f16_reference(uint16_t h) {
    int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 31) return m ? NAN : (float)(s * INFINITY);
    if (e == 0) return (float)(s * ldexp(m, -24));
    return (float)(s * ldexp(1024 + m, e - 25));
}

static void test_f16_exhaustive(void **state) {
    (void)state;
    static uint16_t all[65536];
    static float wide[65536];
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    ap_to_f32(AP_F16, all, wide, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = ap_f16_to_f32(h);
        float ref = f16_reference(h);
        if (f16_is_nan(h)) {
            assert_true(isnan(f));
            assert_true(isnan(wide[i]));
            assert_true(f16_is_nan(ap_f32_to_f16(f)));
            assert_int_equal(ap_f32_to_f16(f) & 0x8000, h & 0x8000);
        } else {
            if (bits_of(f) != bits_of(ref))
                fail_msg("f16 %04x widened to %08x, want %08x", h, bits_of(f), bits_of(ref));
            assert_int_equal(bits_of(wide[i]), bits_of(ref));
            if (ap_f32_to_f16(f) != h) fail_msg("f16 %04x -> %a -> %04x", h, (double)f, ap_f32_to_f16(f));
        }
    }
    assert_true(ap_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(ap_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(ap_f16_to_f32(0xFC00) == -INFINITY);
}

static void test_bf16_exhaustive(void **state) {
    (void)state;
    static uint16_t all[65536];
    static float wide[65536];
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    ap_to_f32(AP_BF16, all, wide, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = ap_bf16_to_f32(h);
        assert_int_equal(bits_of(f), (uint32_t)h << 16);
        assert_int_equal(bits_of(wide[i]), (uint32_t)h << 16);
        if (bf16_is_nan(h)) {
            assert_true(isnan(f));
            assert_true(bf16_is_nan(ap_f32_to_bf16(f)));
        } else {
            assert_int_equal(ap_f32_to_bf16(f), h);
        }
    }
}

static void test_half_rounding(void **state) {
    (void)state;
    /* f16 near 1: spacing 2^-10, so 1 + 2^-11 is a tie. */
    assert_int_equal(ap_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3C00);              /* tie -> even (down) */
    assert_int_equal(ap_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3C02);          /* tie -> even (up) */
    assert_int_equal(ap_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3C01); /* above tie */
    assert_int_equal(ap_f32_to_f16(-(1.0f + 3 * ldexpf(1, -11))), 0xBC02);
    assert_int_equal(ap_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(ap_f32_to_f16(65519.0f), 0x7BFF);
    assert_int_equal(ap_f32_to_f16(65520.0f), 0x7C00); /* tie with the first non-finite -> Inf */
    assert_int_equal(ap_f32_to_f16(-1e30f), 0xFC00);
    /* f16 subnormals: 2^-25 is the tie between 0 and the smallest one. */
    assert_int_equal(ap_f32_to_f16(ldexpf(1, -25)), 0x0000);
    assert_int_equal(ap_f32_to_f16(ldexpf(1, -25) * 1.0001f), 0x0001);
    assert_int_equal(ap_f32_to_f16(3 * ldexpf(1, -25)), 0x0002);
    assert_int_equal(ap_f32_to_f16(5 * ldexpf(1, -25)), 0x0002);
    assert_int_equal(ap_f32_to_f16(-ldexpf(1, -24)), 0x8001);
    assert_int_equal(ap_f32_to_f16(ldexpf(1, -14) - ldexpf(1, -25)), 0x0400); /* rounds up into the normals */
    assert_int_equal(ap_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(ap_f32_to_f16(float_of(0x7F800001)), 0x7E00); /* payload lost but still NaN */
    /* bf16 near 1: spacing 2^-7. */
    assert_int_equal(ap_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3F80);
    assert_int_equal(ap_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)), 0x3F82);
    assert_int_equal(ap_f32_to_bf16(259.0f), 0x4382);
    assert_int_equal(ap_f32_to_bf16(float_of(0x7F7FFFFF)), 0x7F80); /* FLT_MAX rounds to Inf */
    assert_int_equal(ap_f32_to_bf16(float_of(0x00018000)), 0x0002);  /* subnormal tie -> even */
    assert_int_equal(ap_f32_to_bf16(float_of(0x7F800001)), 0x7FC0);
    assert_int_equal(ap_f32_to_bf16(-INFINITY), 0xFF80);

    float src[5] = {1.5f, -2.0f, ldexpf(1, -24), 65520.0f, 0.1f}, back[5];
    uint16_t half[5];
    ap_from_f32(AP_F16, src, half, 5);
    assert_int_equal(half[3], 0x7C00);
    ap_to_f32(AP_F16, half, back, 5);
    assert_true(back[0] == 1.5f && back[1] == -2.0f && back[2] == src[2]);
    ap_from_f32(AP_BF16, src, half, 5);
    assert_int_equal(half[4], ap_f32_to_bf16(0.1f));
}

/* tests/fixtures/io/half_ref.txt: "f32 f16 bf16" bit patterns from torch. */
static void test_half_vs_torch(void **state) {
    (void)state;
    FILE *f = fopen("fixtures/io/half_ref.txt", "r");
    assert_non_null(f);
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        unsigned u, h, b;
        assert_int_equal(sscanf(line, "%x %x %x", &u, &h, &b), 3);
        float x = float_of(u);
        if (isnan(x)) {
            assert_true(f16_is_nan(ap_f32_to_f16(x)) && f16_is_nan((uint16_t)h));
            assert_true(bf16_is_nan(ap_f32_to_bf16(x)) && bf16_is_nan((uint16_t)b));
        } else {
            if (ap_f32_to_f16(x) != h) fail_msg("f32 %08x: f16 %04x, torch %04x", u, ap_f32_to_f16(x), h);
            if (ap_f32_to_bf16(x) != b) fail_msg("f32 %08x: bf16 %04x, torch %04x", u, ap_f32_to_bf16(x), b);
        }
        n++;
    }
    fclose(f);
    assert_true(n >= 150);
}

/* ------------------------------------------------------------ safetensors */

static void assert_contains(const char *msg, const char *part) {
    if (!strstr(msg, part)) fail_msg("message \"%s\" does not mention \"%s\"", msg, part);
}

/* One of each dtype, plus a scalar, a zero-size tensor and odd sizes that
 * force alignment padding. */
typedef struct sample {
    float f32[6];
    uint16_t f16[3], bf16[4];
    int64_t i64[2];
    int32_t i32[5];
    uint8_t u8[3];
    float scalar;
} sample;

static void make_sample(sample *s, ap_tensor_view *v) {
    for (int i = 0; i < 6; i++) s->f32[i] = (float)i * 0.5f - 1.0f;
    float hf[4] = {1.0f, -2.5f, 0.0625f, 65504.0f};
    ap_from_f32(AP_F16, hf, s->f16, 3);
    ap_from_f32(AP_BF16, hf, s->bf16, 4);
    s->i64[0] = INT64_MIN;
    s->i64[1] = 1234567890123LL;
    for (int i = 0; i < 5; i++) s->i32[i] = -i * 1000;
    s->u8[0] = 0;
    s->u8[1] = 128;
    s->u8[2] = 255;
    s->scalar = 3.25f;
    ap_tensor_view views[] = {
        {"a.u8", AP_U8, 1, {3}, s->u8},
        {"b.f32", AP_F32, 2, {2, 3}, s->f32},
        {"c.f16", AP_F16, 1, {3}, s->f16},
        {"d.bf16", AP_BF16, 3, {2, 1, 2}, s->bf16},
        {"e.i64", AP_I64, 1, {2}, s->i64},
        {"f.i32", AP_I32, 1, {5}, s->i32},
        {"g.scalar", AP_F32, 0, {0}, &s->scalar},
        {"h.empty", AP_F32, 2, {0, 4}, NULL},
        {"weird \"name\"\\\n", AP_U8, 1, {1}, s->u8},
    };
    memcpy(v, views, sizeof views);
}
#define NSAMPLE 9

static void test_st_roundtrip(void **state) {
    (void)state;
    sample s;
    ap_tensor_view v[NSAMPLE];
    make_sample(&s, v);
    char *path = tu_tmp_path("round.safetensors");
    const char *meta[] = {"format", "pt", "note", "quote\" and \\ ok", NULL};
    TU_OK(ap_st_write(path, v, NSAMPLE, meta, tu_err()));
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_false(ap_path_exists(tmp));

    ap_safetensors *st;
    TU_OK(ap_st_open(path, &st, tu_err()));
    assert_int_equal(st->ntensors, NSAMPLE);
    assert_int_equal(st->nfiles, 1);
    /* Packed in order; padding only where the next dtype needs alignment
     * (before c.f16 nothing: 28 is even; before e.i64: 42 -> 48). */
    const ptrdiff_t want_begin[NSAMPLE] = {0, 4, 28, 34, 48, 64, 84, 88, 88};
    const char *base = st->maps[0].data;
    uint64_t hlen;
    memcpy(&hlen, base, 8); /* the test machine is little-endian */
    assert_int_equal(hlen % 8, 0);
    for (int i = 0; i < NSAMPLE; i++) {
        const ap_tensor *t = ap_st_find(st, v[i].name);
        assert_non_null(t);
        assert_string_equal(t->name, v[i].name);
        assert_int_equal(t->dtype, v[i].dtype);
        assert_int_equal(t->ndim, v[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], v[i].shape[d]);
            numel *= (size_t)v[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->nbytes, numel * ap_dtype_size(t->dtype));
        if (t->nbytes) assert_memory_equal(t->data, v[i].data, t->nbytes);
        assert_int_equal((const char *)t->data - base - 8 - (ptrdiff_t)hlen, want_begin[i]);
        assert_string_equal(t->file, path);
    }
    assert_int_equal(ap_st_find(st, "g.scalar")->numel, 1);
    assert_int_equal(ap_st_find(st, "h.empty")->numel, 0);
    assert_null(ap_st_find(st, "nope"));
    assert_string_equal(ap_st_meta(st, "format"), "pt");
    assert_string_equal(ap_st_meta(st, "note"), "quote\" and \\ ok");
    assert_null(ap_st_meta(st, "other"));

    /* The header is plain JSON: cJSON reads it back, padding included. */
    cJSON *hdr = cJSON_ParseWithLength(base + 8, (size_t)hlen);
    assert_non_null(hdr);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(hdr, "__metadata__"));
    /* Tensors appear in the header in the order given. */
    const cJSON *first = hdr->child->next;
    assert_string_equal(first->string, "a.u8");
    cJSON_Delete(hdr);

    const ap_tensor *t;
    int64_t want[2] = {2, 3};
    TU_OK(ap_st_expect(st, "b.f32", 1, 2, want, &t, tu_err()));
    ap_error err = {0};
    assert_int_equal(ap_st_expect(st, "e.i64", 1, 1, (int64_t[]){2}, &t, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "I64");
    assert_int_equal(ap_st_expect(st, "b.f32", 1, 2, (int64_t[]){3, 2}, &t, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "[2, 3]");
    assert_contains(err.msg, "[3, 2]");
    assert_null(t);
    assert_int_equal(ap_st_expect(st, "zz", 0, 0, NULL, &t, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "zz");
    assert_contains(err.msg, path);
    ap_st_close(st);

    /* A directory holding model.safetensors opens too; no tensors, no
     * metadata is a valid file. */
    char *dir = tu_tmp_path("single");
    char *model = tu_tmp_path("single/model.safetensors");
    tu_run(NULL, "mkdir -p '%s'", dir);
    TU_OK(ap_st_write(model, NULL, 0, NULL, tu_err()));
    TU_OK(ap_st_open(dir, &st, tu_err()));
    assert_int_equal(st->ntensors, 0);
    assert_int_equal(st->nmeta, 0);
    ap_st_close(st);
    free(dir);
    free(model);
    free(path);
}

static void test_st_sharded(void **state) {
    (void)state;
    char *dir = tu_tmp_path("sharded");
    tu_run(NULL, "mkdir -p '%s'", dir);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    uint16_t c[3] = {1, 2, 3};
    ap_tensor_view s1[] = {{"layer.0.w", AP_F32, 2, {2, 2}, a}, {"layer.0.b", AP_F32, 1, {2}, b}};
    ap_tensor_view s2[] = {{"layer.1.w", AP_BF16, 1, {3}, c}};
    char *p1 = tu_tmp_path("sharded/model-00001-of-00002.safetensors");
    char *p2 = tu_tmp_path("sharded/model-00002-of-00002.safetensors");
    char *idx = tu_tmp_path("sharded/model.safetensors.index.json");
    const char *m1[] = {"format", "pt", NULL};
    TU_OK(ap_st_write(p1, s1, 2, m1, tu_err()));
    TU_OK(ap_st_write(p2, s2, 1, NULL, tu_err()));
    const char *index = "{\"metadata\": {\"total_size\": 30}, \"weight_map\": {"
                        "\"layer.0.w\": \"model-00001-of-00002.safetensors\","
                        "\"layer.1.w\": \"model-00002-of-00002.safetensors\","
                        "\"layer.0.b\": \"model-00001-of-00002.safetensors\"}}";
    tu_write_file(idx, index, strlen(index));

    for (int via_dir = 0; via_dir < 2; via_dir++) {
        ap_safetensors *st;
        TU_OK(ap_st_open(via_dir ? dir : idx, &st, tu_err()));
        assert_int_equal(st->nfiles, 2);
        assert_int_equal(st->ntensors, 3);
        const ap_tensor *t = ap_st_find(st, "layer.1.w");
        assert_non_null(t);
        assert_string_equal(t->file, p2);
        assert_int_equal(((const uint16_t *)t->data)[2], 3);
        t = ap_st_find(st, "layer.0.b");
        assert_string_equal(t->file, p1);
        assert_true(((const float *)t->data)[1] == 6.0f);
        assert_string_equal(ap_st_meta(st, "format"), "pt");
        ap_st_close(st);
    }

    ap_error err = {0};
    ap_safetensors *st = (ap_safetensors *)1;
    /* A tensor the map promises is absent from its shard. */
    const char *lying = "{\"weight_map\": {\"layer.0.w\": \"model-00001-of-00002.safetensors\","
                        "\"layer.9.w\": \"model-00002-of-00002.safetensors\"}}";
    tu_write_file(idx, lying, strlen(lying));
    assert_int_equal(ap_st_open(idx, &st, &err), AP_ERR_FORMAT);
    assert_null(st);
    assert_contains(err.msg, "layer.9.w");
    assert_contains(err.msg, "model-00002-of-00002.safetensors");
    /* Listed under the wrong shard. */
    const char *moved = "{\"weight_map\": {\"layer.1.w\": \"model-00001-of-00002.safetensors\"}}";
    tu_write_file(idx, moved, strlen(moved));
    assert_int_equal(ap_st_open(idx, &st, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "layer.1.w");
    /* A shard that is not there. */
    const char *gone = "{\"weight_map\": {\"layer.0.w\": \"model-00003-of-00003.safetensors\"}}";
    tu_write_file(idx, gone, strlen(gone));
    assert_int_equal(ap_st_open(dir, &st, &err), AP_ERR_IO);
    assert_contains(err.msg, "model-00003-of-00003.safetensors");
    assert_contains(err.msg, "layer.0.w");
    /* The same tensor in two shards. */
    ap_tensor_view dup[] = {{"layer.0.b", AP_F32, 1, {2}, b}};
    TU_OK(ap_st_write(p2, dup, 1, NULL, tu_err()));
    const char *both = "{\"weight_map\": {\"layer.0.b\": \"model-00001-of-00002.safetensors\","
                       "\"layer.0.w\": \"model-00002-of-00002.safetensors\"}}";
    tu_write_file(idx, both, strlen(both));
    assert_int_equal(ap_st_open(idx, &st, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "layer.0.b");
    /* Index JSON without a weight_map, and one that is not JSON. */
    tu_write_file(idx, "{\"metadata\": {}}", 16);
    assert_int_equal(ap_st_open(idx, &st, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "weight_map");
    assert_contains(err.msg, idx);
    tu_write_file(idx, "{\"weight_map\": ", 15);
    assert_int_equal(ap_st_open(idx, &st, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, idx);

    /* A directory with neither file. */
    char *empty = tu_tmp_path("empty_dir");
    tu_run(NULL, "mkdir -p '%s'", empty);
    assert_int_equal(ap_st_open(empty, &st, &err), AP_ERR_IO);
    assert_contains(err.msg, empty);
    assert_contains(err.msg, "model.safetensors");
    assert_int_equal(ap_st_open("/nonexistent/x.safetensors", &st, &err), AP_ERR_IO);
    assert_contains(err.msg, "/nonexistent/x.safetensors");
    free(empty);
    free(dir);
    free(p1);
    free(p2);
    free(idx);
}

/* Declared header length meaning "the header text padded to 8 bytes". */
#define PADDED UINT64_MAX

/* A safetensors file built by hand: declared header length, header text
 * (space-padded to a multiple of 8), data_len zero bytes of data. */
static char *bad_file(const char *name, uint64_t declared, const char *header, size_t data_len) {
    char *path = tu_tmp_path(name);
    size_t hl = (strlen(header) + 7) / 8 * 8;
    size_t total = 8 + hl + data_len;
    unsigned char *buf = calloc(1, total);
    if (declared == PADDED) declared = hl;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(declared >> (8 * i));
    memset(buf + 8, ' ', hl);
    memcpy(buf + 8, header, strlen(header));
    tu_write_file(path, buf, total);
    free(buf);
    return path;
}

/* Opening must fail with AP_ERR_FORMAT and a message naming the file and
 * containing each of the given fragments. */
static void expect_bad(const char *name, uint64_t declared, const char *header, size_t data_len, const char *part1,
                       const char *part2) {
    char *path = bad_file(name, declared, header, data_len);
    ap_error err = {0};
    ap_safetensors *st = NULL;
    ap_status rc = ap_st_open(path, &st, &err);
    if (rc != AP_ERR_FORMAT) fail_msg("%s: status %d (%s), message \"%s\"", name, rc, ap_status_name(rc), err.msg);
    assert_null(st);
    assert_contains(err.msg, path);
    if (part1) assert_contains(err.msg, part1);
    if (part2) assert_contains(err.msg, part2);
    free(path);
}

#define HDR(json) PADDED, json

static void test_st_bad_files(void **state) {
    (void)state;
    /* Too short for the length prefix. */
    char *tiny = tu_tmp_path("tiny.safetensors");
    tu_write_file(tiny, "\x10\0\0", 3);
    ap_error err = {0};
    ap_safetensors *st;
    assert_int_equal(ap_st_open(tiny, &st, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, tiny);
    free(tiny);

    expect_bad("hlen_big.safetensors", 4096, "{}", 8, "larger than the file", NULL);
    expect_bad("hlen_absurd.safetensors", 1ull << 50, "{}", 8, "absurd", NULL);
    expect_bad("hlen_zero.safetensors", 0, "{}", 8, "JSON", NULL);
    expect_bad("notjson.safetensors", HDR("{\"x\": {\"dtype\": "), 0, "not valid JSON", NULL);
    expect_bad("array.safetensors", HDR("[1, 2]  "), 0, "not a JSON object", NULL);
    expect_bad("garbage.safetensors", HDR("{} xyz"), 0, "after the header", NULL);
    expect_bad("f64.safetensors", HDR("{\"w.f64\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}"),
               8, "w.f64", "unsupported dtype 'F64'");
    expect_bad("i8.safetensors", HDR("{\"w.i8\": {\"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [0, 1]}}"), 8,
               "w.i8", "'I8'");
    expect_bad("nodtype.safetensors", HDR("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}"), 8, "'w'", "dtype");
    expect_bad("shape_int.safetensors", HDR("{\"w\": {\"dtype\": \"F32\", \"shape\": 3, \"data_offsets\": [0, 12]}}"),
               16, "'w'", "shape");
    expect_bad("shape_neg.safetensors",
               HDR("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 8]}}"), 8, "'w'",
               "shape entry 1");
    expect_bad("shape_frac.safetensors",
               HDR("{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}"), 8, "'w'", "shape");
    expect_bad("shape_str.safetensors",
               HDR("{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}"), 8, "'w'", "shape");
    expect_bad("offs3.safetensors", HDR("{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1, 2]}}"),
               8, "'w'", "data_offsets");
    expect_bad("offs_str.safetensors",
               HDR("{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [\"0\", 1]}}"), 8, "'w'",
               "data_offsets");
    expect_bad("offs_missing.safetensors", HDR("{\"w\": {\"dtype\": \"U8\", \"shape\": [1]}}"), 8, "'w'",
               "data_offsets");
    expect_bad("begin_end.safetensors", HDR("{\"w\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [4, 0]}}"),
               8, "'w'", "begin after end");
    expect_bad("truncated.safetensors",
               HDR("{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}"), 12, "'w'", "truncated");
    expect_bad("size_lie.safetensors",
               HDR("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 16]}}"), 32, "'w'", "[2, 3]");
    expect_bad("overlap.safetensors",
               HDR("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                   " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}"),
               16, "'a'", "overlap");
    expect_bad("dup.safetensors",
               HDR("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                   " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}"),
               8, "'a'", "twice");
    expect_bad("misaligned.safetensors",
               HDR("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [2, 6]}}"), 8, "'a'", "aligned");
    expect_bad("entry.safetensors", HDR("{\"a\": [1]}"), 0, "'a'", "not a JSON object");
    expect_bad("meta.safetensors", HDR("{\"__metadata__\": {\"k\": 1}}"), 0, "'k'", NULL);
    expect_bad("dims.safetensors",
               HDR("{\"a\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}"), 8, "'a'",
               "dimensions");
    expect_bad("huge.safetensors",
               HDR("{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 1]}}"), 8,
               "'a'", "too large");

    /* Things that are fine: zero-size tensors at any offset, gaps, a file
     * holding only padding after the JSON. */
    char *ok = bad_file("ok.safetensors",
                        HDR("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                            " \"z\": {\"dtype\": \"I64\", \"shape\": [0, 3], \"data_offsets\": [4, 4]},"
                            " \"b\": {\"dtype\": \"U8\", \"shape\": [], \"data_offsets\": [16, 17]}}   "),
                        24);
    TU_OK(ap_st_open(ok, &st, tu_err()));
    assert_int_equal(st->ntensors, 3);
    assert_int_equal(ap_st_find(st, "b")->numel, 1);
    assert_int_equal(ap_st_find(st, "b")->ndim, 0);
    ap_st_close(st);
    free(ok);
}

static void test_st_write_errors(void **state) {
    (void)state;
    float x[2] = {1, 2};
    char *path = tu_tmp_path("werr.safetensors");
    ap_error err = {0};
    ap_tensor_view dup[] = {{"a", AP_F32, 1, {2}, x}, {"a", AP_F32, 1, {1}, x}};
    assert_int_equal(ap_st_write(path, dup, 2, NULL, &err), AP_ERR_ARG);
    assert_contains(err.msg, "'a'");
    ap_tensor_view neg[] = {{"n", AP_F32, 1, {-2}, x}};
    assert_int_equal(ap_st_write(path, neg, 1, NULL, &err), AP_ERR_ARG);
    assert_contains(err.msg, "'n'");
    ap_tensor_view nodata[] = {{"d", AP_F32, 1, {2}, NULL}};
    assert_int_equal(ap_st_write(path, nodata, 1, NULL, &err), AP_ERR_ARG);
    ap_tensor_view reserved[] = {{"__metadata__", AP_F32, 1, {2}, x}};
    assert_int_equal(ap_st_write(path, reserved, 1, NULL, &err), AP_ERR_ARG);
    ap_tensor_view good[] = {{"g", AP_F32, 1, {2}, x}};
    const char *odd_meta[] = {"key", NULL};
    assert_int_equal(ap_st_write(path, good, 1, odd_meta, &err), AP_ERR_ARG);
    assert_contains(err.msg, "key");
    assert_false(ap_path_exists(path));
    assert_int_equal(ap_st_write("/nonexistent/dir/x.safetensors", good, 1, NULL, &err), AP_ERR_IO);
    assert_contains(err.msg, "/nonexistent/dir/x.safetensors");
    free(path);
}

/* ------------------------------------------------------------------- json */

static void test_json(void **state) {
    (void)state;
    char *path = tu_tmp_path("config.json");
    const char *text = "{\n  \"n\": 24, \"big\": 4e15, \"frac\": 1.5, \"neg\": -3,\n"
                       "  \"s\": \"gelu\", \"b\": true, \"nul\": null, \"arr\": [1]\n}\n";
    tu_write_file(path, text, strlen(text));
    cJSON *j;
    TU_OK(ap_json_load(path, &j, tu_err()));
    int64_t i;
    double d;
    int b;
    const char *s;
    TU_OK(ap_json_int(j, "n", path, &i, tu_err()));
    assert_int_equal(i, 24);
    TU_OK(ap_json_int(j, "big", path, &i, tu_err()));
    assert_true(i == 4000000000000000LL);
    TU_OK(ap_json_int(j, "neg", path, &i, tu_err()));
    assert_int_equal(i, -3);
    TU_OK(ap_json_int_opt(j, "absent", path, 7, &i, tu_err()));
    assert_int_equal(i, 7);
    TU_OK(ap_json_int_opt(j, "nul", path, 8, &i, tu_err()));
    assert_int_equal(i, 8);
    TU_OK(ap_json_num(j, "frac", path, &d, tu_err()));
    assert_true(d == 1.5);
    TU_OK(ap_json_num(j, "n", path, &d, tu_err()));
    assert_true(d == 24.0);
    TU_OK(ap_json_num_opt(j, "absent", path, 0.25, &d, tu_err()));
    assert_true(d == 0.25);
    TU_OK(ap_json_bool_opt(j, "b", path, 0, &b, tu_err()));
    assert_int_equal(b, 1);
    TU_OK(ap_json_bool_opt(j, "absent", path, 0, &b, tu_err()));
    assert_int_equal(b, 0);
    TU_OK(ap_json_str(j, "s", path, 1, &s, tu_err()));
    assert_string_equal(s, "gelu");
    TU_OK(ap_json_str(j, "absent", path, 0, &s, tu_err()));
    assert_null(s);

    ap_error err = {0};
    struct {
        ap_status got;
        const char *key;
    } bad[] = {
        {ap_json_int(j, "frac", path, &i, &err), "frac"},
        {ap_json_int(j, "s", path, &i, &err), "s"},
        {ap_json_int(j, "missing", path, &i, &err), "missing"},
        {ap_json_int_opt(j, "b", path, 0, &i, &err), "b"},
        {ap_json_num(j, "arr", path, &d, &err), "arr"},
        {ap_json_num_opt(j, "s", path, 0, &d, &err), "s"},
        {ap_json_bool_opt(j, "n", path, 0, &b, &err), "n"},
        {ap_json_str(j, "n", path, 0, &s, &err), "n"},
        {ap_json_str(j, "nul", path, 1, &s, &err), "nul"},
        {ap_json_str(j, "missing", path, 1, &s, &err), "missing"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        if (bad[k].got != AP_ERR_FORMAT) fail_msg("field '%s': status %d", bad[k].key, bad[k].got);
    /* The messages, checked one call at a time. */
    assert_int_equal(ap_json_int(j, "frac", path, &i, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "field 'frac'");
    assert_contains(err.msg, "integer");
    assert_int_equal(ap_json_int(j, "missing", path, &i, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "field 'missing' is missing");
    assert_int_equal(ap_json_str(j, "n", path, 1, &s, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "must be a string, found a number");
    assert_int_equal(ap_json_int(cJSON_GetObjectItem(j, "arr"), "x", path, &i, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "object");

    /* Save: pretty, newline-terminated, loads back equal. */
    char *out = tu_tmp_path("saved.json");
    TU_OK(ap_json_save(out, j, tu_err()));
    char *saved;
    size_t len;
    TU_OK(ap_read_file(out, &saved, &len, tu_err()));
    assert_true(len > 2 && saved[len - 1] == '\n' && strchr(saved, '\n') < saved + len - 1);
    cJSON *back;
    TU_OK(ap_json_load(out, &back, tu_err()));
    assert_true(cJSON_Compare(j, back, 1));
    cJSON_Delete(back);
    free(saved);
    cJSON_Delete(j);

    /* Parse errors say where. */
    tu_write_file(path, "{\n  \"a\": 1,\n  \"b\": ]\n}\n", 23);
    assert_int_equal(ap_json_load(path, &j, &err), AP_ERR_FORMAT);
    assert_null(j);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "line 3");
    tu_write_file(path, "", 0);
    assert_int_equal(ap_json_load(path, &j, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "empty");
    tu_write_file(path, "{} {}", 5);
    assert_int_equal(ap_json_load(path, &j, &err), AP_ERR_FORMAT);
    assert_contains(err.msg, "column 4");
    assert_int_equal(ap_json_load("/nonexistent/config.json", &j, &err), AP_ERR_IO);
    assert_contains(err.msg, "/nonexistent/config.json");
    free(out);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtypes),          cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_bf16_exhaustive), cmocka_unit_test(test_half_rounding),
        cmocka_unit_test(test_half_vs_torch),   cmocka_unit_test(test_st_roundtrip),
        cmocka_unit_test(test_st_sharded),      cmocka_unit_test(test_st_bad_files),
        cmocka_unit_test(test_st_write_errors), cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
