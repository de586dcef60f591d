/* UMAP's initial layout (docs/analysis.md, "UMAP"): the spectral embedding
 * of the fuzzy graph, i.e. the eigenvectors of the normalised Laplacian
 * L = I - D^-1/2 W D^-1/2 for its smallest eigenvalues after the trivial one.
 * These are the largest eigenvectors of M = D^-1/2 W D^-1/2 orthogonal to the
 * known top one, v0 ∝ D^1/2 1, found by thick-restart Lanczos with full
 * reorthogonalisation over the sparse graph (any n; no dense matrix).
 *
 * A graph of several connected components is laid out as umap-learn does:
 * each component embedded on its own, scaled and placed around its own
 * anchor point. Components too small for an eigenproblem, and a solver that
 * breaks down, get random positions.
 *
 * Determinism: sums over all points are taken in fixed blocks and the blocks
 * added in order, so no result depends on the thread count. */
#include "cluster/umap_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LANCZOS_TOL 1e-4 /* umap-learn's eigsh tolerance */
#define REDUCE_BLOCK 4096
/* Vector operations over fewer rows run on one thread: waking the team
 * costs more than the work (and much more on a busy machine). */
#define PARALLEL_MIN_ROWS 32768

/* ---- deterministic reductions over n ---- */

/* h[c] = sum_i V[c][i] w[i] for the ncols columns of V (each n long),
 * partial sums per fixed block, added in block order. */
static void project(const double *V, int64_t n, int ncols, const double *w, double *h, double *partial) {
    const int64_t nb = (n + REDUCE_BLOCK - 1) / REDUCE_BLOCK;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ROWS)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * REDUCE_BLOCK, hi = lo + REDUCE_BLOCK < n ? lo + REDUCE_BLOCK : n;
        for (int c = 0; c < ncols; c++) {
            const double *v = V + (int64_t)c * n;
            double s = 0;
            for (int64_t i = lo; i < hi; i++) s += v[i] * w[i];
            partial[b * ncols + c] = s;
        }
    }
    for (int c = 0; c < ncols; c++) {
        double s = 0;
        for (int64_t b = 0; b < nb; b++) s += partial[b * ncols + c];
        h[c] = s;
    }
}

/* w -= V h */
static void subtract(double *w, const double *V, int64_t n, int ncols, const double *h) {
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ROWS)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int c = 0; c < ncols; c++) s += V[(int64_t)c * n + i] * h[c];
        w[i] -= s;
    }
}

/* out[:, c] = V[:, 0..m) y[:, c] for c < ncols; y is [m][ldy] row-major. */
static void combine(const double *V, int64_t n, int m, const double *y, int ldy, int ncols, double *out) {
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ROWS)
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < ncols; c++) {
            double s = 0;
            for (int r = 0; r < m; r++) s += V[(int64_t)r * n + i] * y[r * ldy + c];
            out[(int64_t)c * n + i] = s;
        }
}

/* ---- small dense symmetric eigenproblems ---- */

/* Cyclic Jacobi on the symmetric m x m matrix A (destroyed): eigenvalues in
 * vals and eigenvectors as the columns of Y (row-major, m x m), sorted by
 * decreasing eigenvalue. */
static void jacobi_eigen(double *A, int m, double *vals, double *Y, double *tmp) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) Y[i * m + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, total = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                total += A[i * m + j] * A[i * m + j];
                if (i != j) off += A[i * m + j] * A[i * m + j];
            }
        if (off <= 1e-30 * total || off == 0) break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                double apq = A[p * m + q];
                if (apq == 0) continue;
                double theta = (A[q * m + q] - A[p * m + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < m; k++) { /* A <- A J (columns p, q) */
                    double akp = A[k * m + p], akq = A[k * m + q];
                    A[k * m + p] = c * akp - s * akq;
                    A[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) { /* A <- J^T A (rows p, q) */
                    double apk = A[p * m + k], aqk = A[q * m + k];
                    A[p * m + k] = c * apk - s * aqk;
                    A[q * m + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < m; k++) {
                    double ykp = Y[k * m + p], ykq = Y[k * m + q];
                    Y[k * m + p] = c * ykp - s * ykq;
                    Y[k * m + q] = s * ykp + c * ykq;
                }
            }
    }
    /* sort columns by decreasing eigenvalue (selection sort: m is small) */
    int *order = (int *)(tmp + m * m);
    for (int i = 0; i < m; i++) order[i] = i;
    for (int i = 0; i < m; i++) {
        int best = i;
        for (int j = i + 1; j < m; j++)
            if (A[order[j] * m + order[j]] > A[order[best] * m + order[best]]) best = j;
        int t = order[i];
        order[i] = order[best];
        order[best] = t;
    }
    memcpy(tmp, Y, (size_t)m * m * sizeof(double));
    for (int c = 0; c < m; c++) {
        vals[c] = A[order[c] * m + order[c]];
        for (int r = 0; r < m; r++) Y[r * m + c] = tmp[r * m + order[c]];
    }
}

/* ---- thick-restart Lanczos ---- */

typedef struct lanczos_ws {
    double *V;       /* (m + 1) basis vectors of n */
    double *H;       /* m x m projected matrix */
    double *A, *Y;   /* copies for the eigensolver */
    double *theta;   /* Ritz values */
    double *h, *h2;  /* projection coefficients (m + 1) */
    double *partial; /* block partial sums */
    double *tmp;     /* eigensolver scratch: m*m doubles + m ints */
    double *X;       /* kept Ritz vectors at a restart */
} lanczos_ws;

static void lanczos_ws_free(lanczos_ws *w) {
    free(w->V);
    free(w->H);
    free(w->A);
    free(w->Y);
    free(w->theta);
    free(w->h);
    free(w->h2);
    free(w->partial);
    free(w->tmp);
    free(w->X);
}

static ap_status lanczos_ws_init(lanczos_ws *w, int64_t n, int m, ap_error *err) {
    memset(w, 0, sizeof *w);
    const int64_t nb = (n + REDUCE_BLOCK - 1) / REDUCE_BLOCK;
    w->V = ap_malloc((size_t)(m + 1) * n * sizeof(double), err);
    w->H = ap_calloc((size_t)m * m, sizeof(double), err);
    w->A = ap_malloc((size_t)m * m * sizeof(double), err);
    w->Y = ap_malloc((size_t)m * m * sizeof(double), err);
    w->theta = ap_malloc((size_t)m * sizeof(double), err);
    w->h = ap_malloc((size_t)(m + 2) * sizeof(double), err);
    w->h2 = ap_malloc((size_t)(m + 2) * sizeof(double), err);
    w->partial = ap_malloc((size_t)nb * (m + 2) * sizeof(double), err);
    w->tmp = ap_malloc((size_t)m * m * sizeof(double) + (size_t)m * sizeof(int), err);
    w->X = ap_malloc((size_t)m * n * sizeof(double), err);
    if (!w->V || !w->H || !w->A || !w->Y || !w->theta || !w->h || !w->h2 || !w->partial || !w->tmp || !w->X) {
        lanczos_ws_free(w);
        return AP_ERR_NOMEM;
    }
    return AP_OK;
}

/* Orthogonalise w against v0 and the first ncols columns of V, twice
 * (classical Gram-Schmidt repeated: orthogonal to working precision); the
 * coefficients of the first pass plus the second go to h. */
static void orthogonalise(lanczos_ws *ws, int64_t n, const double *v0, int ncols, double *w, double *h) {
    double c0;
    for (int pass = 0; pass < 2; pass++) {
        project(v0, n, 1, w, &c0, ws->partial);
        subtract(w, v0, n, 1, &c0);
        project(ws->V, n, ncols, w, ws->h2, ws->partial);
        subtract(w, ws->V, n, ncols, ws->h2);
        for (int c = 0; c < ncols; c++) h[c] = pass ? h[c] + ws->h2[c] : ws->h2[c];
    }
}

static double norm2(lanczos_ws *ws, int64_t n, const double *w) {
    double s;
    project(w, n, 1, w, &s, ws->partial);
    return sqrt(s);
}

/* Column j of V: a random unit vector orthogonal to v0 and V[:, 0..j). */
static void random_basis_vector(lanczos_ws *ws, int64_t n, const double *v0, int j, ap_rng *rng) {
    double *v = ws->V + (int64_t)j * n;
    for (int attempt = 0; attempt < 8; attempt++) {
        for (int64_t i = 0; i < n; i++) v[i] = ap_rng_normal(rng);
        orthogonalise(ws, n, v0, j, v, ws->h);
        double nv = norm2(ws, n, v);
        if (nv > 1e-8) {
            for (int64_t i = 0; i < n; i++) v[i] /= nv;
            return;
        }
    }
    memset(v, 0, (size_t)n * sizeof(double));
}

ap_status umap_lanczos_top(umap_matvec_fn A, const void *ctx, int64_t n, const double *v0, int nev, uint64_t seed,
                           double tol, int max_matvec, double *vals, double *vecs, int *matvecs, int *converged,
                           ap_error *err) {
    /* the basis lives in the (n-1)-dimensional complement of v0 */
    int m = 2 * nev + 1 > nev + 16 ? 2 * nev + 1 : nev + 16;
    if (m > n - 1) m = (int)(n - 1);
    if (nev < 1 || nev > m) return ap_fail(err, AP_ERR_ARG, "Lanczos: %d eigenvectors asked of %lld points", nev,
                                           (long long)n);
    lanczos_ws ws;
    ap_status st = lanczos_ws_init(&ws, n, m, err);
    if (st != AP_OK) return st;
    ap_rng rng;
    ap_rng_seed(&rng, seed);
    random_basis_vector(&ws, n, v0, 0, &rng);
    int kept = 0, mv = 0;
    double beta = 0;
    *converged = 0;
    for (;;) {
        for (int j = kept; j < m; j++) {
            double *vj = ws.V + (int64_t)j * n, *w = ws.V + (int64_t)(j + 1) * n;
            A(ctx, vj, w);
            mv++;
            orthogonalise(&ws, n, v0, j + 1, w, ws.h);
            for (int i = 0; i <= j; i++) ws.H[i * m + j] = ws.H[j * m + i] = ws.h[i];
            beta = norm2(&ws, n, w);
            if (beta > 1e-10) {
                for (int64_t i = 0; i < n; i++) w[i] /= beta;
            } else { /* an invariant subspace: continue from a fresh direction */
                beta = 0;
                if (j + 1 < m) random_basis_vector(&ws, n, v0, j + 1, &rng);
            }
            if (j + 1 < m) ws.H[(j + 1) * m + j] = ws.H[j * m + j + 1] = beta;
        }
        memcpy(ws.A, ws.H, (size_t)m * m * sizeof(double));
        jacobi_eigen(ws.A, m, ws.theta, ws.Y, ws.tmp);
        double worst = 0;
        for (int i = 0; i < nev; i++) {
            double res = fabs(beta * ws.Y[(m - 1) * m + i]);
            if (res > worst) worst = res;
        }
        *converged = worst <= tol;
        if (*converged || mv >= max_matvec || m == nev) {
            ap_debug("lanczos: %d matvecs, largest residual %.2e", mv, worst);
            break;
        }
        /* thick restart: keep the best Ritz vectors and the residual direction */
        kept = nev + (m - nev) / 2;
        combine(ws.V, n, m, ws.Y, m, kept, ws.X);
        memcpy(ws.V, ws.X, (size_t)kept * n * sizeof(double));
        memmove(ws.V + (int64_t)kept * n, ws.V + (int64_t)m * n, (size_t)n * sizeof(double));
        memset(ws.H, 0, (size_t)m * m * sizeof(double));
        for (int i = 0; i < kept; i++) {
            ws.H[i * m + i] = ws.theta[i];
            ws.H[kept * m + i] = ws.H[i * m + kept] = beta * ws.Y[(m - 1) * m + i];
        }
        if (beta == 0) random_basis_vector(&ws, n, v0, kept, &rng);
    }
    combine(ws.V, n, m, ws.Y, m, nev, vecs);
    memcpy(vals, ws.theta, (size_t)nev * sizeof(double));
    *matvecs = mv;
    lanczos_ws_free(&ws);
    return AP_OK;
}

/* ---- the normalised graph of one component ---- */

typedef struct norm_graph {
    int64_t n;
    int64_t *rowptr;
    int32_t *col;
    double *val; /* w_ij / sqrt(deg_i deg_j) */
} norm_graph;

static void norm_graph_free(norm_graph *g) {
    free(g->rowptr);
    free(g->col);
    free(g->val);
}

static void norm_matvec(const void *ctx, const double *x, double *y) {
    const norm_graph *g = ctx;
#pragma omp parallel for schedule(static) if (g->n >= PARALLEL_MIN_ROWS)
    for (int64_t i = 0; i < g->n; i++) {
        double s = 0;
        for (int64_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) s += g->val[e] * x[g->col[e]];
        y[i] = s;
    }
}

/* The subgraph of the vertices members[0..nm) (ascending), normalised, and
 * v0 = D^1/2 1 / |D^1/2 1|. local[] maps a vertex to its position in members. */
static ap_status component_graph(const umap_graph *g, const int64_t *members, int64_t nm, const int64_t *local,
                                 norm_graph *ng, double *v0, ap_error *err) {
    memset(ng, 0, sizeof *ng);
    ng->n = nm;
    int64_t nnz = 0;
    for (int64_t a = 0; a < nm; a++) nnz += g->rowptr[members[a] + 1] - g->rowptr[members[a]];
    ng->rowptr = ap_malloc((size_t)(nm + 1) * sizeof(int64_t), err);
    ng->col = ap_malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof(int32_t), err);
    ng->val = ap_malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof(double), err);
    if (!ng->rowptr || !ng->col || !ng->val) {
        norm_graph_free(ng);
        return AP_ERR_NOMEM;
    }
    double total = 0;
    for (int64_t a = 0; a < nm; a++) {
        double deg = 0;
        for (int64_t e = g->rowptr[members[a]]; e < g->rowptr[members[a] + 1]; e++) deg += g->w[e];
        v0[a] = sqrt(deg);
        total += deg;
    }
    int64_t e_out = 0;
    ng->rowptr[0] = 0;
    for (int64_t a = 0; a < nm; a++) {
        for (int64_t e = g->rowptr[members[a]]; e < g->rowptr[members[a] + 1]; e++) {
            int64_t b = local[g->col[e]];
            ng->col[e_out] = (int32_t)b;
            ng->val[e_out++] = g->w[e] / (v0[a] * v0[b]);
        }
        ng->rowptr[a + 1] = e_out;
    }
    const double inv = 1 / sqrt(total);
    for (int64_t a = 0; a < nm; a++) v0[a] *= inv;
    return AP_OK;
}

/* ---- layouts ---- */

/* Connected components, numbered by their lowest vertex; returns how many. */
static int64_t components(const umap_graph *g, int64_t *label, int64_t *queue) {
    int64_t nc = 0;
    for (int64_t i = 0; i < g->n; i++) label[i] = -1;
    for (int64_t s = 0; s < g->n; s++) {
        if (label[s] >= 0) continue;
        int64_t head = 0, tail = 0;
        queue[tail++] = s;
        label[s] = nc;
        while (head < tail) {
            int64_t v = queue[head++];
            for (int64_t e = g->rowptr[v]; e < g->rowptr[v + 1]; e++)
                if (label[g->col[e]] < 0) {
                    label[g->col[e]] = nc;
                    queue[tail++] = g->col[e];
                }
        }
        nc++;
    }
    return nc;
}

static int too_small_for_spectral(int64_t size, int dim) {
    return size < 2 * dim || size <= dim + 1; /* umap-learn's rule */
}

/* The spectral embedding of one component into emb [nm, dim] (row-major),
 * scaled so its largest coordinate is `scale`; *failed = 1 when the solver
 * produced nothing usable (emb is then untouched). */
static ap_status embed_component(const umap_graph *g, const int64_t *members, int64_t nm, const int64_t *local,
                                 int dim, uint64_t seed, double scale, float *emb, int *failed, ap_error *err) {
    norm_graph ng;
    double *v0 = ap_malloc((size_t)nm * sizeof(double), err);
    double *vecs = ap_malloc((size_t)nm * dim * sizeof(double), err);
    double *vals = ap_malloc((size_t)dim * sizeof(double), err);
    ap_status st = AP_OK;
    if (!v0 || !vecs || !vals) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    if ((st = component_graph(g, members, nm, local, &ng, v0, err)) != AP_OK) goto done;
    int mv = 0, conv = 0;
    const int budget = 3000;
    st = umap_lanczos_top(norm_matvec, &ng, nm, v0, dim, seed, LANCZOS_TOL, budget, vals, vecs, &mv, &conv, err);
    norm_graph_free(&ng);
    if (st != AP_OK) goto done;
    if (!conv) ap_debug("spectral layout: eigenvectors not converged after %d products; using the best ones", mv);
    double big = 0;
    for (int64_t c = 0; c < nm * dim; c++)
        if (!(fabs(vecs[c]) <= big)) big = fabs(vecs[c]); /* NaN propagates */
    *failed = !(big > 0 && isfinite(big));
    if (!*failed)
        for (int64_t a = 0; a < nm; a++)
            for (int c = 0; c < dim; c++) emb[a * dim + c] = (float)(vecs[(int64_t)c * nm + a] * scale / big);
done:
    free(v0);
    free(vecs);
    free(vals);
    return st;
}

/* Anchor points of nc components [nc, dim]: for at most 2 dim components
 * umap-learn's +-unit vectors; beyond, the component centroids projected on
 * dim random Gaussian directions, scaled to a largest coordinate of 1. */
static ap_status anchors(const knn_rows *rows, const int64_t *label, int64_t nc, int dim, ap_rng *rng,
                         double *meta, ap_error *err) {
    memset(meta, 0, (size_t)nc * dim * sizeof(double));
    if (nc <= 2 * dim) {
        int64_t half = (nc + 1) / 2;
        for (int64_t c = 0; c < nc; c++) meta[c * dim + c % half] = c < half ? 1 : -1;
        return AP_OK;
    }
    const int d = rows->d;
    double *centroid = ap_calloc((size_t)nc * d, sizeof(double), err);
    double *proj = ap_malloc((size_t)d * dim * sizeof(double), err);
    int64_t *count = ap_calloc((size_t)nc, sizeof(int64_t), err);
    if (!centroid || !proj || !count) {
        free(centroid);
        free(proj);
        free(count);
        return AP_ERR_NOMEM;
    }
    for (int64_t i = 0; i < rows->n; i++) {
        count[label[i]]++;
        for (int t = 0; t < d; t++) centroid[label[i] * d + t] += rows->x[i * d + t];
    }
    for (int64_t c = 0; c < (int64_t)d * dim; c++) proj[c] = ap_rng_normal(rng);
    double big = 0;
    for (int64_t c = 0; c < nc; c++)
        for (int e = 0; e < dim; e++) {
            double s = 0;
            for (int t = 0; t < d; t++) s += centroid[c * d + t] / (double)count[c] * proj[t * dim + e];
            meta[c * dim + e] = s;
            if (fabs(s) > big) big = fabs(s);
        }
    for (int64_t c = 0; c < nc * dim; c++) meta[c] = big > 0 ? meta[c] / big : ap_rng_uniform(rng) * 2 - 1;
    free(centroid);
    free(proj);
    free(count);
    return AP_OK;
}

/* Half the distance from anchor c to the nearest other distinct one. */
static double anchor_range(const double *meta, int64_t nc, int dim, int64_t c) {
    double best = INFINITY;
    for (int64_t o = 0; o < nc; o++) {
        double s = 0;
        for (int e = 0; e < dim; e++) s += (meta[c * dim + e] - meta[o * dim + e]) * (meta[c * dim + e] - meta[o * dim + e]);
        if (s > 0 && s < best) best = s;
    }
    return isfinite(best) ? sqrt(best) / 2 : 1.0;
}

static void uniform_fill(float *out, int64_t count, double lo, double hi, ap_rng *rng) {
    for (int64_t c = 0; c < count; c++) out[c] = (float)(lo + (hi - lo) * ap_rng_uniform(rng));
}

ap_status umap_spectral_layout(const umap_graph *g, const knn_rows *rows, int dim, uint64_t seed, float *out,
                               umap_init_kind *how, ap_error *err) {
    const int64_t n = g->n;
    int64_t *label = ap_malloc((size_t)n * sizeof(int64_t), err);
    int64_t *members = ap_malloc((size_t)n * sizeof(int64_t), err);
    int64_t *local = ap_malloc((size_t)n * sizeof(int64_t), err);
    float *emb = ap_malloc((size_t)n * dim * sizeof(float), err);
    double *meta = NULL;
    int64_t *first = NULL, *cursor = NULL;
    ap_status st = AP_OK;
    ap_rng rng;
    ap_rng_seed(&rng, ap_hash_mix(seed, 0x5eed));
    umap_init_kind kind = UMAP_INIT_SPECTRAL;
    if (!label || !members || !local || !emb) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    const int64_t nc = components(g, label, members);
    if (nc == 1) {
        int failed = 1;
        for (int64_t i = 0; i < n; i++) members[i] = local[i] = i;
        if (!too_small_for_spectral(n, dim) &&
            (st = embed_component(g, members, n, local, dim, seed, 1.0, out, &failed, err)) != AP_OK)
            goto done;
        if (failed) {
            uniform_fill(out, n * dim, -10, 10, &rng);
            kind = UMAP_INIT_RANDOM;
        }
        goto done;
    }
    kind = UMAP_INIT_COMPONENTS;
    meta = ap_malloc((size_t)nc * dim * sizeof(double), err);
    if (!meta) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    if ((st = anchors(rows, label, nc, dim, &rng, meta, err)) != AP_OK) goto done;
    /* members grouped by component, ascending within each; local positions */
    first = ap_calloc((size_t)nc + 1, sizeof(int64_t), err);
    cursor = ap_malloc((size_t)nc * sizeof(int64_t), err);
    if (!first || !cursor) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) first[label[i] + 1]++;
    for (int64_t c = 0; c < nc; c++) first[c + 1] += first[c];
    memcpy(cursor, first, (size_t)nc * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        int64_t c = label[i];
        local[i] = cursor[c] - first[c];
        members[cursor[c]++] = i;
    }
    for (int64_t c = 0; c < nc; c++) {
        const int64_t *mem = members + first[c], nm = first[c + 1] - first[c];
        const double range = anchor_range(meta, nc, dim, c);
        int failed = 1;
        if (!too_small_for_spectral(nm, dim) &&
            (st = embed_component(g, mem, nm, local, dim, ap_hash_mix(seed, (uint64_t)c + 1), range, emb, &failed,
                                  err)) != AP_OK)
            goto done;
        if (failed) uniform_fill(emb, nm * dim, -range, range, &rng);
        for (int64_t a = 0; a < nm; a++)
            for (int e = 0; e < dim; e++) out[mem[a] * dim + e] = emb[a * dim + e] + (float)meta[c * dim + e];
    }
done:
    free(first);
    free(cursor);
    if (how) *how = kind;
    free(label);
    free(members);
    free(local);
    free(emb);
    free(meta);
    return st;
}
