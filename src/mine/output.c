/* Writing scenarios as JSONL and the mining stats as JSON. */
#include "apmae/mine.h"

#include <string.h>

/* A JSON string of len bytes of valid UTF-8: quotes, backslashes and control
 * characters (NUL included) escaped, everything else verbatim. */
static ap_status json_bytes(ap_buf *b, const char *s, size_t len, ap_error *err) {
    ap_status st = ap_buf_append(b, "\"", 1, err);
    const char *run = s, *stop = s + len;
    for (; !st && s < stop; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        st = ap_buf_append(b, run, (size_t)(s - run), err);
        if (st) break;
        switch (c) {
        case '"': st = ap_buf_append(b, "\\\"", 2, err); break;
        case '\\': st = ap_buf_append(b, "\\\\", 2, err); break;
        case '\n': st = ap_buf_append(b, "\\n", 2, err); break;
        case '\r': st = ap_buf_append(b, "\\r", 2, err); break;
        case '\t': st = ap_buf_append(b, "\\t", 2, err); break;
        default: st = ap_buf_printf(b, err, "\\u%04x", c); break;
        }
        run = s + 1;
    }
    if (!st) st = ap_buf_append(b, run, (size_t)(s - run), err);
    return st ? st : ap_buf_append(b, "\"", 1, err);
}

static ap_status json_string(ap_buf *b, const char *s, ap_error *err) { return json_bytes(b, s, strlen(s), err); }

static ap_status scenario_line(ap_buf *b, const ap_scenario *s, size_t index, size_t n, uint64_t seed, ap_error *err) {
    ap_status st = ap_buf_printf(b, err, "{\"id\":\"%s-%06zu\",\"task\":\"%s\",\"source\":", ap_task_name(s->task), index,
                                 ap_task_name(s->task));
    if (!st && s->source) {
        st = json_string(b, s->source, err);
        if (!st) st = ap_buf_printf(b, err, ",\"start\":%zu,\"end\":%zu,\"target\":", s->start, s->end);
        if (!st) st = json_bytes(b, s->target, s->end - s->start, err); /* may hold NUL bytes */
        if (!st) st = ap_buf_printf(b, err, ",\"label_id\":%d", s->label_id);
    } else if (!st) {
        st = ap_buf_printf(b, err, "null,\"start\":null,\"end\":null,\"target\":null,\"label_id\":null");
    }
    if (!st)
        st = ap_buf_printf(b, err, ",\"seed\":%llu,\"prefix_tokens\":%zu,\"suffix_tokens\":%zu,\"input_ids\":[",
                           (unsigned long long)seed, s->prefix_tokens, s->suffix_tokens);
    for (size_t i = 0; !st && i < n; i++) st = ap_buf_printf(b, err, i ? ",%d" : "%d", s->input_ids[i]);
    return st ? st : ap_buf_append(b, "]}\n", 3, err);
}

ap_status ap_scenarios_to_jsonl(const ap_scenario_set *s, ap_buf *b, ap_error *err) {
    size_t index[AP_TASK_COUNT] = {0};
    for (size_t i = 0; i < s->n; i++) {
        ap_status st = scenario_line(b, &s->v[i], index[s->v[i].task]++, s->max_length, s->seed, err);
        if (st) return st;
    }
    return AP_OK;
}

ap_status ap_mine_stats_to_json(const ap_mine_stats *st, const ap_mine_options *opt, const char *corpus_path,
                                const char *tokenizer_path, ap_buf *b, ap_error *err) {
    ap_status s = ap_buf_printf(b, err, "{\n  \"corpus\": ");
    if (!s) s = json_string(b, corpus_path, err);
    if (!s) s = ap_buf_printf(b, err, ",\n  \"tokenizer\": ");
    if (!s) s = json_string(b, tokenizer_path, err);
    if (!s)
        s = ap_buf_printf(b, err,
                          ",\n  \"per_task\": %lld,\n  \"max_length\": %zu,\n  \"seed\": %llu,\n  \"compat\": \"%s\",\n"
                          "  \"include\": ",
                          (long long)opt->per_task, opt->max_length, (unsigned long long)opt->seed,
                          opt->compat == AP_COMPAT_REFERENCE ? "reference" : "default");
    if (!s) s = opt->corpus.include ? json_string(b, opt->corpus.include, err) : ap_buf_printf(b, err, "null");
    if (!s) s = ap_buf_printf(b, err, ",\n  \"exclude\": ");
    if (!s) s = opt->corpus.exclude ? json_string(b, opt->corpus.exclude, err) : ap_buf_printf(b, err, "null");
    const ap_corpus_stats *c = &st->corpus;
    if (!s)
        s = ap_buf_printf(b, err,
                          ",\n  \"files\": {\"entries\": %lld, \"not_java\": %lld, \"filtered\": %lld, "
                          "\"read\": %lld, \"bytes\": %lld, \"skipped\": {",
                          (long long)c->entries, (long long)c->not_java, (long long)c->filtered, (long long)c->files,
                          (long long)c->bytes);
    for (int r = 0; !s && r < AP_SKIP_COUNT; r++)
        s = ap_buf_printf(b, err, "%s\"%s\": %lld", r ? ", " : "", ap_skip_reason_name((ap_skip_reason)r),
                          (long long)c->skipped[r]);
    if (!s) s = ap_buf_printf(b, err, "}},\n  \"tasks\": {");
    int first = 1;
    for (int t = 0; !s && t < AP_TASK_COUNT; t++) {
        if (!opt->tasks[t]) continue;
        const ap_task_stats *k = &st->task[t];
        s = ap_buf_printf(b, err,
                          "%s\n    \"%s\": {\"files_examined\": %lld, \"files_without_match\": %lld, \"matches\": %lld, "
                          "\"draws\": %lld, \"skipped\": {\"too_short\": %lld, \"special_token\": %lld}, "
                          "\"scenarios\": %lld, \"quota_met\": %s}",
                          first ? "" : ",", ap_task_name((ap_task)t), (long long)k->files_examined,
                          (long long)k->files_without_match, (long long)k->matches, (long long)k->draws,
                          (long long)k->too_short, (long long)k->special_token, (long long)k->scenarios,
                          k->scenarios >= opt->per_task ? "true" : "false");
        first = 0;
    }
    return s ? s : ap_buf_printf(b, err, "\n  }\n}\n");
}
