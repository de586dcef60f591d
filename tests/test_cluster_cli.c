/* `apmae cluster` on the command line: the --in form on R's blobs (the
 * partition R's dbscan finds), with UMAP and --embedding-out, NaN refused
 * naming the file; the --store form with list, show and store info; usage
 * errors; and a run killed (SIGKILL) once it reports committed heads, then
 * resumed, equal to an uninterrupted run. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apmae/cluster.h"
#include "apmae/io.h"
#include "apmae/store.h"
#include "cluster_synth.h"
#include "extract_synth.h"

enum { KL = 4, KH = 4 }; /* the stores here: 16 heads, so kills land between heads */

/* ---- --in ---- */

typedef struct blobs {
    cJSON *json;
    int64_t n;
    int d;
    float *x;
    int32_t *labels; /* R's */
    uint8_t *tied;
} blobs;

static blobs load_blobs(void) {
    blobs b = {0};
    const char *path = "fixtures/cluster/hdbscan_blobs.json";
    int64_t d;
    TU_OK(ap_json_load(path, &b.json, tu_err()));
    TU_OK(ap_json_int(b.json, "n", path, &b.n, tu_err()));
    TU_OK(ap_json_int(b.json, "d", path, &d, tu_err()));
    b.d = (int)d;
    b.x = malloc(sizeof(float) * b.n * b.d);
    b.labels = malloc(sizeof(int32_t) * b.n);
    b.tied = calloc((size_t)b.n, 1);
    int64_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(b.json, "x")) b.x[i++] = (float)e->valuedouble;
    i = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(b.json, "labels")) b.labels[i++] = e->valueint;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(b.json, "tied")) b.tied[e->valueint] = 1;
    return b;
}

static void blobs_free(blobs *b) {
    cJSON_Delete(b->json);
    free(b->x), free(b->labels), free(b->tied);
}

static char *write_x(const char *name, const float *x, int64_t n, int d) {
    char *path = tu_tmp_path(name);
    ap_tensor_view t = {"x", AP_F32, 2, {n, d}, x};
    TU_OK(ap_st_write(path, &t, 1, NULL, tu_err()));
    return path;
}

static int32_t *read_labels(const char *path, int64_t n) {
    cJSON *j;
    TU_OK(ap_json_load(path, &j, tu_err()));
    const cJSON *a = cJSON_GetObjectItem(j, "labels"), *e;
    assert_true(cJSON_IsArray(a) && cJSON_GetArraySize(a) == n);
    int32_t *v = malloc(sizeof(int32_t) * n);
    int64_t i = 0;
    cJSON_ArrayForEach(e, a) v[i++] = e->valueint;
    cJSON_Delete(j);
    return v;
}

static void test_matrix(void **state) {
    (void)state;
    blobs b = load_blobs();
    char *x = write_x("blobs.safetensors", b.x, b.n, b.d), *labels = tu_tmp_path("blobs_labels.json");
    char *y = tu_tmp_path("blobs_y.safetensors"), *out = NULL;
    /* the R fixture's settings: minPts 10 for both, no single cluster */
    assert_int_equal(tu_run(&out, "%s cluster --in %s --out %s --no-umap --min-samples 10 --min-cluster-size 10 "
                                  "--no-single-cluster", tu_apmae_bin(), x, labels), 0);
    assert_non_null(strstr(out, "\"clusters\": 3"));
    free(out);
    int32_t *got = read_labels(labels, b.n), map[3] = {-1, -1, -1};
    for (int64_t i = 0; i < b.n; i++) {
        if (b.tied[i]) continue;
        assert_int_equal(got[i] < 0, b.labels[i] < 0);
        if (got[i] < 0) continue;
        if (map[b.labels[i]] < 0) map[b.labels[i]] = got[i];
        assert_int_equal(got[i], map[b.labels[i]]);
    }
    free(got);
    /* with UMAP, and its output kept */
    assert_int_equal(tu_run(NULL, "%s --quiet cluster --in %s --out %s --embedding-out %s --umap-epochs 100",
                            tu_apmae_bin(), x, labels, y), 0);
    ap_safetensors *sf;
    TU_OK(ap_st_open(y, &sf, tu_err()));
    const ap_tensor *emb = ap_st_find(sf, "embedding");
    assert_true(emb && emb->dtype == AP_F32 && emb->ndim == 2 && emb->shape[0] == b.n && emb->shape[1] == 8);
    ap_st_close(sf);
    free(read_labels(labels, b.n));
    /* NaN: refused, naming the file, the row and the column */
    b.x[17 * b.d + 1] = NAN;
    char *bad = write_x("nan.safetensors", b.x, b.n, b.d);
    assert_int_equal(tu_run(&out, "%s cluster --in %s --out %s 2>&1", tu_apmae_bin(), bad, labels), 2);
    assert_non_null(strstr(out, bad));
    assert_non_null(strstr(out, "x: row 17, column 1 is NaN"));
    free(out);
    /* too few points for min_cluster_size */
    assert_int_equal(tu_run(&out, "%s cluster --in %s --out %s --no-umap --min-cluster-size 10000 2>&1", tu_apmae_bin(),
                            x, labels), 2);
    assert_non_null(strstr(out, "fewer than min_cluster_size 10000"));
    free(out);
    free(x), free(labels), free(y), free(bad);
    blobs_free(&b);
}

static void test_usage(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(tu_run(&out, "%s cluster --min-samples 5 2>&1", tu_apmae_bin()), 2);
    assert_non_null(strstr(out, "give exactly one of --store S.h5 and --in X.safetensors"));
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster --in x.safetensors 2>&1", tu_apmae_bin()), 2);
    assert_non_null(strstr(out, "--in needs --out labels.json"));
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster --store s.h5 --out l.json 2>&1", tu_apmae_bin()), 2);
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster --store s.h5 --heads 1-2 2>&1", tu_apmae_bin()), 2);
    assert_non_null(strstr(out, "--heads '1-2'"));
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster --help", tu_apmae_bin()), 0);
    assert_non_null(strstr(out, "--min-cluster-size"));
    free(out);
    /* the subcommands, which apmae --help does not list (tests/cli_help.sh) */
    assert_int_equal(tu_run(&out, "%s cluster list --help", tu_apmae_bin()), 0);
    assert_non_null(strstr(out, "docs: docs/analysis.md"));
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster show --help", tu_apmae_bin()), 0);
    assert_non_null(strstr(out, "--layer"));
    free(out);
}

/* ---- --store, list, show ---- */

static const char *k_fast = "--umap-epochs 200 --min-cluster-size 15 --min-samples 10 --threads 1";

static void test_store(void **state) {
    (void)state;
    char *store = make_store_lh("cli.h5", S, 1, KL, KH), *png = tu_tmp_path("head.png"), *out = NULL;
    assert_int_equal(tu_run(&out, "%s cluster list --store %s 2>&1", tu_apmae_bin(), store), 2);
    assert_non_null(strstr(out, "no clusters yet"));
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster --store %s --heads 9:0 %s 2>&1", tu_apmae_bin(), store, k_fast), 1);
    assert_non_null(strstr(out, "head 9:0 is out of range"));
    free(out);
    assert_int_equal(tu_run(&out, "%s --quiet cluster --store %s --heads 0:0,1:2 %s", tu_apmae_bin(), store, k_fast), 0);
    assert_non_null(strstr(out, "\"done_now\": 2"));
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster list --store %s", tu_apmae_bin(), store), 0);
    assert_non_null(strstr(out, "2 of 16 heads clustered over 120 samples"));
    assert_non_null(strstr(out, "0:0           2   0.0%  0:60 sink 1:60 previous")); /* head 0:0: groups 0 and 1 */
    assert_non_null(strstr(out, "0:1           -"));
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster list --store %s --json", tu_apmae_bin(), store), 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "heads")), 2);
    cJSON_Delete(j);
    free(out);
    assert_int_equal(tu_run(&out, "%s cluster show --store %s --layer 1 --head 2 --out %s", tu_apmae_bin(), store, png),
                     0);
    assert_non_null(strstr(out, "row 2: cluster 2, 40 samples"));
    free(out);
    /* the sheet: a row of two 256-pixel panels per cluster (N = 16, zoom 16), 8-pixel gaps */
    unsigned char hdr[24];
    FILE *f = fopen(png, "rb");
    assert_non_null(f);
    assert_int_equal(fread(hdr, 1, sizeof hdr, f), sizeof hdr);
    fclose(f);
    uint32_t w = (uint32_t)hdr[16] << 24 | hdr[17] << 16 | hdr[18] << 8 | hdr[19];
    uint32_t h = (uint32_t)hdr[20] << 24 | hdr[21] << 16 | hdr[22] << 8 | hdr[23];
    assert_int_equal(w, 3 * 8 + 2 * 256);
    assert_int_equal(h, 3 * (256 + 8) + 8);
    assert_int_equal(tu_run(&out, "%s cluster show --store %s --layer 0 --head 1 --out %s 2>&1", tu_apmae_bin(), store,
                            png), 2);
    assert_non_null(strstr(out, "layer 0 head 1 is not clustered yet"));
    free(out);
    assert_int_equal(tu_run(&out, "%s store info %s", tu_apmae_bin(), store), 0);
    assert_non_null(strstr(out, "clusters: 2 of 16 heads done over the first 120 samples"));
    free(out);
    free(store), free(png);
}

/* ---- kill and resume ---- */

static char *g_base, *g_work; /* the store to cluster, and the copy being clustered */

static void reset_work(void) { restore_store(g_base, g_work); }

static int64_t heads_done(const ap_store *s) {
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    return ci ? ci->heads_done : 0;
}

/* `apmae cluster --store` killed (SIGKILL) once it reports committed heads,
 * a few times, then resumed to the end: the store equals an uninterrupted
 * run's, label for label and cluster for cluster. */
static void test_kill_and_resume(void **state) {
    (void)state;
    g_base = make_store_lh("kill_base.h5", S, 1, KL, KH);
    g_work = tu_tmp_path("kill.h5");
    char *ref = tu_fresh_store_path("kill_ref.h5");
    copy_file(g_base, ref);
    char *argv_ref[] = {"apmae", "cluster", "--store", ref, "--umap-epochs", "200", "--min-cluster-size", "15",
                        "--min-samples", "10", "--threads", "1", NULL}; /* k_fast */
    assert_int_equal(run_apmae(argv_ref), 0);
    char *argv[] = {"apmae", "cluster", "--store", g_work, "--umap-epochs", "200", "--min-cluster-size", "15",
                    "--min-samples", "10", "--threads", "1", NULL};
    assert_true(kill_rounds(argv, g_work, heads_done, KL * KH, reset_work) > 0);
    assert_int_equal(run_apmae(argv), 0); /* resume to the end */
    assert_clusters_equal(ref, g_work);
    free(ref), free(g_base), free(g_work);
}

int main(void) {
    /* small data: a second thread only adds waiting on a loaded machine */
    setenv("OMP_NUM_THREADS", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_kill_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
