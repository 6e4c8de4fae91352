/* test_preflight.c: the pre-flight's pure parts (settings, messages, retry) and the
 * job's policy on a real fs store with a fake HTTP client that plays the network. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "acme_test.h"
#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_http.h"
#include "acme_store.h"
#include "acme_names.h"
#include "acme_publish.h"
#include "acme_job.h"
#include "acme_preflight.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* ---- settings ------------------------------------------------------------- */

static apr_status_t parse(acme_preflight_conf_t *c, const char *line, const char **perr)
{
    char *last, *w, *s = apr_pstrdup(pool, line);
    const char *argv[8];
    int argc = 0;

    for (w = apr_strtok(s, " ", &last); w && argc < 8; w = apr_strtok(NULL, " ", &last)) {
        argv[argc++] = w;
    }
    return acme_preflight_conf_parse(c, pool, argc, argv, perr);
}

START_TEST(conf_on_off_address)
{
    acme_preflight_conf_t c;
    const char *err;

    ck_assert_int_eq(parse(&c, "on", &err), APR_SUCCESS);
    ck_assert(c.enabled && !c.address && c.http_port == 80 && c.tls_port == 443);
    ck_assert_ptr_null(acme_preflight_connect_to(pool, &c));
    ck_assert_int_eq(parse(&c, "OFF", &err), APR_SUCCESS);
    ck_assert(!c.enabled);
    ck_assert_int_eq(parse(&c, "192.0.2.7 80:8080 443:8443", &err), APR_SUCCESS);
    ck_assert(c.enabled);
    ck_assert_str_eq(c.address, "192.0.2.7");
    ck_assert_int_eq(c.http_port, 8080);
    ck_assert_int_eq(c.tls_port, 8443);
    ck_assert_str_eq(acme_preflight_connect_to(pool, &c), "::192.0.2.7:8080");
    ck_assert_int_eq(parse(&c, "::1", &err), APR_SUCCESS);
    ck_assert_str_eq(acme_preflight_connect_to(pool, &c), "::[::1]:80");
    ck_assert_int_eq(parse(&c, "inside.example.org 443:4443", &err), APR_SUCCESS);
    ck_assert_int_eq(c.http_port, 80);
    ck_assert_int_eq(c.tls_port, 4443);
}
END_TEST

START_TEST(conf_refused)
{
    static const char *bad[] = {"on 80:81", "http://192.0.2.7", "*.example.org",
                                "192.0.2.7 80:0", "192.0.2.7 80:65536", "192.0.2.7 8080",
                                "192.0.2.7 22:2222", "192.0.2.7 80:x", "192.0.2.7 80:"};
    acme_preflight_conf_t c;
    const char *err;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        err = NULL;
        ck_assert_msg(parse(&c, bad[i], &err) != APR_SUCCESS, "accepted: %s", bad[i]);
        ck_assert_ptr_nonnull(err);
    }
    ck_assert(acme_preflight_conf_parse(&c, pool, 0, NULL, &err) != APR_SUCCESS);
}
END_TEST

/* ---- messages -------------------------------------------------------------- */

static acme_preflight_result_t result(const char *type, acme_pf_kind_t kind)
{
    acme_preflight_result_t r;

    memset(&r, 0, sizeof(r));
    r.type = type;
    r.name = "www.example.org";
    r.kind = kind;
    r.ca_port = strcmp(type, "http-01") ? 443 : 80;
    return r;
}

START_TEST(message_texts)
{
    acme_preflight_result_t r = result("http-01", ACME_PF_HTTP_STATUS);

    r.http_status = 404;
    r.remote = "203.0.113.5";
    ck_assert_str_eq(acme_preflight_message(pool, &r),
                     "http-01 for www.example.org: fetching it from here gave 404 from "
                     "203.0.113.5: does www.example.org's DNS point at this server? is port 80 "
                     "forwarded to it?");
    r.via = "192.0.2.7";
    ck_assert_str_eq(acme_preflight_message(pool, &r),
                     "http-01 for www.example.org: fetching it from here gave 404 from "
                     "203.0.113.5: is 192.0.2.7 this server (ManagedPreflight)? is port 80 "
                     "forwarded to it?");
    r = result("http-01", ACME_PF_WRONG_ANSWER);
    r.remote = "198.51.100.1";
    ck_assert_str_eq(acme_preflight_message(pool, &r),
                     "http-01 for www.example.org: fetching it from here gave another server's "
                     "answer from 198.51.100.1: does www.example.org's DNS point at this server? "
                     "is port 80 forwarded to it?");
    r = result("http-01", ACME_PF_UNREACHABLE);
    r.detail = "Could not resolve host: www.example.org";
    ck_assert_str_eq(acme_preflight_message(pool, &r),
                     "http-01 for www.example.org: it cannot be reached from here (Could not "
                     "resolve host: www.example.org): does www.example.org's DNS point at this "
                     "server? is port 80 forwarded to it?");
    r = result("tls-alpn-01", ACME_PF_NO_ACME_TLS);
    r.remote = "203.0.113.5";
    r.detail = "it chose http/1.1";
    ck_assert_str_eq(acme_preflight_message(pool, &r),
                     "tls-alpn-01 for www.example.org: the server that answers from 203.0.113.5 "
                     "does not offer acme-tls/1 (it chose http/1.1): does www.example.org's DNS "
                     "point at this server? is port 443 forwarded to it? (a TLS proxy in front "
                     "must pass it through)");
    r = result("tls-alpn-01", ACME_PF_WRONG_CERT);
    ck_assert_ptr_nonnull(strstr(acme_preflight_message(pool, &r), "another challenge "
                                 "certificate: does www.example.org's DNS"));
    r = result("tls-alpn-01", ACME_PF_TLS_FAILED);
    ck_assert_ptr_nonnull(strstr(acme_preflight_message(pool, &r), "port 443"));
    r = result("http-01", ACME_PF_NOT_PUBLISHED);
    r.detail = "disk full";
    ck_assert_str_eq(acme_preflight_message(pool, &r), "http-01 for www.example.org: a test "
                     "answer could not be published here (disk full)");
    r = result("http-01", ACME_PF_PASSED);
    ck_assert_ptr_null(acme_preflight_message(pool, &r));
}
END_TEST

START_TEST(retry_doubles_up_to_ten_minutes)
{
    ck_assert_int_eq(acme_preflight_retry(apr_time_from_sec(1), 1), apr_time_from_sec(1));
    ck_assert_int_eq(acme_preflight_retry(apr_time_from_sec(1), 3), apr_time_from_sec(4));
    ck_assert_int_eq(acme_preflight_retry(apr_time_from_sec(30), 5), apr_time_from_sec(480));
    ck_assert_int_eq(acme_preflight_retry(apr_time_from_sec(30), 6), ACME_PREFLIGHT_RETRY_MAX);
    ck_assert_int_eq(acme_preflight_retry(apr_time_from_sec(30), 1000), ACME_PREFLIGHT_RETRY_MAX);
    ck_assert_int_eq(acme_preflight_retry(apr_time_from_sec(3600), 1), ACME_PREFLIGHT_RETRY_MAX);
    ck_assert_int_eq(acme_preflight_retry(0, 1), apr_time_from_sec(1));
}
END_TEST

/* ---- the policy, with a fake network ------------------------------------- */

#define D "example.org"
#define T0 apr_time_from_sec(1800000000)

typedef struct {
    int serve;                 /* 1: answers what the store publishes; 0: 404 */
    const char *redirect;      /* the challenge URL answers 302 to this */
    int calls;
    const char *connect_to;    /* as the job configured the client */
    const char *url;
    acme_store_t *store;
} fake_net_t;

static fake_net_t net;
static acme_store_t *store;
static acme_job_spec_t spec;
static acme_preflight_conf_t pfconf;

static apr_status_t fake_perform(acme_http_t *http, acme_http_response_t **presp,
                                 const acme_http_request_t *req, apr_pool_t *p,
                                 acme_result_t *result)
{
    fake_net_t *n = http->baton;
    acme_http_response_t *resp = apr_pcalloc(p, sizeof(*resp));
    const char *token = strrchr(req->url, '/') + 1, *data = NULL;
    apr_size_t len = 0;

    (void)result;
    n->calls++;
    n->url = apr_pstrdup(pool, req->url);
    resp->headers = apr_table_make(p, 1);
    resp->remote_ip = "203.0.113.5";
    if (n->redirect && strstr(req->url, "/.well-known/acme-challenge/")) {
        resp->status = 302;
        resp->body = "";
        apr_table_set(resp->headers, "Location", n->redirect);
    }
    else if (n->serve && n->store->load(n->store, ACME_SG_CHALLENGES, "http-01", token, &data, &len,
                                   p) == APR_SUCCESS) {
        resp->status = 200;
        resp->body = data;
        resp->body_len = len;
    }
    else {
        resp->status = 404;
        resp->body = "";
    }
    *presp = resp;
    return APR_SUCCESS;
}

static apr_status_t fake_http(acme_http_t **phttp, apr_pool_t *p,
                              const acme_http_config_t *conf, void *baton)
{
    acme_http_t *h = apr_pcalloc(p, sizeof(*h));
    fake_net_t *n = baton;

    n->connect_to = conf->connect_to ? apr_pstrdup(pool, conf->connect_to) : NULL;
    h->baton = n;
    h->perform = fake_perform;
    *phttp = h;
    return APR_SUCCESS;
}

static void policy_setup(void)
{
    char base[] = "/tmp/acme-preflight-test-XXXXXX";
    apr_array_header_t *names, *ch, *pubs;
    const char *err = NULL;

    apr_pool_create(&pool, NULL);
    ck_assert_ptr_nonnull(mkdtemp(base));
    ck_assert_int_eq(acme_store_fs_create(&store, pool, base, &err), APR_SUCCESS);
    names = apr_array_make(pool, 2, sizeof(const char *));
    APR_ARRAY_PUSH(names, const char *) = D;
    APR_ARRAY_PUSH(names, const char *) = "www." D;
    ch = apr_array_make(pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(ch, const char *) = "http-01";
    pubs = apr_array_make(pool, 1, sizeof(const acme_publisher_t *));
    APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = &acme_publisher_http01;
    acme_preflight_conf_init(&pfconf);
    pfconf.address = "192.0.2.7";
    memset(&net, 0, sizeof(net));
    net.store = store;
    memset(&spec, 0, sizeof(spec));
    spec.domain = D;
    spec.names = names;
    spec.challenges = ch;
    spec.publishers = pubs;
    spec.retry_delay = apr_time_from_sec(30);
    spec.http = fake_http;
    spec.http_baton = &net;
    spec.preflight = &pfconf;
}

/* job.json after the CA refused a validation */
static acme_json_t *job_after_failed_validation(void)
{
    acme_json_t *job = acme_json_new_object(pool);
    acme_result_t *r = acme_result_make(pool);

    acme_result_set(r, APR_EGENERAL, "urn:ietf:params:acme:error:unauthorized",
                    "Invalid response from http://example.org/: 404");
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_VALIDATION);
    acme_json_setl(job, 1, ACME_JK_ERRORS, NULL);
    acme_json_setj(job, acme_result_to_json(r, pool), ACME_JK_LAST_ERROR, NULL);
    return job;
}

static int published_left(void)
{
    apr_array_header_t *items = NULL;

    if (store->list(store, ACME_SG_CHALLENGES, "http-01", &items, pool) != APR_SUCCESS) {
        return 0;
    }
    return items ? items->nelts : 0;
}

START_TEST(failing_alone_is_a_diagnosis)
{
    acme_json_t *job = acme_json_new_object(pool);
    acme_result_t *r = acme_result_make(pool);
    const char *diag;

    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(net.calls, 1); /* the first name fails: the type does */
    ck_assert_str_eq(net.connect_to, "::192.0.2.7:80");
    ck_assert_ptr_nonnull(strstr(net.url, "http://" D "/.well-known/acme-challenge/"));
    diag = acme_json_gets(job, ACME_JK_PREFLIGHT, ACME_JK_PF_DIAGNOSIS, NULL);
    ck_assert_ptr_nonnull(diag);
    ck_assert_ptr_nonnull(strstr(diag, "gave 404 from 203.0.113.5"));
    ck_assert(!acme_json_getb(job, ACME_JK_PREFLIGHT, ACME_JK_PF_HOLDING, NULL));
    ck_assert_int_eq(acme_json_getl(job, ACME_JK_NEXT_ATTEMPT, NULL), 0);
    ck_assert_int_eq(published_left(), 0); /* withdrawn */
}
END_TEST

/* Redirects are followed only where the CA follows them. */
START_TEST(redirects_only_where_the_ca_goes)
{
    static const struct {
        const char *location;
        int calls;
        const char *diagnosis;
    } cases[] = {
        {"http://" D ":8080/x", 1, "port 8080, which the CA does not follow"},
        {"ftp://" D "/x", 1, "scheme other than http and https"},
        {"https://" D ":22/x", 1, "port 22"},
        {"/elsewhere", 2, "gave 404"},              /* same host: followed */
        {"https://other.example/x", 2, "gave 404"}, /* another host on 443: followed */
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        acme_json_t *job = acme_json_new_object(pool);
        acme_result_t *r = acme_result_make(pool);
        const char *diag;

        net.calls = 0;
        net.redirect = cases[i].location;
        ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
        ck_assert_int_eq(net.calls, cases[i].calls);
        diag = acme_json_gets(job, ACME_JK_PREFLIGHT, ACME_JK_PF_DIAGNOSIS, NULL);
        ck_assert_msg(diag && strstr(diag, cases[i].diagnosis), "%s: %s", cases[i].location,
                      diag ? diag : "(none)");
    }
}
END_TEST

/* A redirect loop ends after as many hops as the CA follows. */
START_TEST(redirect_loops_end)
{
    acme_json_t *job = acme_json_new_object(pool);
    acme_result_t *r = acme_result_make(pool);
    const char *diag;

    net.redirect = "/.well-known/acme-challenge/again";
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(net.calls, 11);
    diag = acme_json_gets(job, ACME_JK_PREFLIGHT, ACME_JK_PF_DIAGNOSIS, NULL);
    ck_assert_ptr_nonnull(diag);
    ck_assert_ptr_nonnull(strstr(diag, "more than 10 redirects"));
}
END_TEST

START_TEST(after_failed_validation_it_holds_back)
{
    acme_json_t *job = job_after_failed_validation();
    acme_result_t *r = acme_result_make(pool);
    long long next1, next2;

    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_EAGAIN);
    ck_assert_str_eq(r->problem, ACME_PROBLEM_PREFLIGHT);
    ck_assert_ptr_nonnull(strstr(r->detail, "gave 404 from 203.0.113.5"));
    ck_assert(acme_json_getb(job, ACME_JK_PREFLIGHT, ACME_JK_PF_HOLDING, NULL));
    ck_assert_int_eq(acme_json_getl(job, ACME_JK_PREFLIGHT, ACME_JK_PF_BLOCKS, NULL), 1);
    next1 = acme_json_getl(job, ACME_JK_NEXT_ATTEMPT, NULL);
    ck_assert_int_eq(next1, apr_time_sec(T0) + 30 + 1);
    /* the CA's own error stays, and is not counted again */
    ck_assert_int_eq(acme_json_getl(job, ACME_JK_ERRORS, NULL), 1);
    ck_assert_str_eq(acme_json_gets(job, ACME_JK_LAST_ERROR, "problem", NULL),
                     "urn:ietf:params:acme:error:unauthorized");
    ck_assert_int_eq(published_left(), 0);

    r = acme_result_make(pool);
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_EAGAIN);
    ck_assert_int_eq(acme_json_getl(job, ACME_JK_PREFLIGHT, ACME_JK_PF_BLOCKS, NULL), 2);
    next2 = acme_json_getl(job, ACME_JK_NEXT_ATTEMPT, NULL);
    ck_assert_int_eq(next2, apr_time_sec(T0) + 60 + 1);

    /* fixed: the next attempt goes ahead, without a diagnosis */
    net.serve = 1;
    net.calls = 0;
    r = acme_result_make(pool);
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(net.calls, 2); /* both names */
    ck_assert_ptr_null(acme_json_gets(job, ACME_JK_PREFLIGHT, ACME_JK_PF_DIAGNOSIS, NULL));
    ck_assert(!acme_json_getb(job, ACME_JK_PREFLIGHT, ACME_JK_PF_HOLDING, NULL));
    {
        apr_array_header_t *passed = NULL;
        ck_assert_int_eq(acme_json_getsa(&passed, job, pool, ACME_JK_PREFLIGHT,
                                         ACME_JK_PF_PASSED, NULL), APR_SUCCESS);
        ck_assert_int_eq(passed->nelts, 1);
        ck_assert_str_eq(APR_ARRAY_IDX(passed, 0, const char *), "http-01");
    }
    ck_assert_int_eq(published_left(), 0);
}
END_TEST

START_TEST(off_and_unchecked_types_ask_nothing)
{
    acme_json_t *job = job_after_failed_validation();
    acme_result_t *r = acme_result_make(pool);
    apr_array_header_t *dns = apr_array_make(pool, 1, sizeof(const char *));

    pfconf.enabled = 0;
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(net.calls, 0);
    pfconf.enabled = 1;
    APR_ARRAY_PUSH(dns, const char *) = "dns-01";
    spec.challenges = dns;  /* its publisher checks propagation itself */
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(net.calls, 0);
    ck_assert_int_eq(acme_json_type(job, ACME_JK_PREFLIGHT, NULL), ACME_JSON_NONE);
}
END_TEST

static Suite *preflight_suite(void)
{
    Suite *s = suite_create("preflight");
    TCase *tc = tcase_create("pure");
    TCase *tp = tcase_create("policy");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, conf_on_off_address);
    tcase_add_test(tc, conf_refused);
    tcase_add_test(tc, message_texts);
    tcase_add_test(tc, retry_doubles_up_to_ten_minutes);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(tp, policy_setup, teardown);
    tcase_add_test(tp, failing_alone_is_a_diagnosis);
    tcase_add_test(tp, redirects_only_where_the_ca_goes);
    tcase_add_test(tp, redirect_loops_end);
    tcase_add_test(tp, after_failed_validation_it_holds_back);
    tcase_add_test(tp, off_and_unchecked_types_ask_nothing);
    suite_add_tcase(s, tp);
    return s;
}

ACME_TEST_MAIN(preflight_suite)
