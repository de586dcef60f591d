/* apmae study: the whole study in one command (docs/study.md). */
#include <stdlib.h>
#include <string.h>

#include "apmae/study.h"
#include "cli.h"

/* In ap_study_stage order, so that a choice's index is the stage (checked in run). */
#define STAGES "mine|extract|mae-train|mae-eval|embed|cluster|classify|intervene|report"

static const cli_flag k_flags[] = {
    {"--out", CLI_PATH, "DIR", "the study directory: every stage's outputs, study.json (the record) and report.html; "
     "required but for --print-config"},
    {"--config", CLI_PATH, "FILE", "a JSON config overriding any of the defaults (docs/study.md lists every field)",
     .def_note = "the built-in defaults"},
    {"--from", CLI_CHOICE, "STAGE", "run STAGE and every later stage again from scratch (earlier ones only if not done)",
     .choices = STAGES},
    {"--only", CLI_CHOICE, "STAGE", "run only STAGE (the stages it reads from must be done); with --from STAGE: redo it",
     .choices = STAGES},
    {"--print-config", CLI_SWITCH, NULL, "print the config in effect (defaults and --config) as JSON and exit"},
    {0},
};

/* The stage a --from/--only choice names, or -1. */
static ap_status stage_flag(const cli_args *a, const char *flag, int *out, ap_error *err) {
    *out = cli_choice(a, flag);
    if (*out >= 0 && strcmp(ap_study_stage_name((ap_study_stage)*out), cli_str(a, flag)) != 0)
        return ap_fail(err, AP_ERR_INTERNAL, "%s: the stage list of the flag and of the runner differ", flag);
    return AP_OK;
}

static void print_summary(const ap_study_options *o, const ap_study_result *r) {
    long t = (long)(r->total_seconds + 0.5);
    printf("study %s (%s), %ld:%02ld (min:s)\n", o->out, o->config_path ? o->config_path : "defaults", t / 60, t % 60);
    printf("  %-10s %-8s %8s %8s  %s\n", "stage", "action", "time (s)", "CPU (s)", "summary");
    for (int s = 0; s < AP_STAGE_COUNT; s++) {
        printf("  %-10s %-8s ", ap_study_stage_name((ap_study_stage)s), ap_study_action_name(r->action[s]));
        if (r->action[s] == AP_STUDY_FRESH || r->action[s] == AP_STUDY_RESUMED)
            printf("%8.1f %8.1f  ", r->seconds[s], r->cpu_seconds[s]);
        else printf("%8s %8s  ", "", "");
        printf("%s\n", r->summary[s]);
    }
    if (r->action[AP_STAGE_REPORT] == AP_STUDY_FRESH) printf("report: %s/%s\n", o->out, AP_STUDY_REPORT);
}

static ap_status print_config(const ap_study_config *cfg, ap_error *err) {
    cJSON *j = ap_study_config_to_json(cfg);
    char *text = j ? cJSON_Print(j) : NULL;
    ap_status st = text ? AP_OK : ap_fail(err, AP_ERR_NOMEM, "out of memory");
    if (text) printf("%s\n", text);
    free(text);
    cJSON_Delete(j);
    return st;
}

static ap_status run(const cli_args *a, ap_error *err) {
    ap_study_config cfg;
    ap_study_options o = {.config = &cfg, .config_path = cli_str(a, "--config"), .out = cli_str(a, "--out"),
                          .progress = ap_log_get_level() >= AP_LOG_INFO};
    ap_status st = stage_flag(a, "--from", &o.from, err);
    if (!st) st = stage_flag(a, "--only", &o.only, err);
    if (st) return st;
    if (o.from >= 0 && o.only >= 0 && o.from != o.only)
        return ap_fail(err, AP_ERR_ARG, "--from and --only name different stages; with --only, --from may only "
                       "repeat the same stage (to redo it from scratch)");
    if (!o.out && !cli_switch(a, "--print-config"))
        return ap_fail(err, AP_ERR_ARG, "missing required flag --out DIR; see --help");
    if ((st = ap_study_config_load(o.config_path, &cfg, err))) return st;
    if (cli_switch(a, "--print-config")) {
        st = print_config(&cfg, err);
    } else {
        ap_parallel par = {.rank = 0, .size = 1};
        ap_study_result r;
        if (cli_mpi_launched()) { /* extraction and AP-MAE training over the ranks: docs/study.md */
            cli_mpi_begin(cfg.threads > 0, &par);
            o.parallel = &par;
            o.progress = o.progress && par.rank == 0;
            st = cli_mpi_end(&par, ap_study_run(&o, &r, err), err);
        } else {
            st = ap_study_run(&o, &r, err);
        }
        if (!st && par.rank == 0) print_summary(&o, &r);
    }
    ap_study_config_free(&cfg);
    return st;
}

static const cli_spec k_spec = {
    .name = "study",
    .summary = "the whole study in one command: mine, extract, AP-MAE, analysis, report.html",
    .usage = "apmae study --out DIR [--config FILE] [--from STAGE] [--only STAGE] [--print-config]",
    .description =
        "Run the study end to end: mine -> extract -> mae-train -> mae-eval -> embed -> cluster -> classify ->\n"
        "intervene -> report. Each stage is recorded in DIR/study.json with the options that identify its run: a\n"
        "stage done with the same options is skipped, changed options run it again with every stage that reads\n"
        "from it, and a study that was killed continues where it stopped. Without --config the defaults run the\n"
        "shipped model on the JDK modules held out from its training (what `make demo` does). The summary goes\n"
        "to stdout; open DIR/report.html in a browser. Under mpirun -n R, extraction and AP-MAE training are\n"
        "shared over the ranks and rank 0 does the rest (docs/study.md).",
    .docs = "docs/study.md",
    .flags = k_flags,
    .run = run,
};

int cmd_study(int argc, char **argv) { return cli_run(&k_spec, argc, argv); }
