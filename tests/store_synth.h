/* Deterministic synthetic samples for the store's tests, its kill-and-resume
 * helper and its measurements: attention patterns with the structure real
 * heads show (a sink on token 0, local decay, previous-token heads, content
 * stripes from low-rank query-key products, noise), each row a causal
 * softmax computed in double and rounded to float like a real forward pass. */
#ifndef APMAE_TESTS_STORE_SYNTH_H
#define APMAE_TESTS_STORE_SYNTH_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "apmae/store.h"

static inline uint64_t synth_next(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double synth_unif(uint64_t *x) { return (double)(synth_next(x) >> 11) * 0x1.0p-53; }
static inline double synth_gauss(uint64_t *x) {
    double u = synth_unif(x) + 1e-300, v = synth_unif(x);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* One head's pattern [N, N] (zeros above the diagonal). sharpness scales
 * every logit: 1 gives peaky heads with many entries far below 1e-8, 0.5
 * more diffuse ones. */
static inline void synth_head(uint64_t seed, int N, double sharpness, float *P) {
    enum { R = 8 };
    uint64_t st = seed;
    double sink = 10 * synth_unif(&st), decay = 0.5 * synth_unif(&st);
    double prev = synth_unif(&st) < 0.3 ? 8 * synth_unif(&st) : 0;
    double scale = (0.5 + 2.5 * synth_unif(&st)) / sqrt((double)R), stripe = 3 * synth_unif(&st);
    double *q = malloc(sizeof(double) * (size_t)N * R), *k = malloc(sizeof(double) * (size_t)N * R);
    double *bias = malloc(sizeof(double) * (size_t)N), *row = malloc(sizeof(double) * (size_t)N);
    for (int i = 0; i < N * R; i++) q[i] = synth_gauss(&st), k[i] = synth_gauss(&st);
    for (int j = 0; j < N; j++) bias[j] = stripe * synth_gauss(&st);
    for (int i = 0; i < N; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= i; j++) {
            double dot = 0;
            for (int r = 0; r < R; r++) dot += q[i * R + r] * k[j * R + r];
            double lg = (j == 0 ? sink : 0) - decay * (i - j) + (j == i - 1 ? prev : 0) + scale * dot + bias[j];
            row[j] = sharpness * lg;
            if (row[j] > mx) mx = row[j];
        }
        for (int j = 0; j <= i; j++) sum += (row[j] = exp(row[j] - mx));
        for (int j = 0; j < N; j++) P[(size_t)i * N + j] = j <= i ? (float)(row[j] / sum) : 0.0f;
    }
    free(q);
    free(k);
    free(bias);
    free(row);
}

/* All heads of synthetic sample i: attention [L, H, N, N]. */
static inline void synth_patterns(int64_t i, int N, int L, int H, double sharpness, float *attn) {
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
            synth_head(((uint64_t)i << 20) ^ ((uint64_t)l << 10) ^ (uint64_t)h, N, sharpness,
                       attn + ((size_t)l * H + h) * (size_t)N * N);
}

static const char *const k_synth_tasks[3] = {"identifiers", "eol", "noise"};

/* Sample i's record (id buffer of 32 bytes, source of 64) and input_ids [N]. */
static inline void synth_record(int64_t i, int N, char *id, char *source, ap_store_sample *r, int32_t *ids) {
    snprintf(id, 32, "s%06lld", (long long)i);
    snprintf(source, 64, "src/F%lld.java", (long long)(i % 17));
    *r = (ap_store_sample){
        .id = id,
        .task = k_synth_tasks[i % 3],
        .source = source,
        .start = i * 10,
        .end = i * 10 + 3,
        .label_id = i % 3 == 2 ? -1 : (int32_t)(i % 1000),
        .pred_id = (int32_t)((i * 7) % 1000),
        .correct = (int)((i / 3) % 2),
        .logprob = -0.25f * (float)(i % 5),
        .entropy = 0.5f + (float)(i % 7),
        .max_prob = 1.0f / (float)(1 + i % 4),
    };
    for (int t = 0; t < N; t++) ids[t] = (int32_t)((i * 31 + t * 7) % 49152);
}

#endif
