/* apmae/store.h — the attention-pattern store (docs/store.md): one HDF5 file,
 * sample-major, that extraction appends to and training and analysis read.
 * The layout is documented in docs/store.md so h5py users can read it.
 *
 * Patterns are kept as the lower triangle (diagonal included) of each N×N
 * matrix, row-major, [S, L, H, N(N+1)/2], in f32, f16 or bf16, byte-shuffled
 * and deflated. The default, bf16 keeping 3 mantissa bits for entries below
 * 1e-4, is measured at about 6.2-6.5x smaller than dense float32 N×N with
 * every entry >= 1e-4 within 2^-8 (0.39%) relative.
 *
 * Crash safety: a store opened for appending is written through a rollback
 * journal ("<path>-journal", see docs/store.md). ap_store_commit makes every
 * sample appended so far durable; a writer killed at any moment (SIGKILL,
 * power loss) leaves the store as of its last commit, which the next open
 * restores (a read-only open reads that state without touching the files).
 *
 * One writer or any number of readers at a time (flock on the store). All
 * indices (sample, layer, head) are 0-based. Not thread-safe: use one store
 * handle from one thread at a time.
 */
#ifndef APMAE_STORE_H
#define APMAE_STORE_H

#include "apmae/base.h"
#include "apmae/io.h"

/* 2: /samples/index, the patterns/shard attributes, optional /patterns,
 * /embeddings and /clusters. */
#define AP_STORE_FORMAT_VERSION 2
/* Entries below this are "small": the bf16 encoding may keep fewer mantissa
 * bits for them (ap_store_meta.small_bits). */
#define AP_STORE_SMALL_BELOW 1e-4f

typedef struct ap_store ap_store;

/* What a store records about its run (root attributes). On create the
 * strings are copied; from ap_store_get_meta they point into the store. */
typedef struct ap_store_meta {
    const char *model_id;     /* e.g. the model directory's name or hub id */
    const char *model_config; /* the model's config.json text; may be NULL */
    int n_tokens;             /* N: tokens per sample (pattern side) */
    int num_layers, num_heads;
    ap_dtype dtype;           /* AP_F32, AP_F16 or AP_BF16 */
    /* AP_BF16 only: mantissa bits (0..7) kept for entries < 1e-4; 7 = plain
     * bf16 everywhere; -1 = the default, 3 (relative error <= 2^-4 there). */
    int small_bits;
    /* Byte shuffle + deflate level: 0 = no compression, 1 = fast (zlib's
     * run-length strategy; the default), 2..9 = smaller and slower. */
    int deflate;
    const char *const *tasks; /* task names of the run (may be NULL, ntasks 0) */
    size_t ntasks;
    const int64_t *seeds; /* seeds of the run (may be NULL, nseeds 0) */
    size_t nseeds;
    const char *run; /* free-form JSON text describing the run (extract's options); may be NULL */
    /* 1: the store keeps no /patterns, only AP-MAE embeddings of each sample
     * (extraction's streaming mode): every committed sample then has its
     * embeddings. 0 (the default): patterns are kept. */
    int no_patterns;
    /* A shard of a run: the scenarios i with i % shard_count == shard_index.
     * shard_count 0 or 1: not sharded. */
    int shard_index, shard_count;
} ap_store_meta;

/* One sample's record. Strings returned by ap_store_read_sample point into
 * the store and stay valid until the next ap_store_append or close. */
typedef struct ap_store_sample {
    const char *id;     /* scenario id, unique within a store */
    const char *task;   /* task name (docs/mining.md) */
    const char *source; /* source file id; may be "" */
    int64_t start, end; /* byte span of the target in the source */
    int32_t label_id;   /* first target token id; -1 for noise scenarios */
    int32_t pred_id;    /* argmax at the last position */
    int correct;        /* 0 or 1 */
    float logprob;      /* log-probability of label_id at the last position */
    float entropy;      /* entropy (nats) of the last-position distribution */
    float max_prob;     /* largest last-position probability */
    int64_t index;      /* the scenario's 0-based line in the scenarios file (orders shards when merged) */
} ap_store_sample;

typedef enum ap_store_mode { AP_STORE_READ, AP_STORE_APPEND } ap_store_mode;

/* Create a new store at path (which must not exist) and open it for
 * appending. The file appears atomically, already valid and empty. */
ap_status ap_store_create(const char *path, const ap_store_meta *meta, ap_store **out, ap_error *err);

/* Open an existing store. A file that is not HDF5, is truncated, lacks the
 * store's datasets or has another format version gets an error naming the
 * file and the problem. APPEND first rolls back what an interrupted writer
 * left uncommitted. */
ap_status ap_store_open(const char *path, ap_store_mode mode, ap_store **out, ap_error *err);

/* Commit what was appended (APPEND mode), close and free. NULL is a no-op.
 * Returns the commit's status; the store is freed either way. */
ap_status ap_store_close(ap_store *s, ap_error *err);

const ap_store_meta *ap_store_get_meta(const ap_store *s);
const char *ap_store_path(const ap_store *s);
/* The apmae version that created the store. */
const char *ap_store_tool_version(const ap_store *s);

/* Append one sample: its record, input_ids [N] and attention [L, H, N, N]
 * float32 probabilities (full matrices; the store keeps the lower triangle,
 * so entries above the diagonal are ignored; a store without patterns
 * ignores attention, which may then be NULL). Not durable until
 * ap_store_commit. A duplicate scenario id is an AP_ERR_ARG error. */
ap_status ap_store_append(ap_store *s, const ap_store_sample *rec, const int32_t *input_ids, const float *attention,
                          ap_error *err);

/* Make every appended sample (and the cursor, and the embeddings) durable:
 * after it returns AP_OK, a crash at any later moment keeps them. Report
 * samples as done only after this. Cheap when nothing was appended. A store
 * without patterns refuses to commit a sample that has no embeddings. */
ap_status ap_store_commit(ap_store *s, ap_error *err);

/* Samples visible through this handle (committed + appended). */
int64_t ap_store_count(const ap_store *s);
/* Samples durable in the file (as of this handle's last commit or open). */
int64_t ap_store_committed(const ap_store *s);

/* A writer's resume point (e.g. how many scenarios were consumed, stored or
 * skipped): saved with the next commit, 0 in a new store. */
int64_t ap_store_cursor(const ap_store *s);
void ap_store_set_cursor(ap_store *s, int64_t cursor);

/* Index of the sample with this scenario id, or -1. */
int64_t ap_store_find(const ap_store *s, const char *id);

/* Whether the store keeps /patterns (0 for an embeddings-only store). */
int ap_store_has_patterns(const ap_store *s);

/* Sample i's record; input_ids [N] may be NULL. */
ap_status ap_store_read_sample(ap_store *s, int64_t i, ap_store_sample *out, int32_t *input_ids, ap_error *err);
/* Pattern readers fail with AP_ERR_ARG on a store without patterns. */
/* One pattern as its stored lower triangle, widened to float: out [N(N+1)/2]. */
ap_status ap_store_read_tri(ap_store *s, int64_t i, int layer, int head, float *out, ap_error *err);
/* One pattern as a full N×N matrix (zeros above the diagonal): out [N*N]. */
ap_status ap_store_read_pattern(ap_store *s, int64_t i, int layer, int head, float *out, ap_error *err);
/* All patterns of sample i: out [L, H, N, N]. */
ap_status ap_store_read_patterns(ap_store *s, int64_t i, float *out, ap_error *err);

/* Indices (ascending) of the samples of a task (NULL = any) with the given
 * correctness (-1 = any, 0, 1). *idx is malloc'ed (NULL when *n is 0). */
ap_status ap_store_filter(const ap_store *s, const char *task, int correct, int64_t **idx, size_t *n, ap_error *err);

/* ---- AP-MAE embeddings (docs/store.md, docs/mae.md "Encodings") ----
 *
 * /embeddings/cls and /embeddings/mean, [E, L, H, D] float32: the encoder's
 * cls slot and mean of slots for every pattern of samples 0..E-1 (E <= the
 * sample count: embeddings are appended in sample order, by extraction's
 * streaming mode along with each sample, or later by `apmae store embed`).
 * The AP-MAE that made them is recorded as attributes of /embeddings; a
 * store holds the embeddings of one AP-MAE only. */
typedef struct ap_store_embed_info {
    const char *model_id;     /* the AP-MAE checkpoint as named when encoding (its directory) */
    const char *model_config; /* its config.json text */
    const char *model_hash;   /* 16 hex digits: hash of its parameters, which identifies the weights */
    int dim;                  /* D: encoder_dim */
    int compat_reference;     /* encoded with --compat reference (docs/mae.md) */
} ap_store_embed_info;

/* Start (or continue) a store's embeddings: creates /embeddings with info's
 * attributes, or, when it exists, checks that it came from the same AP-MAE
 * (hash, config and compat mode) and fails with AP_ERR_ARG naming both
 * models otherwise. APPEND mode; durable with the next commit. */
ap_status ap_store_embed_begin(ap_store *s, const ap_store_embed_info *info, ap_error *err);
/* Remove the store's embeddings and the clusters made from them (APPEND
 * mode; durable with the next commit), so that another AP-MAE's can begin.
 * Refused for a store that keeps no patterns. The file does not shrink
 * (HDF5 keeps the space). */
ap_status ap_store_embed_drop(ap_store *s, ap_error *err);
/* The AP-MAE of the store's embeddings, or NULL when it has none. Strings
 * point into the store. */
const ap_store_embed_info *ap_store_embed_info_of(const ap_store *s);
/* Samples with embeddings (E): the next ap_store_append_embeddings is for
 * sample E. */
int64_t ap_store_embedded(const ap_store *s);
/* Embeddings of sample E (which must already be appended): cls and mean
 * [L, H, D]. Not durable until ap_store_commit. */
ap_status ap_store_append_embeddings(ap_store *s, const float *cls, const float *mean, ap_error *err);
/* Sample i's embeddings, i < E: cls and/or mean [L, H, D] (either may be NULL). */
ap_status ap_store_read_embeddings(ap_store *s, int64_t i, float *cls, float *mean, ap_error *err);
/* One head's embeddings of samples 0..count-1 (count <= E): out [count, D],
 * the cls slot (use_mean 0) or the mean of the slots (use_mean 1). */
ap_status ap_store_read_head_embeddings(ap_store *s, int layer, int head, int use_mean, int64_t count, float *out,
                                        ap_error *err);

/* ---- Clusters (docs/store.md "Clusters", docs/analysis.md "Clusters") ----
 *
 * /clusters holds one clustering run over the store's first S samples (S =
 * the committed samples when the run began): the label of every sample for
 * every (layer, head), whether each head is done, and per head a summary of
 * each cluster. Heads are written one at a time, so a killed run keeps every
 * head committed before the kill. */

/* Begin (or continue) a clustering run on a store opened for APPEND: creates /clusters (labels [S, L, H] int32
 * for the store's S committed samples, every head "not done") recording params_json (the run's options);
 * when /clusters exists with the same params and S it is continued (heads already done are kept); other params
 * or another S replace it (the old run is removed). Durable with the next ap_store_commit. */
ap_status ap_store_clusters_begin(ap_store *s, const char *params_json, ap_error *err);
/* Remove /clusters (a no-op when there is none), so that the next run
 * starts from scratch whatever its params. Durable with the next commit. */
ap_status ap_store_clusters_drop(ap_store *s, ap_error *err);
/* Labels of head (layer, head) for every sample, labels [S] (-1 = noise, 0..k-1 = clusters, each used at least
 * once); marks it done. Writing a head again replaces its labels and drops its summary. */
ap_status ap_store_put_cluster_labels(ap_store *s, int layer, int head, const int32_t *labels, ap_error *err);
/* Every label, labels [S, L, H]; AP_ERR_ARG naming the store when it has no /clusters or a head is not done. */
ap_status ap_store_read_cluster_labels(ap_store *s, int32_t *labels, ap_error *err);
/* One head's labels [S]; AP_ERR_ARG when that head is not done. */
ap_status ap_store_read_head_labels(ap_store *s, int layer, int head, int32_t *labels, ap_error *err);

/* The run as recorded in /clusters; arrays are [L * H] (layer-major). */
typedef struct ap_store_clusters_info {
    const char *params;           /* params_json of ap_store_clusters_begin */
    int64_t samples;              /* S */
    const uint8_t *done;          /* 1 when the head's labels are written */
    const int32_t *n_clusters;    /* k of each done head (-1 otherwise) */
    const float *noise_fraction;  /* share of samples labelled -1 (NaN when not done) */
    const uint8_t *has_summary;   /* 1 when the head has its cluster summary */
    int heads_done;
} ap_store_clusters_info;
/* NULL when the store has no /clusters. Points into the store; valid until the next write to /clusters. */
const ap_store_clusters_info *ap_store_clusters_info_of(const ap_store *s);

/* What names a cluster: the shares of its attention mass that decide its kind (docs/analysis.md "Clusters"). */
typedef enum ap_cluster_measure {
    AP_MEASURE_SINK,     /* on token 0 */
    AP_MEASURE_SELF,     /* on the diagonal */
    AP_MEASURE_PREVIOUS, /* on the token just before */
    AP_MEASURE_LOCAL,    /* on the few tokens before that */
    AP_MEASURE_FIM,      /* on the sample's <fim_*> token positions other than 0 */
    AP_MEASURE_CONTENT,  /* on every other token: the rest of the row */
    AP_MEASURE_STRIPES,  /* on the few content tokens that take the most of it */
    AP_MEASURE_ENTROPY,  /* row entropy / log(row length): 1 = uniform */
    AP_CLUSTER_MEASURES
} ap_cluster_measure;
const char *ap_cluster_measure_name(int m);

#define AP_CLUSTER_KIND_MAX 32
typedef struct ap_cluster_summary {
    int64_t size;                         /* members */
    int64_t medoid;                       /* sample index of its medoid in UMAP space */
    char kind[AP_CLUSTER_KIND_MAX];       /* e.g. "sink", "previous", "sink+local", "diffuse" */
    float measures[AP_CLUSTER_MEASURES];  /* the measured shares that decided the kind */
} ap_cluster_summary;
/* The summary of each of the k clusters of a done head, c [k], and their mean
 * patterns mean_tri [k, N(N+1)/2] (lower triangles; NULL for a store without
 * patterns, required otherwise). k, the sizes and the medoids must agree
 * with the head's labels. Replaces an earlier summary of the head. */
ap_status ap_store_put_cluster_summary(ap_store *s, int layer, int head, int k, const ap_cluster_summary *c,
                                       const float *mean_tri, ap_error *err);
/* *out malloc'ed [*k] (NULL when k is 0); AP_ERR_ARG when the head has no summary. */
ap_status ap_store_read_cluster_summary(ap_store *s, int layer, int head, ap_cluster_summary **out, int *k,
                                        ap_error *err);
/* Cluster c's mean pattern as a full N×N matrix (zeros above the diagonal). */
ap_status ap_store_read_cluster_mean(ap_store *s, int layer, int head, int c, float *out, ap_error *err);

/* Append sample i of src to dst: record, input_ids, patterns (their stored
 * bytes, unchanged) and, when src has them for i, embeddings. The stores
 * must have the same N, L, H, dtype, small_bits, deflate and patterns/no
 * patterns, and dst must have begun the same embeddings (checked: AP_ERR_ARG).
 * Merging shards uses it. */
ap_status ap_store_copy_sample(ap_store *dst, ap_store *src, int64_t i, ap_error *err);

/* Bytes on disk. */
typedef struct ap_store_size {
    int64_t file_bytes;    /* the whole file */
    int64_t pattern_bytes; /* the /patterns dataset's stored (compressed) chunks (0 without patterns) */
    int64_t patterns;      /* committed samples x L x H (0 without patterns) */
    int64_t embedding_bytes; /* both /embeddings datasets' stored chunks */
} ap_store_size;
ap_status ap_store_size_of(ap_store *s, ap_store_size *out, ap_error *err);

/* Head selection for training batches (docs/mae.md "Training"): "all", or "layerwise:q"
 * with q heads drawn per layer — q an integer count ("layerwise:4") or a
 * fraction of the heads with a decimal point ("layerwise:0.25", rounded to
 * the nearest count, at least 1). */
typedef struct ap_head_sel {
    int all;         /* 1 for "all" */
    int count;       /* > 0 when q was a count */
    double fraction; /* in (0, 1] when q was a fraction */
} ap_head_sel;
ap_status ap_head_sel_parse(const char *spec, ap_head_sel *out, ap_error *err);
/* Heads drawn per layer out of num_heads; an error when a count exceeds it. */
ap_status ap_head_sel_per_layer(const ap_head_sel *sel, int num_heads, int *q, ap_error *err);

typedef struct ap_pattern_ref {
    int64_t sample;
    int32_t layer, head;
} ap_pattern_ref;
/* For each of the given samples and each layer, the selected heads (distinct,
 * ascending), in sample, layer, head order. The draw for (sample, layer)
 * depends only on seed, sample and layer, so it does not change with the
 * order or subset of samples asked for. *out is malloc'ed. */
ap_status ap_select_heads(const ap_head_sel *sel, int num_layers, int num_heads, const int64_t *samples,
                          size_t nsamples, uint64_t seed, ap_pattern_ref **out, size_t *nout, ap_error *err);

/* Write an N×N pattern as a PNG: lower triangle log-scaled like the AP-MAE
 * scaler (log P normalised by the smallest non-zero entry, zeros darkest)
 * through the viridis colour map, the upper triangle white; each entry is a
 * zoom×zoom block (zoom >= 1). Written atomically. */
ap_status ap_pattern_write_png(const char *path, const float *P, int N, int zoom, ap_error *err);

/* The same drawing into an RGB image: the N*zoom x N*zoom square whose top
 * left pixel is rgb[0], rows stride bytes apart. */
void ap_pattern_render(const float *P, int N, int zoom, unsigned char *rgb, size_t stride);

/* The viridis colour map at t in [0, 1] (clamped): its nine published
 * anchor colours, interpolated in the Oklab perceptual space. */
void ap_viridis(double t, unsigned char rgb[3]);
/* An 8-bit RGB image [H][W][3] as a PNG file, written atomically. */
ap_status ap_png_write_rgb(const char *path, const unsigned char *rgb, int W, int H, ap_error *err);
/* The same PNG in memory: *png (malloc'ed) of *len bytes. */
ap_status ap_png_encode_rgb(const unsigned char *rgb, int W, int H, void **png, size_t *len, ap_error *err);

#endif
