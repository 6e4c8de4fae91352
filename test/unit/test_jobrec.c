/* test_jobrec.c: job.json's one reader (good, odd and damaged records) and
 * its read-modify-write on a real fs store with a fake clock: fenced by the
 * writer's claim, or by a brief one, so no writer overwrites another. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <apr_strings.h>

#include "acme_test.h"
#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_store.h"
#include "acme_names.h"
#include "acme_jobrec.h"

#define DOMAIN "example.org"
#define JOB_OWNER "mod_acme-pid-1@job.test"

static apr_pool_t *pool;
static acme_store_t *st;
static char base[64];
static apr_time_t fake_now;

static apr_time_t fake_clock(void *baton)
{
    (void)baton;
    return fake_now;
}

static void setup(void)
{
    const char *err;

    apr_pool_create(&pool, NULL);
    apr_cpystrn(base, "/tmp/acme-jobrec-test-XXXXXX", sizeof(base));
    ck_assert_ptr_nonnull(mkdtemp(base));
    ck_assert_int_eq(acme_store_fs_create(&st, pool, base, &err), APR_SUCCESS);
    fake_now = apr_time_from_sec(1800000000);
    acme_store_fs_set_clock(st, fake_clock, NULL);
}

static void teardown(void)
{
    acme_store_fs_remove_all(st, pool);
    apr_pool_destroy(pool);
}

static void put(const char *text)
{
    ck_assert_int_eq(st->save(st, ACME_SG_JOBS, DOMAIN, ACME_JOB_STATE, text, strlen(text), 0,
                              pool), APR_SUCCESS);
}

static acme_json_t *stored(void)
{
    acme_json_t *j;

    ck_assert_int_eq(acme_store_load_json(st, ACME_SG_JOBS, DOMAIN, ACME_JOB_STATE, &j, pool),
                     APR_SUCCESS);
    return j;
}

static apr_status_t add_error(acme_jobrec_t *rec, void *baton, apr_pool_t *p);

/* ---- the reader ------------------------------------------------------------ */

START_TEST(read_typed_view)
{
    acme_jobrec_t *rec;
    acme_result_t *r = acme_result_make(pool);

    put("{\"state\": \"error\", \"ca\": \"https://ca.test/dir\", \"errors\": 3,"
        " \"next-attempt\": 1800000600, \"last-run\": 1800000000, \"last-success\": 1700000000,"
        " \"renewals-ok\": 7, \"renewals-failed\": 2, \"ca-index\": 1, \"ca-errors\": 2,"
        " \"expiring-notified\": 1810000000, \"installed-notified\": \"2026-01-01T00:00:00Z\","
        " \"last-error\": {\"status\": 70008, \"problem\": \"urn:ietf:params:acme:error:dns\","
        " \"detail\": \"no such name\"},"
        " \"preflight\": {\"time\": 1800000001, \"diagnosis\": \"port 80 closed\", \"holding\": true},"
        " \"orders\": {\"p256\": \"https://ca.test/order/1\"}, \"events\": [],"
        " \"ari\": {\"p256\": {\"start\": 1}}, \"future-member\": {\"kept\": true}}");
    ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, r), APR_SUCCESS);
    ck_assert_str_eq(rec->state, "error");
    ck_assert_str_eq(rec->ca, "https://ca.test/dir");
    ck_assert_int_eq(rec->errors, 3);
    ck_assert(rec->next_attempt == apr_time_from_sec(1800000600));
    ck_assert(rec->last_run == apr_time_from_sec(1800000000));
    ck_assert(rec->last_success == apr_time_from_sec(1700000000));
    ck_assert(rec->renewals_ok == 7 && rec->renewals_failed == 2);
    ck_assert_int_eq(rec->ca_index, 1);
    ck_assert_int_eq(rec->ca_errors, 2);
    ck_assert(rec->expiring_notified == apr_time_from_sec(1810000000));
    ck_assert_str_eq(rec->installed_notified, "2026-01-01T00:00:00Z");
    ck_assert_ptr_nonnull(rec->last_error);
    ck_assert_str_eq(rec->last_error->problem, "urn:ietf:params:acme:error:dns");
    ck_assert_str_eq(rec->preflight_diagnosis, "port 80 closed");
    ck_assert(rec->preflight_time == apr_time_from_sec(1800000001) && rec->preflight_holding);
    ck_assert_str_eq(acme_json_gets(rec->orders, "p256", NULL), "https://ca.test/order/1");
    ck_assert_ptr_nonnull(rec->events);
    ck_assert_int_eq(acme_json_getl(rec->ari, "p256", "start", NULL), 1);
    ck_assert(acme_json_getb(rec->json, "future-member", "kept", NULL));
}
END_TEST

START_TEST(read_wrong_types_are_absent)
{
    acme_jobrec_t *rec;

    put("{\"state\": 5, \"errors\": -4, \"renewals-ok\": \"many\", \"ca-index\": 99999999,"
        " \"next-attempt\": \"soon\", \"last-error\": \"bad\", \"orders\": [1],"
        " \"events\": {}, \"ari\": 3, \"installed-notified\": {}}");
    ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, NULL), APR_SUCCESS);
    ck_assert_ptr_null(rec->state);
    ck_assert_int_eq(rec->errors, 0);
    ck_assert(rec->renewals_ok == 0);
    ck_assert(rec->ca_index >= 0 && rec->ca_index <= 1000);
    ck_assert(rec->next_attempt == 0);
    ck_assert_ptr_null(rec->last_error);
    ck_assert_ptr_null(rec->orders);
    ck_assert_ptr_null(rec->events);
    ck_assert_ptr_null(rec->ari);
    ck_assert_ptr_null(rec->installed_notified);
}
END_TEST

START_TEST(read_missing_and_damaged)
{
    static const char *const damaged[] = {"{\"errors\": 1", "[1, 2]", "\"text\"", "", "\x01\xff"};
    acme_result_t *r = acme_result_make(pool);
    acme_jobrec_t *rec;
    char *big;
    apr_size_t i;

    ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, r), APR_ENOENT);
    ck_assert_ptr_nonnull(rec);
    ck_assert_ptr_nonnull(rec->json);
    for (i = 0; i < sizeof(damaged) / sizeof(damaged[0]); ++i) {
        acme_result_reset(r);
        put(damaged[i]);
        ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, r), APR_EINVAL);
        ck_assert_ptr_nonnull(rec); /* an empty record, never NULL */
        ck_assert_int_eq(rec->errors, 0);
        /* the message names the item */
        ck_assert_ptr_nonnull(strstr(r->detail, "jobs/" DOMAIN "/" ACME_JOB_STATE));
    }
    /* not a file at all (a directory in its place) */
    st->remove(st, ACME_SG_JOBS, DOMAIN, NULL, pool);
    ck_assert_int_eq(mkdir(apr_pstrcat(pool, base, "/jobs/" DOMAIN, NULL), 0755), 0);
    ck_assert_int_eq(mkdir(apr_pstrcat(pool, base, "/jobs/" DOMAIN "/" ACME_JOB_STATE, NULL),
                           0755), 0);
    ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, r), APR_EINVAL);
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_ne(acme_jobrec_update(st, NULL, DOMAIN, add_error, "x", pool, NULL),
                     APR_SUCCESS);
    big = apr_palloc(pool, ACME_JOBREC_MAX + 16);
    memset(big, ' ', ACME_JOBREC_MAX + 15);
    big[0] = '{';
    big[ACME_JOBREC_MAX + 14] = '}';
    big[ACME_JOBREC_MAX + 15] = 0;
    ck_assert_int_eq(acme_jobrec_parse(&rec, big, strlen(big), pool, r), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(r->detail, "larger than"));
}
END_TEST

/* ---- the read-modify-write ------------------------------------------------- */

static apr_status_t add_error(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    (void)p;
    rec->errors++;
    rec->state = baton;
    return APR_SUCCESS;
}

START_TEST(update_keeps_unknown_members)
{
    acme_store_claim_t *c;
    acme_json_t *j;

    put("{\"errors\": 1, \"future-member\": [1, 2], \"ari\": {\"p256\": {\"start\": 5}}}");
    ck_assert_int_eq(st->claim(st, &c, DOMAIN, JOB_OWNER, apr_time_from_sec(30), pool),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_jobrec_update(st, c, DOMAIN, add_error, "error", pool, NULL),
                     APR_SUCCESS);
    j = stored();
    ck_assert_int_eq(acme_json_getl(j, ACME_JK_ERRORS, NULL), 2);
    ck_assert_str_eq(acme_json_gets(j, ACME_JK_STATE, NULL), "error");
    ck_assert_int_eq(acme_json_array_len(acme_json_getj(j, pool, "future-member", NULL)), 2);
    ck_assert_int_eq(acme_json_getl(j, ACME_JK_ARI, "p256", "start", NULL), 5);
}
END_TEST

static apr_status_t json_only(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    (void)baton; (void)p;
    /* changed in json, not in the view: the view must not put it back */
    acme_json_setl(rec->json, 9, ACME_JK_ERRORS, NULL);
    acme_json_del(rec->json, ACME_JK_STATE, NULL);
    return APR_SUCCESS;
}

START_TEST(update_json_changes_win_over_an_unchanged_view)
{
    acme_json_t *j;

    put("{\"errors\": 1, \"state\": \"error\"}");
    ck_assert_int_eq(acme_jobrec_update(st, NULL, DOMAIN, json_only, NULL, pool, NULL),
                     APR_SUCCESS);
    j = stored();
    ck_assert_int_eq(acme_json_getl(j, ACME_JK_ERRORS, NULL), 9);
    ck_assert(!acme_json_has(j, ACME_JK_STATE, NULL));
}
END_TEST

START_TEST(update_replaces_a_damaged_record)
{
    acme_jobrec_t *rec;

    put("{\"errors\": ");
    ck_assert_int_eq(acme_jobrec_update(st, NULL, DOMAIN, add_error, "error", pool, NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, NULL), APR_SUCCESS);
    ck_assert_int_eq(rec->errors, 1);
}
END_TEST

START_TEST(update_with_a_lost_claim_is_refused)
{
    acme_store_claim_t *mine, *theirs;
    acme_result_t *r = acme_result_make(pool);
    acme_json_t *j;

    ck_assert_int_eq(st->claim(st, &mine, DOMAIN, JOB_OWNER, apr_time_from_sec(30), pool),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_jobrec_update(st, mine, DOMAIN, add_error, "mine", pool, NULL),
                     APR_SUCCESS);
    /* paused past its lease: another takes the domain over and writes */
    fake_now += apr_time_from_sec(31);
    ck_assert_int_eq(st->claim(st, &theirs, DOMAIN, "mod_acme-pid-2@other.test",
                               apr_time_from_sec(30), pool), APR_SUCCESS);
    ck_assert(theirs->token > mine->token);
    ck_assert_int_eq(acme_jobrec_update(st, theirs, DOMAIN, add_error, "theirs", pool, NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_jobrec_update(st, mine, DOMAIN, add_error, "mine", pool, r),
                     ACME_STORE_EFENCED);
    ck_assert_ptr_nonnull(strstr(r->detail, "claim"));
    j = stored();
    ck_assert_str_eq(acme_json_gets(j, ACME_JK_STATE, NULL), "theirs");
    ck_assert_int_eq(acme_json_getl(j, ACME_JK_ERRORS, NULL), 2);
}
END_TEST

/* The interleaving: a notice looks at the record (no claim), a job claims
 * the domain and writes its record, then the notice would write. */
typedef struct {
    int looks;
    acme_store_claim_t *job;
} race_t;

static apr_status_t notice_racing_a_job(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    race_t *race = baton;
    acme_json_t *job;

    if (race->looks++ == 0) {
        ck_assert_int_eq(st->claim(st, &race->job, DOMAIN, JOB_OWNER, apr_time_from_sec(30),
                                   p), APR_SUCCESS);
        job = acme_json_new_object(p);
        acme_json_sets(job, "https://ca.test/order/7", ACME_JK_ORDERS, "p256", NULL);
        acme_json_setl(job, 4, ACME_JK_ERRORS, NULL);
        ck_assert_int_eq(acme_jobrec_update(st, race->job, DOMAIN, acme_jobrec_put, job, p,
                                            NULL), APR_SUCCESS);
    }
    rec->expiring_notified = apr_time_from_sec(1810000000);
    return APR_SUCCESS;
}

START_TEST(notice_while_a_job_holds_the_claim_keeps_the_jobs_record)
{
    race_t race = {0, NULL};
    acme_result_t *r = acme_result_make(pool);
    acme_jobrec_t *rec;
    int due;

    put("{\"errors\": 1}");
    ck_assert_int_eq(acme_jobrec_update(st, NULL, DOMAIN, notice_racing_a_job, &race, pool, r),
                     APR_EBUSY);
    ck_assert_ptr_nonnull(strstr(r->detail, JOB_OWNER));
    ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, NULL), APR_SUCCESS);
    ck_assert_str_eq(acme_json_gets(rec->orders, "p256", NULL), "https://ca.test/order/7");
    ck_assert_int_eq(rec->errors, 4);
    ck_assert(rec->expiring_notified == 0);
    /* the notice is not due while the job works: nothing announced */
    ck_assert_int_eq(acme_jobrec_expiring_mark(&due, st, DOMAIN, apr_time_from_sec(1810000000),
                                               pool, NULL), APR_EBUSY);
    ck_assert(!due);
    /* the job ends; the notice's next look marks it, once, keeping the job's */
    ck_assert_int_eq(st->release(st, race.job, pool), APR_SUCCESS);
    ck_assert_int_eq(acme_jobrec_expiring_mark(&due, st, DOMAIN, apr_time_from_sec(1810000000),
                                               pool, NULL), APR_SUCCESS);
    ck_assert(due);
    ck_assert_int_eq(acme_jobrec_expiring_mark(&due, st, DOMAIN, apr_time_from_sec(1810000000),
                                               pool, NULL), APR_SUCCESS);
    ck_assert(!due);
    ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, NULL), APR_SUCCESS);
    ck_assert_int_eq(rec->errors, 4);
    ck_assert_str_eq(acme_json_gets(rec->orders, "p256", NULL), "https://ca.test/order/7");
    ck_assert(rec->expiring_notified == apr_time_from_sec(1810000000));
}
END_TEST

/* While a notice holds its brief claim, the job cannot take the domain. */
static apr_status_t job_tries_during_notice(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    int *looks = baton;
    acme_store_claim_t *c;

    if ((*looks)++ == 1) {
        ck_assert_int_eq(st->claim(st, &c, DOMAIN, JOB_OWNER, apr_time_from_sec(30), p),
                         APR_EBUSY);
    }
    rec->installed_notified = "2026-02-02T00:00:00Z";
    return APR_SUCCESS;
}

START_TEST(notice_holds_the_claim_only_for_its_write)
{
    acme_store_claim_t *c;
    acme_jobrec_t *rec;
    int looks = 0, due;

    ck_assert_int_eq(acme_jobrec_update(st, NULL, DOMAIN, job_tries_during_notice, &looks, pool,
                                        NULL), APR_SUCCESS);
    ck_assert_int_eq(looks, 2);
    ck_assert_int_eq(st->claim(st, &c, DOMAIN, JOB_OWNER, apr_time_from_sec(30), pool),
                     APR_SUCCESS);
    ck_assert_int_eq(st->release(st, c, pool), APR_SUCCESS);
    ck_assert_int_eq(acme_jobrec_installed_mark(&due, st, DOMAIN, "2026-02-02T00:00:00Z", pool,
                                                NULL), APR_SUCCESS);
    ck_assert(!due); /* already marked */
    ck_assert_int_eq(acme_jobrec_installed_mark(&due, st, DOMAIN, "2026-03-03T00:00:00Z", pool,
                                                NULL), APR_SUCCESS);
    ck_assert(due);
    ck_assert_int_eq(acme_jobrec_read(&rec, st, DOMAIN, pool, NULL), APR_SUCCESS);
    ck_assert_str_eq(rec->installed_notified, "2026-03-03T00:00:00Z");
    ck_assert_int_eq(acme_json_array_len(rec->events), 1);
}
END_TEST

static apr_status_t keep(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    (void)rec; (void)baton; (void)p;
    return ACME_JOBREC_KEEP;
}

START_TEST(update_that_changes_nothing_claims_and_writes_nothing)
{
    static const char odd[] = "{\"errors\":    1}";
    acme_store_claim_t *c;
    const char *data;
    apr_size_t len;

    put(odd); /* a write would format it anew */
    /* a job holds the domain: a look that changes nothing still succeeds */
    ck_assert_int_eq(st->claim(st, &c, DOMAIN, JOB_OWNER, apr_time_from_sec(30), pool),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_jobrec_update(st, NULL, DOMAIN, keep, NULL, pool, NULL), APR_SUCCESS);
    ck_assert_int_eq(st->load(st, ACME_SG_JOBS, DOMAIN, ACME_JOB_STATE, &data, &len, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(data, odd);
}
END_TEST

static Suite *jobrec_suite(void)
{
    Suite *s = suite_create("jobrec");
    TCase *tc = tcase_create("jobrec");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, read_typed_view);
    tcase_add_test(tc, read_wrong_types_are_absent);
    tcase_add_test(tc, read_missing_and_damaged);
    tcase_add_test(tc, update_keeps_unknown_members);
    tcase_add_test(tc, update_json_changes_win_over_an_unchanged_view);
    tcase_add_test(tc, update_replaces_a_damaged_record);
    tcase_add_test(tc, update_with_a_lost_claim_is_refused);
    tcase_add_test(tc, notice_while_a_job_holds_the_claim_keeps_the_jobs_record);
    tcase_add_test(tc, notice_holds_the_claim_only_for_its_write);
    tcase_add_test(tc, update_that_changes_nothing_claims_and_writes_nothing);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(jobrec_suite)
