/* apmae VERB ...: the global flags, then dispatch to the verbs. A new verb
 * is a flag table and a function in cmd_<verb>.c (cli.h) and a line here. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} verb;

static const verb k_verbs[] = {
    {"tokenize", cmd_tokenize, "encode text to token ids, or decode ids to text"},
    {"tokenizer", cmd_tokenizer, "train a StarCoder2-style byte-level BPE tokenizer on a corpus"},
    {"lm", cmd_lm, "StarCoder2 language model: forward (with attention capture), bench, train, eval"},
    {"mae", cmd_mae, "AP-MAE masked autoencoder: init, forward (loss, predictions, encodings), bench, train, eval"},
    {"mine", cmd_mine, "mine fill-in-the-middle scenarios from a Java corpus"},
    {"extract", cmd_extract, "run the LM over scenarios; correctness and every attention pattern into a store"},
    {"store", cmd_store, "pattern store: info, export a pattern (PNG, safetensors), repair, embed (AP-MAE), merge shards"},
    {"cluster", cmd_cluster, "recurring patterns: UMAP + HDBSCAN per head into the store; list, exemplar sheets"},
    {"study", cmd_study, "the whole study in one command: mine, extract, AP-MAE, analysis, report.html"},
    {"report", cmd_report, "render a study's report.html again"},
    {"classify", cmd_classify, "predict correctness from the per-head cluster ids; baselines, intervals, SHAP per head"},
    {"intervene", cmd_intervene, "switch heads off by their SHAP ranking; flips and accuracy per setting and n"},
};

static void print_usage(FILE *out) {
    fprintf(out,
            "apmae %s — attention-pattern discovery for code LLMs (AP-MAE) on the CPU\n\n"
            "usage: apmae [--quiet|--verbose] VERB [flags]   (apmae VERB --help for its flags)\n\nverbs:\n",
            AP_VERSION);
    for (size_t i = 0; i < sizeof k_verbs / sizeof k_verbs[0]; i++)
        fprintf(out, "  %-10s %s\n", k_verbs[i].name, k_verbs[i].summary);
    fprintf(out, "\nglobal flags:\n  --quiet    only errors on stderr (no progress)\n"
                 "  --verbose  debug messages\n  --version  print the version\n\n"
                 "threads: OMP_NUM_THREADS (default: all cores)\n");
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            print_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("apmae %s\n", AP_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            ap_log_set_level(AP_LOG_ERROR);
        } else if (strcmp(argv[i], "--verbose") == 0) {
            ap_log_set_level(AP_LOG_DEBUG);
        } else {
            fprintf(stderr, "apmae: error: unknown global flag '%s'\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return 2;
    }
    for (size_t k = 0; k < sizeof k_verbs / sizeof k_verbs[0]; k++)
        if (strcmp(argv[i], k_verbs[k].name) == 0) return k_verbs[k].run(argc - i - 1, argv + i + 1);
    fprintf(stderr, "apmae: error: unknown verb '%s'; run 'apmae --help'\n", argv[i]);
    return 2;
}
