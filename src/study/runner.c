/* The stage runner (docs/study.md): plan every stage against the record in
 * DIR/study.json (skip, resume or start over), then run them in order,
 * recording each one's state before and after it runs. */
#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static const char *const k_stage_names[AP_STAGE_COUNT] = {
    "mine", "extract", "mae-train", "mae-eval", "embed", "cluster", "classify", "intervene", "report",
};

const char *ap_study_stage_name(ap_study_stage s) {
    return (unsigned)s < AP_STAGE_COUNT ? k_stage_names[s] : "?";
}

int ap_study_stage_from_name(const char *name, ap_study_stage *s) {
    for (int i = 0; i < AP_STAGE_COUNT; i++)
        if (strcmp(name, k_stage_names[i]) == 0) {
            *s = (ap_study_stage)i;
            return 0;
        }
    return -1;
}

const char *ap_study_action_name(ap_study_action a) {
    static const char *const names[] = {"not run", "skipped", "resumed", "ran"};
    return (unsigned)a < sizeof names / sizeof *names ? names[a] : "?";
}

char *study_path(const study_ctx *c, const char *name, ap_error *err) { return ap_path_join(c->dir, name, err); }

/* ---- input identity ---------------------------------------------------------------------------- */

static uint64_t mix_stat(uint64_t h, const char *name, const struct stat *st) {
    h = ap_hash_mix(h, ap_hash_bytes(name, strlen(name)));
    h = ap_hash_mix(h, (uint64_t)st->st_size);
    h = ap_hash_mix(h, (uint64_t)st->st_mtim.tv_sec);
    return ap_hash_mix(h, (uint64_t)st->st_mtim.tv_nsec);
}

/* The regular files directly inside dir but its documentation (*.md, which
 * no stage reads, so that editing a README runs nothing again), in name
 * order. */
static ap_status hash_dir(const char *dir, uint64_t *h, ap_error *err) {
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    if (n < 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot list", dir);
    ap_status st = AP_OK;
    for (int i = 0; i < n; i++) {
        char *path = st ? NULL : ap_path_join(dir, list[i]->d_name, err);
        struct stat s;
        if (!st && !path) st = AP_ERR_NOMEM;
        if (path && !ap_path_has_suffix(list[i]->d_name, ".md") && stat(path, &s) == 0 && S_ISREG(s.st_mode))
            *h = mix_stat(*h, list[i]->d_name, &s);
        free(path);
        free(list[i]);
    }
    free(list);
    return st;
}

ap_status study_identify(cJSON *opts, const char *key, const char *path, const char *what, ap_error *err) {
    struct stat s;
    if (stat(path, &s) != 0) return ap_fail_errno(err, AP_ERR_IO, "%s: %s does not exist", what, path);
    uint64_t h = 0;
    if (S_ISDIR(s.st_mode)) {
        ap_status st = hash_dir(path, &h, err);
        if (st) return st;
    } else {
        h = mix_stat(h, "", &s);
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    cJSON *o = cJSON_AddObjectToObject(opts, key);
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "files", hex);
    return AP_OK;
}

/* ---- the record -------------------------------------------------------------------------------- */

typedef struct runner {
    const ap_study_options *o;
    study_ctx ctx;
    char *record_path;
    cJSON *record;                 /* DIR/study.json */
    cJSON *opts[AP_STAGE_COUNT];   /* what identifies each stage's run */
    char key[AP_STAGE_COUNT][17];  /* hash of opts and of the keys of the stages it reads from */
    ap_study_action plan[AP_STAGE_COUNT];
    int lock_fd;
} runner;

static cJSON *stage_record(const runner *r, int s) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r->record, "stages"), k_stage_names[s]);
}

static const char *record_str(const cJSON *rec, const char *field) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, field));
}

static void utc_now(char buf[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static ap_status save_record(runner *r, ap_error *err) { return ap_json_save(r->record_path, r->record, err); }

/* A record that another program (or a newer apmae) wrote in another shape
 * is refused rather than overwritten. */
static ap_status load_record(runner *r, ap_error *err) {
    if (!ap_path_exists(r->record_path)) {
        r->record = cJSON_CreateObject();
        cJSON_AddObjectToObject(r->record, "stages");
    } else {
        ap_status st = ap_json_load(r->record_path, &r->record, err);
        if (st) return st;
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r->record, "stages")))
            return ap_fail(err, AP_ERR_FORMAT, "%s: not a study record (no \"stages\" object); use another --out",
                           r->record_path);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(r->record, "apmae_version");
    cJSON_DeleteItemFromObjectCaseSensitive(r->record, "config_file");
    cJSON_DeleteItemFromObjectCaseSensitive(r->record, "config");
    cJSON_AddStringToObject(r->record, "apmae_version", AP_VERSION);
    if (r->o->config_path) cJSON_AddStringToObject(r->record, "config_file", r->o->config_path);
    else cJSON_AddNullToObject(r->record, "config_file");
    cJSON_AddItemToObject(r->record, "config", ap_study_config_to_json(r->o->config));
    return AP_OK;
}

/* ---- planning ---------------------------------------------------------------------------------- */

static ap_status describe_all(runner *r, ap_error *err) {
    for (int s = 0; s < AP_STAGE_COUNT; s++) {
        const stage_def *d = &k_study_stages[s];
        r->opts[s] = cJSON_CreateObject();
        if (!r->opts[s]) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
        ap_status st = d->describe(&r->ctx, r->opts[s], err);
        if (st) {
            ap_error_prefix(err, "stage %s", k_stage_names[s]);
            return st;
        }
        char *text = cJSON_PrintUnformatted(r->opts[s]);
        if (!text) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
        uint64_t h = ap_hash_bytes(text, strlen(text));
        free(text);
        unsigned deps = d->deps(r->o->config);
        for (int t = 0; t < s; t++)
            if (deps & STAGE_BIT(t)) h = ap_hash_mix(h, ap_hash_bytes(r->key[t], 16));
        snprintf(r->key[s], sizeof r->key[s], "%016llx", (unsigned long long)h);
    }
    return AP_OK;
}

/* What the record says of stage s under its current key. */
static ap_study_action recorded_action(const runner *r, int s) {
    const cJSON *rec = stage_record(r, s);
    const char *key = record_str(rec, "key"), *state = record_str(rec, "state");
    if (!key || strcmp(key, r->key[s]) != 0 || !state) return AP_STUDY_FRESH;
    if (strcmp(state, "done") == 0) return AP_STUDY_SKIPPED;
    return strcmp(state, "running") == 0 ? AP_STUDY_RESUMED : AP_STUDY_FRESH;
}

/* Starting a stage over starts over every stage that reads from it. */
static void propagate(runner *r) {
    for (int s = 0; s < AP_STAGE_COUNT; s++) {
        unsigned deps = k_study_stages[s].deps(r->o->config);
        for (int t = 0; t < s; t++)
            if ((deps & STAGE_BIT(t)) && r->plan[t] == AP_STUDY_FRESH) r->plan[s] = AP_STUDY_FRESH;
    }
}

static ap_status make_plan(runner *r, ap_error *err) {
    const ap_study_options *o = r->o;
    for (int s = 0; s < AP_STAGE_COUNT; s++) {
        if ((o->from >= 0 && s >= o->from) || k_study_stages[s].reads_partial) r->plan[s] = AP_STUDY_FRESH;
        else r->plan[s] = recorded_action(r, s);
    }
    if (o->only < 0) {
        propagate(r);
        return AP_OK;
    }
    /* --only: that stage alone, on inputs that are already done */
    const stage_def *d = &k_study_stages[o->only];
    unsigned deps = d->deps(o->config);
    for (int t = 0; t < o->only && !d->reads_partial; t++)
        if ((deps & STAGE_BIT(t)) && recorded_action(r, t) != AP_STUDY_SKIPPED)
            return ap_fail(err, AP_ERR_ARG, "--only %s: it reads from stage %s, which is not done with these "
                           "options; run the study without --only first", k_stage_names[o->only], k_stage_names[t]);
    for (int s = 0; s < AP_STAGE_COUNT; s++)
        if (s != o->only) r->plan[s] = AP_STUDY_NOT_RUN;
    return AP_OK;
}

/* ---- running ----------------------------------------------------------------------------------- */

/* The study's own lines on stderr, between the stages' progress bars. */
static void say(const char *fmt, ...) AP_PRINTF(1, 2);
static void say(const char *fmt, ...) {
    if (ap_log_get_level() < AP_LOG_INFO) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* CPU seconds of this process so far, every thread: on a busy machine a
 * better measure of a stage's work than its wall time. */
static double cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec +
           1e-6 * (double)u.ru_stime.tv_usec;
}

static void format_seconds(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

/* Records of s and of every stage that reads from it, directly or not: a
 * stage started over invalidates what was made from its old outputs. */
static void forget_dependents(runner *r, int s) {
    cJSON *stages = cJSON_GetObjectItemCaseSensitive(r->record, "stages");
    unsigned gone = STAGE_BIT(s);
    for (int t = s + 1; t < AP_STAGE_COUNT; t++)
        if (k_study_stages[t].deps(r->o->config) & gone) gone |= STAGE_BIT(t);
    for (int t = s; t < AP_STAGE_COUNT; t++)
        if (gone & STAGE_BIT(t)) cJSON_DeleteItemFromObjectCaseSensitive(stages, k_stage_names[t]);
}

static ap_status remove_outputs(const runner *r, int s, ap_error *err) {
    for (const char *const *out = k_study_stages[s].outputs; out && *out; out++) {
        char *path = study_path(&r->ctx, *out, err);
        ap_status st = path ? ap_remove_tree(path, err) : AP_ERR_NOMEM;
        free(path);
        if (st) return st;
    }
    return AP_OK;
}

static ap_status begin_stage(runner *r, int s, ap_error *err) {
    cJSON *rec = stage_record(r, s);
    double before = 0, cpu_before = 0;
    if (r->plan[s] == AP_STUDY_FRESH) {
        ap_status st = remove_outputs(r, s, err);
        if (st) return st;
        forget_dependents(r, s);
        rec = NULL;
    } else if (rec) {
        before = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, "seconds"));
        cpu_before = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, "cpu_seconds"));
        if (before != before) before = 0;
        if (cpu_before != cpu_before) cpu_before = 0;
    }
    char now[32];
    utc_now(now);
    cJSON *fresh = cJSON_CreateObject();
    cJSON_AddStringToObject(fresh, "key", r->key[s]);
    cJSON_AddStringToObject(fresh, "state", "running");
    cJSON_AddItemToObject(fresh, "options", cJSON_Duplicate(r->opts[s], 1));
    cJSON_AddStringToObject(fresh, "started", rec && record_str(rec, "started") ? record_str(rec, "started") : now);
    cJSON_AddNumberToObject(fresh, "seconds", before);
    cJSON_AddNumberToObject(fresh, "cpu_seconds", cpu_before);
    cJSON *stages = cJSON_GetObjectItemCaseSensitive(r->record, "stages");
    if (rec) cJSON_ReplaceItemInObjectCaseSensitive(stages, k_stage_names[s], fresh);
    else cJSON_AddItemToObject(stages, k_stage_names[s], fresh);
    return save_record(r, err);
}

/* Adds this run's share to a time the record accumulates over the runs of a stage. */
static void add_time(cJSON *rec, const char *field, double seconds) {
    double before = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, field));
    cJSON_ReplaceItemInObjectCaseSensitive(rec, field, cJSON_CreateNumber((before == before ? before : 0) + seconds));
}

static ap_status finish_stage(runner *r, int s, double seconds, double cpu, const char *summary, ap_error *err) {
    cJSON *rec = stage_record(r, s);
    char now[32];
    utc_now(now);
    cJSON_ReplaceItemInObjectCaseSensitive(rec, "state", cJSON_CreateString("done"));
    add_time(rec, "seconds", seconds);
    add_time(rec, "cpu_seconds", cpu);
    cJSON_DeleteItemFromObjectCaseSensitive(rec, "finished");
    cJSON_DeleteItemFromObjectCaseSensitive(rec, "summary");
    cJSON_AddStringToObject(rec, "finished", now);
    cJSON_AddStringToObject(rec, "summary", summary);
    return save_record(r, err);
}

/* Under ranks, every rank walks the same plan: rank 0 alone records and
 * reports, an every_rank stage runs on all of them, and each step ends with
 * ap_parallel_agree so that all go on or all stop together. */
static ap_status run_stage(runner *r, int s, ap_study_result *res, ap_error *err) {
    const ap_parallel *par = r->o->parallel;
    const int rank0 = study_rank0(&r->ctx);
    char head[64], took[32];
    snprintf(head, sizeof head, "[%d/%d] %s", s + 1, AP_STAGE_COUNT, k_stage_names[s]);
    switch (r->plan[s]) {
    case AP_STUDY_NOT_RUN: return AP_OK;
    case AP_STUDY_SKIPPED: {
        if (!rank0) return AP_OK;
        const char *sum = record_str(stage_record(r, s), "summary");
        snprintf(res->summary[s], sizeof res->summary[s], "%s", sum ? sum : "");
        say("%s: done before with the same options, skipped (%s)", head, res->summary[s]);
        return AP_OK;
    }
    case AP_STUDY_RESUMED: if (rank0) say("%s: continuing an interrupted run", head); break;
    case AP_STUDY_FRESH: if (rank0) say("%s: running", head); break;
    }
    ap_status st = ap_parallel_agree(par, rank0 ? begin_stage(r, s, err) : AP_OK, err);
    if (st) return st;
    double t0 = ap_now(), c0 = cpu_seconds();
    if (rank0 || k_study_stages[s].every_rank)
        st = k_study_stages[s].run(&r->ctx, r->plan[s] == AP_STUDY_FRESH, res->summary[s], err);
    st = ap_parallel_agree(par, st, err);
    res->seconds[s] = ap_now() - t0;
    res->cpu_seconds[s] = cpu_seconds() - c0;
    if (st) {
        ap_error_prefix(err, "stage %s", k_stage_names[s]);
        return st;
    }
    if (!rank0) return ap_parallel_agree(par, AP_OK, err);
    format_seconds(res->seconds[s], took, sizeof took);
    say("%s: done in %s (%.0f CPU seconds): %s", head, took, res->cpu_seconds[s], res->summary[s]);
    return ap_parallel_agree(par, finish_stage(r, s, res->seconds[s], res->cpu_seconds[s], res->summary[s], err), err);
}

/* Rank 0's plan to every rank (a sum of its values with the others' zeros),
 * so that all make the same collective calls in the same order. */
static ap_status share_plan(runner *r, ap_error *err) {
    const ap_parallel *par = r->o->parallel;
    if (!par || par->size <= 1) return AP_OK;
    float plan[AP_STAGE_COUNT] = {0};
    for (int s = 0; s < AP_STAGE_COUNT && par->rank == 0; s++) plan[s] = (float)r->plan[s];
    ap_status st = par->sum(par->ctx, plan, AP_STAGE_COUNT, err);
    for (int s = 0; s < AP_STAGE_COUNT && !st; s++) r->plan[s] = (ap_study_action)plan[s];
    return st;
}

/* One study at a time per directory. */
static ap_status lock_dir(runner *r, ap_error *err) {
    char *path = study_path(&r->ctx, ".lock", err);
    if (!path) return AP_ERR_NOMEM;
    r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ap_status st = AP_OK;
    if (r->lock_fd < 0) st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot open", path);
    else if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0)
        st = ap_fail(err, AP_ERR_IO, "%s: another apmae study is running in this directory", r->ctx.dir);
    free(path);
    return st;
}

ap_status ap_study_run(const ap_study_options *o, ap_study_result *res, ap_error *err) {
    memset(res, 0, sizeof *res);
    if (o->from >= AP_STAGE_COUNT || o->only >= AP_STAGE_COUNT)
        return ap_fail(err, AP_ERR_ARG, "--from/--only: no such stage");
    runner r = {.o = o, .ctx = {.cfg = o->config, .dir = o->out, .progress = o->progress, .parallel = o->parallel},
                .lock_fd = -1};
    double t0 = ap_now();
    if (o->config->threads > 0) omp_set_num_threads((int)o->config->threads);
    /* rank 0 plans and keeps the record; the others follow its plan */
    ap_status st = AP_OK;
    if (study_rank0(&r.ctx)) {
        st = ap_make_dirs(o->out, err);
        if (!st) st = lock_dir(&r, err);
        if (!st && !(r.record_path = study_path(&r.ctx, AP_STUDY_RECORD, err))) st = AP_ERR_NOMEM;
        if (!st) st = load_record(&r, err);
        if (!st) st = describe_all(&r, err);
        if (!st) st = make_plan(&r, err);
        if (!st) st = save_record(&r, err);
    }
    st = ap_parallel_agree(o->parallel, st, err);
    if (!st) st = share_plan(&r, err);
    for (int s = 0; !st && s < AP_STAGE_COUNT; s++) {
        res->action[s] = r.plan[s];
        st = run_stage(&r, s, res, err);
    }
    res->total_seconds = ap_now() - t0;
    for (int s = 0; s < AP_STAGE_COUNT; s++) cJSON_Delete(r.opts[s]);
    cJSON_Delete(r.record);
    free(r.record_path);
    if (r.lock_fd >= 0) close(r.lock_fd);
    return st;
}
