/* test_status.c: the one status function (acme_status.c) on a real fs store
 * with crafted certificates: every state, its precedence, expiring and due. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "acme_test.h"
#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_names.h"
#include "acme_status.h"

#define DAY apr_time_from_sec(86400)
#define D "example.org"

static apr_pool_t *pool;
static acme_store_t *st;
static acme_job_spec_t spec;
static apr_time_t t0;   /* the test certificate is valid from t0 for 90 days */

static void setup(void)
{
    char base[] = "/tmp/acme-status-test-XXXXXX";
    apr_array_header_t *names, *types;
    const char *err = NULL;

    apr_pool_create(&pool, NULL);
    ck_assert_ptr_nonnull(mkdtemp(base));
    ck_assert_int_eq(acme_store_fs_create(&st, pool, base, &err), APR_SUCCESS);
    names = apr_array_make(pool, 2, sizeof(const char *));
    APR_ARRAY_PUSH(names, const char *) = D;
    APR_ARRAY_PUSH(names, const char *) = "www." D;
    types = apr_array_make(pool, 1, sizeof(acme_key_type_t));
    APR_ARRAY_PUSH(types, acme_key_type_t) = ACME_KEY_P256;
    memset(&spec, 0, sizeof(spec));
    spec.domain = D;
    spec.names = names;
    spec.ca_url = "https://ca.test/dir";
    spec.key_types = types;
    spec.window.is_percent = 1;
    spec.window.percent = 33.0;
    t0 = apr_time_now() - apr_time_from_sec(3600); /* acme_cert_self_signed_pem starts at now-1h */
}

static void teardown(void)
{
    acme_store_fs_remove_all(st, pool);
    apr_pool_destroy(pool);
}

static void put_cert(acme_store_group_t g, const apr_array_header_t *names)
{
    acme_pkey_t *key;
    acme_cert_t *cert;
    const char *pem;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names, NULL, 90 * DAY), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_to_pem(&pem, pool, cert), APR_SUCCESS);
    ck_assert_int_eq(st->save(st, g, D, "cert.p256.pem", pem, strlen(pem), 0, pool),
                     APR_SUCCESS);
}

static void put(acme_store_group_t g, const char *aspect, const char *json)
{
    ck_assert_int_eq(st->save(st, g, D, aspect, json, strlen(json), 0, pool), APR_SUCCESS);
}

static acme_status_t *status_at(apr_interval_time_t after_t0)
{
    acme_status_t *s = NULL;

    ck_assert_int_eq(acme_status_get(&s, st, &spec, NULL, t0 + after_t0, pool), APR_SUCCESS);
    return s;
}

static const char *state_at(apr_interval_time_t after_t0)
{
    return acme_status_state_name(status_at(after_t0)->state);
}

START_TEST(no_certificate_is_pending_and_due_now)
{
    acme_status_t *s = status_at(0);

    ck_assert_str_eq(acme_status_state_name(s->state), "pending");
    ck_assert_int_eq(s->has_cert, 0);
    ck_assert_int_eq(s->due->nelts, 1);
    ck_assert_str_eq(s->next_kind, "due");
    ck_assert_str_eq(s->ca_url, "https://ca.test/dir");
}
END_TEST

START_TEST(valid_certificate_is_ok_then_due_then_expiring)
{
    acme_status_t *s;

    put_cert(ACME_SG_DOMAINS, spec.names);
    s = status_at(DAY);
    ck_assert_str_eq(acme_status_state_name(s->state), "ok");
    ck_assert_int_eq(s->due->nelts, 0);
    ck_assert_str_eq(s->next_kind, "renew");
    ck_assert_ptr_nonnull(s->first);
    ck_assert_str_eq(s->first->issuer ? s->first->issuer : "", D);
    ck_assert_ptr_nonnull(s->first->serial);
    ck_assert_ptr_nonnull(s->first->fingerprint);
    ck_assert_int_eq(s->first->sans->nelts, 2);
    /* 33% window of 90 days: renew about 29.7 days before the end */
    ck_assert(s->renew_at > t0 + 60 * DAY && s->renew_at < t0 + 61 * DAY);
    ck_assert_str_eq(state_at(60 * DAY), "ok");
    s = status_at(61 * DAY);
    ck_assert_str_eq(acme_status_state_name(s->state), "due");
    ck_assert_int_eq(s->expiring, 0);
    /* under a tenth of the lifetime (9 days) left and still not renewed */
    ck_assert_str_eq(state_at(80 * DAY), "due");
    s = status_at(82 * DAY);
    ck_assert_str_eq(acme_status_state_name(s->state), "expiring");
    ck_assert_int_eq(s->expiring, 1);
    ck_assert_str_eq(state_at(100 * DAY), "expiring"); /* expired: still this state */
}
END_TEST

START_TEST(short_window_is_due_before_expiring)
{
    /* renew 5 days before the end: 9 days left is not late yet */
    spec.window.is_percent = 0;
    spec.window.duration = 5 * DAY;
    put_cert(ACME_SG_DOMAINS, spec.names);
    ck_assert_str_eq(state_at(82 * DAY), "ok");
    ck_assert_str_eq(state_at(86 * DAY), "expiring");
}
END_TEST

START_TEST(certificate_missing_a_name_is_pending)
{
    apr_array_header_t *one = apr_array_make(pool, 1, sizeof(const char *));

    APR_ARRAY_PUSH(one, const char *) = D;
    put_cert(ACME_SG_DOMAINS, one);
    ck_assert_str_eq(state_at(DAY), "pending");
    ck_assert_int_eq(status_at(DAY)->certs->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(status_at(DAY)->certs, 0, acme_status_cert_t *)->present, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(status_at(DAY)->certs, 0, acme_status_cert_t *)->covers, 0);
}
END_TEST

/* With a cache the second status parses nothing and says the same; a new
 * file (new mtime) is parsed again; the names are checked every time. */
START_TEST(cache_keeps_facts_by_file_version)
{
    acme_status_cache_t *cache;
    const acme_status_cert_t *a, *b, *c;
    apr_array_header_t *one = apr_array_make(pool, 1, sizeof(const char *));

    ck_assert_int_eq(acme_status_cache_create(&cache, pool), APR_SUCCESS);
    spec.status_cache = cache;
    put_cert(ACME_SG_DOMAINS, spec.names);
    a = APR_ARRAY_IDX(status_at(DAY)->certs, 0, acme_status_cert_t *);
    b = APR_ARRAY_IDX(status_at(DAY)->certs, 0, acme_status_cert_t *);
    ck_assert_ptr_nonnull(a->leaf);   /* parsed */
    ck_assert_ptr_null(b->leaf);      /* from the cache */
    ck_assert_str_eq(a->serial, b->serial);
    ck_assert_str_eq(a->fingerprint, b->fingerprint);
    ck_assert_int_eq(a->not_after, b->not_after);
    ck_assert_int_eq(b->covers, 1);
    ck_assert_str_eq(state_at(DAY), "ok");
    /* the configuration gains a name: the cached SANs no longer cover it */
    {
        apr_array_header_t *more = apr_array_copy(pool, spec.names);
        APR_ARRAY_PUSH(more, const char *) = "new." D;
        spec.names = more;
    }
    ck_assert_int_eq(APR_ARRAY_IDX(status_at(DAY)->certs, 0, acme_status_cert_t *)->covers, 0);
    /* a new certificate file is parsed, not taken from the cache */
    apr_sleep(apr_time_from_msec(20));
    APR_ARRAY_PUSH(one, const char *) = D;
    put_cert(ACME_SG_DOMAINS, one);
    c = APR_ARRAY_IDX(status_at(DAY)->certs, 0, acme_status_cert_t *);
    ck_assert_ptr_nonnull(c->leaf);
    ck_assert_str_ne(c->serial, a->serial);
    spec.status_cache = NULL;
}
END_TEST

START_TEST(damaged_certificate_is_pending_with_a_load_error)
{
    put(ACME_SG_DOMAINS, "cert.p256.pem",
        "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n");
    ck_assert_str_eq(state_at(0), "pending");
    ck_assert_ptr_nonnull(APR_ARRAY_IDX(status_at(0)->certs, 0, acme_status_cert_t *)->load_error);
}
END_TEST

START_TEST(failures_are_error_with_the_last_problem)
{
    acme_status_t *s;
    const char *job = apr_psprintf(pool, "{\"errors\": 2, \"next-attempt\": %" APR_TIME_T_FMT ", "
                                   "\"last-error\": {\"status\": 1, \"problem\": \"urn:ietf:params:"
                                   "acme:error:rateLimited\", \"detail\": \"slow down\"}}",
                                   apr_time_sec(t0) + 86400 * 2);

    put_cert(ACME_SG_DOMAINS, spec.names);
    put(ACME_SG_JOBS, ACME_JOB_STATE, job);
    s = status_at(DAY);
    ck_assert_str_eq(acme_status_state_name(s->state), "error");
    ck_assert_int_eq(s->errors, 2);
    ck_assert_ptr_nonnull(s->last_error);
    ck_assert_str_eq(s->last_error->detail, "slow down");
    ck_assert_str_eq(s->next_kind, "retry");
    ck_assert(s->next == apr_time_from_sec(apr_time_sec(t0) + 86400 * 2));
    /* expiring outranks error: the operator must act before the end */
    ck_assert_str_eq(state_at(85 * DAY), "expiring");
}
END_TEST

START_TEST(error_outranks_pending)
{
    put(ACME_SG_JOBS, ACME_JOB_STATE, "{\"errors\": 1}");
    ck_assert_str_eq(state_at(0), "error");
    ck_assert_ptr_null(status_at(0)->last_error); /* none recorded: none invented */
}
END_TEST

START_TEST(order_in_flight_or_run_under_way_is_renewing)
{
    put_cert(ACME_SG_DOMAINS, spec.names);
    put(ACME_SG_JOBS, ACME_JOB_STATE,
        "{\"errors\": 3, \"orders\": {\"p256\": \"https://ca.test/order/1\"}}");
    ck_assert_str_eq(state_at(85 * DAY), "renewing");
    ck_assert_int_eq(status_at(85 * DAY)->expiring, 1);  /* still flagged */
    ck_assert_int_eq(status_at(0)->in_flight, 1);
    put(ACME_SG_JOBS, ACME_JOB_STATE, "{\"events\": [{\"time\": \"2026-01-01T00:00:00Z\", "
        "\"type\": \"errored\"}, {\"time\": \"2026-01-01T00:00:01Z\", \"type\": \"renewing\"}]}");
    ck_assert_str_eq(state_at(DAY), "renewing");
    put(ACME_SG_JOBS, ACME_JOB_STATE, "{\"events\": [{\"time\": \"2026-01-01T00:00:01Z\", "
        "\"type\": \"renewing\"}, {\"time\": \"2026-01-01T00:00:02Z\", \"type\": \"staged\"}, "
        "{\"time\": \"2026-01-01T00:00:03Z\", \"type\": \"installed\"}]}");
    ck_assert_str_eq(state_at(DAY), "ok");
}
END_TEST

START_TEST(staged_result_is_renewing_until_activation)
{
    acme_status_t *s;

    put(ACME_SG_STAGING, ACME_JOB_META, "{\"names\": [\"" D "\", \"www." D "\"]}");
    s = status_at(0);
    ck_assert_str_eq(acme_status_state_name(s->state), "renewing");
    ck_assert_int_eq(s->staged, 1);
    ck_assert_int_eq(s->due->nelts, 0);
    ck_assert_str_eq(s->next_kind, "activation");
    /* a result for fewer names than configured does not count */
    put(ACME_SG_STAGING, ACME_JOB_META, "{\"names\": [\"" D "\"]}");
    ck_assert_str_eq(state_at(0), "pending");
}
END_TEST

/* A shared store: another server's result for other names (a rolling
 * change) holds the order back for an hour, not for ever. */
START_TEST(others_staged_result_waits_an_hour_in_a_shared_store)
{
    acme_store_t *file = st, *shared = apr_pmemdup(pool, st, sizeof(*st));
    acme_status_t *s;

    shared->kind = "etcd";
    shared->flags = ACME_STORE_SHARED;
    put(ACME_SG_STAGING, ACME_JOB_META, apr_psprintf(pool, "{\"names\": [\"" D "\"], "
        "\"staged\": \"%s\"}", acme_time_rfc3339(pool, t0)));
    st = shared;
    s = status_at(0);
    ck_assert_int_eq(s->staged, 1);
    ck_assert_int_eq(s->due->nelts, 0);
    ck_assert_int_eq(status_at(apr_time_from_sec(3600))->staged, 0);
    st = file;
    ck_assert_int_eq(status_at(0)->staged, 0);
}
END_TEST

START_TEST(renewal_request_is_due_for_every_type)
{
    acme_status_t *s;

    put_cert(ACME_SG_DOMAINS, spec.names);
    put(ACME_SG_JOBS, ACME_JOB_RENEW_REQUEST, "{\"by\": \"acmectl\"}");
    s = status_at(DAY);
    ck_assert_str_eq(acme_status_state_name(s->state), "due");
    ck_assert_int_eq(s->renew_requested, 1);
    ck_assert_int_eq(s->due->nelts, 1);
    ck_assert_str_eq(s->next_kind, "due");
}
END_TEST

START_TEST(config_problem_outranks_everything)
{
    acme_status_t *s = NULL;

    put(ACME_SG_STAGING, ACME_JOB_META, "{\"names\": [\"" D "\", \"www." D "\"]}");
    ck_assert_int_eq(acme_status_get(&s, st, &spec, "no SSL virtual host", t0, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(acme_status_state_name(s->state), "missing-config");
    ck_assert_str_eq(s->reason, "no SSL virtual host");
    ck_assert_str_eq(s->next_kind, "none");
}
END_TEST

START_TEST(memo_keeps_backoff_the_store_could_not_save)
{
    acme_job_memo_t memo;
    acme_status_t *s;

    memset(&memo, 0, sizeof(memo));
    memo.errors = 4;
    memo.next_attempt = t0 + DAY;
    spec.memo = &memo;
    s = status_at(0);
    ck_assert_str_eq(acme_status_state_name(s->state), "error");
    ck_assert_int_eq(s->errors, 4);
    ck_assert(s->next_attempt == t0 + DAY);
}
END_TEST

START_TEST(ari_answer_for_this_certificate_sets_renew_at)
{
    acme_status_t *s;
    const acme_status_cert_t *c;
    apr_time_t start = t0 + 40 * DAY;

    spec.ari = 1;
    put_cert(ACME_SG_DOMAINS, spec.names);
    put(ACME_SG_JOBS, ACME_JOB_STATE, "{}");
    s = status_at(DAY);
    c = APR_ARRAY_IDX(s->certs, 0, acme_status_cert_t *);
    if (!c->ari_id) {
        /* self-signed without an AKI: ARI cannot name it, the window rules */
        ck_assert_int_eq(s->ari_due, 0);
        return;
    }
    ck_assert_int_eq(s->ari_due, 1); /* never asked about this certificate */
    put(ACME_SG_JOBS, ACME_JOB_STATE, apr_psprintf(pool,
        "{\"ari\": {\"p256\": {\"cert-id\": \"%s\", \"start\": %" APR_TIME_T_FMT ", \"end\": %"
        APR_TIME_T_FMT ", \"chosen\": %" APR_TIME_T_FMT ", \"next-poll\": %" APR_TIME_T_FMT "}}}",
        c->ari_id, apr_time_sec(start), apr_time_sec(start + DAY),
        apr_time_sec(start + apr_time_from_sec(3600)), apr_time_sec(t0 + 2 * DAY)));
    s = status_at(DAY);
    ck_assert_int_eq(s->ari_due, 0);
    ck_assert(s->renew_at == start + apr_time_from_sec(3600));
    ck_assert_str_eq(state_at(41 * DAY), "due");
}
END_TEST

static Suite *status_suite(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("states");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, no_certificate_is_pending_and_due_now);
    tcase_add_test(tc, valid_certificate_is_ok_then_due_then_expiring);
    tcase_add_test(tc, short_window_is_due_before_expiring);
    tcase_add_test(tc, certificate_missing_a_name_is_pending);
    tcase_add_test(tc, cache_keeps_facts_by_file_version);
    tcase_add_test(tc, damaged_certificate_is_pending_with_a_load_error);
    tcase_add_test(tc, failures_are_error_with_the_last_problem);
    tcase_add_test(tc, error_outranks_pending);
    tcase_add_test(tc, order_in_flight_or_run_under_way_is_renewing);
    tcase_add_test(tc, staged_result_is_renewing_until_activation);
    tcase_add_test(tc, others_staged_result_waits_an_hour_in_a_shared_store);
    tcase_add_test(tc, renewal_request_is_due_for_every_type);
    tcase_add_test(tc, config_problem_outranks_everything);
    tcase_add_test(tc, memo_keeps_backoff_the_store_could_not_save);
    tcase_add_test(tc, ari_answer_for_this_certificate_sets_renew_at);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(status_suite)
