/* test_json.c: the jansson wrapper: paths, types, setters, arrays,
 * iteration and malformed documents. */
#include <check.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "acme_json.h"
#include "acme_test.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static acme_json_t *parse(const char *s)
{
    acme_json_t *j = NULL;
    const char *err;

    ck_assert_int_eq(acme_json_parse(&j, pool, s, strlen(s), &err), APR_SUCCESS);
    return j;
}

START_TEST(get_paths_and_types)
{
    acme_json_t *j = parse("{\"a\":{\"b\":\"x\",\"n\":42,\"t\":true},\"arr\":[\"p\",\"q\"],\"z\":null}");
    apr_array_header_t *a;

    ck_assert_str_eq(acme_json_gets(j, "a", "b", NULL), "x");
    ck_assert_int_eq(acme_json_getl(j, "a", "n", NULL), 42);
    ck_assert_int_eq(acme_json_getb(j, "a", "t", NULL), 1);
    ck_assert_ptr_null(acme_json_gets(j, "a", "n", NULL));      /* wrong type */
    ck_assert_int_eq(acme_json_getl(j, "a", "b", NULL), 0);     /* wrong type */
    ck_assert_ptr_null(acme_json_gets(j, "a", "b", "c", NULL)); /* through a string */
    ck_assert_ptr_null(acme_json_gets(j, "missing", NULL));
    ck_assert_int_eq(acme_json_type(j, "z", NULL), ACME_JSON_NULL);
    ck_assert_int_eq(acme_json_type(j, "arr", NULL), ACME_JSON_ARRAY);
    ck_assert_int_eq(acme_json_type(j, "nope", NULL), ACME_JSON_NONE);
    ck_assert(acme_json_has(j, "a", "t", NULL));
    ck_assert_int_eq(acme_json_getsa(&a, j, pool, "arr", NULL), APR_SUCCESS);
    ck_assert_int_eq(a->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(a, 1, const char *), "q");
    ck_assert_int_eq(acme_json_getsa(&a, j, pool, "a", NULL), APR_EINVAL);
}
END_TEST

START_TEST(string_array_with_wrong_element)
{
    acme_json_t *j = parse("{\"arr\":[\"p\",3]}");
    apr_array_header_t *a;

    ck_assert_int_eq(acme_json_getsa(&a, j, pool, "arr", NULL), APR_EINVAL);
}
END_TEST

START_TEST(set_and_dump)
{
    acme_json_t *j = acme_json_new_object(pool);
    acme_json_t *arr = acme_json_new_array(pool);
    acme_json_t *back;
    const char *s;

    ck_assert_int_eq(acme_json_sets(j, "v", "x", "y", NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_json_setl(j, 7, "n", NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_json_setb(j, 0, "b", NULL), APR_SUCCESS);
    acme_json_array_appends(arr, "one");
    ck_assert_int_eq(acme_json_setj(j, arr, "list", NULL), APR_SUCCESS);
    s = acme_json_dump(j, pool, 1);
    ck_assert_str_eq(s, "{\"b\":false,\"list\":[\"one\"],\"n\":7,\"x\":{\"y\":\"v\"}}");
    /* setting through a non-object fails */
    ck_assert_int_eq(acme_json_sets(j, "w", "n", "deeper", NULL), APR_EINVAL);
    ck_assert_int_eq(acme_json_del(j, "x", NULL), APR_SUCCESS);
    back = parse(acme_json_dump(j, pool, 0));
    ck_assert(!acme_json_has(back, "x", NULL));
    ck_assert_int_eq(acme_json_getl(back, "n", NULL), 7);
}
END_TEST

START_TEST(arrays_and_iteration)
{
    acme_json_t *j = parse("[{\"k\":1},{\"k\":2},{\"k\":3}]");
    acme_json_t *o = parse("{\"a\":1,\"b\":2}");
    apr_size_t i;
    long long sum = 0;

    ck_assert_uint_eq(acme_json_array_len(j), 3);
    for (i = 0; i < acme_json_array_len(j); ++i) {
        sum += acme_json_getl(acme_json_array_at(j, pool, i), "k", NULL);
    }
    ck_assert_int_eq(sum, 6);
    ck_assert_ptr_null(acme_json_array_at(j, pool, 3));
    ck_assert_uint_eq(acme_json_array_len(o), 0);
}
END_TEST

static int count_keys(void *baton, const char *key, acme_json_t *value)
{
    (void)key;
    *(long long *)baton += acme_json_getl(value, NULL);
    return 0;
}

START_TEST(iterate_object)
{
    acme_json_t *o = parse("{\"a\":1,\"b\":2}");
    long long sum = 0;

    acme_json_iter(o, pool, count_keys, &sum);
    ck_assert_int_eq(sum, 3);
}
END_TEST

START_TEST(malformed_documents)
{
    static const char *bad[] = {
        "", "{", "{\"a\":", "{\"a\":1,}", "<html><body>502 Bad Gateway</body></html>",
        "\"just a string\"", "42", "{\"a\":1}{\"b\":2}", "{\"a\":1,\"a\":2}", "[1,2",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        acme_json_t *j = (acme_json_t *)1;
        const char *err = NULL;
        ck_assert_int_eq(acme_json_parse(&j, pool, bad[i], strlen(bad[i]), &err), APR_EINVAL);
        ck_assert_ptr_null(j);
        ck_assert_ptr_nonnull(err);
    }
    {
        /* embedded NUL inside the buffer is not silently truncated */
        const char nul[] = "{\"a\":\"x\0y\"}";
        acme_json_t *j;
        ck_assert_int_eq(acme_json_parse(&j, pool, nul, sizeof(nul) - 1, NULL), APR_EINVAL);
    }
}
END_TEST

START_TEST(read_file_errors)
{
    acme_json_t *j;
    const char *err;
    char path[] = "/tmp/acme-json-XXXXXX";
    int fd = mkstemp(path);

    ck_assert(fd >= 0);
    ck_assert_int_eq(write(fd, "{\"x\":", 5), 5);
    close(fd);
    ck_assert_int_eq(acme_json_read_file(&j, pool, path, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, path));
    unlink(path);
    ck_assert(acme_json_read_file(&j, pool, path, &err) != APR_SUCCESS);
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, get_paths_and_types);
    tcase_add_test(tc, string_array_with_wrong_element);
    tcase_add_test(tc, set_and_dump);
    tcase_add_test(tc, arrays_and_iteration);
    tcase_add_test(tc, iterate_object);
    tcase_add_test(tc, malformed_documents);
    tcase_add_test(tc, read_file_errors);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(json_suite)
