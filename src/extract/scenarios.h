/* Scenario JSONL records as extraction needs them (internal to src/extract). */
#ifndef APMAE_EXTRACT_SCENARIOS_H
#define APMAE_EXTRACT_SCENARIOS_H

#define _POSIX_C_SOURCE 200809L
#include "apmae/base.h"

#include <cjson/cJSON.h>
#include <stdio.h>

typedef struct ex_scenario {
    char *id, *task, *source;
    int64_t start, end, seed;
    int32_t label; /* -1: none (noise) */
    int32_t *ids;
    int n;
} ex_scenario;

typedef struct ex_reader {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    int64_t lineno;
} ex_reader;

ap_status ex_scenario_parse(const char *line, const char *path, int64_t lineno, ex_scenario *s, ap_error *err);
void ex_scenario_clear(ex_scenario *s);
ap_status ex_reader_open(ex_reader *r, const char *path, ap_error *err);
ap_status ex_reader_next(ex_reader *r, ex_scenario *s, int *has, ap_error *err);
void ex_reader_close(ex_reader *r);

#endif
