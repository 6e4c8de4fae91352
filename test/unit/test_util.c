/* test_util.c: base64url, durations, names, RFC 3339 time and the result
 * record (problem documents, classification). */
#include <check.h>
#include <string.h>
#include <stdlib.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
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

static void keep_status(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    (void)file; (void)line; (void)level; (void)msg;
    *(apr_status_t *)baton = rv;
}

/* The core's own codes reach the logger as 0: apr_strerror() has no words
 * for them ("APR does not understand this error code"); APR's are kept. */
START_TEST(log_passes_no_private_status_code)
{
    apr_status_t seen = 1;

    acme_log_set(keep_status, &seen, ACME_LOG_ERR);
    acme_log(ACME_LOG_MARK, ACME_LOG_ERR, APR_OS_START_USERERR + 71, "fenced");
    ck_assert_int_eq(seen, APR_SUCCESS);
    acme_log(ACME_LOG_MARK, ACME_LOG_ERR, APR_ENOENT, "missing");
    ck_assert_int_eq(seen, APR_ENOENT);
    acme_log_set(NULL, NULL, 0);
}
END_TEST

START_TEST(b64url_rfc4648_vectors)
{
    /* RFC 4648 section 10 vectors, without padding */
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *out[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    int i;

    for (i = 0; i < 7; ++i) {
        unsigned char *d;
        apr_size_t n;
        ck_assert_str_eq(acme_b64url_encode(pool, (const unsigned char *)in[i], strlen(in[i])), out[i]);
        ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, out[i]), APR_SUCCESS);
        ck_assert_uint_eq(n, strlen(in[i]));
        ck_assert(memcmp(d, in[i], n) == 0);
    }
}
END_TEST

START_TEST(b64url_url_alphabet)
{
    const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
    unsigned char *d;
    apr_size_t n;

    ck_assert_str_eq(acme_b64url_encode(pool, bytes, 3), "-_-_");
    ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, "-_-_"), APR_SUCCESS);
    ck_assert_uint_eq(n, 3);
    ck_assert(memcmp(d, bytes, 3) == 0);
}
END_TEST

START_TEST(b64url_malformed)
{
    unsigned char *d;
    apr_size_t n;

    ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, "Zm9v+"), APR_EINVAL);   /* '+' not url */
    ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, "Zm9v/"), APR_EINVAL);
    ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, "Z"), APR_EINVAL);       /* 1 char */
    ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, "Zm9 v"), APR_EINVAL);
    ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, "Zh"), APR_EINVAL);      /* non-zero tail bits */
    ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, "Zm8="), APR_SUCCESS);   /* padding tolerated */
    ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(b64url_tokens)
{
    ck_assert(acme_b64url_is_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", 128));
    ck_assert(!acme_b64url_is_token("", 128));
    ck_assert(!acme_b64url_is_token(NULL, 128));
    ck_assert(!acme_b64url_is_token("..", 128));
    ck_assert(!acme_b64url_is_token("a/b", 128));
    ck_assert(!acme_b64url_is_token("abc%2e", 128));
    ck_assert(!acme_b64url_is_token("abcdef", 5));
}
END_TEST

START_TEST(durations)
{
    apr_interval_time_t d;

    ck_assert_int_eq(acme_duration_parse(&d, "30s", "s"), APR_SUCCESS);
    ck_assert(d == apr_time_from_sec(30));
    ck_assert_int_eq(acme_duration_parse(&d, "5m", "s"), APR_SUCCESS);
    ck_assert(d == apr_time_from_sec(300));
    ck_assert_int_eq(acme_duration_parse(&d, "2h", "s"), APR_SUCCESS);
    ck_assert(d == apr_time_from_sec(7200));
    ck_assert_int_eq(acme_duration_parse(&d, "30d", "s"), APR_SUCCESS);
    ck_assert(d == apr_time_from_sec(30 * 86400));
    ck_assert_int_eq(acme_duration_parse(&d, "15", "s"), APR_SUCCESS);
    ck_assert(d == apr_time_from_sec(15));
    ck_assert_int_eq(acme_duration_parse(&d, "250ms", "s"), APR_SUCCESS);
    ck_assert(d == 250000);
    ck_assert_int_eq(acme_duration_parse(&d, "-5s", "s"), APR_EINVAL);
    ck_assert_int_eq(acme_duration_parse(&d, "5x", "s"), APR_EINVAL);
    ck_assert_int_eq(acme_duration_parse(&d, "", "s"), APR_EINVAL);
    ck_assert_int_eq(acme_duration_parse(&d, "s", "s"), APR_EINVAL);
    ck_assert_int_eq(acme_duration_parse(&d, "99999999999999999999d", "s"), APR_EINVAL);
    ck_assert_str_eq(acme_duration_format(pool, apr_time_from_sec(86400 * 3)), "3d");
    ck_assert_str_eq(acme_duration_format(pool, apr_time_from_sec(90)), "90s");
}
END_TEST

START_TEST(names)
{
    ck_assert(acme_name_is_valid("example.org"));
    ck_assert(acme_name_is_valid("a-b.example.org"));
    ck_assert(acme_name_is_valid("localhost"));
    ck_assert(acme_name_is_valid("*.example.org"));
    ck_assert(acme_name_is_valid("127.0.0.1"));
    ck_assert(acme_name_is_valid("::1"));
    ck_assert(!acme_name_is_valid("exa mple.org"));
    ck_assert(!acme_name_is_valid(""));
    ck_assert(!acme_name_is_valid("-a.example.org"));
    ck_assert(!acme_name_is_valid("a-.example.org"));
    ck_assert(!acme_name_is_valid("a..b"));
    ck_assert(!acme_name_is_valid("example.org."));
    ck_assert(!acme_name_is_valid("*.*.example.org"));
    ck_assert(!acme_name_is_valid("a*.example.org"));
    ck_assert(!acme_name_is_valid("ex_ample.org"));
    ck_assert(!acme_name_is_valid("300.1.1.1"));
    ck_assert(!acme_name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org")); /* 64 */
    ck_assert(acme_name_is_ip("10.1.2.3"));
    ck_assert(!acme_name_is_ip("example.org"));
    ck_assert(acme_name_covers("*.example.org", "www.example.org"));
    ck_assert(!acme_name_covers("*.example.org", "a.b.example.org"));
    ck_assert(!acme_name_covers("*.example.org", "example.org"));
    ck_assert(acme_name_covers("Example.ORG", "example.org"));
}
END_TEST

START_TEST(reverse_dns_names)
{
    ck_assert_str_eq(acme_ip_from_reverse_name(pool, "1.0.0.127.in-addr.arpa"), "127.0.0.1");
    ck_assert_str_eq(acme_ip_from_reverse_name(pool, "4.3.2.1.IN-ADDR.ARPA"), "1.2.3.4");
    ck_assert_str_eq(acme_ip_from_reverse_name(pool,
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"), "::1");
    ck_assert_str_eq(acme_ip_from_reverse_name(pool,
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa"),
        "4321:0:1:2:3:4:567:89ab");
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, "example.org"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, "in-addr.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, ".in-addr.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, "1.0.0.256.in-addr.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, "0.0.127.in-addr.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, "1.0.0.0.127.in-addr.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, "1.0.x.127.in-addr.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, "1..0.127.in-addr.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool,
        "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, "1.0.ip6.arpa"));
    ck_assert_ptr_null(acme_ip_from_reverse_name(pool, NULL));
}
END_TEST

START_TEST(rfc3339)
{
    apr_time_t t;

    ck_assert_int_eq(acme_time_parse_rfc3339(&t, "2026-11-23T10:20:30Z"), APR_SUCCESS);
    ck_assert_str_eq(acme_time_rfc3339(pool, t), "2026-11-23T10:20:30Z");
    ck_assert_int_eq(acme_time_parse_rfc3339(&t, "2026-11-23T12:20:30.123456+02:00"), APR_SUCCESS);
    ck_assert_str_eq(acme_time_rfc3339(pool, t), "2026-11-23T10:20:30Z");
    ck_assert_int_eq(acme_time_parse_rfc3339(&t, "2026-11-23"), APR_EINVAL);
    ck_assert_int_eq(acme_time_parse_rfc3339(&t, "2026-13-01T00:00:00Z"), APR_EINVAL);
    ck_assert_int_eq(acme_time_parse_rfc3339(&t, "2026-11-23T10:20:30"), APR_EINVAL);
    ck_assert_int_eq(acme_time_parse_rfc3339(&t, "2026-11-23T10:20:30Zjunk"), APR_EINVAL);
    ck_assert_int_eq(acme_time_parse_rfc3339(&t, "garbage"), APR_EINVAL);
}
END_TEST

START_TEST(random_below_range)
{
    int i;

    for (i = 0; i < 1000; ++i) {
        ck_assert(acme_random_below(7) < 7);
    }
    ck_assert_uint_eq(acme_random_below(1), 0);
}
END_TEST

static const char *problem_doc =
    "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
    "\"detail\":\"Some identifiers were rejected\","
    "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:malformed\","
    "\"detail\":\"Invalid underscore in DNS name\","
    "\"identifier\":{\"type\":\"dns\",\"value\":\"_example.org\"}},"
    "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
    "\"detail\":\"This CA will not issue for this name\","
    "\"identifier\":{\"type\":\"dns\",\"value\":\"example.net\"}}, 17]}";

START_TEST(problem_with_subproblems)
{
    acme_json_t *j;
    acme_result_t *r = acme_result_make(pool);
    const acme_subproblem_t *sp;

    ck_assert_int_eq(acme_json_parse(&j, pool, problem_doc, strlen(problem_doc), NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_result_from_problem(r, j, 400), APR_SUCCESS);
    ck_assert_str_eq(acme_problem_short(r->problem), "rejectedIdentifier");
    ck_assert_int_eq(r->http_status, 400);
    ck_assert(r->status != APR_SUCCESS);
    ck_assert_int_eq(r->subproblems->nelts, 2); /* the junk entry 17 is skipped */
    sp = APR_ARRAY_IDX(r->subproblems, 0, acme_subproblem_t *);
    ck_assert_str_eq(sp->id_value, "_example.org");
    ck_assert_str_eq(sp->id_type, "dns");
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_CONFIG);
    ck_assert_ptr_nonnull(strstr(acme_result_describe(r, pool), "example.net"));
}
END_TEST

START_TEST(problem_malformed)
{
    acme_json_t *j;
    acme_result_t *r = acme_result_make(pool);
    const char *arr = "[1,2]", *nofields = "{\"status\":400}", *wrongtype = "{\"type\":5,\"detail\":[]}";

    ck_assert_int_eq(acme_result_from_problem(r, NULL, 500), APR_EINVAL);
    ck_assert_int_eq(acme_json_parse(&j, pool, arr, strlen(arr), NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_result_from_problem(r, j, 500), APR_EINVAL);
    ck_assert_int_eq(acme_json_parse(&j, pool, nofields, strlen(nofields), NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_result_from_problem(r, j, 500), APR_EINVAL);
    ck_assert_int_eq(acme_json_parse(&j, pool, wrongtype, strlen(wrongtype), NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_result_from_problem(r, j, 500), APR_EINVAL);
}
END_TEST

START_TEST(classify)
{
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_NONE);
    acme_result_set(r, APR_EGENERAL, ACME_PROBLEM_NS "rateLimited", "too many");
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_RATELIMIT);
    acme_result_set(r, APR_EGENERAL, ACME_PROBLEM_NS "serverInternal", "oops");
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_TRANSIENT);
    r->http_status = 503;
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_RATELIMIT);
    acme_result_set(r, APR_EGENERAL, ACME_PROBLEM_NS "externalAccountRequired", "eab");
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_CONFIG);
    acme_result_set(r, APR_EGENERAL, ACME_PROBLEM_NS "unauthorized", "wrong key authz");
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_VALIDATION);
    acme_result_set(r, APR_ECONNREFUSED, "acme:network", "connection refused");
    r->http_status = 0;
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_TRANSIENT);
}
END_TEST

START_TEST(result_json_roundtrip)
{
    acme_json_t *j;
    acme_result_t *r = acme_result_make(pool), *r2 = acme_result_make(pool);

    ck_assert_int_eq(acme_json_parse(&j, pool, problem_doc, strlen(problem_doc), NULL), APR_SUCCESS);
    acme_result_from_problem(r, j, 400);
    acme_result_activity(r, "creating order for %s", "example.org");
    r->retry_after = apr_time_from_sec(1800000000);
    acme_result_from_json(r2, acme_result_to_json(r, pool));
    ck_assert_str_eq(r2->problem, r->problem);
    ck_assert_str_eq(r2->detail, r->detail);
    ck_assert_str_eq(r2->activity, "creating order for example.org");
    ck_assert_int_eq(r2->http_status, 400);
    ck_assert(r2->retry_after == r->retry_after);
    ck_assert_int_eq(r2->subproblems->nelts, 2);
}
END_TEST

/* What reaches a terminal or a log from the CA or the store. */
START_TEST(printable_escapes_controls_and_bidi)
{
    ck_assert_str_eq(acme_str_printable(pool, "plain \xc3\xa9t\xc3\xa9"), "plain \xc3\xa9t\xc3\xa9");
    ck_assert_str_eq(acme_str_printable(pool, "a\nb\x1b[31m"), "a\\x0Ab\\x1B[31m");
    ck_assert_str_eq(acme_str_printable(pool, "bad \xff\xc3"), "bad \\xFF\\xC3");
    ck_assert_str_eq(acme_str_printable(pool, "\xc2\x9b"), "\\xC2\\x9B");  /* C1 CSI */
    /* RIGHT-TO-LEFT OVERRIDE, LEFT-TO-RIGHT ISOLATE, POP DIRECTIONAL ISOLATE, ALM */
    ck_assert_str_eq(acme_str_printable(pool, "gro.\xe2\x80\xae" "elpmaxe"), "gro.\\u202Eelpmaxe");
    ck_assert_str_eq(acme_str_printable(pool, "\xe2\x81\xa6x\xe2\x81\xa9\xd8\x9c"),
                     "\\u2066x\\u2069\\u061C");
    ck_assert_str_eq(acme_str_printable(pool, NULL), "");
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, b64url_rfc4648_vectors);
    tcase_add_test(tc, log_passes_no_private_status_code);
    tcase_add_test(tc, b64url_url_alphabet);
    tcase_add_test(tc, b64url_malformed);
    tcase_add_test(tc, b64url_tokens);
    tcase_add_test(tc, durations);
    tcase_add_test(tc, names);
    tcase_add_test(tc, rfc3339);
    tcase_add_test(tc, reverse_dns_names);
    tcase_add_test(tc, random_below_range);
    tcase_add_test(tc, problem_with_subproblems);
    tcase_add_test(tc, problem_malformed);
    tcase_add_test(tc, classify);
    tcase_add_test(tc, result_json_roundtrip);
    tcase_add_test(tc, printable_escapes_controls_and_bidi);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(util_suite)
