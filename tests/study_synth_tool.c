/* Test-only helper (built with the tests, not installed): a synthetic study
 * directory of any size for the report's benchmark (bench/report.sh).
 *
 *   study_synth_tool DIR --layers L --heads H [--n N] [--samples S]
 *
 * DIR must not exist. See tests/study_synth.h for what it holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "study_synth.h"

int main(int argc, char **argv) {
    int L = 0, H = 0, N = 256;
    long long S = 12;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--layers")) L = atoi(v), i++;
        else if (!strcmp(argv[i], "--heads")) H = atoi(v), i++;
        else if (!strcmp(argv[i], "--n")) N = atoi(v), i++;
        else if (!strcmp(argv[i], "--samples")) S = atoll(v), i++;
        else dir = argv[i];
    }
    if (!dir || L < 1 || H < 1 || N < 16 || S < 10) {
        fprintf(stderr, "usage: study_synth_tool DIR --layers L --heads H [--n N >= 16] [--samples S >= 10]\n");
        return 2;
    }
    ap_error err = {0};
    if (ap_path_exists(dir)) {
        fprintf(stderr, "study_synth_tool: %s exists\n", dir);
        return 1;
    }
    if (ap_make_dirs(dir, &err) || synth_study(dir, L, H, N, S, &err)) {
        fprintf(stderr, "study_synth_tool: %s\n", err.msg);
        return 1;
    }
    return 0;
}
