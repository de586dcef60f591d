/* apmae report: render a study's report.html again, alone. */
#include "apmae/report.h"
#include "cli.h"

static const cli_flag k_flags[] = {
    {"--study", CLI_PATH, "DIR", "a study directory (apmae study --out DIR)", .required = 1},
    {"--out", CLI_PATH, "FILE", "the HTML file to write", .required = 1},
    {0},
};

static ap_status run(const cli_args *a, ap_error *err) {
    return ap_report_write(cli_str(a, "--study"), cli_str(a, "--out"), err);
}

static const cli_spec k_spec = {
    .name = "report",
    .summary = "render a study's report.html again",
    .description =
        "Write the study's report: one self-contained HTML page (images embedded, no network) with the run\n"
        "settings, the LM's accuracy per task, the pattern gallery, AP-MAE training and reconstruction, clusters,\n"
        "classification, SHAP and interventions, as far as the study has run.",
    .docs = "docs/study.md",
    .flags = k_flags,
    .run = run,
};

int cmd_report(int argc, char **argv) { return cli_run(&k_spec, argc, argv); }
