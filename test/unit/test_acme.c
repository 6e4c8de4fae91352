/* test_acme.c: the ACME engine without a network: parsers of the CA's
 * objects and headers (with malformed input), and the client over a fake
 * acme_http_t (nonces, badNonce retries, polling, error mapping). */
#include <check.h>
#include <string.h>
#include <stdlib.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_http.h"
#include "acme_acme.h"
#include "acme_renew.h"
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

static acme_json_t *js(const char *text)
{
    acme_json_t *j = NULL;
    const char *err;

    ck_assert_msg(acme_json_parse(&j, pool, text, strlen(text), &err) == APR_SUCCESS,
                  "test JSON does not parse: %s", text);
    return j;
}

static int contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* ---- directory ------------------------------------------------------------------- */

#define DIR_OK \
    "{\"newNonce\":\"https://ca/nonce\",\"newAccount\":\"https://ca/acct\"," \
    "\"newOrder\":\"https://ca/order\",\"revokeCert\":\"https://ca/revoke\"," \
    "\"keyChange\":\"https://ca/kc\",\"renewalInfo\":\"https://ca/ari\"," \
    "\"meta\":{\"termsOfService\":\"https://ca/tos\",\"website\":\"https://ca\"," \
    "\"externalAccountRequired\":true,\"profiles\":{\"classic\":\"90 days\"," \
    "\"shortlived\":\"6 days\"}}}"

START_TEST(directory_full)
{
    acme_directory_t *d;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_directory_parse(&d, pool, js(DIR_OK), "https://ca/dir", r),
                     APR_SUCCESS);
    ck_assert_str_eq(d->new_nonce, "https://ca/nonce");
    ck_assert_str_eq(d->new_account, "https://ca/acct");
    ck_assert_str_eq(d->new_order, "https://ca/order");
    ck_assert_str_eq(d->revoke_cert, "https://ca/revoke");
    ck_assert_str_eq(d->key_change, "https://ca/kc");
    ck_assert_str_eq(d->renewal_info, "https://ca/ari");
    ck_assert_str_eq(d->terms_of_service, "https://ca/tos");
    ck_assert_str_eq(d->website, "https://ca");
    ck_assert_int_eq(d->eab_required, 1);
    ck_assert_str_eq(apr_table_get(d->profiles, "classic"), "90 days");
    ck_assert_str_eq(apr_table_get(d->profiles, "shortlived"), "6 days");
    ck_assert_int_eq(apr_table_elts(d->profiles)->nelts, 2);
}
END_TEST

/* A validation that takes a little longer than the guess is seen a short
 * step later, not a doubled guess later; the steps grow and are bounded. */
START_TEST(poll_interval_steps_after_the_guess)
{
    apr_interval_time_t g = apr_time_from_msec(3200), total = 0;
    int i;

    ck_assert_int_eq(acme_poll_interval(g, 0), g);
    ck_assert_int_eq(acme_poll_interval(g, 1), apr_time_from_msec(800));
    ck_assert_int_eq(acme_poll_interval(g, 2), apr_time_from_msec(1200));
    /* at least 50 ms between polls, at least 10 ms before the first */
    ck_assert_int_eq(acme_poll_interval(0, 0), apr_time_from_msec(10));
    ck_assert_int_eq(acme_poll_interval(0, 1), apr_time_from_msec(50));
    /* a CA that never finishes is asked ever more rarely, at most every 10 s */
    for (i = 1; i < 40; ++i) {
        apr_interval_time_t w = acme_poll_interval(g, i);
        ck_assert(w >= acme_poll_interval(g, i - 1) || i == 1);
        ck_assert(w <= apr_time_from_sec(10));
        total += w;
    }
    ck_assert_int_eq(acme_poll_interval(g, 39), apr_time_from_sec(10));
    ck_assert(total > apr_time_from_sec(300)); /* 39 polls span minutes, not seconds */
}
END_TEST

START_TEST(directory_minimal)
{
    acme_directory_t *d;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_directory_parse(&d, pool,
        js("{\"newNonce\":\"https://ca/n\",\"newAccount\":\"https://ca/a\","
           "\"newOrder\":\"http://ca/o\"}"), "https://ca/dir", r), APR_SUCCESS);
    ck_assert_ptr_null(d->renewal_info);
    ck_assert_ptr_null(d->terms_of_service);
    ck_assert_int_eq(d->eab_required, 0);
    ck_assert(apr_is_empty_table(d->profiles));
}
END_TEST

START_TEST(directory_malformed)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"[]", "not a JSON object"},
        {"{\"newAccount\":\"https://a\",\"newOrder\":\"https://o\"}", "'newNonce' is missing"},
        {"{\"newNonce\":42,\"newAccount\":\"https://a\",\"newOrder\":\"https://o\"}",
         "'newNonce' is not a string"},
        {"{\"newNonce\":\"ftp://n\",\"newAccount\":\"https://a\",\"newOrder\":\"https://o\"}",
         "'newNonce' is not an http(s) URL"},
        {"{\"newNonce\":\"https://n\",\"newAccount\":\"https://a\",\"newOrder\":\"https://o\","
         "\"revokeCert\":[\"https://r\"]}", "'revokeCert' is not a string"},
        {"{\"newNonce\":\"https://n\",\"newAccount\":\"https://a\",\"newOrder\":\"https://o\","
         "\"meta\":\"yes\"}", "'meta' is not an object"},
        {"{\"newNonce\":\"https://n\",\"newAccount\":\"https://a\",\"newOrder\":\"https://o\","
         "\"meta\":{\"externalAccountRequired\":\"true\"}}",
         "'externalAccountRequired' is not a boolean"},
        {"{\"newNonce\":\"https://n\",\"newAccount\":\"https://a\",\"newOrder\":\"https://o\","
         "\"meta\":{\"profiles\":[\"classic\"]}}", "'profiles' is not an object"},
        {"{\"newNonce\":\"https://n\",\"newAccount\":\"https://a\",\"newOrder\":\"https://o\","
         "\"meta\":{\"profiles\":{\"classic\":1}}}", "profile 'classic' has no string"},
        {"{\"newNonce\":\"https://n\",\"newAccount\":\"https://a\",\"newOrder\":\"https://o\","
         "\"meta\":{\"termsOfService\":false}}", "'termsOfService' is not a string"},
    };
    acme_directory_t *d;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        acme_result_t *r = acme_result_make(pool);

        ck_assert_int_eq(acme_directory_parse(&d, pool, js(cases[i].json), "https://ca/dir", r),
                         APR_EINVAL);
        ck_assert_ptr_null(d);
        ck_assert_str_eq(r->problem, "acme:malformed-response");
        ck_assert_msg(contains(r->detail, cases[i].msg), "case %d: '%s' lacks '%s'", (int)i,
                      r->detail, cases[i].msg);
    }
    /* no JSON at all */
    {
        acme_result_t *r = acme_result_make(pool);
        ck_assert_int_eq(acme_directory_parse(&d, pool, NULL, "https://ca/dir", r), APR_EINVAL);
    }
}
END_TEST

/* ---- orders, authorizations, challenges ----------------------------------------- */

#define ORDER_OK \
    "{\"status\":\"pending\",\"expires\":\"2030-01-01T00:00:00Z\"," \
    "\"identifiers\":[{\"type\":\"dns\",\"value\":\"example.org\"}," \
    "{\"type\":\"ip\",\"value\":\"192.0.2.1\"},{\"type\":\"dns\",\"value\":\"*.example.org\"}]," \
    "\"authorizations\":[\"https://ca/authz/1\",\"https://ca/authz/2\"]," \
    "\"finalize\":\"https://ca/fin/1\",\"profile\":\"classic\",\"replaces\":\"aYhb.AIdA\"}"

START_TEST(order_full)
{
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);
    const acme_identifier_t *id;
    apr_time_t t;

    ck_assert_int_eq(acme_order_parse(&o, pool, js(ORDER_OK), "https://ca/order/1", "order", r),
                     APR_SUCCESS);
    ck_assert_str_eq(o->url, "https://ca/order/1");
    ck_assert_int_eq(o->status, ACME_STATE_PENDING);
    ck_assert_int_eq(o->identifiers->nelts, 3);
    id = APR_ARRAY_IDX(o->identifiers, 1, const acme_identifier_t *);
    ck_assert_str_eq(id->type, "ip");
    ck_assert_str_eq(id->value, "192.0.2.1");
    ck_assert_int_eq(o->authorizations->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(o->authorizations, 1, const char *), "https://ca/authz/2");
    ck_assert_str_eq(o->finalize, "https://ca/fin/1");
    ck_assert_ptr_null(o->certificate);
    ck_assert_ptr_null(o->error);
    ck_assert_str_eq(o->profile, "classic");
    ck_assert_str_eq(o->replaces, "aYhb.AIdA");
    acme_time_parse_rfc3339(&t, "2030-01-01T00:00:00Z");
    ck_assert(o->expires == t);
}
END_TEST

START_TEST(order_invalid_with_error)
{
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_order_parse(&o, pool, js(
        "{\"status\":\"invalid\",\"identifiers\":[],\"authorizations\":[],"
        "\"finalize\":\"https://ca/f\",\"error\":{\"type\":\"urn:ietf:params:acme:error:"
        "unauthorized\",\"detail\":\"no\"}}"), "https://ca/o", "order", r), APR_SUCCESS);
    ck_assert_int_eq(o->status, ACME_STATE_INVALID);
    ck_assert_ptr_nonnull(o->error);
    ck_assert_str_eq(acme_json_gets(o->error, "detail", NULL), "no");
}
END_TEST

START_TEST(order_malformed)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{\"identifiers\":[],\"authorizations\":[],\"finalize\":\"https://f\"}",
         "'status' is missing"},
        {"{\"status\":\"sleeping\",\"identifiers\":[],\"authorizations\":[],"
         "\"finalize\":\"https://f\"}", "unknown status 'sleeping'"},
        {"{\"status\":1,\"identifiers\":[],\"authorizations\":[],\"finalize\":\"https://f\"}",
         "'status' is not a string"},
        {"{\"status\":\"pending\",\"identifiers\":{},\"authorizations\":[],"
         "\"finalize\":\"https://f\"}", "'identifiers' is not an array"},
        {"{\"status\":\"pending\",\"authorizations\":[],\"finalize\":\"https://f\"}",
         "'identifiers' is missing"},
        {"{\"status\":\"pending\",\"identifiers\":[{\"type\":\"dns\"}],\"authorizations\":[],"
         "\"finalize\":\"https://f\"}", "'value' is missing"},
        {"{\"status\":\"pending\",\"identifiers\":[\"example.org\"],\"authorizations\":[],"
         "\"finalize\":\"https://f\"}", "identifier is not an object"},
        {"{\"status\":\"pending\",\"identifiers\":[],\"authorizations\":[1],"
         "\"finalize\":\"https://f\"}", "'authorizations' holds a non-string"},
        {"{\"status\":\"pending\",\"identifiers\":[],\"authorizations\":[\"/relative\"],"
         "\"finalize\":\"https://f\"}", "'authorizations' holds a non-URL"},
        {"{\"status\":\"pending\",\"identifiers\":[],\"authorizations\":\"https://a\","
         "\"finalize\":\"https://f\"}", "'authorizations' is not an array"},
        {"{\"status\":\"pending\",\"identifiers\":[],\"authorizations\":[]}",
         "'finalize' is missing"},
        {"{\"status\":\"valid\",\"identifiers\":[],\"authorizations\":[],"
         "\"finalize\":\"https://f\"}", "'certificate' is missing in a valid order"},
        {"{\"status\":\"pending\",\"identifiers\":[],\"authorizations\":[],"
         "\"finalize\":\"https://f\",\"expires\":\"tomorrow\"}",
         "'expires' is not an RFC 3339 timestamp"},
        {"{\"status\":\"invalid\",\"identifiers\":[],\"authorizations\":[],"
         "\"finalize\":\"https://f\",\"error\":\"bad\"}", "'error' is not an object"},
    };
    acme_order_t *o;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        acme_result_t *r = acme_result_make(pool);

        ck_assert_int_eq(acme_order_parse(&o, pool, js(cases[i].json), "https://o", "newOrder",
                                          r), APR_EINVAL);
        ck_assert_ptr_null(o);
        ck_assert_msg(contains(r->detail, cases[i].msg), "case %d: '%s' lacks '%s'", (int)i,
                      r->detail, cases[i].msg);
        ck_assert_msg(!strncmp(r->detail, "newOrder: ", 10), "request not named: %s", r->detail);
    }
}
END_TEST

#define AUTHZ_OK \
    "{\"identifier\":{\"type\":\"dns\",\"value\":\"example.org\"},\"status\":\"pending\"," \
    "\"wildcard\":true,\"expires\":\"2030-01-01T00:00:00Z\",\"challenges\":[" \
    "{\"type\":\"http-01\",\"url\":\"https://ca/ch/1\",\"status\":\"pending\"," \
    "\"token\":\"DGyRejmCefe7v4NfDGDKfA\"}," \
    "{\"type\":\"dns-01\",\"url\":\"https://ca/ch/2\",\"status\":\"invalid\"," \
    "\"token\":\"LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\"," \
    "\"error\":{\"type\":\"urn:ietf:params:acme:error:dns\",\"detail\":\"NXDOMAIN\"}}," \
    "{\"type\":\"future-99\",\"url\":\"https://ca/ch/3\",\"status\":\"pending\"}]}"

START_TEST(authz_full)
{
    acme_authz_t *a;
    const acme_challenge_t *ch;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_authz_parse(&a, pool, js(AUTHZ_OK), "https://ca/az/1", "authz", r),
                     APR_SUCCESS);
    ck_assert_str_eq(a->identifier.type, "dns");
    ck_assert_str_eq(a->identifier.value, "example.org");
    ck_assert_int_eq(a->status, ACME_STATE_PENDING);
    ck_assert_int_eq(a->wildcard, 1);
    ck_assert_int_eq(a->challenges->nelts, 3);
    ch = APR_ARRAY_IDX(a->challenges, 0, const acme_challenge_t *);
    ck_assert_str_eq(ch->type, "http-01");
    ck_assert_str_eq(ch->url, "https://ca/ch/1");
    ck_assert_str_eq(ch->token, "DGyRejmCefe7v4NfDGDKfA");
    ck_assert_int_eq(ch->status, ACME_STATE_PENDING);
    ch = APR_ARRAY_IDX(a->challenges, 1, const acme_challenge_t *);
    ck_assert_int_eq(ch->status, ACME_STATE_INVALID);
    ck_assert_str_eq(acme_json_gets(ch->error, "detail", NULL), "NXDOMAIN");
    /* unknown types without token are kept (the CA may offer new ones) */
    ch = APR_ARRAY_IDX(a->challenges, 2, const acme_challenge_t *);
    ck_assert_str_eq(ch->type, "future-99");
    ck_assert_ptr_null(ch->token);
}
END_TEST

START_TEST(authz_malformed)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{\"status\":\"pending\",\"challenges\":[]}", "'identifier' is missing"},
        {"{\"identifier\":\"example.org\",\"status\":\"pending\",\"challenges\":[]}",
         "identifier is not an object"},
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\"}",
         "'challenges' is missing"},
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\","
         "\"challenges\":{}}", "'challenges' is not an array"},
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\","
         "\"wildcard\":\"yes\",\"challenges\":[]}", "'wildcard' is not a boolean"},
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\","
         "\"challenges\":[42]}", "challenge is not a JSON object"},
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\","
         "\"challenges\":[{\"type\":\"http-01\",\"status\":\"pending\",\"token\":\"abc\"}]}",
         "'url' is missing"},
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\","
         "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://c\",\"status\":\"pending\"}]}",
         "challenge http-01 has no token"},
        /* a token must never be able to climb out of the challenge directory */
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\","
         "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://c\",\"status\":\"pending\","
         "\"token\":\"../../etc/passwd\"}]}", "invalid token"},
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\","
         "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://c\",\"status\":\"pending\","
         "\"token\":\"a b\\r\\nX: y\"}]}", "invalid token"},
        {"{\"identifier\":{\"type\":\"dns\",\"value\":\"x\"},\"status\":\"pending\","
         "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://c\",\"status\":\"pending\","
         "\"token\":7}]}", "'token' is not a string"},
    };
    acme_authz_t *a;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        acme_result_t *r = acme_result_make(pool);

        ck_assert_int_eq(acme_authz_parse(&a, pool, js(cases[i].json), "https://az", "authz", r),
                         APR_EINVAL);
        ck_assert_ptr_null(a);
        ck_assert_msg(contains(r->detail, cases[i].msg), "case %d: '%s' lacks '%s'", (int)i,
                      r->detail, cases[i].msg);
    }
}
END_TEST

START_TEST(account_parse)
{
    acme_account_t *a;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_account_parse(&a, pool, js(
        "{\"status\":\"valid\",\"contact\":[\"mailto:a@example.org\"],"
        "\"orders\":\"https://ca/orders/1\"}"), "https://ca/acct/1", "newAccount", r),
        APR_SUCCESS);
    ck_assert_int_eq(a->status, ACME_STATE_VALID);
    ck_assert_int_eq(a->contact->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(a->contact, 0, const char *), "mailto:a@example.org");
    ck_assert_int_eq(acme_account_parse(&a, pool, js("{\"status\":\"valid\",\"contact\":\"x\"}"),
                                        "https://a", "newAccount", r), APR_EINVAL);
    ck_assert(contains(r->detail, "'contact' is not an array"));
    ck_assert_int_eq(acme_account_parse(&a, pool, js("{\"status\":\"valid\",\"contact\":[1]}"),
                                        "https://a", "newAccount", r), APR_EINVAL);
    ck_assert(contains(r->detail, "'contact' holds a non-string"));
    ck_assert_int_eq(acme_account_parse(&a, pool, js("{\"contact\":[]}"), "https://a",
                                        "newAccount", r), APR_EINVAL);
}
END_TEST

START_TEST(states)
{
    ck_assert_int_eq(acme_state_parse("pending"), ACME_STATE_PENDING);
    ck_assert_int_eq(acme_state_parse("ready"), ACME_STATE_READY);
    ck_assert_int_eq(acme_state_parse("processing"), ACME_STATE_PROCESSING);
    ck_assert_int_eq(acme_state_parse("valid"), ACME_STATE_VALID);
    ck_assert_int_eq(acme_state_parse("invalid"), ACME_STATE_INVALID);
    ck_assert_int_eq(acme_state_parse("revoked"), ACME_STATE_REVOKED);
    ck_assert_int_eq(acme_state_parse("Valid"), ACME_STATE_UNKNOWN);
    ck_assert_int_eq(acme_state_parse("unknown"), ACME_STATE_UNKNOWN);
    ck_assert_int_eq(acme_state_parse(NULL), ACME_STATE_UNKNOWN);
    ck_assert_str_eq(acme_state_name(ACME_STATE_DEACTIVATED), "deactivated");
    ck_assert_str_eq(acme_state_name((acme_state_t)99), "unknown");
}
END_TEST

START_TEST(identifiers)
{
    apr_array_header_t *names = apr_array_make(pool, 3, sizeof(const char *));
    apr_array_header_t *ids;

    APR_ARRAY_PUSH(names, const char *) = "example.org";
    APR_ARRAY_PUSH(names, const char *) = "192.0.2.7";
    APR_ARRAY_PUSH(names, const char *) = "2001:db8::1";
    APR_ARRAY_PUSH(names, const char *) = "*.example.org";
    ids = acme_identifiers_make(pool, names);
    ck_assert_int_eq(ids->nelts, 4);
    ck_assert_str_eq(APR_ARRAY_IDX(ids, 0, acme_identifier_t *)->type, "dns");
    ck_assert_str_eq(APR_ARRAY_IDX(ids, 1, acme_identifier_t *)->type, "ip");
    ck_assert_str_eq(APR_ARRAY_IDX(ids, 2, acme_identifier_t *)->type, "ip");
    ck_assert_str_eq(APR_ARRAY_IDX(ids, 3, acme_identifier_t *)->type, "dns");
    ck_assert_str_eq(APR_ARRAY_IDX(ids, 3, acme_identifier_t *)->value, "*.example.org");
}
END_TEST

/* ---- headers ------------------------------------------------------------------------ */

START_TEST(retry_after)
{
    apr_time_t now = apr_time_from_sec(1700000000), t;
    apr_time_t date;

    ck_assert_int_eq(acme_retry_after_parse(&t, "120", now), APR_SUCCESS);
    ck_assert(t == now + apr_time_from_sec(120));
    ck_assert_int_eq(acme_retry_after_parse(&t, " 0 ", now), APR_SUCCESS);
    ck_assert(t == now);
    /* IMF-fixdate, and the obsolete RFC 850 / asctime forms */
    date = apr_time_from_sec(1700000000 + 3600); /* Tue, 14 Nov 2023 23:13:20 GMT */
    ck_assert_int_eq(acme_retry_after_parse(&t, "Tue, 14 Nov 2023 23:13:20 GMT", now),
                     APR_SUCCESS);
    ck_assert(t == date);
    ck_assert_int_eq(acme_retry_after_parse(&t, "Tuesday, 14-Nov-23 23:13:20 GMT", now),
                     APR_SUCCESS);
    ck_assert(t == date);
    ck_assert_int_eq(acme_retry_after_parse(&t, "Tue Nov 14 23:13:20 2023", now), APR_SUCCESS);
    ck_assert(t == date);
    /* a date in the past means "now" */
    ck_assert_int_eq(acme_retry_after_parse(&t, "Sun, 06 Nov 1994 08:49:37 GMT", now),
                     APR_SUCCESS);
    ck_assert(t == now);
    /* garbage */
    ck_assert_int_eq(acme_retry_after_parse(&t, "", now), APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, "   ", now), APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, NULL, now), APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, "-5", now), APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, "1.5", now), APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, "12abc", now), APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, "soon", now), APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, "99999999999999999999999", now), APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, "Tue, 14 Nov 2123 23:13:20 GMT", now),
                     APR_EINVAL);
    ck_assert_int_eq(acme_retry_after_parse(&t, "Tue, 99 Nov 2023 23:13:20 GMT", now),
                     APR_EINVAL);
    ck_assert(t == 0);
}
END_TEST

static const char *url_at(const apr_array_header_t *a, int i)
{
    return APR_ARRAY_IDX(a, i, const char *);
}

START_TEST(link_header)
{
    apr_array_header_t *urls = NULL;

    acme_link_parse(&urls, pool,
                    "<https://ca/cert/1/1>;rel=\"alternate\", <https://ca/dir>;rel=\"index\", "
                    "<https://ca/cert/1/2> ; REL = alternate ; title=\"x, y\"", "alternate",
                    "https://ca/cert/1");
    ck_assert_int_eq(urls->nelts, 2);
    ck_assert_str_eq(url_at(urls, 0), "https://ca/cert/1/1");
    ck_assert_str_eq(url_at(urls, 1), "https://ca/cert/1/2");

    /* several relation types, relative target, commas inside the target */
    urls = NULL;
    acme_link_parse(&urls, pool,
                    "</cert/9/alt?a=1,2>; rel=\"up alternate\", <//evil/x>; rel=alternate, "
                    "<relative>; rel=alternate", "alternate", "https://ca:14000/cert/9");
    ck_assert_int_eq(urls->nelts, 1);
    ck_assert_str_eq(url_at(urls, 0), "https://ca:14000/cert/9/alt?a=1,2");

    /* junk, unterminated targets, rel words that only start alike */
    urls = NULL;
    acme_link_parse(&urls, pool, "garbage, <https://ca/a>; rel=alternates, "
                    "<https://ca/b>; relx=alternate, <https://ca/c>; rel=\"alternate", "alternate",
                    "https://ca/");
    ck_assert_int_eq(urls->nelts, 1);
    ck_assert_str_eq(url_at(urls, 0), "https://ca/c");
    urls = NULL;
    acme_link_parse(&urls, pool, "<https://ca/never-closed; rel=alternate", "alternate",
                    "https://ca/");
    ck_assert_int_eq(urls->nelts, 0);
    urls = NULL;
    acme_link_parse(&urls, pool, "", "alternate", "https://ca/");
    ck_assert_int_eq(urls->nelts, 0);
    urls = NULL;
    acme_link_parse(&urls, pool, "<>; rel=alternate", "alternate", "https://ca/");
    ck_assert_int_eq(urls->nelts, 0);

    /* repeated Link headers in a response */
    {
        apr_table_t *h = apr_table_make(pool, 4);

        apr_table_add(h, "Link", "<https://ca/dir>;rel=\"index\"");
        apr_table_add(h, "link", "<https://ca/alt/1>;rel=\"alternate\"");
        apr_table_add(h, "Content-Type", "application/pem-certificate-chain");
        apr_table_add(h, "LINK", "<https://ca/alt/2>;rel=\"alternate\"");
        acme_links_get(&urls, pool, h, "alternate", "https://ca/cert");
        ck_assert_int_eq(urls->nelts, 2);
        ck_assert_str_eq(url_at(urls, 0), "https://ca/alt/1");
        ck_assert_str_eq(url_at(urls, 1), "https://ca/alt/2");
        acme_links_get(&urls, pool, h, "index", "https://ca/cert");
        ck_assert_int_eq(urls->nelts, 1);
    }
}
END_TEST

/* ---- challenge selection ------------------------------------------------------------ */

static apr_array_header_t *list(const char *a, const char *b, const char *c)
{
    apr_array_header_t *arr = apr_array_make(pool, 3, sizeof(const char *));

    if (a) APR_ARRAY_PUSH(arr, const char *) = a;
    if (b) APR_ARRAY_PUSH(arr, const char *) = b;
    if (c) APR_ARRAY_PUSH(arr, const char *) = c;
    return arr;
}

static acme_authz_t *authz_with(const char *json)
{
    acme_authz_t *a;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_authz_parse(&a, pool, js(json), "https://az", "authz", r),
                     APR_SUCCESS);
    return a;
}

#define THREE_CHALLENGES(wild, st1) \
    "{\"identifier\":{\"type\":\"dns\",\"value\":\"example.org\"},\"status\":\"pending\"," \
    "\"wildcard\":" wild ",\"challenges\":[" \
    "{\"type\":\"http-01\",\"url\":\"https://c/1\",\"status\":\"" st1 "\",\"token\":\"t1\"}," \
    "{\"type\":\"dns-01\",\"url\":\"https://c/2\",\"status\":\"pending\",\"token\":\"t2\"}," \
    "{\"type\":\"tls-alpn-01\",\"url\":\"https://c/3\",\"status\":\"pending\",\"token\":\"t3\"}]}"

START_TEST(challenge_selection)
{
    acme_authz_t *a = authz_with(THREE_CHALLENGES("false", "pending"));
    const acme_challenge_t *ch;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_challenge_select(&ch, a, list("tls-alpn-01", "http-01", NULL), r),
                     APR_SUCCESS);
    ck_assert_str_eq(ch->type, "tls-alpn-01");
    ck_assert_int_eq(acme_challenge_select(&ch, a, list("http-01", "tls-alpn-01", NULL), r),
                     APR_SUCCESS);
    ck_assert_str_eq(ch->type, "http-01");
    ck_assert_int_eq(acme_challenge_select(&ch, a, list("foo-01", "dns-01", NULL), r),
                     APR_SUCCESS);
    ck_assert_str_eq(ch->token, "t2");

    /* nothing allowed that the CA offers */
    ck_assert_int_eq(acme_challenge_select(&ch, a, list("foo-01", NULL, NULL), r), APR_ENOENT);
    ck_assert_ptr_null(ch);
    ck_assert_str_eq(r->problem, "acme:config");
    ck_assert(contains(r->detail, "[http-01, dns-01, tls-alpn-01]"));
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_CONFIG);
    ck_assert_int_eq(acme_challenge_select(&ch, a, list(NULL, NULL, NULL), r), APR_ENOENT);

    /* wildcards: only dns-01, even when preferred otherwise */
    a = authz_with(THREE_CHALLENGES("true", "pending"));
    ck_assert_int_eq(acme_challenge_select(&ch, a, list("http-01", "tls-alpn-01", "dns-01"), r),
                     APR_SUCCESS);
    ck_assert_str_eq(ch->type, "dns-01");
    ck_assert_int_eq(acme_challenge_select(&ch, a, list("http-01", "tls-alpn-01", NULL), r),
                     APR_ENOENT);
    ck_assert(contains(r->detail, "*.example.org"));
    ck_assert(contains(r->detail, "wildcards need dns-01"));

    /* a resumed order keeps the challenge already being validated */
    a = authz_with(THREE_CHALLENGES("false", "processing"));
    ck_assert_int_eq(acme_challenge_select(&ch, a, list("tls-alpn-01", "http-01", NULL), r),
                     APR_SUCCESS);
    ck_assert_str_eq(ch->type, "http-01");
    /* ... unless that type is no longer allowed */
    ck_assert_int_eq(acme_challenge_select(&ch, a, list("tls-alpn-01", NULL, NULL), r),
                     APR_SUCCESS);
    ck_assert_str_eq(ch->type, "tls-alpn-01");
}
END_TEST

/* ---- responses ------------------------------------------------------------------------ */

static acme_http_response_t *response(int status, const char *ctype, const char *body)
{
    acme_http_response_t *resp = apr_pcalloc(pool, sizeof(*resp));

    resp->status = status;
    resp->headers = apr_table_make(pool, 4);
    if (ctype) {
        apr_table_set(resp->headers, "Content-Type", ctype);
    }
    resp->body = body ? body : "";
    resp->body_len = strlen(resp->body);
    resp->effective_url = "https://ca/x";
    return resp;
}

START_TEST(renewal_info_answers)
{
    static const char *const bad[] = {
        "not json", "{}", "{\"suggestedWindow\": 5}",
        "{\"suggestedWindow\": {\"start\": \"2025-01-02T00:00:00Z\"}}",
        "{\"suggestedWindow\": {\"start\": \"yesterday\", \"end\": \"2025-01-02T00:00:00Z\"}}",
        /* end before start */
        "{\"suggestedWindow\": {\"start\": \"2025-01-03T00:00:00Z\", \"end\": \"2025-01-02T00:00:00Z\"}}",
        "{\"suggestedWindow\": {\"start\": 1, \"end\": 2}}",
        NULL
    };
    apr_time_t now = apr_time_from_sec(1735689600), retry = 7; /* 2025-01-01 */
    acme_http_response_t *resp;
    acme_ari_window_t w;
    acme_result_t *r = acme_result_make(pool);
    int i;

    resp = response(200, "application/json",
                    "{\"suggestedWindow\": {\"start\": \"2025-01-02T00:00:00Z\", "
                    "\"end\": \"2025-01-03T00:00:00Z\"}, \"explanationURL\": \"https://ca/why\"}");
    apr_table_set(resp->headers, "Retry-After", "3600");
    ck_assert_int_eq(acme_renewal_info_parse(&w, &retry, resp, "u", now, pool, r), APR_SUCCESS);
    ck_assert(w.start == now + apr_time_from_sec(86400));
    ck_assert(w.end == now + apr_time_from_sec(2 * 86400));
    ck_assert_str_eq(w.explanation_url, "https://ca/why");
    ck_assert(retry == now + apr_time_from_sec(3600));
    apr_table_set(resp->headers, "Retry-After", "soon");
    ck_assert_int_eq(acme_renewal_info_parse(&w, &retry, resp, "u", now, pool, r), APR_SUCCESS);
    ck_assert(retry == 0);
    for (i = 0; bad[i]; ++i) {
        acme_result_reset(r);
        resp = response(200, "application/json", bad[i]);
        ck_assert_msg(acme_renewal_info_parse(&w, &retry, resp, "u", now, pool, r) == APR_EINVAL,
                      "accepted: %s", bad[i]);
        ck_assert_str_eq(r->problem, "acme:malformed-response");
    }
    resp = response(404, "application/problem+json", "{}");
    ck_assert_int_eq(acme_renewal_info_parse(&w, &retry, resp, "u", now, pool, r), APR_EINVAL);
}
END_TEST

START_TEST(response_checks)
{
    acme_json_t *j;
    acme_result_t *r = acme_result_make(pool);
    acme_http_response_t *resp;

    ck_assert_int_eq(acme_response_json(&j, pool, response(201, "application/json; charset=utf-8",
                                                           "{\"a\":1}"), "newOrder", r),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_json_getl(j, "a", NULL), 1);
    ck_assert_int_eq(acme_response_json(&j, pool, response(200, " Application/JSON ", "{}"),
                                        "newOrder", r), APR_SUCCESS);

    /* an HTML page with 200 (captive portal, misconfigured proxy) */
    ck_assert_int_eq(acme_response_json(&j, pool, response(200, "text/html",
                                                           "<html>hello</html>"), "newOrder", r),
                     APR_EINVAL);
    ck_assert_ptr_null(j);
    ck_assert_str_eq(r->detail, "newOrder: response is not JSON (text/html)");
    ck_assert_str_eq(r->problem, "acme:malformed-response");
    ck_assert_int_eq(acme_response_json(&j, pool, response(200, NULL, "{}"), "order", r),
                     APR_EINVAL);
    ck_assert(contains(r->detail, "no content type"));

    /* truncated JSON, JSON that is not an object */
    ck_assert_int_eq(acme_response_json(&j, pool, response(200, "application/json",
                                                           "{\"status\":\"pen"), "authz", r),
                     APR_EINVAL);
    ck_assert(contains(r->detail, "authz: response is not valid JSON"));
    ck_assert_int_eq(acme_response_json(&j, pool, response(200, "application/json", "[1]"),
                                        "authz", r), APR_EINVAL);
    ck_assert(contains(r->detail, "authz: response is not a JSON object"));
    ck_assert_int_eq(acme_response_json(&j, pool, response(200, "application/json", ""),
                                        "authz", r), APR_EINVAL);

    /* a problem document with Retry-After */
    resp = response(429, "application/problem+json",
                    "{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"detail\":\"too many\","
                    "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
                    "\"detail\":\"nope\",\"identifier\":{\"type\":\"dns\",\"value\":\"x.org\"}}]}");
    apr_table_set(resp->headers, "Retry-After", "3600");
    acme_result_reset(r);
    ck_assert_int_eq(acme_response_json(&j, pool, resp, "newOrder", r), APR_EGENERAL);
    ck_assert_str_eq(r->problem, "urn:ietf:params:acme:error:rateLimited");
    ck_assert_str_eq(r->detail, "newOrder: too many");
    ck_assert_int_eq(r->http_status, 429);
    ck_assert(r->retry_after > apr_time_now() + apr_time_from_sec(3500));
    ck_assert_int_eq(r->subproblems->nelts, 1);
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_RATELIMIT);

    /* accountDoesNotExist / 404 are "not found" */
    ck_assert_int_eq(acme_response_check(response(400, "application/problem+json",
        "{\"type\":\"urn:ietf:params:acme:error:accountDoesNotExist\",\"detail\":\"no\"}"),
        pool, "newAccount", r), APR_ENOENT);

    /* an HTML error page from a proxy: no problem document, but the status counts */
    acme_result_reset(r);
    ck_assert_int_eq(acme_response_check(response(503, "text/html", "<h1>down</h1>"), pool,
                                         "finalize", r), APR_EGENERAL);
    ck_assert_str_eq(r->problem, "acme:malformed-response");
    ck_assert(contains(r->detail, "finalize: HTTP 503"));
    ck_assert(contains(r->detail, "text/html"));
    ck_assert_int_eq(r->http_status, 503);
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_RATELIMIT);

    /* a problem content type with a broken body */
    ck_assert_int_eq(acme_response_check(response(500, "application/problem+json", "{\"ty"),
                                         pool, "order", r), APR_EGENERAL);
    ck_assert(contains(r->detail, "order: HTTP 500"));
    ck_assert_int_eq(acme_response_check(response(400, "application/problem+json", "{\"x\":1}"),
                                         pool, "order", r), APR_EGENERAL);
    ck_assert(contains(r->detail, "not a problem document"));
}
END_TEST

/* ---- the client over a scripted fake HTTP ---------------------------------------------- */

typedef struct {
    int status;
    const char *ctype;
    const char *body;
    const char *hname[3];
    const char *hvalue[3];
} canned_t;

typedef struct {
    const canned_t *script;
    int n;
    int next;
    const char *methods[64];
    const char *urls[64];
    const char *bodies[64];
} fake_t;

static apr_status_t fake_perform(acme_http_t *http, acme_http_response_t **presp,
                                 const acme_http_request_t *req, apr_pool_t *p,
                                 acme_result_t *result)
{
    fake_t *f = http->baton;
    const canned_t *c;
    acme_http_response_t *resp;
    int i;

    *presp = NULL;
    if (f->next >= f->n || f->next >= 64) {
        return acme_result_set(result, APR_EGENERAL, "acme:network",
                               "%s %s: script exhausted", req->method, req->url);
    }
    f->methods[f->next] = apr_pstrdup(pool, req->method);
    f->urls[f->next] = apr_pstrdup(pool, req->url);
    f->bodies[f->next] = req->body ? apr_pstrmemdup(pool, req->body, req->body_len) : NULL;
    c = &f->script[f->next++];
    resp = apr_pcalloc(p, sizeof(*resp));
    resp->status = c->status;
    resp->headers = apr_table_make(p, 4);
    if (c->ctype) {
        apr_table_set(resp->headers, "Content-Type", c->ctype);
    }
    for (i = 0; i < 3 && c->hname[i]; ++i) {
        apr_table_add(resp->headers, c->hname[i], c->hvalue[i]);
    }
    resp->body = c->body ? c->body : "";
    resp->body_len = strlen(resp->body);
    resp->effective_url = req->url;
    *presp = resp;
    return APR_SUCCESS;
}

static acme_client_t *fake_client(fake_t *f, const canned_t *script, int n, int with_kid)
{
    acme_http_t *http = apr_pcalloc(pool, sizeof(*http));
    acme_client_t *c;
    acme_pkey_t *key;

    memset(f, 0, sizeof(*f));
    f->script = script;
    f->n = n;
    http->baton = f;
    http->perform = fake_perform;
    ck_assert_int_eq(acme_client_create(&c, pool, "https://ca/dir", http), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    acme_client_set_account(c, key, with_kid ? "https://ca/acct/1" : NULL);
    return c;
}

/* The nonce in the protected header of a JWS request body. */
static const char *jws_nonce(const char *jws)
{
    acme_json_t *j = js(jws), *hdr;
    unsigned char *raw;
    apr_size_t len;
    const char *err;

    ck_assert_int_eq(acme_b64url_decode(&raw, &len, pool, acme_json_gets(j, "protected", NULL)),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_json_parse(&hdr, pool, (const char *)raw, len, &err), APR_SUCCESS);
    return acme_json_gets(hdr, "nonce", NULL);
}

#define DIR_JSON \
    "{\"newNonce\":\"https://ca/nonce\",\"newAccount\":\"https://ca/acct\"," \
    "\"newOrder\":\"https://ca/order\",\"revokeCert\":\"https://ca/revoke\"," \
    "\"keyChange\":\"https://ca/kc\"}"
#define BAD_NONCE "{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":\"stale\"}"
#define PJSON "application/problem+json"
#define AJSON "application/json"

START_TEST(client_bad_nonce_retries_with_the_fresh_nonce)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"nonce0"}},
        {400, PJSON, BAD_NONCE, {"Replay-Nonce"}, {"nonce1"}},
        {400, PJSON, BAD_NONCE, {"Replay-Nonce"}, {"nonce2"}},
        {200, AJSON, "{\"status\":\"valid\"}", {"Replay-Nonce", "Location"},
         {"nonce3", "https://ca/acct/7"}},
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 5, 0);
    acme_account_t *acct;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_account_new(&acct, c, NULL, 1, NULL, NULL, pool, r), APR_SUCCESS);
    ck_assert_str_eq(acct->url, "https://ca/acct/7");
    ck_assert_str_eq(acme_client_account_url(c), "https://ca/acct/7");
    ck_assert_int_eq(f.next, 5);
    ck_assert_str_eq(f.methods[1], "HEAD");
    ck_assert_str_eq(f.urls[1], "https://ca/nonce");
    /* every retry used the nonce of the rejection, not another HEAD */
    ck_assert_str_eq(jws_nonce(f.bodies[2]), "nonce0");
    ck_assert_str_eq(jws_nonce(f.bodies[3]), "nonce1");
    ck_assert_str_eq(jws_nonce(f.bodies[4]), "nonce2");
    ck_assert(contains(f.bodies[4], "\"protected\""));
}
END_TEST

/* Clients sharing acme_ca_shared_t: the second one asks the CA neither for
 * the directory nor for a nonce, and learns how long the CA took. */
START_TEST(client_shared_directory_nonces_and_poll_timing)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        {200, AJSON, "{\"status\":\"valid\"}", {"Replay-Nonce", "Location"},
         {"n1", "https://ca/acct/7"}},
        /* the second client: its order is valid at the first poll */
        {200, AJSON, "{\"status\":\"valid\",\"identifiers\":[],\"authorizations\":[],"
                     "\"finalize\":\"https://ca/f\",\"certificate\":\"https://ca/c\"}",
         {"Replay-Nonce"}, {"n2"}},
    };
    fake_t f;
    acme_client_t *c1 = fake_client(&f, script, 4, 0), *c2;
    acme_ca_shared_t *sh;
    acme_account_t *acct;
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);
    apr_interval_time_t g0;

    ck_assert_int_eq(acme_ca_shared_create(&sh, pool), APR_SUCCESS);
    acme_client_share(c1, sh);
    ck_assert_int_eq(acme_account_new(&acct, c1, NULL, 1, NULL, NULL, pool, r), APR_SUCCESS);
    ck_assert_int_eq(f.next, 3);
    /* a second client of the same CA, over the same fake (the script goes on) */
    {
        acme_http_t *http = apr_pcalloc(pool, sizeof(*http));
        http->baton = &f;
        http->perform = fake_perform;
        ck_assert_int_eq(acme_client_create(&c2, pool, "https://ca/dir", http), APR_SUCCESS);
    }
    acme_client_set_account(c2, acme_client_account_key(c1), "https://ca/acct/7");
    acme_client_share(c2, sh);
    g0 = acme_client_poll_guess(c2, ACME_POLL_CERT);
    ck_assert_int_eq(acme_order_poll(&o, c2, "https://ca/order/1", 0,
                                     apr_time_now() + apr_time_from_sec(10), pool, r),
                     APR_SUCCESS);
    ck_assert_int_eq(f.next, 4);             /* no GET of the directory, no HEAD */
    ck_assert_str_eq(f.urls[3], "https://ca/order/1");
    ck_assert_str_eq(jws_nonce(f.bodies[3]), "n1"); /* the nonce c1 was given */
    /* done at the first poll: the next first poll comes sooner, for c1 too */
    ck_assert(acme_client_poll_guess(c1, ACME_POLL_CERT) < g0);
    acme_client_poll_learn(c1, ACME_POLL_CERT, 3, apr_time_from_sec(2));
    ck_assert_int_eq(acme_client_poll_guess(c2, ACME_POLL_CERT), apr_time_from_msec(1750));
    acme_client_poll_learn(c1, ACME_POLL_CERT, 3, apr_time_from_sec(3600));
    ck_assert_int_eq(acme_client_poll_guess(c2, ACME_POLL_CERT), apr_time_from_sec(5));
    ck_assert_int_eq(acme_client_poll_guess(c2, ACME_POLL_AUTHZ), apr_time_from_msec(50));
}
END_TEST

START_TEST(client_bad_nonce_retries_are_bounded)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        {400, PJSON, BAD_NONCE, {"Replay-Nonce"}, {"n1"}},
        {400, PJSON, BAD_NONCE, {"Replay-Nonce"}, {"n2"}},
        {400, PJSON, BAD_NONCE, {"Replay-Nonce"}, {"n3"}},
        {200, AJSON, "{\"status\":\"valid\"}", {"Location"}, {"https://ca/acct/7"}},
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 6, 0);
    acme_account_t *acct;
    acme_result_t *r = acme_result_make(pool);

    acme_client_set_nonce_retries(c, 2);
    ck_assert_int_eq(acme_account_new(&acct, c, NULL, 1, NULL, NULL, pool, r), APR_EGENERAL);
    ck_assert_ptr_null(acct);
    ck_assert_int_eq(f.next, 5); /* 1 try + 2 retries, then give up */
    ck_assert_str_eq(r->problem, "urn:ietf:params:acme:error:badNonce");
    ck_assert(contains(r->detail, "newAccount: stale"));
}
END_TEST

START_TEST(client_nonce_without_header_fails_clearly)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"has spaces/and slash"}},
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 2, 1);
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_order_get(&o, c, "https://ca/order/1", pool, r), APR_EINVAL);
    ck_assert(contains(r->detail, "newNonce: no valid Replay-Nonce header"));
}
END_TEST

START_TEST(client_eab_required_refused_locally)
{
    static const canned_t script[] = {
        {200, AJSON, "{\"newNonce\":\"https://ca/n\",\"newAccount\":\"https://ca/a\","
                     "\"newOrder\":\"https://ca/o\",\"meta\":{\"externalAccountRequired\":true}}",
         {NULL}, {NULL}},
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 1, 0);
    acme_account_t *acct;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_account_new(&acct, c, NULL, 1, NULL, NULL, pool, r), APR_EINVAL);
    ck_assert_int_eq(f.next, 1);
    ck_assert(contains(r->problem, "externalAccountRequired"));
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_CONFIG);
}
END_TEST

START_TEST(client_order_needs_location_and_known_profile)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        {201, AJSON, ORDER_OK, {"Replay-Nonce"}, {"n1"}},
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 3, 1);
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);
    apr_array_header_t *names = list("example.org", "192.0.2.1", NULL);

    /* the directory lists no profiles: refused without a request */
    ck_assert_int_eq(acme_order_new(&o, c, names, "shortlived", NULL, pool, r), APR_EINVAL);
    ck_assert_int_eq(f.next, 1);
    ck_assert(contains(r->detail, "does not offer the profile 'shortlived'"));
    ck_assert_int_eq(acme_order_new(&o, c, names, NULL, "ari.id", pool, r), APR_EINVAL);
    ck_assert(contains(r->detail, "newOrder: no order URL in the Location header"));
    ck_assert(contains(f.bodies[2], "\"payload\""));
}
END_TEST

START_TEST(client_poll_follows_states_and_stops_at_deadline)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        {200, AJSON, "{\"status\":\"processing\",\"identifiers\":[],\"authorizations\":[],"
                     "\"finalize\":\"https://ca/f\"}", {"Replay-Nonce", "Retry-After"},
         {"n1", "0"}},
        {200, AJSON, "{\"status\":\"valid\",\"identifiers\":[],\"authorizations\":[],"
                     "\"finalize\":\"https://ca/f\",\"certificate\":\"https://ca/cert/1\"}",
         {"Replay-Nonce"}, {"n2"}},
        {200, AJSON, "{\"status\":\"processing\",\"identifiers\":[],\"authorizations\":[],"
                     "\"finalize\":\"https://ca/f\"}", {"Replay-Nonce", "Retry-After"},
         {"n3", "3600"}},
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 5, 1);
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);
    apr_time_t start = apr_time_now();

    ck_assert_int_eq(acme_order_poll(&o, c, "https://ca/order/1", 0,
                                     apr_time_now() + apr_time_from_sec(30), pool, r),
                     APR_SUCCESS);
    ck_assert_int_eq(o->status, ACME_STATE_VALID);
    ck_assert_str_eq(o->certificate, "https://ca/cert/1");
    /* two waits of at least the 10ms floor, never a busy loop */
    ck_assert(apr_time_now() - start >= apr_time_from_msec(19));
    ck_assert_int_eq(f.next, 4);

    /* Retry-After of an hour against a 5s deadline: fails at once, no sleep */
    start = apr_time_now();
    ck_assert_int_eq(acme_order_poll(&o, c, "https://ca/order/1", 0,
                                     apr_time_now() + apr_time_from_sec(5), pool, r),
                     APR_TIMEUP);
    ck_assert(apr_time_now() - start < apr_time_from_sec(2));
    ck_assert(contains(r->detail, "still processing"));
}
END_TEST

/* What the client's wait callback was told; a stop flag that the first
 * wait sets stops the poll as a restart would. */
typedef struct {
    int begins, ends, depth;
    volatile apr_uint32_t *stop_at_wait;
} waits_t;

static void count_waits(void *baton, int waiting)
{
    waits_t *w = baton;

    if (waiting) {
        ck_assert_int_eq(w->depth, 0);   /* never told twice without an end */
        w->begins++;
        w->depth = 1;
        if (w->stop_at_wait) apr_atomic_set32(w->stop_at_wait, 1);
    }
    else {
        ck_assert_int_eq(w->depth, 1);
        w->ends++;
        w->depth = 0;
    }
}

/* An order poll's answers: processing (with its Retry-After), then valid. */
#define POLL_PROCESSING(nonce, after)                                                       \
    {200, AJSON, "{\"status\":\"processing\",\"identifiers\":[],\"authorizations\":[],"          \
                 "\"finalize\":\"https://ca/f\"}", {"Replay-Nonce", "Retry-After"}, {nonce, after}}
#define POLL_VALID(nonce)                                                                    \
    {200, AJSON, "{\"status\":\"valid\",\"identifiers\":[],\"authorizations\":[],"               \
                 "\"finalize\":\"https://ca/f\",\"certificate\":\"https://ca/cert/1\"}",          \
     {"Replay-Nonce"}, {nonce}}

/* A CA that says when to ask again is asked then, and not before: three
 * polls over two Retry-After seconds, whatever the learned timing says. */
START_TEST(client_poll_waits_for_retry_after)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        POLL_PROCESSING("n1", "1"),
        POLL_PROCESSING("n2", "1"),
        POLL_VALID("n3"),
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 5, 1);
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);
    apr_time_t start = apr_time_now();

    ck_assert_int_eq(acme_order_poll(&o, c, "https://ca/order/1", 0,
                                     apr_time_now() + apr_time_from_sec(30), pool, r),
                     APR_SUCCESS);
    ck_assert_int_eq(o->status, ACME_STATE_VALID);
    ck_assert_int_eq(f.next, 5); /* no poll between the CA's times */
    ck_assert(apr_time_now() - start >= apr_time_from_msec(1900));
}
END_TEST

/* The scheduler hears of each wait for the CA that is long enough to free
 * a slot, and of its end on every path: a stop included. */
START_TEST(client_poll_tells_long_waits_and_their_end)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        POLL_PROCESSING("n1", "1"),
        POLL_PROCESSING("n2", "0"),
        POLL_VALID("n3"),
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 5, 1);
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);
    volatile apr_uint32_t stop = 0;
    waits_t w = {0, 0, 0, NULL};
    apr_time_t start;

    acme_client_set_abort(c, &stop);
    acme_client_set_wait_cb(c, count_waits, &w);
    /* the first poll's guess (50 ms) and the step after Retry-After 0 are
     * too short to tell; Retry-After 1 is told */
    ck_assert_int_eq(acme_order_poll(&o, c, "https://ca/order/1", 0,
                                     apr_time_now() + apr_time_from_sec(30), pool, r),
                     APR_SUCCESS);
    ck_assert_int_eq(o->status, ACME_STATE_VALID);
    ck_assert_int_eq(w.begins, 1);
    ck_assert_int_eq(w.ends, 1);
    /* a stop during a told wait ends it, and the end is told */
    w.stop_at_wait = &stop;
    acme_client_poll_learn(c, ACME_POLL_CERT, 1, apr_time_from_sec(1)); /* first wait 875 ms */
    start = apr_time_now();
    ck_assert_int_eq(acme_order_poll(&o, c, "https://ca/order/1", 0,
                                     apr_time_now() + apr_time_from_sec(30), pool, r),
                     APR_EINTR);
    ck_assert(apr_time_now() - start < apr_time_from_msec(800));
    ck_assert_int_eq(f.next, 5); /* stopped before its poll */
    ck_assert_int_eq(w.begins, 2);
    ck_assert_int_eq(w.ends, 2);
}
END_TEST

START_TEST(client_authz_failure_carries_challenge_problem)
{
    /* The order turns invalid: its failed authorization says why. */
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        {200, AJSON, "{\"status\":\"invalid\",\"identifiers\":[],"
                     "\"authorizations\":[\"https://ca/authz/0\",\"https://ca/authz/1\"],"
                     "\"finalize\":\"https://ca/f\"}", {"Replay-Nonce"}, {"n1"}},
        {200, AJSON, "{\"identifier\":{\"type\":\"dns\",\"value\":\"www.example.org\"},"
                     "\"status\":\"valid\",\"challenges\":[]}", {"Replay-Nonce"}, {"n2"}},
        {200, AJSON, "{\"identifier\":{\"type\":\"dns\",\"value\":\"example.org\"},"
                     "\"status\":\"invalid\",\"challenges\":[{\"type\":\"http-01\","
                     "\"url\":\"https://c/1\",\"status\":\"invalid\",\"token\":\"tok\","
                     "\"error\":{\"type\":\"urn:ietf:params:acme:error:unauthorized\","
                     "\"detail\":\"404 for token\"}}]}", {"Replay-Nonce"}, {"n3"}},
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 5, 1);
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_order_poll(&o, c, "https://ca/order/1", 1,
                                     apr_time_now() + apr_time_from_sec(10), pool, r),
                     APR_EGENERAL);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(f.next, 5);
    ck_assert_str_eq(r->problem, "urn:ietf:params:acme:error:unauthorized");
    ck_assert(contains(r->detail, "http-01 validation of example.org failed: 404 for token"));
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_VALIDATION);
}
END_TEST


static int published_count;

static apr_status_t count_publish(void *baton, const char *type, const char *name,
                                  const char *token, const char *key_authz, apr_pool_t *p,
                                  acme_result_t *r)
{
    (void)baton; (void)type; (void)name; (void)token; (void)key_authz; (void)p; (void)r;
    ++published_count;
    return APR_SUCCESS;
}

/* The CA chooses the authorization's identifier: one the order did not ask
 * for (here with a newline, as a hook's argument would get it) is refused
 * before anything is published. */
START_TEST(authz_for_a_name_not_asked_for_is_refused)
{
    static const char *bodies[] = {
        "{\"identifier\":{\"type\":\"dns\",\"value\":\"other.example\"},"
        "\"status\":\"pending\",\"challenges\":[{\"type\":\"http-01\","
        "\"url\":\"https://c/1\",\"status\":\"pending\",\"token\":\"tok\"}]}",
        "{\"identifier\":{\"type\":\"dns\",\"value\":\"example.org\\n-x\"},"
        "\"status\":\"pending\",\"challenges\":[{\"type\":\"http-01\","
        "\"url\":\"https://c/1\",\"status\":\"pending\",\"token\":\"tok\"}]}",
        /* a wildcard authorization for a name asked for without one */
        "{\"identifier\":{\"type\":\"dns\",\"value\":\"example.org\"},\"wildcard\":true,"
        "\"status\":\"pending\",\"challenges\":[{\"type\":\"dns-01\","
        "\"url\":\"https://c/1\",\"status\":\"pending\",\"token\":\"tok\"}]}",
    };
    apr_array_header_t *names = apr_array_make(pool, 1, sizeof(const char *));
    apr_array_header_t *types = apr_array_make(pool, 2, sizeof(const char *));
    acme_order_params_t params;
    acme_order_t order, *out = NULL;
    apr_size_t i;

    APR_ARRAY_PUSH(names, const char *) = "example.org";
    APR_ARRAY_PUSH(types, const char *) = "http-01";
    APR_ARRAY_PUSH(types, const char *) = "dns-01";
    memset(&params, 0, sizeof(params));
    params.names = names;
    params.challenges = types;
    params.publish = count_publish;
    memset(&order, 0, sizeof(order));
    order.url = "https://ca/order/1";
    order.status = ACME_STATE_PENDING;
    order.authorizations = apr_array_make(pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(order.authorizations, const char *) = "https://ca/authz/0";
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); ++i) {
        canned_t script[] = {
            {200, AJSON, DIR_JSON, {NULL}, {NULL}},
            {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
            {200, AJSON, bodies[i], {"Replay-Nonce"}, {"n1"}},
        };
        fake_t f;
        acme_client_t *c = fake_client(&f, script, 3, 1);
        acme_result_t *r = acme_result_make(pool);

        published_count = 0;
        ck_assert_int_ne(acme_order_authorize(&out, c, &order, &params,
                                              apr_time_now() + apr_time_from_sec(10), pool, r),
                         APR_SUCCESS);
        ck_assert_int_eq(published_count, 0);
        ck_assert_str_eq(r->problem, "acme:malformed-response");
        ck_assert_msg(contains(r->detail, "did not ask for"), "%s", r->detail);
        ck_assert_ptr_null(strchr(r->detail, '\n'));
    }
}
END_TEST

/* What the engine did with each answer at the end of acme_order_authorize. */
static const char *withdrawn_token, *kept_token, *kept_authz;

static void note_withdraw(void *baton, const char *type, const char *name, const char *token,
                          const char *key_authz, apr_pool_t *p)
{
    (void)baton; (void)type; (void)name; (void)key_authz; (void)p;
    withdrawn_token = apr_pstrdup(pool, token);
}

static void note_keep(void *baton, const char *type, const char *name, const char *token,
                      const char *key_authz, const char *authz_url, apr_pool_t *p)
{
    (void)baton; (void)type; (void)name; (void)key_authz; (void)p;
    kept_token = apr_pstrdup(pool, token);
    kept_authz = apr_pstrdup(pool, authz_url);
}

/* https://c/a was POSTed by an earlier run (of a generation that stopped) */
static apr_status_t posted_before(void *baton, const char *url, apr_pool_t *p, acme_result_t *r)
{
    (void)baton; (void)p; (void)r;
    return strcmp(url, "https://c/a") ? APR_SUCCESS : APR_EEXIST;
}

#define AUTHZ_JSON(name, st, chall, cst)                                                      \
    "{\"identifier\":{\"type\":\"dns\",\"value\":\"" name "\"},\"status\":\"" st "\","         \
    "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://c/" chall "\",\"status\":\"" cst   \
    "\",\"token\":\"t" chall "\"}]}"

/* A challenge an earlier run POSTed is not POSTed again, even though the CA
 * shows it "pending" (pebble 2.4 does until the validation ends); at the
 * end an answer goes once its authorization is final and stays published
 * while the CA may still validate it. */
START_TEST(authorize_posts_once_and_withdraws_only_final_answers)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        {200, AJSON, AUTHZ_JSON("example.org", "pending", "a", "pending"),
         {"Replay-Nonce"}, {"n1"}},
        {200, AJSON, AUTHZ_JSON("www.example.org", "pending", "b", "pending"),
         {"Replay-Nonce"}, {"n2"}},
        /* the one POST: b's challenge */
        {200, AJSON, "{\"type\":\"http-01\",\"url\":\"https://c/b\",\"status\":\"pending\","
                     "\"token\":\"tb\"}", {"Replay-Nonce"}, {"n3"}},
        /* a's first validation failed; b's is still running */
        {200, AJSON, "{\"status\":\"invalid\",\"identifiers\":[],"
                     "\"authorizations\":[\"https://ca/authz/0\",\"https://ca/authz/1\"],"
                     "\"finalize\":\"https://ca/f\"}", {"Replay-Nonce"}, {"n4"}},
        {200, AJSON, AUTHZ_JSON("example.org", "invalid", "a", "invalid"),
         {"Replay-Nonce"}, {"n5"}},
        /* at the end: a is final, b is not */
        {200, AJSON, AUTHZ_JSON("example.org", "invalid", "a", "invalid"),
         {"Replay-Nonce"}, {"n6"}},
        {200, AJSON, AUTHZ_JSON("www.example.org", "pending", "b", "pending"),
         {"Replay-Nonce"}, {"n7"}},
    };
    apr_array_header_t *names = apr_array_make(pool, 2, sizeof(const char *));
    apr_array_header_t *types = apr_array_make(pool, 1, sizeof(const char *));
    acme_order_params_t params;
    acme_order_t order, *out = NULL;
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 9, 1);
    acme_result_t *r = acme_result_make(pool);
    int i;

    APR_ARRAY_PUSH(names, const char *) = "example.org";
    APR_ARRAY_PUSH(names, const char *) = "www.example.org";
    APR_ARRAY_PUSH(types, const char *) = "http-01";
    memset(&params, 0, sizeof(params));
    params.names = names;
    params.challenges = types;
    params.publish = count_publish;
    params.withdraw = note_withdraw;
    params.keep = note_keep;
    params.posting = posted_before;
    memset(&order, 0, sizeof(order));
    order.url = "https://ca/order/1";
    order.status = ACME_STATE_PENDING;
    order.authorizations = apr_array_make(pool, 2, sizeof(const char *));
    APR_ARRAY_PUSH(order.authorizations, const char *) = "https://ca/authz/0";
    APR_ARRAY_PUSH(order.authorizations, const char *) = "https://ca/authz/1";
    published_count = 0;
    withdrawn_token = kept_token = kept_authz = NULL;
    ck_assert_int_eq(acme_order_authorize(&out, c, &order, &params,
                                          apr_time_now() + apr_time_from_sec(10), pool, r),
                     APR_EGENERAL);
    ck_assert_int_eq(f.next, 9);
    for (i = 0; i < f.next; ++i) {
        ck_assert_msg(strcmp(f.urls[i], "https://c/a"), "request %d POSTed a again", i);
    }
    ck_assert_str_eq(f.urls[4], "https://c/b");
    ck_assert_int_eq(published_count, 2);
    ck_assert_str_eq(withdrawn_token, "ta");
    ck_assert_str_eq(kept_token, "tb");
    ck_assert_str_eq(kept_authz, "https://ca/authz/1");
}
END_TEST

START_TEST(client_certificate_content_type_checked)
{
    static const canned_t script[] = {
        {200, AJSON, DIR_JSON, {NULL}, {NULL}},
        {200, NULL, NULL, {"Replay-Nonce"}, {"n0"}},
        {200, "text/html", "<html></html>", {"Replay-Nonce"}, {"n1"}},
        {200, "application/pem-certificate-chain", "-----BEGIN CERTIFICATE-----\nAAAA\n",
         {"Replay-Nonce"}, {"n2"}},
    };
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 4, 1);
    const char *pem;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_cert_download(&pem, c, "https://ca/cert/1", NULL, pool, r),
                     APR_EINVAL);
    ck_assert(contains(r->detail, "is text/html, not application/pem-certificate-chain"));
    ck_assert_int_eq(acme_cert_download(&pem, c, "https://ca/cert/1", NULL, pool, r),
                     APR_EINVAL);
    ck_assert(contains(r->detail, "holds no valid PEM certificate"));
    ck_assert_ptr_null(pem);
}
END_TEST

START_TEST(client_post_needs_account)
{
    static const canned_t script[] = {{200, AJSON, DIR_JSON, {NULL}, {NULL}}};
    fake_t f;
    acme_client_t *c = fake_client(&f, script, 1, 0);
    acme_order_t *o;
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_order_get(&o, c, "https://ca/order/1", pool, r), APR_EINVAL);
    ck_assert(contains(r->detail, "no account URL"));
    ck_assert_int_eq(f.next, 0);
}
END_TEST

static Suite *acme_suite(void)
{
    Suite *s = suite_create("acme");
    TCase *tc = tcase_create("parsers");
    TCase *tcc = tcase_create("client");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, directory_full);
    tcase_add_test(tc, poll_interval_steps_after_the_guess);
    tcase_add_test(tc, directory_minimal);
    tcase_add_test(tc, directory_malformed);
    tcase_add_test(tc, order_full);
    tcase_add_test(tc, order_invalid_with_error);
    tcase_add_test(tc, order_malformed);
    tcase_add_test(tc, authz_full);
    tcase_add_test(tc, authz_malformed);
    tcase_add_test(tc, account_parse);
    tcase_add_test(tc, states);
    tcase_add_test(tc, identifiers);
    tcase_add_test(tc, retry_after);
    tcase_add_test(tc, link_header);
    tcase_add_test(tc, challenge_selection);
    tcase_add_test(tc, response_checks);
    tcase_add_test(tc, renewal_info_answers);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tcc, setup, teardown);
    tcase_set_timeout(tcc, 30);
    tcase_add_test(tcc, client_bad_nonce_retries_with_the_fresh_nonce);
    tcase_add_test(tcc, client_bad_nonce_retries_are_bounded);
    tcase_add_test(tcc, client_shared_directory_nonces_and_poll_timing);
    tcase_add_test(tcc, client_poll_waits_for_retry_after);
    tcase_add_test(tcc, client_poll_tells_long_waits_and_their_end);
    tcase_add_test(tcc, client_nonce_without_header_fails_clearly);
    tcase_add_test(tcc, client_eab_required_refused_locally);
    tcase_add_test(tcc, client_order_needs_location_and_known_profile);
    tcase_add_test(tcc, client_poll_follows_states_and_stops_at_deadline);
    tcase_add_test(tcc, client_authz_failure_carries_challenge_problem);
    tcase_add_test(tcc, authz_for_a_name_not_asked_for_is_refused);
    tcase_add_test(tcc, authorize_posts_once_and_withdraws_only_final_answers);
    tcase_add_test(tcc, client_certificate_content_type_checked);
    tcase_add_test(tcc, client_post_needs_account);
    suite_add_tcase(s, tcc);
    return s;
}

ACME_TEST_MAIN(acme_suite)
