/* Head selection for training batches (docs/store.md): "all" or "layerwise:q". */
#include "apmae/store.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ap_status ap_head_sel_parse(const char *spec, ap_head_sel *out, ap_error *err) {
    memset(out, 0, sizeof *out);
    static const char usage[] = "expected 'all' or 'layerwise:q', q a count of heads per layer (layerwise:4) or a "
                                "fraction of them (layerwise:0.25)";
    if (!spec) return ap_fail(err, AP_ERR_ARG, "head selection: %s", usage);
    if (strcmp(spec, "all") == 0) {
        out->all = 1;
        return AP_OK;
    }
    if (strncmp(spec, "layerwise:", 10) != 0 || !spec[10])
        return ap_fail(err, AP_ERR_ARG, "head selection '%s': %s", spec, usage);
    const char *q = spec + 10;
    if (strpbrk(q, ".eE")) {
        char *end = NULL;
        double f = strtod(q, &end);
        if (*end || !(f > 0 && f <= 1))
            return ap_fail(err, AP_ERR_ARG, "head selection '%s': the fraction must be in (0, 1]", spec);
        out->fraction = f;
        return AP_OK;
    }
    int64_t n = 0;
    if (ap_parse_i64(q, "head selection count", &n, err) != AP_OK) return AP_ERR_ARG;
    if (n < 1 || n > 1 << 20)
        return ap_fail(err, AP_ERR_ARG, "head selection '%s': the count must be at least 1", spec);
    out->count = (int)n;
    return AP_OK;
}

ap_status ap_head_sel_per_layer(const ap_head_sel *sel, int num_heads, int *q, ap_error *err) {
    if (sel->all) {
        *q = num_heads;
    } else if (sel->count > 0) {
        if (sel->count > num_heads)
            return ap_fail(err, AP_ERR_ARG, "head selection layerwise:%d asks for more heads than the %d of a layer",
                           sel->count, num_heads);
        *q = sel->count;
    } else if (sel->fraction > 0) {
        long n = lround(sel->fraction * num_heads);
        *q = n < 1 ? 1 : n > num_heads ? num_heads : (int)n;
    } else {
        return ap_fail(err, AP_ERR_ARG, "head selection: empty (use ap_head_sel_parse)");
    }
    return AP_OK;
}

ap_status ap_select_heads(const ap_head_sel *sel, int num_layers, int num_heads, const int64_t *samples,
                          size_t nsamples, uint64_t seed, ap_pattern_ref **out, size_t *nout, ap_error *err) {
    *out = NULL;
    *nout = 0;
    int q = 0;
    ap_status st = ap_head_sel_per_layer(sel, num_heads, &q, err);
    if (st != AP_OK) return st;
    size_t total = nsamples * (size_t)num_layers * (size_t)q;
    ap_pattern_ref *refs = total ? ap_malloc(total * sizeof *refs, err) : NULL;
    int *perm = ap_malloc((size_t)num_heads * sizeof *perm, err);
    if ((total && !refs) || !perm) {
        free(refs);
        free(perm);
        return err ? err->code : AP_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < nsamples; i++) {
        for (int l = 0; l < num_layers; l++) {
            /* A stream of its own per (seed, sample, layer). */
            ap_rng rng;
            ap_rng_seed(&rng, ap_hash_mix(ap_hash_mix(seed, (uint64_t)samples[i]), (uint64_t)l));
            for (int h = 0; h < num_heads; h++) perm[h] = h;
            for (int t = 0; t < q && q < num_heads; t++) { /* partial Fisher-Yates */
                int r = t + (int)ap_rng_below(&rng, (uint64_t)(num_heads - t));
                int tmp = perm[t];
                perm[t] = perm[r];
                perm[r] = tmp;
            }
            for (int a = 1; a < q; a++) /* ascending: reads stay in file order */
                for (int b = a; b > 0 && perm[b - 1] > perm[b]; b--) {
                    int tmp = perm[b];
                    perm[b] = perm[b - 1];
                    perm[b - 1] = tmp;
                }
            for (int t = 0; t < q; t++) refs[k++] = (ap_pattern_ref){samples[i], l, perm[t]};
        }
    }
    free(perm);
    *out = refs;
    *nout = total;
    return AP_OK;
}
