/* apmae extract: the LM over mined scenarios, patterns into a store. */
#include "apmae/extract.h"
#include "cli.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag k_flags[] = {
    {"--model", "DIR", "StarCoder2 checkpoint directory", 1},
    {"--scenarios", "F", "scenarios JSONL written by 'apmae mine'", 1},
    {"--out", "STORE.h5", "pattern store to create, or to resume when it exists", 1},
    {"--balance", "per-task:K", "per task keep at most K/2 correct and K/2 incorrect completions", 0},
    {"--correct-only", NULL, "keep correct completions only (the AP-MAE training set)", 0},
    {"--dtype", "f32|f16|bf16", "pattern storage type (default bf16: >= 6x smaller than dense f32)", 0},
    {"--threads", "T", "threads for the forward pass (default: OMP_NUM_THREADS or all cores)", 0},
    {"--commit-every", "K", "commit (make durable) at least every K samples (default 256; also every 2 s)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_spec = {
    "apmae extract --model DIR --scenarios F --out STORE.h5 [--balance per-task:K | --correct-only]\n"
    "                     [--dtype f32|f16|bf16] [--threads T]",
    "Run the model on every scenario: predicted id, label id, correctness, the label's log-probability, the\n"
    "entropy and largest probability of the last position, and every head's attention pattern go into the\n"
    "store (docs/store.md). Noise scenarios have no label: their correctness alternates. Killed at any\n"
    "moment, the same command resumes after the last commit with no duplicate and no gap; run on a\n"
    "finished store it does nothing and says so.",
    k_flags,
};

static ap_status parse_options(const cli_args *a, ap_extract_options *o, ap_error *err) {
    memset(o, 0, sizeof *o);
    o->model_dir = cli_get(a, "--model");
    o->scenarios_path = cli_get(a, "--scenarios");
    o->store_path = cli_get(a, "--out");
    o->dtype = AP_BF16;
    ap_status st;
    const char *bal = cli_get(a, "--balance");
    if (bal && cli_has(a, "--correct-only"))
        return ap_fail(err, AP_ERR_ARG, "--balance and --correct-only exclude each other");
    if (bal) {
        if (strncmp(bal, "per-task:", 9) != 0)
            return ap_fail(err, AP_ERR_ARG, "--balance: expected per-task:K, got '%s'", bal);
        if ((st = ap_parse_i64(bal + 9, "--balance per-task:K", &o->per_task, err))) return st;
        o->balance = AP_BALANCE_PER_TASK;
    } else if (cli_has(a, "--correct-only")) {
        o->balance = AP_BALANCE_CORRECT_ONLY;
    }
    const char *dt = cli_get(a, "--dtype");
    if (dt) {
        if (strcmp(dt, "f32") == 0) o->dtype = AP_F32;
        else if (strcmp(dt, "f16") == 0) o->dtype = AP_F16;
        else if (strcmp(dt, "bf16") == 0) o->dtype = AP_BF16;
        else return ap_fail(err, AP_ERR_ARG, "--dtype: expected f32, f16 or bf16, got '%s'", dt);
    }
    int64_t v;
    if (cli_has(a, "--threads")) {
        if ((st = ap_parse_i64(cli_get(a, "--threads"), "--threads", &v, err))) return st;
        if (v < 1 || v > 1024) return ap_fail(err, AP_ERR_ARG, "--threads: %lld is out of range", (long long)v);
        omp_set_num_threads((int)v);
    }
    if (cli_has(a, "--commit-every")) {
        if ((st = ap_parse_i64(cli_get(a, "--commit-every"), "--commit-every", &v, err))) return st;
        if (v < 1 || v > 1000000)
            return ap_fail(err, AP_ERR_ARG, "--commit-every: %lld is out of range", (long long)v);
        o->commit_every = (int)v;
    }
    return AP_OK;
}

int cmd_extract(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_spec, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    ap_extract_options o;
    ap_extract_report rep;
    ap_status st = parse_options(&a, &o, &err);
    if (!st) st = ap_extract_run(&o, &rep, &err);
    return st ? cli_report(&err) : 0;
}
