/* AP-MAE embeddings in the store: /embeddings/cls and /embeddings/mean,
 * [E, L, H, D] float32, chunked by (sample, layer) so reading one head of
 * many samples decompresses little else, and the AP-MAE that made them as
 * attributes of /embeddings. Writes go through the store's journaled file
 * like everything else, so they are committed (or rolled back) with it. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct ap_emb {
    char *path; /* the store, for messages */
    hid_t group, d_cls, d_mean;
    int L, H, D;
    int64_t count;
    ap_store_embed_info info;
    char *model_id, *model_config, *model_hash;
};

void ap_emb_free(ap_emb *e) {
    if (!e) return;
    if (e->d_cls >= 0) H5Dclose(e->d_cls);
    if (e->d_mean >= 0) H5Dclose(e->d_mean);
    if (e->group >= 0) H5Gclose(e->group);
    free(e->path);
    free(e->model_id);
    free(e->model_config);
    free(e->model_hash);
    free(e);
}

static ap_emb *emb_new(const char *path, int L, int H, ap_error *err) {
    ap_emb *e = ap_calloc(1, sizeof *e, err);
    if (!e) return NULL;
    e->group = e->d_cls = e->d_mean = H5I_INVALID_HID;
    e->L = L;
    e->H = H;
    if (!(e->path = ap_strdup(path, err))) {
        free(e);
        return NULL;
    }
    return e;
}

static void point_info(ap_emb *e, int compat) {
    e->info = (ap_store_embed_info){.model_id = e->model_id,
                                    .model_config = e->model_config,
                                    .model_hash = e->model_hash,
                                    .dim = e->D,
                                    .compat_reference = compat};
}

static const char *compat_name(int compat) { return compat ? "reference" : "default"; }

ap_status ap_emb_create(hid_t file, const char *path, const ap_store_embed_info *info, int L, int H, int deflate,
                        ap_emb **out, ap_error *err) {
    *out = NULL;
    if (info->dim < 1 || info->dim > 1 << 20)
        return ap_fail(err, AP_ERR_ARG, "%s: embedding dimension %d is outside 1..%d", path, info->dim, 1 << 20);
    ap_emb *e = emb_new(path, L, H, err);
    if (!e) return AP_ERR_NOMEM;
    e->D = info->dim;
    e->model_id = ap_strdup(info->model_id ? info->model_id : "", err);
    e->model_config = ap_strdup(info->model_config ? info->model_config : "", err);
    e->model_hash = ap_strdup(info->model_hash ? info->model_hash : "", err);
    ap_status st = e->model_id && e->model_config && e->model_hash ? AP_OK : AP_ERR_NOMEM;
    if (st == AP_OK && (e->group = H5Gcreate2(file, "embeddings", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        st = ap_h5_fail(err, AP_ERR_IO, "cannot create group /embeddings");
    if (st == AP_OK) st = ap_h5_put_str(e->group, "model_id", e->model_id, path, err);
    if (st == AP_OK) st = ap_h5_put_str(e->group, "model_config", e->model_config, path, err);
    if (st == AP_OK) st = ap_h5_put_str(e->group, "model_hash", e->model_hash, path, err);
    if (st == AP_OK) st = ap_h5_put_i64(e->group, "dim", e->D, path, err);
    if (st == AP_OK) st = ap_h5_put_str(e->group, "compat", compat_name(info->compat_reference), path, err);
    hsize_t tail[3] = {(hsize_t)L, (hsize_t)H, (hsize_t)e->D}, chunk[4] = {1, 1, (hsize_t)H, (hsize_t)e->D};
    if (st == AP_OK) st = ap_h5_make_dataset(e->group, "cls", H5T_IEEE_F32LE, 4, tail, chunk, deflate, path, err);
    if (st == AP_OK) st = ap_h5_make_dataset(e->group, "mean", H5T_IEEE_F32LE, 4, tail, chunk, deflate, path, err);
    if (st == AP_OK && ((e->d_cls = H5Dopen2(e->group, "cls", H5P_DEFAULT)) < 0 ||
                        (e->d_mean = H5Dopen2(e->group, "mean", H5P_DEFAULT)) < 0))
        st = ap_h5_fail(err, AP_ERR_IO, "cannot open the new /embeddings datasets");
    if (st != AP_OK) {
        ap_emb_free(e);
        return st;
    }
    point_info(e, info->compat_reference);
    *out = e;
    return AP_OK;
}

/* Rows of an [E, L, H, D] dataset, checked against the store. */
static ap_status open_rows(ap_emb *e, const char *name, hid_t *d, int64_t *rows, ap_error *err) {
    if (H5Lexists(e->group, name, H5P_DEFAULT) <= 0 || (*d = H5Dopen2(e->group, name, H5P_DEFAULT)) < 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: /embeddings lacks its dataset '%s'", e->path, name);
    hid_t sp = H5Dget_space(*d);
    hsize_t dims[4] = {0};
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r == 4) H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0) H5Sclose(sp);
    if (r != 4 || dims[1] != (hsize_t)e->L || dims[2] != (hsize_t)e->H || dims[3] != (hsize_t)e->D)
        return ap_fail(err, AP_ERR_FORMAT, "%s: /embeddings/%s is not [E, %d, %d, %d] (layers, heads, dim)", e->path,
                       name, e->L, e->H, e->D);
    *rows = (int64_t)dims[0];
    return AP_OK;
}

ap_status ap_emb_open(hid_t file, const char *path, int L, int H, ap_emb **out, ap_error *err) {
    *out = NULL;
    if (H5Lexists(file, "embeddings", H5P_DEFAULT) <= 0) return AP_OK;
    ap_emb *e = emb_new(path, L, H, err);
    if (!e) return AP_ERR_NOMEM;
    int64_t dim = 0, n_cls = 0, n_mean = 0;
    char *compat = NULL;
    ap_status st = AP_OK;
    if ((e->group = H5Gopen2(file, "embeddings", H5P_DEFAULT)) < 0)
        st = ap_fail(err, AP_ERR_FORMAT, "%s: /embeddings is not a group", path);
    if (st == AP_OK) st = ap_h5_get_str(e->group, "model_id", path, &e->model_id, err);
    if (st == AP_OK) st = ap_h5_get_str(e->group, "model_config", path, &e->model_config, err);
    if (st == AP_OK) st = ap_h5_get_str(e->group, "model_hash", path, &e->model_hash, err);
    if (st == AP_OK) st = ap_h5_get_str(e->group, "compat", path, &compat, err);
    if (st == AP_OK) st = ap_h5_get_i64(e->group, "dim", path, &dim, err);
    if (st == AP_OK && (dim < 1 || dim > 1 << 20))
        st = ap_fail(err, AP_ERR_FORMAT, "%s: /embeddings attribute dim = %lld is outside 1..%d", path, (long long)dim,
                     1 << 20);
    if (st == AP_OK && strcmp(compat, "default") != 0 && strcmp(compat, "reference") != 0)
        st = ap_fail(err, AP_ERR_FORMAT, "%s: /embeddings attribute compat is '%s', not default or reference", path,
                     compat);
    e->D = (int)dim;
    if (st == AP_OK) st = open_rows(e, "cls", &e->d_cls, &n_cls, err);
    if (st == AP_OK) st = open_rows(e, "mean", &e->d_mean, &n_mean, err);
    if (st == AP_OK && n_cls != n_mean)
        st = ap_fail(err, AP_ERR_FORMAT, "%s: /embeddings/cls has %lld rows but /embeddings/mean %lld", path,
                     (long long)n_cls, (long long)n_mean);
    if (st == AP_OK) {
        e->count = n_cls;
        point_info(e, strcmp(compat, "reference") == 0);
        *out = e;
    } else {
        ap_emb_free(e);
    }
    free(compat);
    return st;
}

const ap_store_embed_info *ap_emb_info(const ap_emb *e) { return &e->info; }
int64_t ap_emb_count(const ap_emb *e) { return e->count; }

int ap_emb_same_model(const ap_store_embed_info *a, const ap_store_embed_info *b) {
    return strcmp(a->model_hash ? a->model_hash : "", b->model_hash ? b->model_hash : "") == 0 &&
           strcmp(a->model_config ? a->model_config : "", b->model_config ? b->model_config : "") == 0 &&
           a->dim == b->dim && !a->compat_reference == !b->compat_reference;
}

/* Select row i of d in file space; rows 1 x L x H x D. */
static herr_t rows_io(ap_emb *e, hid_t d, int64_t i, float *buf, int write) {
    hsize_t start[4] = {(hsize_t)i, 0, 0, 0}, cnt[4] = {1, (hsize_t)e->L, (hsize_t)e->H, (hsize_t)e->D};
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(4, cnt, NULL);
    herr_t r = fs >= 0 && ms >= 0 ? H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) : -1;
    if (r >= 0) r = write ? H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf)
                          : H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return r;
}

ap_status ap_emb_append(ap_emb *e, const float *cls, const float *mean, ap_error *err) {
    hsize_t dims[4] = {(hsize_t)e->count + 1, (hsize_t)e->L, (hsize_t)e->H, (hsize_t)e->D};
    if (H5Dset_extent(e->d_cls, dims) < 0 || H5Dset_extent(e->d_mean, dims) < 0)
        return ap_h5_fail(err, AP_ERR_IO, "cannot extend /embeddings");
    /* H5Dwrite takes a non-const buffer but does not change it */
    if (rows_io(e, e->d_cls, e->count, (float *)(uintptr_t)cls, 1) < 0 ||
        rows_io(e, e->d_mean, e->count, (float *)(uintptr_t)mean, 1) < 0)
        return ap_h5_fail(err, AP_ERR_IO, "cannot write /embeddings");
    e->count++;
    return AP_OK;
}

ap_status ap_emb_read(ap_emb *e, int64_t i, float *cls, float *mean, ap_error *err) {
    if ((cls && rows_io(e, e->d_cls, i, cls, 0) < 0) || (mean && rows_io(e, e->d_mean, i, mean, 0) < 0)) {
        char what[600];
        snprintf(what, sizeof what, "%s: cannot read the embeddings of sample %lld", e->path, (long long)i);
        return ap_h5_fail(err, AP_ERR_FORMAT, what);
    }
    return AP_OK;
}

int64_t ap_emb_storage(const ap_emb *e) {
    return (int64_t)H5Dget_storage_size(e->d_cls) + (int64_t)H5Dget_storage_size(e->d_mean);
}

ap_status ap_emb_read_head(ap_emb *e, int layer, int head, int mean, int64_t count, float *out, ap_error *err) {
    hid_t d = mean ? e->d_mean : e->d_cls;
    hsize_t start[4] = {0, (hsize_t)layer, (hsize_t)head, 0}, cnt[4] = {(hsize_t)count, 1, 1, (hsize_t)e->D};
    hsize_t mdim[2] = {(hsize_t)count, (hsize_t)e->D};
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(2, mdim, NULL);
    herr_t r = fs >= 0 && ms >= 0 ? H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) : -1;
    if (r >= 0) r = H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (r < 0) {
        char what[600];
        snprintf(what, sizeof what, "%s: cannot read the embeddings of layer %d head %d", e->path, layer, head);
        return ap_h5_fail(err, AP_ERR_FORMAT, what);
    }
    return AP_OK;
}
