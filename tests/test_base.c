/* Tests of src/base: errors, buffers, files, parsing. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void test_error_messages(void **state) {
    (void)state;
    ap_error err = {0};
    assert_int_equal(ap_fail(&err, AP_ERR_FORMAT, "%s: bad %d", "x.json", 3), AP_ERR_FORMAT);
    assert_string_equal(err.msg, "x.json: bad 3");
    ap_error_prefix(&err, "loading %s", "model");
    assert_string_equal(err.msg, "loading model: x.json: bad 3");
    assert_int_equal(err.code, AP_ERR_FORMAT);
    assert_int_equal(ap_fail_errno(&err, AP_ERR_IO, "/nonexistent"), AP_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent: "));
}

static void test_buf(void **state) {
    (void)state;
    ap_buf b = {0};
    for (int i = 0; i < 1000; i++) assert_int_equal(ap_buf_printf(&b, NULL, "%d,", i), AP_OK);
    assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
    assert_int_equal(b.data[b.len - 1], ',');
    assert_int_equal(strlen(b.data), b.len);
    ap_buf_free(&b);
}

static void test_files(void **state) {
    (void)state;
    char *path = tu_tmp_path("atomic.txt");
    assert_int_equal(ap_write_file_atomic(path, "hello", 5, tu_err()), AP_OK);
    char *data;
    size_t len;
    assert_int_equal(ap_read_file(path, &data, &len, tu_err()), AP_OK);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    ap_mmap m;
    assert_int_equal(ap_mmap_open(path, &m, tu_err()), AP_OK);
    assert_int_equal(m.size, 5);
    assert_memory_equal(m.data, "hello", 5);
    ap_mmap_close(&m);
    ap_error err = {0};
    assert_int_equal(ap_read_file("/nonexistent/file", &data, &len, &err), AP_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/file"));
    free(path);
}

static void test_parse(void **state) {
    (void)state;
    int64_t *v;
    size_t n;
    ap_error err = {0};
    assert_int_equal(ap_parse_i64_list("1,22,-3", "--ids", &v, &n, &err), AP_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[1], 22);
    assert_int_equal(v[2], -3);
    free(v);
    assert_int_equal(ap_parse_i64_list("1,,2", "--ids", &v, &n, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "--ids"));
    assert_int_equal(ap_parse_i64_list("", "--ids", &v, &n, &err), AP_ERR_ARG);
    assert_int_equal(ap_parse_i64_list("1,x", "--ids", &v, &n, &err), AP_ERR_ARG);
    int64_t x;
    assert_int_equal(ap_parse_i64("99999999999999999999999", "--k", &x, &err), AP_ERR_ARG);
    double d;
    assert_int_equal(ap_parse_f64("1.5e3", "--lr", &d, &err), AP_OK);
    assert_true(d == 1500.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
