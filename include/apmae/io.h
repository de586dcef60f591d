/* apmae/io.h — Hugging Face file formats: safetensors (read by mmap, write
 * atomically), sharded checkpoints, half-precision conversions, and JSON
 * (config.json) access through cJSON with errors that name the file. */
#ifndef APMAE_IO_H
#define APMAE_IO_H

#include "apmae/base.h"

#include <cjson/cJSON.h>

typedef enum ap_dtype { AP_F32, AP_F16, AP_BF16, AP_I64, AP_I32, AP_U8, AP_DTYPE_COUNT } ap_dtype;

size_t ap_dtype_size(ap_dtype dt);
/* The safetensors spelling: "F32", "F16", "BF16", "I64", "I32", "U8". */
const char *ap_dtype_name(ap_dtype dt);
/* Returns 0 and sets *dt when name is known, -1 otherwise. */
int ap_dtype_from_name(const char *name, ap_dtype *dt);

/* Half-precision scalars. f32 -> half conversions round to nearest even. */
float ap_bf16_to_f32(uint16_t h);
uint16_t ap_f32_to_bf16(float f);
float ap_f16_to_f32(uint16_t h);
uint16_t ap_f32_to_f16(float f);
/* Widen n elements of a float tensor (F32, F16 or BF16) into dst. */
void ap_to_f32(ap_dtype dt, const void *src, float *dst, size_t n);
/* Narrow n floats into a float tensor of dtype dt (F32, F16 or BF16). */
void ap_from_f32(ap_dtype dt, const float *src, void *dst, size_t n);

#define AP_MAX_DIMS 8

/* One tensor inside an opened safetensors file (data points into the map). */
typedef struct ap_tensor {
    char *name;
    ap_dtype dtype;
    int ndim;
    int64_t shape[AP_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const void *data;
    const char *file; /* the shard it lives in, for error messages */
} ap_tensor;

/* An opened safetensors checkpoint: one file, or all shards of an index.
 * tensors are sorted by name (ap_st_find is a binary search). */
typedef struct ap_safetensors {
    ap_mmap *maps;
    char **paths;
    int nfiles;
    ap_tensor *tensors;
    size_t ntensors;
    char *path;  /* what was opened (file, index or directory), for messages */
    char **meta; /* __metadata__ of all files: key, value, key, value, ... */
    size_t nmeta;
} ap_safetensors;

/* path may be a .safetensors file, a model.safetensors.index.json, or a
 * directory holding either (model.safetensors preferred). Every header is
 * validated: offsets inside the file, sizes equal to dtype size x shape, no
 * overlaps, known dtypes. */
ap_status ap_st_open(const char *path, ap_safetensors **out, ap_error *err);
void ap_st_close(ap_safetensors *st);
/* NULL when absent. */
const ap_tensor *ap_st_find(const ap_safetensors *st, const char *name);
/* A __metadata__ value (first file that has the key wins); NULL when absent. */
const char *ap_st_meta(const ap_safetensors *st, const char *key);
/* Find a tensor and check its dtype class and shape. float_only accepts
 * F32/F16/BF16. shape entries must match exactly (ndim = n). */
ap_status ap_st_expect(const ap_safetensors *st, const char *name, int float_only, int n,
                       const int64_t *shape, const ap_tensor **out, ap_error *err);

/* A tensor to be written. */
typedef struct ap_tensor_view {
    const char *name;
    ap_dtype dtype;
    int ndim;
    int64_t shape[AP_MAX_DIMS];
    const void *data;
} ap_tensor_view;

/* Write tensors atomically, in the given order, header padded with spaces to
 * a multiple of 8. Tensors are packed back to back (the reference loader
 * rejects gaps) except that each starts at a multiple of its element size:
 * zero padding goes in only where the previous tensor leaves it misaligned
 * (so with all sizes multiples of 8, every offset is 8-aligned and there are
 * no gaps). metadata: optional string pairs {key, value, ...},
 * NULL-terminated; may be NULL. */
ap_status ap_st_write(const char *path, const ap_tensor_view *tensors, size_t n, const char *const *metadata,
                      ap_error *err);

/* JSON files. */
ap_status ap_json_load(const char *path, cJSON **out, ap_error *err);
/* A trainer's checkpoint state for --resume: the safetensors file at path
 * and the JSON object stored in its metadata under key, refused (naming the
 * first differing field) unless its "identity" object equals `identity`.
 * `same_what` ends the message: what the user must keep the same. On
 * success the caller owns *sf and *state. */
ap_status ap_train_state_open(const char *path, const char *key, const cJSON *identity, const char *same_what,
                              ap_safetensors **sf, cJSON **state, ap_error *err);
/* Typed field access: missing or wrongly typed fields are errors naming the
 * file and the key. *_opt variants keep the default when the key is absent
 * or null. */
ap_status ap_json_int(const cJSON *obj, const char *key, const char *file, int64_t *out, ap_error *err);
ap_status ap_json_int_opt(const cJSON *obj, const char *key, const char *file, int64_t dflt, int64_t *out,
                          ap_error *err);
ap_status ap_json_num(const cJSON *obj, const char *key, const char *file, double *out, ap_error *err);
ap_status ap_json_num_opt(const cJSON *obj, const char *key, const char *file, double dflt, double *out,
                          ap_error *err);
ap_status ap_json_bool_opt(const cJSON *obj, const char *key, const char *file, int dflt, int *out,
                           ap_error *err);
/* Points into obj; NULL when absent and not required. */
ap_status ap_json_str(const cJSON *obj, const char *key, const char *file, int required, const char **out,
                      ap_error *err);
/* Atomically write a cJSON value, pretty-printed, with a trailing newline. */
ap_status ap_json_save(const char *path, const cJSON *value, ap_error *err);

#endif
