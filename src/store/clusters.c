/* /clusters: one clustering run of every head (docs/store.md "Clusters").
 *
 *   /clusters                  attributes params (JSON text), samples (S)
 *   /clusters/labels           [S, L, H] int32, chunked by head column
 *   /clusters/done             [L, H] uint8
 *   /clusters/n_clusters       [L, H] int32
 *   /clusters/noise_fraction   [L, H] float32
 *   /clusters/heads/<l>_<h>/   size, medoid, kind, measures, mean_pattern
 *
 * The [L, H] arrays are small and kept in memory; labels and summaries are
 * read from the file when asked for. Every write goes through the store's
 * journaled file, so it is committed (or rolled back) with the store. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_CHUNK (1 << 16) /* samples per chunk of a head's label column */
#define NOT_DONE_LABEL (-2)   /* the fill value: labels of a head not clustered yet */

struct ap_clusters {
    char *params;
    int L, H;
    uint8_t *done, *has_summary; /* [L * H] */
    int32_t *n_clusters;
    float *noise;
    ap_store_clusters_info info;
};

static const char *const k_measure_names[AP_CLUSTER_MEASURES] = {"sink", "self",    "previous", "local",
                                                                  "fim",  "content", "stripes",  "entropy"};

const char *ap_cluster_measure_name(int m) {
    return m >= 0 && m < AP_CLUSTER_MEASURES ? k_measure_names[m] : "?";
}

void ap_clusters_free(ap_clusters *c) {
    if (!c) return;
    free(c->params);
    free(c->done);
    free(c->has_summary);
    free(c->n_clusters);
    free(c->noise);
    free(c);
}

static ap_clusters *clusters_new(int L, int H, ap_error *err) {
    size_t n = (size_t)L * (size_t)H;
    ap_clusters *c = ap_calloc(1, sizeof *c, err);
    if (!c) return NULL;
    c->L = L;
    c->H = H;
    c->done = ap_calloc(n, 1, err);
    c->has_summary = ap_calloc(n, 1, err);
    c->n_clusters = ap_malloc(n * sizeof *c->n_clusters, err);
    c->noise = ap_malloc(n * sizeof *c->noise, err);
    if (!c->done || !c->has_summary || !c->n_clusters || !c->noise) {
        ap_clusters_free(c);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) c->n_clusters[i] = -1, c->noise[i] = NAN;
    return c;
}

static void update_info(ap_clusters *c, int64_t samples) {
    int done = 0;
    for (int i = 0; i < c->L * c->H; i++) done += c->done[i];
    c->info = (ap_store_clusters_info){.params = c->params,
                                       .samples = samples,
                                       .done = c->done,
                                       .n_clusters = c->n_clusters,
                                       .noise_fraction = c->noise,
                                       .has_summary = c->has_summary,
                                       .heads_done = done};
}

static void head_group_name(int layer, int head, char *buf, size_t n) {
    snprintf(buf, n, "clusters/heads/%d_%d", layer, head);
}

/* ---- small whole-dataset helpers ---- */

/* Create dataset name of the given shape (rank <= 3) and write buf, all of
 * it. chunk NULL: contiguous; otherwise chunked, shuffled and deflated at
 * level (when > 0). fill: the fill value (of mtype), or NULL. */
static ap_status put_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                             const hsize_t *chunk, int level, const void *fill, const void *buf, const char *path,
                             ap_error *err) {
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), d = H5I_INVALID_HID;
    herr_t r = space >= 0 && dcpl >= 0 ? 0 : -1;
    if (r >= 0 && chunk) r = H5Pset_chunk(dcpl, rank, chunk);
    if (r >= 0 && chunk && level > 0) r = H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)level) < 0 ? -1 : 0;
    if (r >= 0 && fill) r = H5Pset_fill_value(dcpl, mtype, fill);
    if (r >= 0) r = (d = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0 ? 0 : -1;
    if (r >= 0 && buf) r = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (r < 0) {
        char what[600];
        snprintf(what, sizeof what, "%s: cannot write /clusters dataset %s", path, name);
        return ap_h5_fail(err, AP_ERR_IO, what);
    }
    return AP_OK;
}

/* Overwrite (write = 1) or read the whole dataset name, checking it has n
 * elements. */
static ap_status whole_io(hid_t loc, const char *name, hid_t mtype, void *buf, hssize_t n, int write,
                          const char *path, ap_error *err) {
    hid_t d = H5Lexists(loc, name, H5P_DEFAULT) > 0 ? H5Dopen2(loc, name, H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hssize_t have = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    herr_t r = have == n ? 0 : -1;
    if (r >= 0 && n > 0)
        r = write ? H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)
                  : H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (r >= 0) return AP_OK;
    if (write) {
        char what[600];
        snprintf(what, sizeof what, "%s: cannot write /%s", path, name);
        return ap_h5_fail(err, AP_ERR_IO, what);
    }
    if (have != n && have >= 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: /%s has %lld elements, expected %lld", path, name, (long long)have,
                       (long long)n);
    return ap_fail(err, AP_ERR_FORMAT, "%s: cannot read /%s", path, name);
}

/* The [L, H] arrays, written whole after each head. */
static ap_status write_head_arrays(hid_t file, const ap_clusters *c, const char *path, ap_error *err) {
    hssize_t n = (hssize_t)c->L * c->H;
    ap_status st = whole_io(file, "clusters/done", H5T_NATIVE_UINT8, c->done, n, 1, path, err);
    if (st == AP_OK) st = whole_io(file, "clusters/n_clusters", H5T_NATIVE_INT32, c->n_clusters, n, 1, path, err);
    if (st == AP_OK) st = whole_io(file, "clusters/noise_fraction", H5T_NATIVE_FLOAT, c->noise, n, 1, path, err);
    return st;
}

/* ---- loading ---- */

ap_status ap_clusters_load(hid_t file, const char *path, int L, int H, ap_clusters **out, ap_error *err) {
    *out = NULL;
    if (H5Lexists(file, "clusters", H5P_DEFAULT) <= 0) return AP_OK;
    ap_clusters *c = clusters_new(L, H, err);
    if (!c) return AP_ERR_NOMEM;
    hid_t g = H5Gopen2(file, "clusters", H5P_DEFAULT);
    int64_t samples = 0;
    hssize_t n = (hssize_t)L * H;
    ap_status st = g >= 0 ? AP_OK : ap_fail(err, AP_ERR_FORMAT, "%s: /clusters is not a group", path);
    if (st == AP_OK) st = ap_h5_get_str(g, "params", path, &c->params, err);
    if (st == AP_OK) st = ap_h5_get_i64(g, "samples", path, &samples, err);
    if (st == AP_OK) st = whole_io(file, "clusters/done", H5T_NATIVE_UINT8, c->done, n, 0, path, err);
    if (st == AP_OK) st = whole_io(file, "clusters/n_clusters", H5T_NATIVE_INT32, c->n_clusters, n, 0, path, err);
    if (st == AP_OK) st = whole_io(file, "clusters/noise_fraction", H5T_NATIVE_FLOAT, c->noise, n, 0, path, err);
    hid_t d = st == AP_OK ? H5Dopen2(file, "clusters/labels", H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hsize_t dims[3] = {0};
    if (st == AP_OK && (sp < 0 || H5Sget_simple_extent_ndims(sp) != 3 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 ||
                        dims[0] != (hsize_t)samples || dims[1] != (hsize_t)L || dims[2] != (hsize_t)H))
        st = ap_fail(err, AP_ERR_FORMAT, "%s: /clusters/labels is not [%lld, %d, %d] (samples, layers, heads)", path,
                     (long long)samples, L, H);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    for (int i = 0; st == AP_OK && i < L * H; i++) {
        char name[64];
        head_group_name(i / H, i % H, name, sizeof name);
        c->has_summary[i] = H5Lexists(file, "clusters/heads", H5P_DEFAULT) > 0 && H5Lexists(file, name, H5P_DEFAULT) > 0;
    }
    if (g >= 0) H5Gclose(g);
    if (st != AP_OK) {
        ap_clusters_free(c);
        return st;
    }
    update_info(c, samples);
    *out = c;
    return AP_OK;
}

const ap_store_clusters_info *ap_store_clusters_info_of(const ap_store *s) {
    ap_clusters *c = *ap_store_clusters_slot((ap_store *)(uintptr_t)s);
    return c ? &c->info : NULL;
}

/* ---- beginning a run ---- */

static ap_status create_group(hid_t file, const char *params, int64_t S, int L, int H, int level, ap_clusters *c,
                              const char *path, ap_error *err) {
    hid_t g = H5Gcreate2(file, "clusters", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ap_status st = g >= 0 ? AP_OK : ap_h5_fail(err, AP_ERR_IO, "cannot create group /clusters");
    if (st == AP_OK) st = ap_h5_put_str(g, "params", params, path, err);
    if (st == AP_OK) st = ap_h5_put_i64(g, "samples", S, path, err);
    hsize_t dims[3] = {(hsize_t)S, (hsize_t)L, (hsize_t)H}, chunk[3] = {S < LABEL_CHUNK ? (hsize_t)S : LABEL_CHUNK, 1, 1};
    hsize_t heads[2] = {(hsize_t)L, (hsize_t)H};
    int32_t fill = NOT_DONE_LABEL;
    if (st == AP_OK)
        st = put_dataset(g, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 3, dims, chunk, level, &fill, NULL, path, err);
    if (st == AP_OK)
        st = put_dataset(g, "done", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, heads, NULL, 0, NULL, c->done, path, err);
    if (st == AP_OK)
        st = put_dataset(g, "n_clusters", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, heads, NULL, 0, NULL, c->n_clusters,
                         path, err);
    if (st == AP_OK)
        st = put_dataset(g, "noise_fraction", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, heads, NULL, 0, NULL, c->noise,
                         path, err);
    hid_t hg = st == AP_OK ? H5Gcreate2(g, "heads", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    if (st == AP_OK && hg < 0) st = ap_h5_fail(err, AP_ERR_IO, "cannot create group /clusters/heads");
    if (hg >= 0) H5Gclose(hg);
    if (g >= 0) H5Gclose(g);
    return st;
}

ap_status ap_store_clusters_begin(ap_store *s, const char *params_json, ap_error *err) {
    ap_status st = ap_store_check_writable(s, err);
    if (st != AP_OK) return st;
    const ap_store_meta *m = ap_store_get_meta(s);
    const char *path = ap_store_path(s);
    int64_t S = ap_store_committed(s);
    if (S < 1) return ap_fail(err, AP_ERR_ARG, "%s: the store has no committed samples to cluster", path);
    if (!params_json) params_json = "{}";
    ap_clusters **slot = ap_store_clusters_slot(s), *old = *slot;
    if (old && old->info.samples == S && strcmp(old->params, params_json) == 0) return AP_OK;
    if (old) {
        ap_info("%s: replacing its clusters (%d heads done, %lld samples, %s) by a new run (%lld samples, %s)", path,
                old->info.heads_done, (long long)old->info.samples, old->params, (long long)S, params_json);
        if ((st = ap_store_clusters_drop(s, err)) != AP_OK) return st;
    }
    hid_t file = ap_store_h5(s);
    ap_clusters *c = clusters_new(m->num_layers, m->num_heads, err);
    if (!c || !(c->params = ap_strdup(params_json, err))) {
        ap_clusters_free(c);
        return AP_ERR_NOMEM;
    }
    st = create_group(file, params_json, S, m->num_layers, m->num_heads, m->deflate, c, path, err);
    if (st != AP_OK) {
        ap_clusters_free(c);
        return ap_store_write_failed(s, st, err);
    }
    update_info(c, S);
    *slot = c;
    return AP_OK;
}

ap_status ap_store_clusters_drop(ap_store *s, ap_error *err) {
    ap_status st = ap_store_check_writable(s, err);
    if (st != AP_OK) return st;
    ap_clusters **slot = ap_store_clusters_slot(s);
    if (!*slot) return AP_OK;
    if (H5Ldelete(ap_store_h5(s), "clusters", H5P_DEFAULT) < 0)
        return ap_store_write_failed(s, ap_h5_fail(err, AP_ERR_IO, "cannot remove /clusters"), err);
    ap_clusters_free(*slot);
    *slot = NULL;
    return AP_OK;
}

/* ---- labels ---- */

static ap_status check_head(const ap_store *s, const ap_clusters *c, int layer, int head, ap_error *err) {
    const char *path = ap_store_path(s);
    if (!c) return ap_fail(err, AP_ERR_ARG, "%s: the store has no clusters (run 'apmae cluster --store %s')", path, path);
    if (layer < 0 || layer >= c->L)
        return ap_fail(err, AP_ERR_RANGE, "%s: layer %d is out of range (0..%d)", path, layer, c->L - 1);
    if (head < 0 || head >= c->H)
        return ap_fail(err, AP_ERR_RANGE, "%s: head %d is out of range (0..%d)", path, head, c->H - 1);
    return AP_OK;
}

static ap_status check_done(const ap_store *s, const ap_clusters *c, int layer, int head, ap_error *err) {
    ap_status st = check_head(s, c, layer, head, err);
    if (st == AP_OK && !c->done[layer * c->H + head])
        st = ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d is not clustered yet (%d of %d heads done)",
                     ap_store_path(s), layer, head, c->info.heads_done, c->L * c->H);
    return st;
}

/* k and the noise share of a label column; an error unless every label is
 * -1 or in 0..k-1 with each cluster used. */
static ap_status count_labels(const ap_store *s, int layer, int head, const int32_t *labels, int64_t S, int32_t *k,
                              float *noise, ap_error *err) {
    int32_t max = -1;
    int64_t nnoise = 0;
    for (int64_t i = 0; i < S; i++) {
        if (labels[i] < -1 || labels[i] >= S)
            return ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d: sample %lld has label %d (expected -1..%lld)",
                           ap_store_path(s), layer, head, (long long)i, labels[i], (long long)S - 1);
        if (labels[i] > max) max = labels[i];
        nnoise += labels[i] == -1;
    }
    uint8_t *used = ap_calloc((size_t)max + 2, 1, err);
    if (!used) return AP_ERR_NOMEM;
    for (int64_t i = 0; i < S; i++) used[labels[i] + 1] = 1;
    int32_t missing = -1;
    for (int32_t c = max; c >= 0; c--)
        if (!used[c + 1]) missing = c;
    free(used);
    if (missing >= 0)
        return ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d: labels go up to %d but no sample is in cluster %d",
                       ap_store_path(s), layer, head, max, missing);
    *k = max + 1;
    *noise = (float)((double)nnoise / (double)S);
    return AP_OK;
}

/* Read (write = 0) or write one head's column of /clusters/labels. */
static herr_t column_io(hid_t file, int64_t S, int layer, int head, int32_t *labels, int write) {
    hid_t d = H5Dopen2(file, "clusters/labels", H5P_DEFAULT);
    hsize_t start[3] = {0, (hsize_t)layer, (hsize_t)head}, cnt[3] = {(hsize_t)S, 1, 1}, mdim[1] = {(hsize_t)S};
    hid_t fs = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID, ms = H5Screate_simple(1, mdim, NULL);
    herr_t r = fs >= 0 && ms >= 0 ? H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) : -1;
    if (r >= 0) r = write ? H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, labels)
                          : H5Dread(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, labels);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return r;
}

/* Remove a head's summary group, when it has one. */
static ap_status drop_summary(ap_store *s, ap_clusters *c, int layer, int head, ap_error *err) {
    int i = layer * c->H + head;
    if (!c->has_summary[i]) return AP_OK;
    char name[64];
    head_group_name(layer, head, name, sizeof name);
    if (H5Ldelete(ap_store_h5(s), name, H5P_DEFAULT) < 0)
        return ap_store_write_failed(s, ap_h5_fail(err, AP_ERR_IO, "cannot remove a head's old cluster summary"), err);
    c->has_summary[i] = 0;
    return AP_OK;
}

ap_status ap_store_put_cluster_labels(ap_store *s, int layer, int head, const int32_t *labels, ap_error *err) {
    ap_clusters *c = *ap_store_clusters_slot(s);
    ap_status st = ap_store_check_writable(s, err);
    if (st == AP_OK) st = check_head(s, c, layer, head, err);
    int32_t k = 0;
    float noise = 0;
    if (st == AP_OK) st = count_labels(s, layer, head, labels, c->info.samples, &k, &noise, err);
    if (st == AP_OK) st = drop_summary(s, c, layer, head, err);
    if (st != AP_OK) return st;
    /* H5Dwrite takes a non-const buffer but does not change it */
    if (column_io(ap_store_h5(s), c->info.samples, layer, head, (int32_t *)(uintptr_t)labels, 1) < 0)
        return ap_store_write_failed(s, ap_h5_fail(err, AP_ERR_IO, "cannot write /clusters/labels"), err);
    int i = layer * c->H + head;
    c->done[i] = 1;
    c->n_clusters[i] = k;
    c->noise[i] = noise;
    if ((st = write_head_arrays(ap_store_h5(s), c, ap_store_path(s), err)) != AP_OK)
        return ap_store_write_failed(s, st, err);
    update_info(c, c->info.samples);
    return AP_OK;
}

ap_status ap_store_read_head_labels(ap_store *s, int layer, int head, int32_t *labels, ap_error *err) {
    ap_clusters *c = *ap_store_clusters_slot(s);
    ap_status st = check_done(s, c, layer, head, err);
    if (st == AP_OK && column_io(ap_store_h5(s), c->info.samples, layer, head, labels, 0) < 0)
        st = ap_fail(err, AP_ERR_FORMAT, "%s: cannot read the labels of layer %d head %d", ap_store_path(s), layer,
                     head);
    return st;
}

ap_status ap_store_read_cluster_labels(ap_store *s, int32_t *labels, ap_error *err) {
    ap_clusters *c = *ap_store_clusters_slot(s);
    ap_status st = check_head(s, c, 0, 0, err);
    for (int i = 0; st == AP_OK && i < c->L * c->H; i++) st = check_done(s, c, i / c->H, i % c->H, err);
    if (st != AP_OK) return st;
    return whole_io(ap_store_h5(s), "clusters/labels", H5T_NATIVE_INT32, labels,
                    (hssize_t)c->info.samples * c->L * c->H, 0, ap_store_path(s), err);
}

/* ---- per-head summaries ---- */

static ap_status check_summary(ap_store *s, const ap_clusters *c, int layer, int head, int k,
                               const ap_cluster_summary *cl, const float *mean_tri, ap_error *err) {
    const char *path = ap_store_path(s);
    int64_t S = c->info.samples;
    if (k != c->n_clusters[layer * c->H + head])
        return ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d: a summary of %d clusters, but its labels have %d", path,
                       layer, head, k, c->n_clusters[layer * c->H + head]);
    if (ap_store_has_patterns(s) != (mean_tri != NULL))
        return ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d: mean patterns %s", path, layer, head,
                       mean_tri ? "given, but the store keeps no patterns" : "missing (the store keeps patterns)");
    int32_t *labels = ap_malloc((size_t)S * sizeof *labels, err);
    int64_t *count = ap_calloc((size_t)k + 1, sizeof *count, err);
    ap_status st = labels && count ? AP_OK : AP_ERR_NOMEM;
    if (st == AP_OK) st = ap_store_read_head_labels(s, layer, head, labels, err);
    for (int64_t i = 0; st == AP_OK && i < S; i++)
        if (labels[i] >= 0) count[labels[i]]++;
    for (int j = 0; st == AP_OK && j < k; j++) {
        if (cl[j].size != count[j])
            st = ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d: cluster %d has %lld members, not %lld", path, layer,
                         head, j, (long long)count[j], (long long)cl[j].size);
        else if (cl[j].medoid < 0 || cl[j].medoid >= S || labels[cl[j].medoid] != j)
            st = ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d: the medoid %lld of cluster %d is not one of its members",
                         path, layer, head, (long long)cl[j].medoid, j);
        else if (!memchr(cl[j].kind, 0, sizeof cl[j].kind) || !cl[j].kind[0])
            st = ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d: cluster %d has no kind", path, layer, head, j);
    }
    free(labels);
    free(count);
    return st;
}

static ap_status write_summary(ap_store *s, hid_t g, int k, const ap_cluster_summary *cl, const float *mean_tri,
                               ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(s);
    const char *path = ap_store_path(s);
    size_t T = ap_tri_size(m->n_tokens), kk = k > 0 ? (size_t)k : 1;
    int64_t *ints = ap_malloc(2 * kk * sizeof *ints, err);
    float *meas = ap_malloc(kk * AP_CLUSTER_MEASURES * sizeof *meas, err);
    const char **kinds = ap_malloc(kk * sizeof *kinds, err);
    ap_status st = ints && meas && kinds ? AP_OK : AP_ERR_NOMEM;
    for (int j = 0; st == AP_OK && j < k; j++) {
        ints[j] = cl[j].size;
        ints[kk + (size_t)j] = cl[j].medoid;
        kinds[j] = cl[j].kind;
        memcpy(meas + (size_t)j * AP_CLUSTER_MEASURES, cl[j].measures, sizeof cl[j].measures);
    }
    hsize_t d1[1] = {(hsize_t)k}, d2[2] = {(hsize_t)k, AP_CLUSTER_MEASURES};
    hid_t t_str = ap_h5_str_type();
    if (st == AP_OK) st = put_dataset(g, "size", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, d1, NULL, 0, NULL, ints, path, err);
    if (st == AP_OK)
        st = put_dataset(g, "medoid", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, d1, NULL, 0, NULL, ints + kk, path, err);
    if (st == AP_OK) st = put_dataset(g, "kind", t_str, t_str, 1, d1, NULL, 0, NULL, kinds, path, err);
    if (st == AP_OK)
        st = put_dataset(g, "measures", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, NULL, 0, NULL, meas, path, err);
    H5Tclose(t_str);
    if (st == AP_OK && mean_tri && k > 0) {
        /* in the store's pattern dtype, like /patterns */
        hid_t ft = ap_store_h5type(m->dtype);
        size_t esize = H5Tget_size(ft);
        void *enc = ap_malloc((size_t)k * T * esize, err);
        if (!enc) st = AP_ERR_NOMEM;
        else ap_store_encode(m->dtype, m->small_bits, mean_tri, enc, (size_t)k * T);
        hsize_t dm[2] = {(hsize_t)k, T}, chunk[2] = {1, T};
        if (st == AP_OK) st = put_dataset(g, "mean_pattern", ft, ft, 2, dm, chunk, m->deflate, NULL, enc, path, err);
        free(enc);
        H5Tclose(ft);
    }
    free(ints);
    free(meas);
    free(kinds);
    return st;
}

ap_status ap_store_put_cluster_summary(ap_store *s, int layer, int head, int k, const ap_cluster_summary *cl,
                                       const float *mean_tri, ap_error *err) {
    ap_clusters *c = *ap_store_clusters_slot(s);
    ap_status st = ap_store_check_writable(s, err);
    if (st == AP_OK) st = check_done(s, c, layer, head, err);
    if (st == AP_OK) st = check_summary(s, c, layer, head, k, cl, mean_tri, err);
    if (st == AP_OK) st = drop_summary(s, c, layer, head, err);
    if (st != AP_OK) return st;
    char name[64];
    head_group_name(layer, head, name, sizeof name);
    hid_t g = H5Gcreate2(ap_store_h5(s), name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    st = g >= 0 ? write_summary(s, g, k, cl, mean_tri, err) : ap_h5_fail(err, AP_ERR_IO, "cannot create a head group");
    if (g >= 0) H5Gclose(g);
    if (st != AP_OK) return ap_store_write_failed(s, st, err);
    c->has_summary[layer * c->H + head] = 1;
    update_info(c, c->info.samples);
    return AP_OK;
}

static ap_status check_summary_exists(const ap_store *s, const ap_clusters *c, int layer, int head, ap_error *err) {
    ap_status st = check_done(s, c, layer, head, err);
    if (st == AP_OK && !c->has_summary[layer * c->H + head])
        st = ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d has labels but no cluster summary", ap_store_path(s), layer,
                     head);
    return st;
}

ap_status ap_store_read_cluster_summary(ap_store *s, int layer, int head, ap_cluster_summary **out, int *k,
                                        ap_error *err) {
    *out = NULL;
    *k = 0;
    ap_clusters *c = *ap_store_clusters_slot(s);
    ap_status st = check_summary_exists(s, c, layer, head, err);
    if (st != AP_OK) return st;
    int n = c->n_clusters[layer * c->H + head];
    if (n == 0) return AP_OK;
    char g[64], name[128];
    head_group_name(layer, head, g, sizeof g);
    hid_t file = ap_store_h5(s), t_str = ap_h5_str_type();
    const char *path = ap_store_path(s);
    ap_cluster_summary *cl = ap_calloc((size_t)n, sizeof *cl, err);
    int64_t *ints = ap_malloc(2 * (size_t)n * sizeof *ints, err);
    float *meas = ap_malloc((size_t)n * AP_CLUSTER_MEASURES * sizeof *meas, err);
    char **kinds = ap_calloc((size_t)n, sizeof *kinds, err);
    st = cl && ints && meas && kinds ? AP_OK : AP_ERR_NOMEM;
    snprintf(name, sizeof name, "%s/size", g);
    if (st == AP_OK) st = whole_io(file, name, H5T_NATIVE_INT64, ints, n, 0, path, err);
    snprintf(name, sizeof name, "%s/medoid", g);
    if (st == AP_OK) st = whole_io(file, name, H5T_NATIVE_INT64, ints + n, n, 0, path, err);
    snprintf(name, sizeof name, "%s/measures", g);
    if (st == AP_OK) st = whole_io(file, name, H5T_NATIVE_FLOAT, meas, (hssize_t)n * AP_CLUSTER_MEASURES, 0, path, err);
    snprintf(name, sizeof name, "%s/kind", g);
    int have_kinds = st == AP_OK && (st = whole_io(file, name, t_str, kinds, n, 0, path, err)) == AP_OK;
    for (int j = 0; st == AP_OK && j < n; j++) {
        cl[j].size = ints[j];
        cl[j].medoid = ints[n + j];
        snprintf(cl[j].kind, sizeof cl[j].kind, "%s", kinds[j] ? kinds[j] : "");
        memcpy(cl[j].measures, meas + (size_t)j * AP_CLUSTER_MEASURES, sizeof cl[j].measures);
    }
    if (have_kinds) {
        hsize_t dk[1] = {(hsize_t)n};
        hid_t sp = H5Screate_simple(1, dk, NULL);
        H5Dvlen_reclaim(t_str, sp, H5P_DEFAULT, kinds);
        H5Sclose(sp);
    }
    H5Tclose(t_str);
    free(ints);
    free(meas);
    free(kinds);
    if (st != AP_OK) {
        free(cl);
        return st;
    }
    *out = cl;
    *k = n;
    return AP_OK;
}

ap_status ap_store_read_cluster_mean(ap_store *s, int layer, int head, int cl, float *out, ap_error *err) {
    ap_clusters *c = *ap_store_clusters_slot(s);
    const char *path = ap_store_path(s);
    ap_status st = check_summary_exists(s, c, layer, head, err);
    if (st != AP_OK) return st;
    if (!ap_store_has_patterns(s))
        return ap_fail(err, AP_ERR_ARG, "%s: the store keeps no patterns, so its clusters have no mean patterns", path);
    int k = c->n_clusters[layer * c->H + head];
    if (cl < 0 || cl >= k)
        return ap_fail(err, AP_ERR_RANGE, "%s: layer %d head %d has %d clusters; there is no cluster %d", path, layer,
                       head, k, cl);
    const ap_store_meta *m = ap_store_get_meta(s);
    size_t T = ap_tri_size(m->n_tokens);
    char name[128];
    head_group_name(layer, head, name, sizeof name);
    strcat(name, "/mean_pattern");
    hid_t ft = ap_store_h5type(m->dtype);
    size_t esize = H5Tget_size(ft);
    void *raw = ap_malloc(T * esize, err);
    float *tri = ap_malloc(T * sizeof *tri, err);
    st = raw && tri ? AP_OK : AP_ERR_NOMEM;
    hid_t d = st == AP_OK ? H5Dopen2(ap_store_h5(s), name, H5P_DEFAULT) : H5I_INVALID_HID;
    hsize_t start[2] = {(hsize_t)cl, 0}, cnt[2] = {1, T}, mdim[1] = {T};
    hid_t fs = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID, ms = H5Screate_simple(1, mdim, NULL);
    herr_t r = fs >= 0 && ms >= 0 ? H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) : -1;
    if (r >= 0) r = H5Dread(d, ft, ms, fs, H5P_DEFAULT, raw);
    if (st == AP_OK && r < 0)
        st = ap_fail(err, AP_ERR_FORMAT, "%s: cannot read /%s (cluster %d)", path, name, cl);
    if (st == AP_OK) {
        ap_to_f32(m->dtype, raw, tri, T);
        ap_tri_to_full(tri, m->n_tokens, out);
    }
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    H5Tclose(ft);
    free(raw);
    free(tri);
    return st;
}
