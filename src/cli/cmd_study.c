/* apmae study: the whole study in one command (docs/study.md). */
#include <stdlib.h>
#include <string.h>

#include "apmae/study.h"
#include "cli.h"

static const cli_flag k_flags[] = {
    {"--out", "DIR", "the study directory: every stage's outputs, study.json (the record) and report.html (required)", 0},
    {"--config", "FILE", "a JSON config overriding any of the defaults (docs/study.md lists every field)", 0},
    {"--from", "STAGE", "run STAGE and every later stage again from scratch (earlier ones only if not done)", 0},
    {"--only", "STAGE", "run only STAGE (the stages it reads from must be done); with --from STAGE: redo it", 0},
    {"--print-config", NULL, "print the config in effect (defaults and --config) as JSON and exit", 0},
    {NULL, NULL, NULL, 0},
};

static const cli_spec k_spec = {
    "apmae study --out DIR [--config FILE] [--from STAGE] [--only STAGE] [--print-config]",
    "Run the study end to end: mine -> extract -> mae-train -> mae-eval -> embed -> cluster -> classify ->\n"
    "intervene -> report. Each stage is recorded in DIR/study.json with the options that identify its run: a\n"
    "stage done with the same options is skipped, changed options run it again with every stage that reads\n"
    "from it, and a study that was killed continues where it stopped. Without --config the defaults run the\n"
    "shipped model on the JDK modules held out from its training (what `make demo` does). The summary goes\n"
    "to stdout; open DIR/report.html in a browser. See docs/study.md.",
    k_flags,
};

static ap_status parse_stage(const cli_args *a, const char *flag, int *out, ap_error *err) {
    *out = -1;
    const char *v = cli_get(a, flag);
    if (!v) return AP_OK;
    ap_study_stage s;
    if (ap_study_stage_from_name(v, &s) != 0) {
        char list[256] = "";
        for (int i = 0; i < AP_STAGE_COUNT; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     ap_study_stage_name((ap_study_stage)i));
        return ap_fail(err, AP_ERR_ARG, "%s: '%s' is not a stage (%s)", flag, v, list);
    }
    *out = (int)s;
    return AP_OK;
}

static void print_summary(const ap_study_options *o, const ap_study_result *r) {
    char took[32];
    long t = (long)(r->total_seconds + 0.5);
    snprintf(took, sizeof took, "%ld:%02ld", t / 60, t % 60);
    printf("study %s (%s), %s (min:s)\n", o->out, o->config_path ? o->config_path : "defaults", took);
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

static ap_status run(const cli_args *a, ap_error *err) {
    ap_study_config cfg;
    ap_study_options o = {.config = &cfg, .config_path = cli_get(a, "--config"), .out = cli_get(a, "--out"),
                          .progress = ap_log_get_level() >= AP_LOG_INFO};
    ap_status st = parse_stage(a, "--from", &o.from, err);
    if (!st) st = parse_stage(a, "--only", &o.only, err);
    if (st) return st;
    if (o.from >= 0 && o.only >= 0 && o.from != o.only)
        return ap_fail(err, AP_ERR_ARG, "--from and --only name different stages; with --only, --from may only "
                       "repeat the same stage (to redo it from scratch)");
    if (!o.out && !cli_has(a, "--print-config"))
        return ap_fail(err, AP_ERR_ARG, "missing required flag --out DIR; see --help");
    if ((st = ap_study_config_load(o.config_path, &cfg, err))) return st;
    if (cli_has(a, "--print-config")) {
        cJSON *j = ap_study_config_to_json(&cfg);
        char *text = j ? cJSON_Print(j) : NULL;
        if (text) printf("%s\n", text);
        else st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
        free(text);
        cJSON_Delete(j);
    } else {
        ap_study_result r;
        st = ap_study_run(&o, &r, err);
        if (!st) print_summary(&o, &r);
    }
    ap_study_config_free(&cfg);
    return st;
}

int cmd_study(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_spec, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    return run(&a, &err) ? cli_report(&err) : 0;
}
