/* Helper of the UMAP benchmark and checks (bench/cluster_bench.sh): ap_umap
 * on tensor `x` (F32 [n, d]) of a safetensors file, the embedding written as
 * tensor `embedding` (F32 [n, components]); prints {"seconds": ...}, the
 * time of ap_umap alone, on stdout.
 *   umap_tool IN OUT [--metric cosine|euclidean] [--neighbors K] [--components C]
 *                    [--min-dist D] [--epochs E] [--seed S] */
#include "apmae/cluster.h"
#include "apmae/io.h"

#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: umap_tool IN.safetensors OUT.safetensors [--metric M] [--neighbors K] "
                    "[--components C] [--min-dist D] [--epochs E] [--seed S]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    ap_umap_params p;
    ap_umap_params_default(&p);
    ap_error err = {0};
    ap_log_set_level(getenv("UMAP_TOOL_DEBUG") ? AP_LOG_DEBUG : AP_LOG_WARN);
    for (int i = 3; i < argc; i += 2) {
        if (i + 1 >= argc) return usage();
        const char *flag = argv[i], *v = argv[i + 1];
        int64_t iv = 0;
        double dv = 0;
        ap_status st = AP_OK;
        if (strcmp(flag, "--metric") == 0) {
            st = ap_metric_parse(v, &p.metric, &err);
        } else if (strcmp(flag, "--min-dist") == 0) {
            st = ap_parse_f64(v, flag, &dv, &err);
            p.min_dist = dv;
        } else {
            st = ap_parse_i64(v, flag, &iv, &err);
            if (strcmp(flag, "--neighbors") == 0)
                p.n_neighbors = (int)iv;
            else if (strcmp(flag, "--components") == 0)
                p.n_components = (int)iv;
            else if (strcmp(flag, "--epochs") == 0)
                p.n_epochs = (int)iv;
            else if (strcmp(flag, "--seed") == 0)
                p.seed = (uint64_t)iv;
            else
                return usage();
        }
        if (st != AP_OK) {
            fprintf(stderr, "umap_tool: %s\n", err.msg);
            return 2;
        }
    }
    ap_safetensors *in = NULL;
    if (ap_st_open(argv[1], &in, &err) != AP_OK) {
        fprintf(stderr, "umap_tool: %s\n", err.msg);
        return 1;
    }
    const ap_tensor *x = ap_st_find(in, "x");
    if (!x || x->dtype != AP_F32 || x->ndim != 2) {
        fprintf(stderr, "umap_tool: %s: no tensor x F32 [n, d]\n", argv[1]);
        ap_st_close(in);
        return 1;
    }
    const int64_t n = x->shape[0];
    const int d = (int)x->shape[1];
    float *xs = malloc(x->nbytes), *emb = malloc((size_t)n * p.n_components * sizeof(float));
    if (!xs || !emb) {
        fprintf(stderr, "umap_tool: out of memory\n");
        return 1;
    }
    memcpy(xs, x->data, x->nbytes);
    ap_st_close(in);
    double t0 = ap_now();
    ap_status st = ap_umap(xs, n, d, &p, emb, &err);
    double secs = ap_now() - t0;
    if (st == AP_OK) {
        ap_tensor_view v = {"embedding", AP_F32, 2, {n, p.n_components}, emb};
        st = ap_st_write(argv[2], &v, 1, NULL, &err);
    }
    free(xs);
    free(emb);
    if (st != AP_OK) {
        fprintf(stderr, "umap_tool: %s\n", err.msg);
        return 1;
    }
    printf("{\"seconds\": %.4f}\n", secs);
    return 0;
}
