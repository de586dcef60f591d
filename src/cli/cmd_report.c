/* apmae report: render a study's report.html again, alone. */
#include "apmae/report.h"
#include "cli.h"

static const cli_flag k_flags[] = {
    {"--study", "DIR", "a study directory (apmae study --out DIR)", 1},
    {"--out", "FILE", "the HTML file to write", 1},
    {NULL, NULL, NULL, 0},
};

static const cli_spec k_spec = {
    "apmae report --study DIR --out FILE",
    "Write the study's report: one self-contained HTML page (images embedded, no network) with the run\n"
    "settings, the LM's accuracy per task, the pattern gallery, AP-MAE training and reconstruction, clusters,\n"
    "classification, SHAP and interventions, as far as the study has run. See docs/study.md.",
    k_flags,
};

int cmd_report(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_spec, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    if (ap_report_write(cli_get(&a, "--study"), cli_get(&a, "--out"), &err)) return cli_report(&err);
    return 0;
}
