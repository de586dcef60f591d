/* apmae study on a tiny config (tests/fixtures/study/): a whole run, what a
 * second run skips, which stages a changed option runs again, --from and
 * --only, a study killed during extraction and one killed during clustering
 * that finish with the results of an uninterrupted one, and bad input. */
#define _POSIX_C_SOURCE 200809L
#include <sys/file.h>

#include "apmae/study.h"
#include "cluster_synth.h"
#include "extract_synth.h"

#define CONFIG "fixtures/study/tiny.json"

static char *g_ref; /* an uninterrupted study, the one every other run is compared with */

/* `apmae study --out dir --config cfg extra`; stdout and stderr into *out. */
static int study(char **out, const char *dir, const char *cfg, const char *extra) {
    return tu_run(out, "'%s' --quiet study --out '%s' --config '%s' %s 2>&1", tu_apmae_bin(), dir, cfg, extra);
}

/* The action of a stage in the summary ("ran", "skipped", ...). */
static char *action(const char *summary, const char *stage) {
    static char word[32];
    char head[64];
    snprintf(head, sizeof head, "\n  %s ", stage);
    const char *p = strstr(summary, head);
    word[0] = '\0';
    if (p) sscanf(p + strlen(head), "%31s", word);
    return word;
}

static char *path_in(const char *dir, const char *name) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static void assert_same_file(const char *a_dir, const char *b_dir, const char *name) {
    char *a = path_in(a_dir, name), *b = path_in(b_dir, name), *da, *db;
    size_t na, nb;
    TU_OK(ap_read_file(a, &da, &na, tu_err()));
    TU_OK(ap_read_file(b, &db, &nb, tu_err()));
    if (na != nb || memcmp(da, db, na) != 0) fail_msg("%s and %s differ", a, b);
    free(a), free(b), free(da), free(db);
}

static cJSON *load(const char *dir, const char *name) {
    char *p = path_in(dir, name);
    cJSON *j;
    TU_OK(ap_json_load(p, &j, tu_err()));
    free(p);
    return j;
}

static const char *stage_state(const char *dir, const char *stage) {
    static char state[32];
    cJSON *rec = load(dir, AP_STUDY_RECORD);
    const char *s = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "stages"), stage), "state"));
    snprintf(state, sizeof state, "%s", s ? s : "none");
    cJSON_Delete(rec);
    return state;
}

/* What a study produced equals the reference: mined scenarios, the store
 * (records, patterns, embeddings), the AP-MAE's weights, the evaluation. */
static void assert_same_results(const char *dir) {
    assert_same_file(g_ref, dir, AP_STUDY_SCENARIOS);
    assert_same_file(g_ref, dir, AP_STUDY_MAE_DIR "/model.safetensors");
    char *a = path_in(g_ref, AP_STUDY_STORE), *b = path_in(dir, AP_STUDY_STORE);
    assert_stores_equal(a, b);
    cJSON *ea = load(g_ref, AP_STUDY_MAE_EVAL_DIR "/eval.json"), *eb = load(dir, AP_STUDY_MAE_EVAL_DIR "/eval.json");
    assert_true(cJSON_GetObjectItem(ea, "mse")->valuedouble == cJSON_GetObjectItem(eb, "mse")->valuedouble);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(ea, "by_head"), cJSON_GetObjectItem(eb, "by_head"), 1));
    cJSON *la = load(g_ref, AP_STUDY_LM_EVAL), *lb = load(dir, AP_STUDY_LM_EVAL);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(cJSON_GetObjectItem(la, "scenarios"), "tasks"),
                              cJSON_GetObjectItem(cJSON_GetObjectItem(lb, "scenarios"), "tasks"), 1));
    assert_clusters_equal(a, b);
    cJSON *ca = load(g_ref, AP_STUDY_CLASSIFY_DIR "/results.json"), *cb = load(dir, AP_STUDY_CLASSIFY_DIR "/results.json");
    assert_true(cJSON_Compare(cJSON_GetObjectItem(ca, "tasks"), cJSON_GetObjectItem(cb, "tasks"), 1));
    cJSON_Delete(ea), cJSON_Delete(eb), cJSON_Delete(la), cJSON_Delete(lb), cJSON_Delete(ca), cJSON_Delete(cb);
    free(a), free(b);
}

static int setup_reference(void **state) {
    g_ref = tu_tmp_path("ref");
    char *out;
    tu_run(NULL, "rm -rf '%s'", g_ref);
    int rc = study(&out, g_ref, CONFIG, "");
    if (rc != 0) fprintf(stderr, "reference study failed:\n%s\n", out);
    free(out);
    return rc;
}

/* A copy of the reference to change. */
static char *copy_of_ref(const char *name) {
    char *dir = tu_tmp_path(name);
    assert_int_equal(tu_run(NULL, "rm -rf '%s' && cp -r '%s' '%s'", dir, g_ref, dir), 0);
    return dir;
}

/* CONFIG with one more field, written to a file of its own. */
static char *config_with(const char *name, const char *section, const char *field, cJSON *value) {
    cJSON *c;
    TU_OK(ap_json_load(CONFIG, &c, tu_err()));
    cJSON *parent = section ? cJSON_GetObjectItem(c, section) : c;
    if (!parent) parent = cJSON_AddObjectToObject(c, section);
    cJSON_DeleteItemFromObject(parent, field);
    cJSON_AddItemToObject(parent, field, value);
    char *path = tu_tmp_path(name);
    TU_OK(ap_json_save(path, c, tu_err()));
    cJSON_Delete(c);
    return path;
}

static void test_whole_study(void **state) {
    cJSON *rec = load(g_ref, AP_STUDY_RECORD);
    const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
    static const char *const done[] = {"mine",    "extract",  "mae-train", "mae-eval", "embed",
                                       "cluster", "classify", "intervene", "report"};
    for (size_t i = 0; i < sizeof done / sizeof *done; i++) {
        const cJSON *s = cJSON_GetObjectItem(stages, done[i]);
        assert_non_null(s);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")), "done");
        assert_int_equal(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(s, "key"))), 16);
    }
    /* the config in effect is recorded whole: defaults where the file is silent */
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "config"), "model")),
                        "fixtures/study/lm");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
                            cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "config"), "extract"), "dtype")),
                        "bf16");
    cJSON_Delete(rec);
    ap_store *s;
    char *store = path_in(g_ref, AP_STUDY_STORE);
    TU_OK(ap_store_open(store, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_count(s), 120); /* 8 scenarios of 15 tasks, all kept */
    assert_int_equal(ap_store_embedded(s), 120);
    TU_OK(ap_store_close(s, tu_err()));
    free(store);
    char *report = path_in(g_ref, AP_STUDY_REPORT);
    assert_true(ap_path_exists(report));
    free(report);
}

static void test_second_run_skips(void **state) {
    char *dir = copy_of_ref("again"), *out;
    assert_int_equal(study(&out, dir, CONFIG, ""), 0);
    static const char *const skipped[] = {"mine", "extract", "mae-train", "mae-eval", "embed", "cluster", "classify"};
    for (size_t i = 0; i < sizeof skipped / sizeof *skipped; i++) assert_string_equal(action(out, skipped[i]), "skipped");
    assert_string_equal(action(out, "report"), "ran");
    assert_string_equal(action(out, "intervene"), "skipped");
    free(out);
    assert_same_results(dir);
    free(dir);
}

/* More AP-MAE steps: training and evaluation run again, and with the
 * AP-MAE trained here as the encoder, encoding; mining and extraction do
 * not. */
static void test_changed_option(void **state) {
    char *dir = copy_of_ref("changed"), *out;
    char *cfg = config_with("steps.json", "mae", "steps", cJSON_CreateNumber(25));
    assert_int_equal(study(&out, dir, cfg, ""), 0);
    assert_string_equal(action(out, "mine"), "skipped");
    assert_string_equal(action(out, "extract"), "skipped");
    assert_string_equal(action(out, "mae-train"), "ran");
    assert_string_equal(action(out, "mae-eval"), "ran");
    assert_string_equal(action(out, "embed"), "ran");
    assert_string_equal(action(out, "cluster"), "ran");
    assert_string_equal(action(out, "classify"), "ran");
    assert_non_null(strstr(out, "25 steps"));
    free(out);
    /* back to 20 steps: the same results as the reference */
    assert_int_equal(study(&out, dir, CONFIG, ""), 0);
    free(out);
    assert_same_results(dir);
    free(dir);
    free(cfg);
}

/* With a fixed encoder, more training steps leave extraction and encoding
 * alone; editing the encoder's README does too, changing its weights does not. */
static void test_fixed_encoder(void **state) {
    char *dir = copy_of_ref("encoder"), *out;
    char *enc = tu_tmp_path("encoder-mae");
    assert_int_equal(tu_run(NULL, "rm -rf '%s' && cp -r '%s/mae' '%s'", enc, g_ref, enc), 0);
    char *cfg = config_with("enc.json", "mae", "encoder", cJSON_CreateString(enc));
    assert_int_equal(study(&out, dir, cfg, ""), 0);
    assert_string_equal(action(out, "extract"), "skipped");
    assert_string_equal(action(out, "embed"), "ran"); /* another encoder: its embeddings replace the old */
    free(out);
    cJSON *c;
    TU_OK(ap_json_load(cfg, &c, tu_err()));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(c, "mae"), "steps", cJSON_CreateNumber(25));
    TU_OK(ap_json_save(cfg, c, tu_err()));
    cJSON_Delete(c);
    assert_int_equal(study(&out, dir, cfg, ""), 0);
    assert_string_equal(action(out, "extract"), "skipped");
    assert_string_equal(action(out, "mae-train"), "ran");
    assert_string_equal(action(out, "embed"), "skipped");
    free(out);
    /* the encoder's documentation is not an input; its weights are */
    assert_int_equal(tu_run(NULL, "echo notes >> '%s/README.md'", enc), 0);
    assert_int_equal(study(&out, dir, cfg, ""), 0);
    assert_string_equal(action(out, "embed"), "skipped");
    free(out);
    assert_int_equal(tu_run(NULL, "touch -d '2001-01-01' '%s/model.safetensors'", enc), 0);
    assert_int_equal(study(&out, dir, cfg, ""), 0);
    assert_string_equal(action(out, "embed"), "ran");
    free(out);
    free(cfg), free(enc), free(dir);
}

/* mae.encoder "auto" (the default): the AP-MAE beside the model
 * (MODEL-apmae) encodes when the checkout has one; training still runs. */
static void test_auto_encoder(void **state) {
    char *root = tu_tmp_path("auto"), *dir = tu_tmp_path("auto/study"), *model = tu_tmp_path("auto/lm"), *out;
    assert_int_equal(tu_run(NULL, "rm -rf '%s' && mkdir -p '%s' && cp -r fixtures/study/lm '%s' && cp -r '%s/mae' '%s-apmae'",
                            root, root, model, g_ref, model),
                     0);
    char *cfg = config_with("auto.json", NULL, "model", cJSON_CreateString(model));
    assert_int_equal(study(&out, dir, cfg, ""), 0);
    assert_string_equal(action(out, "mae-train"), "ran");
    assert_string_equal(action(out, "embed"), "ran");
    assert_non_null(strstr(out, "encoded with"));
    assert_non_null(strstr(out, "/auto/lm-apmae"));
    free(out);
    cJSON *rec = load(dir, AP_STUDY_RECORD);
    const cJSON *enc = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "stages"), "embed"), "options"), "encoder");
    assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(enc, "path")), "/auto/lm-apmae"));
    cJSON_Delete(rec);
    free(cfg), free(model), free(dir), free(root);
}

static void test_from_and_only(void **state) {
    char *dir = copy_of_ref("from"), *out;
    assert_int_equal(study(&out, dir, CONFIG, "--from mae-eval --only mae-eval"), 0);
    assert_string_equal(action(out, "mae-eval"), "ran");
    assert_string_equal(action(out, "mae-train"), "not");
    assert_string_equal(action(out, "report"), "not");
    free(out);
    assert_int_equal(study(&out, dir, CONFIG, "--from embed"), 0);
    assert_string_equal(action(out, "mae-eval"), "skipped");
    assert_string_equal(action(out, "embed"), "ran");
    assert_string_equal(action(out, "cluster"), "ran");
    assert_string_equal(action(out, "report"), "ran");
    free(out);
    assert_same_results(dir);
    free(dir);
}

/* Other clustering options: clustering and classification run again, and
 * nothing upstream. */
static void test_changed_cluster_option(void **state) {
    char *dir = copy_of_ref("cluster-option"), *out;
    char *cfg = config_with("min_samples.json", "cluster", "min_samples", cJSON_CreateNumber(10));
    assert_int_equal(study(&out, dir, cfg, ""), 0);
    assert_string_equal(action(out, "embed"), "skipped");
    assert_string_equal(action(out, "cluster"), "ran");
    assert_string_equal(action(out, "classify"), "ran");
    free(out);
    char *store = path_in(dir, AP_STUDY_STORE);
    ap_store *s;
    TU_OK(ap_store_open(store, AP_STORE_READ, &s, tu_err()));
    assert_non_null(strstr(ap_store_clusters_info_of(s)->params, "\"min_samples\":10"));
    TU_OK(ap_store_close(s, tu_err()));
    assert_int_equal(study(&out, dir, CONFIG, ""), 0);
    free(out);
    assert_same_results(dir);
    free(store), free(cfg), free(dir);
}

/* The interventions, on a config where classification ranks heads for
 * three tasks: per task every (setting, n) run; other intervention options
 * run only that stage (and the report) again. */
static void test_interventions(void **state) {
    char *dir = tu_tmp_path("interventions"), *out;
    const char *cfg = "fixtures/study/interventions.json";
    tu_run(NULL, "rm -rf '%s'", dir);
    assert_int_equal(study(&out, dir, cfg, ""), 0);
    assert_string_equal(action(out, "intervene"), "ran");
    free(out);
    cJSON *index = load(dir, AP_STUDY_INTERVENE_TASKS);
    const cJSON *tasks = cJSON_GetObjectItem(index, "tasks");
    assert_int_equal(cJSON_GetArraySize(tasks), 3); /* auto: max_tasks of the four (one has too few samples) */
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(index, "left_out"), "closing_bracket"));
    for (const cJSON *t = tasks->child; t; t = t->next) {
        char name[128];
        snprintf(name, sizeof name, AP_STUDY_INTERVENE_DIR "/%s/intervene.json", t->valuestring);
        cJSON *iv = load(dir, name);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(iv, "runs")), 4 * 4); /* settings x n */
        assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(iv, "target")), 3);
        cJSON_Delete(iv);
    }
    cJSON_Delete(index);
    char *report = path_in(dir, AP_STUDY_REPORT), *html;
    size_t n;
    TU_OK(ap_read_file(report, &html, &n, tu_err()));
    assert_non_null(strstr(html, "accuracy with n heads switched off"));
    free(html), free(report);
    cJSON *c;
    TU_OK(ap_json_load(cfg, &c, tu_err()));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(c, "intervene"), "target", cJSON_CreateNumber(2));
    char *cfg2 = tu_tmp_path("interventions2.json");
    TU_OK(ap_json_save(cfg2, c, tu_err()));
    cJSON_Delete(c);
    assert_int_equal(study(&out, dir, cfg2, ""), 0);
    assert_string_equal(action(out, "classify"), "skipped");
    assert_string_equal(action(out, "intervene"), "ran");
    free(out);
    free(cfg2), free(dir);
}

static int64_t committed_samples(const char *dir) {
    char *path = path_in(dir, AP_STUDY_STORE);
    ap_store *s;
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    int64_t n = ap_store_count(s);
    TU_OK(ap_store_close(s, tu_err()));
    free(path);
    return n;
}

/* Killed (SIGKILL) once the extraction's progress line reports committed
 * samples, and run again: the same results as the uninterrupted study.
 * (Each round starts from the reference's mined scenarios, --from extract.) */
static void test_killed_during_extraction(void **state) {
    char *dir = tu_tmp_path("killed"), *out;
    char *argv[] = {"apmae", "study", "--out", dir, "--config", CONFIG, "--from", "extract", NULL};
    srand((unsigned)time(NULL));
    int partial = 0;
    for (int round = 0; round < 5 && !partial; round++) {
        free(dir);
        dir = copy_of_ref("killed");
        argv[3] = dir;
        int64_t reported = kill_at_progress(argv, "extract", round, 1 + rand() % 60, 120);
        if (reported < 0 || strcmp(stage_state(dir, "extract"), "running") != 0) continue;
        int64_t n = committed_samples(dir);
        assert_true(n >= reported);
        partial = n < 120;
    }
    if (!partial) fail_msg("5 rounds and no kill left extraction partly done");
    assert_int_equal(study(&out, dir, CONFIG, ""), 0);
    assert_string_equal(action(out, "mine"), "skipped");
    assert_string_equal(action(out, "extract"), "resumed");
    assert_string_equal(action(out, "embed"), "ran");
    free(out);
    assert_same_results(dir);
    free(dir);
}

static int heads_clustered(const char *dir) {
    char *path = path_in(dir, AP_STUDY_STORE);
    ap_store *s;
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    int n = ci ? ci->heads_done : 0;
    TU_OK(ap_store_close(s, tu_err()));
    free(path);
    return n;
}

/* Killed (SIGKILL) once the clustering's progress line reports committed
 * heads, and run again: the same results as the uninterrupted study. */
static void test_killed_during_clustering(void **state) {
    char *dir = NULL, *out;
    char *argv[] = {"apmae", "study", "--out", NULL, "--config", CONFIG, "--from", "cluster", NULL};
    const int heads = 8; /* 2 layers x 4 heads */
    int partial = 0;
    for (int round = 0; round < 5 && !partial; round++) {
        free(dir);
        dir = copy_of_ref("killed-cluster");
        argv[3] = dir;
        int64_t reported = kill_at_progress(argv, "cluster", round, 1 + rand() % (heads - 1), heads);
        if (reported < 0 || strcmp(stage_state(dir, "cluster"), "running") != 0) continue;
        int n = heads_clustered(dir);
        assert_true(n >= reported);
        partial = n < heads;
    }
    if (!partial) fail_msg("5 rounds and no kill left clustering partly done");
    assert_int_equal(study(&out, dir, CONFIG, ""), 0);
    assert_string_equal(action(out, "embed"), "skipped");
    assert_string_equal(action(out, "cluster"), "resumed");
    assert_string_equal(action(out, "classify"), "ran");
    free(out);
    assert_same_results(dir);
    free(dir);
}

static void test_bad_input(void **state) {
    char *dir = tu_tmp_path("bad"), *out;
    tu_run(NULL, "rm -rf '%s'", dir);
    assert_int_equal(study(&out, dir, CONFIG, "--from nothing"), 2);
    assert_non_null(strstr(out, "--from: 'nothing' is not 'mine', 'extract'"));
    free(out);
    assert_int_equal(study(&out, dir, CONFIG, "--only embed"), 2);
    assert_non_null(strstr(out, "--only embed: it reads from stage extract, which is not done"));
    free(out);
    char *cfg = config_with("typo.json", "mine", "per_taks", cJSON_CreateNumber(3));
    assert_int_equal(study(&out, dir, cfg, ""), 1);
    assert_non_null(strstr(out, "unknown field mine.per_taks"));
    free(out), free(cfg);
    cfg = config_with("range.json", "mine", "max_length", cJSON_CreateNumber(8));
    assert_int_equal(study(&out, dir, cfg, ""), 1);
    assert_non_null(strstr(out, "mine.max_length = 8 is outside 16..65536"));
    free(out), free(cfg);
    cfg = config_with("model.json", NULL, "model", cJSON_CreateString("no/such/model"));
    assert_int_equal(study(&out, dir, cfg, ""), 1);
    assert_non_null(strstr(out, "model: no/such/model/tokenizer.json does not exist"));
    free(out), free(cfg);
    /* one study at a time in a directory */
    char *lock = path_in(dir, ".lock");
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0 && flock(fd, LOCK_EX) == 0);
    assert_int_equal(study(&out, dir, CONFIG, ""), 1);
    assert_non_null(strstr(out, "another apmae study is running in this directory"));
    close(fd);
    free(out), free(lock), free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_study),     cmocka_unit_test(test_second_run_skips),
        cmocka_unit_test(test_changed_option),  cmocka_unit_test(test_fixed_encoder),
        cmocka_unit_test(test_auto_encoder),
        cmocka_unit_test(test_changed_cluster_option), cmocka_unit_test(test_from_and_only),
        cmocka_unit_test(test_interventions),
        cmocka_unit_test(test_killed_during_extraction), cmocka_unit_test(test_killed_during_clustering),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup_reference, NULL);
}
