/* test_preflight.c: the pre-flight's pure parts (settings, messages, retry), the
 * job's policy on a real fs store with a fake HTTP client that plays the network,
 * and its transfers stopped in the middle against a name server that never answers. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <apr_strings.h>
#include <apr_atomic.h>

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
#include "acme_crypto.h"

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

/* A first attempt or a renewal goes straight to the CA: nothing is published
 * or fetched, and a diagnosis from before stays, no longer holding. */
START_TEST(before_a_refusal_it_asks_nothing)
{
    acme_json_t *job = acme_json_new_object(pool);
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(net.calls, 0);
    ck_assert_int_eq(acme_json_type(job, ACME_JK_PREFLIGHT, NULL), ACME_JSON_NONE);

    /* held back once; then the CA's error is gone (e.g. a connection error since) */
    job = job_after_failed_validation();
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_EAGAIN);
    ck_assert_int_eq(net.calls, 1);
    acme_json_setj(job, acme_json_new_object(pool), ACME_JK_LAST_ERROR, NULL);
    acme_json_sets(job, "urn:ietf:params:acme:error:connection", ACME_JK_LAST_ERROR,
                   "problem", NULL);
    r = acme_result_make(pool);
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(net.calls, 1);
    ck_assert_ptr_nonnull(strstr(acme_json_gets(job, ACME_JK_PREFLIGHT, ACME_JK_PF_DIAGNOSIS,
                                                NULL), "gave 404 from 203.0.113.5"));
    ck_assert(!acme_json_getb(job, ACME_JK_PREFLIGHT, ACME_JK_PF_HOLDING, NULL));
}
END_TEST

/* A loopback port where nothing listens (bound, then closed). */
static apr_port_t closed_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* After a refusal, a type that fails here is steered around while another passes. */
START_TEST(after_a_refusal_it_steers_to_a_type_that_passes)
{
    apr_array_header_t *ch = apr_array_make(pool, 2, sizeof(const char *));
    apr_array_header_t *pubs = apr_array_make(pool, 2, sizeof(const acme_publisher_t *));
    apr_array_header_t *failed = NULL, *passed = NULL;
    acme_json_t *job = job_after_failed_validation();
    acme_result_t *r = acme_result_make(pool);
    const char *diag;

    APR_ARRAY_PUSH(ch, const char *) = "tls-alpn-01";
    APR_ARRAY_PUSH(ch, const char *) = "http-01";
    APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = &acme_publisher_tlsalpn01;
    APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = &acme_publisher_http01;
    spec.challenges = ch;
    spec.publishers = pubs;
    pfconf.address = "127.0.0.1";
    pfconf.tls_port = closed_port(); /* tls-alpn-01: refused */
    net.serve = 1;                   /* http-01: answered */
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(net.calls, 2);
    ck_assert_str_eq(net.connect_to, "::127.0.0.1:80");
    diag = acme_json_gets(job, ACME_JK_PREFLIGHT, ACME_JK_PF_DIAGNOSIS, NULL);
    ck_assert_ptr_nonnull(diag);
    ck_assert_msg(strstr(diag, "tls-alpn-01 for " D ": it cannot be reached"), "%s", diag);
    ck_assert(!acme_json_getb(job, ACME_JK_PREFLIGHT, ACME_JK_PF_HOLDING, NULL));
    ck_assert_int_eq(acme_json_getsa(&failed, job, pool, ACME_JK_FAILED_CHALLENGES, NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(failed->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(failed, 0, const char *), "tls-alpn-01");
    ck_assert_int_eq(acme_json_getsa(&passed, job, pool, ACME_JK_PREFLIGHT, ACME_JK_PF_PASSED,
                                     NULL), APR_SUCCESS);
    ck_assert_int_eq(passed->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(passed, 0, const char *), "http-01");
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
        acme_json_t *job = job_after_failed_validation();
        acme_result_t *r = acme_result_make(pool);
        const char *diag;

        net.calls = 0;
        net.redirect = cases[i].location;
        ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_EAGAIN);
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
    acme_json_t *job = job_after_failed_validation();
    acme_result_t *r = acme_result_make(pool);
    const char *diag;

    net.redirect = "/.well-known/acme-challenge/again";
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_EAGAIN);
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
    ck_assert_int_eq(net.calls, 1); /* the first name fails: the type does */
    ck_assert_str_eq(net.connect_to, "::192.0.2.7:80");
    ck_assert_ptr_nonnull(strstr(net.url, "http://" D "/.well-known/acme-challenge/"));
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

/* Stopped (a graceful restart): no diagnosis from a look cut short, no hold. */
START_TEST(stopped_it_neither_diagnoses_nor_holds)
{
    static volatile apr_uint32_t stop = 1;
    acme_json_t *job = job_after_failed_validation();
    acme_result_t *r = acme_result_make(pool);

    spec.stop = &stop;
    ck_assert_int_eq(acme_preflight_run(job, store, &spec, T0, pool, r), APR_EINTR);
    ck_assert_int_eq(net.calls, 0);
    ck_assert_int_eq(acme_json_type(job, ACME_JK_PREFLIGHT, NULL), ACME_JSON_NONE);
    ck_assert_int_eq(acme_json_getl(job, ACME_JK_NEXT_ATTEMPT, NULL), 0);
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

/* ---- transfers stopped in the middle ---------------------------------------- */

/* A name that no /etc/hosts has: the resolver must ask the name server. */
#define SLOW_NAME "preflight.slow.test"
#define SKIPPED 77

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ok = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text);

    if (fd >= 0) close(fd);
    return ok;
}

/* This process in namespaces of its own, where the resolver's only name
 * server is a loopback UDP socket that never answers: a real resolution
 * that hangs (for 5 s, resolv.conf's timeout), the same every time. */
static int slow_dns_enter(void)
{
    char dir[] = "/tmp/acme-slow-dns-XXXXXX", conf[64], nss[64], map[32];
    unsigned uid = (unsigned)geteuid(), gid = (unsigned)getegid();
    struct sockaddr_in ns;
    struct ifreq ifr;
    int fd;

    if (!mkdtemp(dir) || unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) != 0) return 0;
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof(map), "0 %u 1", uid);
    if (!write_file("/proc/self/uid_map", map)) return 0;
    snprintf(map, sizeof(map), "0 %u 1", gid);
    if (!write_file("/proc/self/gid_map", map)) return 0;
    snprintf(conf, sizeof(conf), "%s/resolv.conf", dir);
    snprintf(nss, sizeof(nss), "%s/nsswitch.conf", dir);
    if (!write_file(conf, "nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
        || !write_file(nss, "hosts: files dns\n")
        || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0
        || mount(conf, "/etc/resolv.conf", NULL, MS_BIND, NULL) != 0
        || mount(nss, "/etc/nsswitch.conf", NULL, MS_BIND, NULL) != 0) {
        return 0;
    }
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name) - 1);
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) return 0;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) return 0;
    memset(&ns, 0, sizeof(ns));
    ns.sin_family = AF_INET;
    ns.sin_port = htons(53);
    ns.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return bind(fd, (struct sockaddr *)&ns, sizeof(ns)) == 0; /* stays open, never read */
}

typedef struct {
    volatile apr_uint32_t *flag;
    int after_ms;
} stopper_t;

static void *stopper(void *data)
{
    stopper_t *st = data;

    usleep((useconds_t)st->after_ms * 1000);
    apr_atomic_set32(st->flag, 1);
    return NULL;
}

/* Runs fn (returns NULL when it passed, or why not) in a child in the slow
 * resolver's namespaces, with *stop set after ~100 ms; fails the test unless
 * fn passed and took between 0.1 s and 1 s. Skipped where a user cannot have
 * namespaces (a container without them). */
typedef const char *(*slow_fn_t)(volatile apr_uint32_t *stop, apr_pool_t *p);

static void in_slow_dns(slow_fn_t fn, int stop_after_ms, const char *what)
{
    int fds[2], status = 0;
    char msg[512] = "";
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        static volatile apr_uint32_t stop;
        stopper_t st = {&stop, stop_after_ms};
        const char *why;
        apr_pool_t *p;
        apr_time_t t0;
        pthread_t tid;

        close(fds[0]);
        if (!slow_dns_enter()) _exit(SKIPPED);
        apr_pool_create(&p, NULL);
        if (stop_after_ms > 0) pthread_create(&tid, NULL, stopper, &st);
        t0 = apr_time_now();
        why = fn(&stop, p);
        t0 = apr_time_now() - t0;
        if (!why && (t0 < apr_time_from_msec(100) || t0 > apr_time_from_sec(1))) {
            why = apr_psprintf(p, "it returned after %d ms", (int)apr_time_as_msec(t0));
        }
        if (why) {
            n = write(fds[1], why, strlen(why));
            (void)n;
        }
        _exit(why ? 1 : 0);
    }
    close(fds[1]);
    n = read(fds[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) == SKIPPED) {
        fprintf(stderr, "SKIP %s: no user, mount and network namespaces here\n", what);
        return;
    }
    ck_assert_msg(WEXITSTATUS(status) == 0, "%s: %s", what, msg);
}

static const char *fetch_slow_name(volatile apr_uint32_t *stop, apr_pool_t *p)
{
    acme_result_t *r = acme_result_make(p);
    acme_http_response_t *resp = NULL;
    acme_http_config_t hc;
    acme_http_t *http;

    acme_http_global_init();
    acme_http_config_init(&hc);
    hc.abort = stop;
    hc.connect_timeout = apr_time_from_sec(30);
    hc.timeout = apr_time_from_sec(30);
    if (acme_http_curl_create(&http, p, &hc) != APR_SUCCESS) return "no curl handle";
    if (acme_http_do(http, &resp, p, "GET", "http://" SLOW_NAME "/.well-known/acme-challenge/x",
                     NULL, NULL, 0, 0, r) == APR_SUCCESS) {
        return "the fetch succeeded";
    }
    return NULL;
}

static const char *probe_slow_name(volatile apr_uint32_t *stop, apr_pool_t *p)
{
    acme_alpn_probe_t pr;

    acme_tls_alpn01_probe(&pr, p, SLOW_NAME, 443, SLOW_NAME, "t.k", apr_time_from_sec(30),
                          apr_time_from_sec(30), stop);
    if (pr.stage != ACME_ALPN_PROBE_NO_CONNECT) return "the probe connected";
    return pr.detail && strstr(pr.detail, "stopped") ? NULL
           : apr_psprintf(p, "detail: %s", pr.detail ? pr.detail : "(none)");
}

static const char *probe_slow_name_deadline(volatile apr_uint32_t *stop, apr_pool_t *p)
{
    acme_alpn_probe_t pr;

    acme_tls_alpn01_probe(&pr, p, SLOW_NAME, 443, SLOW_NAME, "t.k", apr_time_from_msec(300),
                          apr_time_from_sec(30), stop);
    return pr.detail && strstr(pr.detail, "took too long") ? NULL
           : apr_psprintf(p, "detail: %s", pr.detail ? pr.detail : "(none)");
}

/* The http-01 fetch: curl's threaded resolver is left behind, not waited for. */
START_TEST(fetch_stops_during_a_resolution)
{
    in_slow_dns(fetch_slow_name, 100, "http-01 fetch");
}
END_TEST

/* The tls-alpn-01 probe: the resolution in a thread of its own is left behind. */
START_TEST(probe_stops_during_a_resolution)
{
    in_slow_dns(probe_slow_name, 100, "tls-alpn-01 probe");
}
END_TEST

START_TEST(probe_resolution_has_a_deadline)
{
    in_slow_dns(probe_slow_name_deadline, 0, "tls-alpn-01 probe's resolution");
}
END_TEST

/* A server that takes the connection (the kernel's backlog) and never answers the handshake. */
START_TEST(probe_stops_during_a_handshake)
{
    static volatile apr_uint32_t stop;
    stopper_t st = {&stop, 100};
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    acme_alpn_probe_t pr;
    apr_time_t t0;
    pthread_t tid;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    ck_assert_int_eq(pthread_create(&tid, NULL, stopper, &st), 0);
    t0 = apr_time_now();
    acme_tls_alpn01_probe(&pr, pool, "127.0.0.1", ntohs(sin.sin_port), "example.org", "t.k",
                          apr_time_from_sec(30), apr_time_from_sec(30), &stop);
    t0 = apr_time_now() - t0;
    pthread_join(tid, NULL);
    close(fd);
    ck_assert_int_eq(pr.stage, ACME_ALPN_PROBE_NO_HANDSHAKE);
    ck_assert_str_eq(pr.remote, "127.0.0.1");
    ck_assert_str_eq(pr.detail, "stopped");
    ck_assert_msg(t0 >= apr_time_from_msec(100) && t0 < apr_time_from_sec(1), "%d ms",
                  (int)apr_time_as_msec(t0));
}
END_TEST

static Suite *preflight_suite(void)
{
    Suite *s = suite_create("preflight");
    TCase *tc = tcase_create("pure");
    TCase *tp = tcase_create("policy");
    TCase *ta = tcase_create("abort");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, conf_on_off_address);
    tcase_add_test(tc, conf_refused);
    tcase_add_test(tc, message_texts);
    tcase_add_test(tc, retry_doubles_up_to_ten_minutes);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(tp, policy_setup, teardown);
    tcase_add_test(tp, before_a_refusal_it_asks_nothing);
    tcase_add_test(tp, after_a_refusal_it_steers_to_a_type_that_passes);
    tcase_add_test(tp, redirects_only_where_the_ca_goes);
    tcase_add_test(tp, redirect_loops_end);
    tcase_add_test(tp, after_failed_validation_it_holds_back);
    tcase_add_test(tp, off_and_unchecked_types_ask_nothing);
    tcase_add_test(tp, stopped_it_neither_diagnoses_nor_holds);
    suite_add_tcase(s, tp);
    tcase_add_checked_fixture(ta, setup, teardown);
    tcase_set_timeout(ta, 30);
    tcase_add_test(ta, fetch_stops_during_a_resolution);
    tcase_add_test(ta, probe_stops_during_a_resolution);
    tcase_add_test(ta, probe_resolution_has_a_deadline);
    tcase_add_test(ta, probe_stops_during_a_handshake);
    suite_add_tcase(s, ta);
    return s;
}

ACME_TEST_MAIN(preflight_suite)
