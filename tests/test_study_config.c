/* The study's config: defaults, a file overriding some fields, clear errors
 * for unknown, mistyped and out-of-range fields, the JSON written back, and
 * docs/study.md documenting every field. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "apmae/study.h"

static char *write_config(const char *name, const char *text) {
    char *path = tu_tmp_path(name);
    tu_write_file(path, text, strlen(text));
    return path;
}

static void test_defaults(void **state) {
    ap_study_config c;
    TU_OK(ap_study_config_load(NULL, &c, tu_err()));
    assert_string_equal(c.model, "models/java-small");
    assert_null(c.cross_model);
    assert_string_equal(c.mine.include, "java.xml/**,java.desktop/**,jdk.compiler/**");
    assert_string_equal(c.mine.tasks, "all");
    assert_int_equal(c.mine.max_length, 256);
    assert_int_equal(c.extract.samples_per_task, 40);
    assert_string_equal(c.mae.encoder, "auto");
    assert_true(c.mae.holdout == 0.05);
    ap_study_config_free(&c);
}

static void test_file_overrides(void **state) {
    char *path = write_config("over.json", "{\"cross_model\": \"other\", \"mine\": {\"per_task\": 7, \"include\": null},"
                                           " \"mae\": {\"holdout\": 0.2, \"config\": \"tiny\"}}");
    ap_study_config c;
    TU_OK(ap_study_config_load(path, &c, tu_err()));
    assert_string_equal(c.cross_model, "other");
    assert_int_equal(c.mine.per_task, 7);
    assert_null(c.mine.include);
    assert_true(c.mae.holdout == 0.2);
    assert_string_equal(c.mae.config, "tiny");
    assert_int_equal(c.mine.seed, 1); /* untouched fields keep their defaults */
    /* written back, then read again: the same config */
    cJSON *j = ap_study_config_to_json(&c);
    char *again = tu_tmp_path("again.json");
    TU_OK(ap_json_save(again, j, tu_err()));
    ap_study_config d;
    TU_OK(ap_study_config_load(again, &d, tu_err()));
    cJSON *k = ap_study_config_to_json(&d);
    assert_true(cJSON_Compare(j, k, 1));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(k, "mine"), "include")));
    cJSON_Delete(j), cJSON_Delete(k);
    ap_study_config_free(&c);
    ap_study_config_free(&d);
    free(path), free(again);
}

static void expect_error(const char *text, const char *message) {
    char *path = write_config("bad.json", text);
    ap_study_config c;
    assert_int_equal(ap_study_config_load(path, &c, tu_err()), AP_ERR_FORMAT);
    if (!strstr(tu_last_error()->msg, message) || !strstr(tu_last_error()->msg, path))
        fail_msg("for %s: '%s' lacks '%s' or the file name", text, tu_last_error()->msg, message);
    free(path);
}

static void test_errors(void **state) {
    expect_error("{\"modle\": \"x\"}", "unknown field modle");
    expect_error("{\"mae\": {\"step\": 3}}", "unknown field mae.step");
    expect_error("{\"mine\": 3}", "mine must be an object");
    expect_error("{\"mine\": {\"per_task\": \"ten\"}}", "mine.per_task must be an integer");
    expect_error("{\"mine\": {\"per_task\": 2.5}}", "mine.per_task must be an integer");
    expect_error("{\"mine\": {\"per_task\": 0}}", "mine.per_task = 0 is outside 1..");
    expect_error("{\"mae\": {\"holdout\": 1}}", "mae.holdout = 1 is outside");
    expect_error("{\"extract\": {\"dtype\": \"f64\"}}", "extract.dtype is 'f64', expected one of f32|f16|bf16");
    expect_error("{\"model\": null}", "model must be a non-empty string");
    expect_error("{\"model\": \"\"}", "model must be a non-empty string");
    expect_error("[1, 2]", "expected a JSON object");
    expect_error("{\"mine\": {", "invalid JSON");
    ap_study_config c;
    assert_int_equal(ap_study_config_load("no/such/config.json", &c, tu_err()), AP_ERR_IO);
    assert_non_null(strstr(tu_last_error()->msg, "no/such/config.json"));
}

/* Every field the config has is in docs/study.md's table, as `section.field`. */
static void test_documented(void **state) {
    char *doc;
    TU_OK(ap_read_file("../docs/study.md", &doc, NULL, tu_err()));
    ap_study_config c;
    TU_OK(ap_study_config_default(&c, tu_err()));
    cJSON *j = ap_study_config_to_json(&c);
    int fields = 0;
    for (const cJSON *v = j->child; v; v = v->next) {
        const cJSON *members = cJSON_IsObject(v) ? v->child : v;
        for (const cJSON *m = members; m; m = cJSON_IsObject(v) ? m->next : NULL) {
            char name[128];
            snprintf(name, sizeof name, "| `%s%s%s` |", cJSON_IsObject(v) ? v->string : "",
                     cJSON_IsObject(v) ? "." : "", m->string);
            if (!strstr(doc, name)) fail_msg("docs/study.md does not document %s", name);
            fields++;
        }
    }
    assert_true(fields > 20);
    cJSON_Delete(j);
    ap_study_config_free(&c);
    free(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_overrides),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
