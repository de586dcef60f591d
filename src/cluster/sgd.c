/* UMAP's layout optimisation (docs/analysis.md, "UMAP"), with the semantics
 * of umap-learn's optimize_layout_euclidean: each directed edge of the fuzzy
 * graph is sampled every max(w)/w epochs and pulls its two ends together
 * (both move); each sample is followed by negative_sample_rate samples of
 * random points that push the head away; gradients are clipped to +-4 per
 * coordinate and the step alpha decays linearly from 1.
 *
 * Two departures make it fast and deterministic. (1) The negative samples
 * of one edge sample are all evaluated at the head's position after the
 * attraction and applied together (umap-learn moves the head between them):
 * their distance computations overlap instead of forming one long chain.
 * (2) The points are split into SGD_BLOCKS blocks of consecutive indices,
 * each cut into SGD_WAVES parts; an epoch runs the parts wave by wave, the
 * blocks' parts of one wave in parallel. A part updates its own points in
 * place, sees the points of the other parts of its wave as they were when
 * the wave began (the rest do not change during the wave), and its moves of
 * points outside it are applied when the wave ends, in block order. Nothing
 * depends on which thread runs a part, so the result is the same for any
 * thread count (umap-learn's parallel SGD is not reproducible; with a seed it
 * runs on one thread). */
#include "cluster/umap_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NEGATIVE_SAMPLE_RATE 5
#define REPULSION_STRENGTH 1.0f /* umap-learn's gamma */
#define GRAD_CLIP 4.0f
#define REPULSION_EPS 0.001f
#define SGD_BLOCKS 8 /* run in parallel */
#define SGD_WAVES 8  /* parts of each block, run one after another */
#define PARALLEL_MIN_EDGES 20000 /* below, a wave is too short to wake a thread team for */
#define NEG_BATCH 8 /* negatives evaluated together; more are done in several batches */

static inline float clip(float v) {
    return v > GRAD_CLIP ? GRAD_CLIP : v < -GRAD_CLIP ? -GRAD_CLIP : v;
}

static inline float sq_dist(const float *p, const float *q, int dim) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int t = 0; t < dim; t++) s += (p[t] - q[t]) * (p[t] - q[t]);
    return s;
}

/* A point in [0, n) from 32 random bits (multiply-shift; the bias, n / 2^32,
 * is immaterial here). */
static inline int64_t random_point(ap_rng *rng, int64_t n) {
    return (int64_t)(((ap_rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}

/* A move of a point outside the part, applied when the wave ends. */
typedef struct deferred {
    int32_t point;
    float delta[];
} deferred;

typedef struct sgd_block {
    int64_t lo, hi; /* the block's points */
    int64_t plo, phi; /* those of its part in the current wave */
    ap_rng rng;
    char *moves; /* deferred entries, each `stride` bytes */
    size_t nmoves, cap;
} sgd_block;

typedef struct sgd_run {
    int64_t n;
    int dim;
    float a, b, alpha;
    float *emb;        /* live positions */
    float *snap;       /* the current wave's points as the wave began */
    uint8_t *wave_of;  /* each point's wave */
    int wave;
    size_t stride;     /* bytes of one deferred entry */
} sgd_run;

static int defer_move(const sgd_run *r, sgd_block *blk, int64_t k, const float *delta) {
    if (blk->nmoves == blk->cap) {
        size_t cap = blk->cap ? 2 * blk->cap : 1024;
        char *m = realloc(blk->moves, cap * r->stride);
        if (!m) return -1;
        blk->moves = m;
        blk->cap = cap;
    }
    deferred *d = (deferred *)(blk->moves + blk->nmoves++ * r->stride);
    d->point = (int32_t)k;
    memcpy(d->delta, delta, (size_t)r->dim * sizeof(float));
    return 0;
}

static inline int own(const sgd_block *blk, int64_t k) {
    return k >= blk->plo && k < blk->phi;
}

/* Where a part sees point k: live unless another part of the wave moves it. */
static inline const float *seen(const sgd_run *r, const sgd_block *blk, int64_t k) {
    return (r->wave_of[k] == r->wave && !own(blk, k) ? r->snap : r->emb) + k * r->dim;
}

/* The attraction along edge (j, k), k in the part, then n_neg repulsions of
 * the head j; j moves in place when it is the part's own, else its move is
 * deferred. */
static inline int sample_edge(const sgd_run *r, sgd_block *blk, int64_t j, int64_t k, int n_neg, const int dim) {
    const float a = r->a, b = r->b, alpha = r->alpha;
    float *tail = r->emb + k * dim, copy[dim], step[dim];
    const int own_head = own(blk, j);
    float *cur = own_head ? r->emb + j * dim : copy;
    if (!own_head) memcpy(copy, seen(r, blk, j), sizeof copy);
    float d2 = sq_dist(cur, tail, dim), coeff = 0;
    if (d2 > 0) {
        float pb = powf(d2, b);
        coeff = -2.0f * a * b * (pb / d2) / (a * pb + 1.0f);
    }
    for (int t = 0; t < dim; t++) {
        float g = clip(coeff * (cur[t] - tail[t])) * alpha;
        cur[t] += g;
        tail[t] -= g;
    }
    for (int s0 = 0; s0 < n_neg; s0 += NEG_BATCH) {
        const int m = n_neg - s0 < NEG_BATCH ? n_neg - s0 : NEG_BATCH;
        const float *far[NEG_BATCH];
        float fc[NEG_BATCH];
        for (int s = 0; s < m; s++) { /* independent of each other: computed side by side */
            int64_t q = random_point(&blk->rng, r->n);
            far[s] = q == j ? cur : seen(r, blk, q);
            float dq = sq_dist(cur, far[s], dim);
            /* coincident with another point: a full push along every axis (fc < 0); with itself: none */
            fc[s] = dq > 0 ? 2.0f * REPULSION_STRENGTH * b / ((REPULSION_EPS + dq) * (a * powf(dq, b) + 1.0f))
                           : q != j ? -1.0f : 0.0f;
        }
        for (int t = 0; t < dim; t++) step[t] = 0;
        for (int s = 0; s < m; s++)
            for (int t = 0; t < dim; t++)
                step[t] += fc[s] > 0 ? clip(fc[s] * (cur[t] - far[s][t])) : fc[s] < 0 ? GRAD_CLIP : 0.0f;
        for (int t = 0; t < dim; t++) cur[t] += step[t] * alpha;
    }
    if (!own_head) {
        const float *was = seen(r, blk, j);
        for (int t = 0; t < dim; t++) step[t] = cur[t] - was[t];
        if (defer_move(r, blk, j, step)) return -1;
    }
    return 0;
}

typedef struct edge_schedule {
    double *every, *next, *every_neg, *next_neg;
} edge_schedule;

static void edge_schedule_free(edge_schedule *s) {
    free(s->every);
    free(s->next);
    free(s->every_neg);
    free(s->next_neg);
}

/* The edges due in this epoch whose tail is one of the part's points,
 * tail by tail: umap-learn's order (its edge list is sorted by tail, and
 * this order embeds measurably better than head by head). `dim` is a
 * constant where part_epoch calls it, so each copy is compiled for its
 * dimension. */
static inline int part_edges(const sgd_run *r, sgd_block *blk, const umap_graph *g, edge_schedule *s, int epoch,
                             const int dim) {
    for (int64_t k = blk->plo; k < blk->phi; k++)
        for (int64_t e = g->rowptr[k]; e < g->rowptr[k + 1]; e++) {
            if (s->next[e] > epoch) continue;
            int n_neg = (int)((epoch - s->next_neg[e]) / s->every_neg[e]);
            if (sample_edge(r, blk, g->col[e], k, n_neg, dim)) return -1;
            s->next[e] += s->every[e];
            s->next_neg[e] += n_neg * s->every_neg[e];
        }
    return 0;
}

/* Vectorised copies for the common output dimensions. */
static int part_epoch(const sgd_run *r, sgd_block *blk, const umap_graph *g, edge_schedule *s, int epoch) {
    switch (r->dim) {
    case 2: return part_edges(r, blk, g, s, epoch, 2);
    case 8: return part_edges(r, blk, g, s, epoch, 8);
    default: return part_edges(r, blk, g, s, epoch, r->dim);
    }
}

static void part_bounds(const sgd_block *blk, int wave, int64_t *lo, int64_t *hi) {
    *lo = blk->lo + (blk->hi - blk->lo) * wave / SGD_WAVES;
    *hi = blk->lo + (blk->hi - blk->lo) * (wave + 1) / SGD_WAVES;
}

/* One wave: the blocks' parts in parallel, then the deferred moves. */
static int run_wave(sgd_run *r, sgd_block *blocks, const umap_graph *g, edge_schedule *s, int epoch, int wave) {
    const int dim = r->dim;
    r->wave = wave;
    for (int k = 0; k < SGD_BLOCKS; k++) {
        part_bounds(&blocks[k], wave, &blocks[k].plo, &blocks[k].phi);
        memcpy(r->snap + blocks[k].plo * dim, r->emb + blocks[k].plo * dim,
               (size_t)(blocks[k].phi - blocks[k].plo) * dim * sizeof(float));
        blocks[k].nmoves = 0;
    }
    int failed = 0;
#pragma omp parallel for schedule(dynamic) if (g->nnz >= PARALLEL_MIN_EDGES)
    for (int k = 0; k < SGD_BLOCKS; k++)
        if (part_epoch(r, &blocks[k], g, s, epoch)) {
#pragma omp atomic write
            failed = 1;
        }
    if (failed) return -1;
    for (int k = 0; k < SGD_BLOCKS; k++)
        for (size_t m = 0; m < blocks[k].nmoves; m++) {
            const deferred *d = (const deferred *)(blocks[k].moves + m * r->stride);
            for (int t = 0; t < dim; t++) r->emb[(int64_t)d->point * dim + t] += d->delta[t];
        }
    return 0;
}

ap_status umap_sgd(float *emb, int dim, const umap_graph *g, int n_epochs, double a, double b, uint64_t seed,
                   ap_error *err) {
    const int64_t n = g->n, nnz = g->nnz;
    const size_t cells = (size_t)(nnz > 0 ? nnz : 1);
    edge_schedule s = {ap_malloc(cells * sizeof(double), err), ap_malloc(cells * sizeof(double), err),
                       ap_malloc(cells * sizeof(double), err), ap_malloc(cells * sizeof(double), err)};
    sgd_run run = {n, dim, (float)a, (float)b, 1.0f, emb, ap_malloc((size_t)n * dim * sizeof(float), err),
                   ap_malloc((size_t)n, err), 0, sizeof(deferred) + (size_t)dim * sizeof(float)};
    sgd_block *blocks = ap_calloc(SGD_BLOCKS, sizeof *blocks, err);
    ap_status st = AP_OK;
    if (!s.every || !s.next || !s.every_neg || !s.next_neg || !run.snap || !run.wave_of || !blocks) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    float wmax = 0;
    for (int64_t e = 0; e < nnz; e++)
        if (g->w[e] > wmax) wmax = g->w[e];
    for (int64_t e = 0; e < nnz; e++) {
        s.every[e] = (double)wmax / g->w[e];
        s.next[e] = s.every[e];
        s.every_neg[e] = s.every[e] / NEGATIVE_SAMPLE_RATE;
        s.next_neg[e] = s.every_neg[e];
    }
    for (int k = 0; k < SGD_BLOCKS; k++) {
        blocks[k].lo = n * k / SGD_BLOCKS;
        blocks[k].hi = n * (k + 1) / SGD_BLOCKS;
        ap_rng_seed(&blocks[k].rng, ap_hash_mix(seed, (uint64_t)k));
        for (int w = 0; w < SGD_WAVES; w++) {
            int64_t lo, hi;
            part_bounds(&blocks[k], w, &lo, &hi);
            memset(run.wave_of + lo, w, (size_t)(hi - lo));
        }
    }
    for (int epoch = 0; epoch < n_epochs && st == AP_OK; epoch++) {
        for (int w = 0; w < SGD_WAVES && st == AP_OK; w++)
            if (run_wave(&run, blocks, g, &s, epoch, w))
                st = ap_fail(err, AP_ERR_NOMEM, "out of memory in the UMAP layout optimisation");
        run.alpha = 1.0f - (float)epoch / (float)n_epochs;
    }
done:
    edge_schedule_free(&s);
    free(run.snap);
    free(run.wave_of);
    if (blocks)
        for (int k = 0; k < SGD_BLOCKS; k++) free(blocks[k].moves);
    free(blocks);
    return st;
}
