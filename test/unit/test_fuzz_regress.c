/* test_fuzz_regress.c: one test per defect the fuzz targets of test/fuzz
 * found (docs/RELIABILITY.md, "Fuzzing"), each with the input that showed it. */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ftw.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "acme_json.h"
#include "acme_result.h"
#include "acme_store.h"
#include "acme_job.h"
#include "acme_status.h"
#include "acme_test.h"

static apr_pool_t *pool;
static char base[256];
static acme_store_t *st;

static void setup(void)
{
    const char *err = NULL;

    apr_pool_create(&pool, NULL);
    apr_cpystrn(base, "/tmp/acme-fuzz-regress-XXXXXX", sizeof(base));
    ck_assert_ptr_nonnull(mkdtemp(base));
    ck_assert_int_eq(acme_store_fs_create(&st, pool, base, &err), APR_SUCCESS);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    apr_pool_destroy(pool);
}

static acme_status_t *status_with_job(const char *job_json)
{
    acme_job_spec_t spec;
    apr_array_header_t *names = apr_array_make(pool, 1, sizeof(const char *));
    apr_array_header_t *types = apr_array_make(pool, 1, sizeof(acme_key_type_t));
    acme_status_t *status = NULL;

    APR_ARRAY_PUSH(names, const char *) = "example.org";
    APR_ARRAY_PUSH(types, acme_key_type_t) = ACME_KEY_P256;
    memset(&spec, 0, sizeof(spec));
    spec.domain = "example.org";
    spec.names = names;
    spec.ca_url = "https://ca.test/dir";
    spec.key_types = types;
    spec.ari = 1;
    spec.window.is_percent = 1;
    spec.window.percent = 33.0;
    ck_assert_int_eq(st->save(st, ACME_SG_JOBS, "example.org", ACME_JOB_STATE, job_json,
                              strlen(job_json), 0, pool), APR_SUCCESS);
    ck_assert_int_eq(acme_status_get(&status, st, &spec, NULL, apr_time_from_sec(1893456000LL), pool),
                     APR_SUCCESS);
    return status;
}

/* fuzz_job_json: seconds * 10^6 overflowed apr_time_t (undefined behaviour)
 * for a next-attempt or retry-after that no clock reaches. A time outside
 * 1970..9999 is corrupt and reads as absent. */
START_TEST(job_json_absurd_times_read_as_absent)
{
    acme_status_t *s;

    s = status_with_job("{\"errors\": 2, \"next-attempt\": 9223372036854,"
                        " \"last-error\": {\"status\": 1, \"retry-after\": 179871798794366}}");
    ck_assert_int_eq(s->errors, 2);
    ck_assert(s->next_attempt == 0);
    ck_assert_ptr_nonnull(s->last_error);
    ck_assert(s->last_error->retry_after == 0);
    s = status_with_job("{\"errors\": 1, \"next-attempt\": -9223372036854,"
                        " \"last-error\": {\"status\": 1, \"retry-after\": 1893459600}}");
    ck_assert(s->next_attempt == 0);
    ck_assert(s->last_error->retry_after == apr_time_from_sec(1893459600LL));
    s = status_with_job("{\"errors\": 1, \"next-attempt\": 1893456600}");
    ck_assert(s->next_attempt == apr_time_from_sec(1893456600LL));
}
END_TEST

/* The getter behind it: the range and the neutral value. */
START_TEST(json_time_getter_range)
{
    const char *doc = "{\"a\": 0, \"b\": 253402300799, \"c\": 253402300800, \"d\": -1,"
                      " \"e\": \"5\", \"f\": 1.5, \"g\": 9223372036854775807}";
    acme_json_t *j;
    const char *err;

    ck_assert_int_eq(acme_json_parse(&j, pool, doc, strlen(doc), &err), APR_SUCCESS);
    ck_assert(acme_json_gett(j, "a", NULL) == 0);
    ck_assert(acme_json_gett(j, "b", NULL) == apr_time_from_sec(253402300799LL));
    ck_assert(acme_json_gett(j, "c", NULL) == 0);
    ck_assert(acme_json_gett(j, "d", NULL) == 0);
    ck_assert(acme_json_gett(j, "e", NULL) == 0);
    ck_assert(acme_json_gett(j, "f", NULL) == 0);
    ck_assert(acme_json_gett(j, "g", NULL) == 0);
    ck_assert(acme_json_gett(j, "missing", NULL) == 0);
}
END_TEST

static Suite *fuzz_regress_suite(void)
{
    Suite *s = suite_create("fuzz_regress");
    TCase *tc = tcase_create("store_files");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, job_json_absurd_times_read_as_absent);
    tcase_add_test(tc, json_time_getter_range);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(fuzz_regress_suite)
