/* test_activate.c: a staged result becomes active (acme_activate.c) on a
 * real fs store in a temp dir: the checks, the refusal, the move, the key
 * types kept, and a shared store's claim and other servers' results. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "acme_test.h"
#include "acme_util.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_names.h"
#include "acme_job.h"
#include "acme_activate.h"

#define D "example.org"

static apr_pool_t *pool;
static acme_store_t *st;
static acme_activate_t act;
static int goods;

static void count_good(void *baton, const char *cert, apr_size_t clen, const char *key,
                       apr_size_t klen)
{
    (void)baton; (void)cert; (void)key;
    ck_assert_uint_gt(clen, 0);
    ck_assert_uint_gt(klen, 0);
    ++goods;
}

static apr_array_header_t *names_of(const char *a, const char *b)
{
    apr_array_header_t *names = apr_array_make(pool, 2, sizeof(const char *));

    APR_ARRAY_PUSH(names, const char *) = a;
    if (b) APR_ARRAY_PUSH(names, const char *) = b;
    return names;
}

static void setup(void)
{
    char base[] = "/tmp/acme-activate-test-XXXXXX";
    apr_array_header_t *types;
    const char *err = NULL;

    apr_pool_create(&pool, NULL);
    ck_assert_ptr_nonnull(mkdtemp(base));
    ck_assert_int_eq(acme_store_fs_create(&st, pool, base, &err), APR_SUCCESS);
    types = apr_array_make(pool, 2, sizeof(acme_key_type_t));
    APR_ARRAY_PUSH(types, acme_key_type_t) = ACME_KEY_P256;
    memset(&act, 0, sizeof(act));
    act.store = st;
    act.domain = D;
    act.names = names_of(D, "www." D);
    act.key_types = types;
    act.good = count_good;
    goods = 0;
}

static void teardown(void)
{
    acme_store_fs_remove_all(st, pool);
    apr_pool_destroy(pool);
}

/* A pair of type t for names into group g; the certificate's PEM is
 * returned. key_of_other: the key file holds another key. */
static const char *put_pair(acme_store_group_t g, acme_key_type_t t,
                            const apr_array_header_t *names, int key_of_other)
{
    acme_pkey_t *key, *other;
    const char *cert, *kpem;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, t), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_self_signed_pem(&cert, pool, key, names, NULL,
                                               apr_time_from_sec(90 * 86400)), APR_SUCCESS);
    if (key_of_other) {
        ck_assert_int_eq(acme_pkey_gen(&other, pool, t), APR_SUCCESS);
        key = other;
    }
    ck_assert_int_eq(acme_pkey_to_pem(&kpem, pool, key), APR_SUCCESS);
    ck_assert_int_eq(st->save(st, g, D, acme_job_cert_file(pool, t), cert, strlen(cert), 0, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(st->save(st, g, D, acme_job_key_file(pool, t), kpem, strlen(kpem),
                              ACME_STORE_SECRET, pool), APR_SUCCESS);
    if (g == ACME_SG_STAGING) {
        ck_assert_int_eq(st->save(st, g, D, ACME_JOB_META, "{}", 2, 0, pool), APR_SUCCESS);
    }
    return cert;
}

static const char *item(acme_store_group_t g, const char *aspect)
{
    const char *data;
    apr_size_t len;

    return st->load(st, g, D, aspect, &data, &len, pool) == APR_SUCCESS ? data : NULL;
}

/* A view of the same files that says it is shared (as etcd does). */
static void make_shared(void)
{
    acme_store_t *shared = apr_pmemdup(pool, st, sizeof(*st));

    shared->flags = ACME_STORE_SHARED;
    act.store = shared;
}

START_TEST(good_staged_pair_is_activated)
{
    const char *cert = put_pair(ACME_SG_STAGING, ACME_KEY_P256, act.names, 0);
    int busy = -1;

    ck_assert_int_eq(acme_activate_domain(&act, &busy, pool), 1);
    ck_assert_int_eq(busy, 0);
    ck_assert_int_eq(goods, 1);
    ck_assert_str_eq(item(ACME_SG_DOMAINS, "cert.p256.pem"), cert);
    ck_assert_ptr_null(item(ACME_SG_STAGING, ACME_JOB_META));
}
END_TEST

START_TEST(pair_with_another_key_is_refused_and_removed)
{
    put_pair(ACME_SG_STAGING, ACME_KEY_P256, act.names, 1);

    ck_assert_int_eq(acme_activate_domain(&act, NULL, pool), 0);
    ck_assert_int_eq(goods, 0);
    ck_assert_ptr_null(item(ACME_SG_DOMAINS, "cert.p256.pem"));
    ck_assert_ptr_null(item(ACME_SG_STAGING, ACME_JOB_META));
}
END_TEST

START_TEST(check_says_which_type_is_bad_and_why)
{
    const char *err = NULL;
    acme_key_type_t bad = ACME_KEY_NONE;
    apr_status_t rv;

    put_pair(ACME_SG_STAGING, ACME_KEY_P256, names_of(D, NULL), 0); /* www. is missing */
    ck_assert_int_eq(acme_activate_check(&act, &err, &bad, &rv, pool), ACME_STAGED_BAD);
    ck_assert_int_eq(bad, ACME_KEY_P256);
    ck_assert_int_ne(rv, APR_SUCCESS);
    ck_assert_ptr_nonnull(err);
    /* the check alone changes nothing; the refusal removes it */
    ck_assert_ptr_nonnull(item(ACME_SG_STAGING, ACME_JOB_META));
    acme_activate_refuse(&act, bad, rv, err, pool);
    ck_assert_ptr_null(item(ACME_SG_STAGING, ACME_JOB_META));
}
END_TEST

START_TEST(the_active_certificate_staged_again_is_nothing_new)
{
    const char *cert = put_pair(ACME_SG_DOMAINS, ACME_KEY_P256, act.names, 0);
    const char *err = NULL;
    acme_key_type_t bad;
    apr_status_t rv;
    const char *kf = acme_job_key_file(pool, ACME_KEY_P256), *key = item(ACME_SG_DOMAINS, kf);

    ck_assert_ptr_nonnull(key);
    ck_assert_int_eq(st->save(st, ACME_SG_STAGING, D, "cert.p256.pem", cert, strlen(cert), 0,
                              pool), APR_SUCCESS);
    ck_assert_int_eq(st->save(st, ACME_SG_STAGING, D, kf, key, strlen(key), ACME_STORE_SECRET,
                              pool), APR_SUCCESS);
    ck_assert_int_eq(st->save(st, ACME_SG_STAGING, D, ACME_JOB_META, "{}", 2, 0, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_activate_check(&act, &err, &bad, &rv, pool), ACME_STAGED_NONE);
    ck_assert_int_eq(acme_activate_domain(&act, NULL, pool), 0);
    ck_assert_ptr_null(item(ACME_SG_STAGING, ACME_JOB_META));   /* cleared, not a restart */
    ck_assert_str_eq(item(ACME_SG_DOMAINS, "cert.p256.pem"), cert);
}
END_TEST

START_TEST(types_not_renewed_keep_their_active_files)
{
    const char *p384, *p256;

    APR_ARRAY_PUSH((apr_array_header_t *)act.key_types, acme_key_type_t) = ACME_KEY_P384;
    p384 = put_pair(ACME_SG_DOMAINS, ACME_KEY_P384, act.names, 0);
    put_pair(ACME_SG_DOMAINS, ACME_KEY_P256, act.names, 0);
    p256 = put_pair(ACME_SG_STAGING, ACME_KEY_P256, act.names, 0);

    ck_assert_int_eq(acme_activate_domain(&act, NULL, pool), 1);
    ck_assert_str_eq(item(ACME_SG_DOMAINS, "cert.p256.pem"), p256);
    ck_assert_str_eq(item(ACME_SG_DOMAINS, "cert.p384.pem"), p384);
    ck_assert_ptr_nonnull(item(ACME_SG_DOMAINS, acme_job_key_file(pool, ACME_KEY_P384)));
}
END_TEST

START_TEST(shared_store_leaves_another_servers_result_alone)
{
    put_pair(ACME_SG_STAGING, ACME_KEY_P256, names_of("other.org", NULL), 0);
    make_shared();

    ck_assert_int_eq(acme_activate_domain(&act, NULL, pool), 0);
    ck_assert_ptr_nonnull(item(ACME_SG_STAGING, ACME_JOB_META));
    ck_assert_ptr_null(item(ACME_SG_DOMAINS, "cert.p256.pem"));
    /* a local store refuses the same result: it can only be this server's */
    act.store = st;
    ck_assert_int_eq(acme_activate_domain(&act, NULL, pool), 0);
    ck_assert_ptr_null(item(ACME_SG_STAGING, ACME_JOB_META));
}
END_TEST

START_TEST(shared_store_activates_every_key_type_the_fleet_made)
{
    const char *rsa;

    /* this server is configured for P-256 only; the fleet made RSA too */
    put_pair(ACME_SG_STAGING, ACME_KEY_P256, act.names, 0);
    rsa = put_pair(ACME_SG_STAGING, ACME_KEY_RSA2048, act.names, 0);
    make_shared();
    ck_assert_int_eq(acme_activate_domain(&act, NULL, pool), 1);
    ck_assert_str_eq(item(ACME_SG_DOMAINS, acme_job_cert_file(pool, ACME_KEY_RSA2048)), rsa);
    ck_assert_int_eq(goods, 2);
}
END_TEST

START_TEST(shared_store_waits_for_anothers_claim)
{
    acme_store_claim_t *c;
    int busy = 0;

    put_pair(ACME_SG_STAGING, ACME_KEY_P256, act.names, 0);
    make_shared();
    ck_assert_int_eq(st->claim(st, &c, D, "another@host", apr_time_from_sec(30), pool),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_activate_domain(&act, &busy, pool), 0);
    ck_assert_int_eq(busy, 1);
    ck_assert_ptr_nonnull(item(ACME_SG_STAGING, ACME_JOB_META));
    st->release(st, c, pool);
    ck_assert_int_eq(acme_activate_domain(&act, &busy, pool), 1);
    ck_assert_int_eq(busy, 0);
}
END_TEST

START_TEST(staged_names_and_the_marker)
{
    apr_hash_t *h;
    apr_time_t mt;

    ck_assert_int_eq(apr_hash_count(acme_activate_staged_names(st, pool)), 0);
    put_pair(ACME_SG_STAGING, ACME_KEY_P256, act.names, 0);
    h = acme_activate_staged_names(st, pool);
    ck_assert_int_eq(apr_hash_count(h), 1);
    ck_assert_ptr_nonnull(apr_hash_get(h, D, APR_HASH_KEY_STRING));
    acme_activate_mark(st, pool);   /* a local store: nobody else looks */
    ck_assert_int_ne(st->mtime(st, ACME_SG_STAGING, ACME_ACTIVATE_BATCH_NAME,
                               ACME_ACTIVATE_BATCH_STAGED, &mt, pool), APR_SUCCESS);
    make_shared();
    acme_activate_mark(act.store, pool);
    ck_assert_int_eq(st->mtime(st, ACME_SG_STAGING, ACME_ACTIVATE_BATCH_NAME,
                               ACME_ACTIVATE_BATCH_STAGED, &mt, pool), APR_SUCCESS);
}
END_TEST

static Suite *activate_suite(void)
{
    Suite *s = suite_create("activate");
    TCase *tc = tcase_create("activate");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, good_staged_pair_is_activated);
    tcase_add_test(tc, pair_with_another_key_is_refused_and_removed);
    tcase_add_test(tc, check_says_which_type_is_bad_and_why);
    tcase_add_test(tc, the_active_certificate_staged_again_is_nothing_new);
    tcase_add_test(tc, types_not_renewed_keep_their_active_files);
    tcase_add_test(tc, shared_store_leaves_another_servers_result_alone);
    tcase_add_test(tc, shared_store_activates_every_key_type_the_fleet_made);
    tcase_add_test(tc, shared_store_waits_for_anothers_claim);
    tcase_add_test(tc, staged_names_and_the_marker);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(activate_suite)
