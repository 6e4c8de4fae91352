/* test_etcd.c: the etcd gateway client over a scripted fake acme_http_t:
 * request encoding, failover, auth, and refusal of malformed answers. */
#include <check.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_http.h"
#include "acme_etcd.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_store_etcd.h"
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

/* status -1: a transport error (connection refused) */
typedef struct {
    int status;
    const char *body;
} canned_t;

#define MAXREQ 32

typedef struct {
    const canned_t *script;
    int n;
    int next;
    const char *urls[MAXREQ];
    const char *bodies[MAXREQ];
    const char *auth[MAXREQ];
} fake_t;

static apr_status_t fake_perform(acme_http_t *http, acme_http_response_t **presp,
                                 const acme_http_request_t *req, apr_pool_t *p,
                                 acme_result_t *result)
{
    fake_t *f = http->baton;
    const canned_t *c;
    acme_http_response_t *resp;

    *presp = NULL;
    if (f->next >= f->n || f->next >= MAXREQ) {
        return acme_result_set(result, APR_EGENERAL, "acme:network", "%s %s: script exhausted",
                               req->method, req->url);
    }
    ck_assert_str_eq(req->method, "POST");
    ck_assert_str_eq(apr_table_get(req->headers, "Content-Type"), "application/json");
    f->urls[f->next] = apr_pstrdup(pool, req->url);
    f->bodies[f->next] = apr_pstrmemdup(pool, req->body, req->body_len);
    f->auth[f->next] = apr_pstrdup(pool, apr_table_get(req->headers, "Authorization"));
    c = &f->script[f->next++];
    if (c->status < 0) {
        return acme_result_set(result, APR_ECONNREFUSED, "acme:network",
                               "%s %s: Couldn't connect", req->method, req->url);
    }
    resp = apr_pcalloc(p, sizeof(*resp));
    resp->status = c->status;
    resp->headers = apr_table_make(p, 1);
    resp->body = c->body ? c->body : "";
    resp->body_len = strlen(resp->body);
    if (req->on_data) {
        /* a stream arrives in pieces that split its lines anywhere */
        apr_size_t at, piece;
        apr_status_t rv;
        for (at = 0; at < resp->body_len; at += piece) {
            piece = resp->body_len - at < 7 ? resp->body_len - at : 7;
            if ((rv = req->on_data(req->on_data_baton, resp->body + at, piece)) != APR_SUCCESS) {
                return rv;
            }
        }
        resp->body = "";
    }
    resp->effective_url = req->url;
    *presp = resp;
    return APR_SUCCESS;
}

static acme_etcd_config_t conf;

static acme_etcd_t *fake_etcd(fake_t *f, const canned_t *script, int n, int nendpoints)
{
    static const char *urls[] = {"http://e1:2379", "http://e2:2379/", "http://e3:2379"};
    acme_http_t *http = apr_pcalloc(pool, sizeof(*http));
    apr_array_header_t *eps = apr_array_make(pool, 3, sizeof(const char *));
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_t *e;
    int i;

    memset(f, 0, sizeof(*f));
    f->script = script;
    f->n = n;
    http->baton = f;
    http->perform = fake_perform;
    for (i = 0; i < nendpoints; ++i) {
        APR_ARRAY_PUSH(eps, const char *) = urls[i];
    }
    conf.endpoints = eps;
    ck_assert_int_eq(acme_etcd_create(&e, pool, &conf, http, r), APR_SUCCESS);
    return e;
}

static acme_json_t *js(const char *text)
{
    acme_json_t *j;
    const char *err;

    ck_assert_msg(acme_json_parse(&j, pool, text, strlen(text), &err) == APR_SUCCESS,
                  "not JSON: %s", text);
    return j;
}

static int contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

#define HDR "\"header\":{\"cluster_id\":\"77\",\"member_id\":\"1\",\"revision\":\"42\"," \
            "\"raft_term\":\"2\"}"

/* ---- base64 ------------------------------------------------------------------------ */

START_TEST(b64_round_trip_and_strict_decode)
{
    static const char *bad[] = {"Zm9", "Zm9v!", "Zm=v", "Zg===", "Z===", "Zm9v\n", "-_8=",
                                "=Zm9"};
    unsigned char *raw;
    apr_size_t len, i;

    ck_assert_str_eq(acme_etcd_b64_encode(pool, "foo", 3), "Zm9v");
    ck_assert_str_eq(acme_etcd_b64_encode(pool, "fo", 2), "Zm8=");
    ck_assert_str_eq(acme_etcd_b64_encode(pool, "f", 1), "Zg==");
    ck_assert_str_eq(acme_etcd_b64_encode(pool, "\xfb\xff", 2), "+/8=");
    ck_assert_str_eq(acme_etcd_b64_encode(pool, "", 0), "");
    ck_assert_int_eq(acme_etcd_b64_decode(&raw, &len, pool, "+/8="), APR_SUCCESS);
    ck_assert_uint_eq(len, 2);
    ck_assert(raw[0] == 0xfb && raw[1] == 0xff);
    ck_assert_int_eq(acme_etcd_b64_decode(&raw, &len, pool, "Zm8="), APR_SUCCESS);
    ck_assert_str_eq((const char *)raw, "fo");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(acme_etcd_b64_decode(&raw, &len, pool, bad[i]) == APR_EINVAL,
                      "'%s' decoded", bad[i]);
    }
}
END_TEST

/* ---- key-value --------------------------------------------------------------------- */

START_TEST(get_encodes_the_key_and_parses_the_answer)
{
    static const canned_t script[] = {
        {200, "{" HDR ",\"kvs\":[{\"key\":\"YS9i\",\"create_revision\":\"5\","
              "\"mod_revision\":\"9\",\"version\":\"3\",\"value\":\"aGVsbG8=\"}],\"count\":\"1\"}"},
        {200, "{" HDR "}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 2, 1);
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_kv_t *kv;

    ck_assert_int_eq(acme_etcd_get(&kv, e, "a/b", pool, r), APR_SUCCESS);
    ck_assert_str_eq(f.urls[0], "http://e1:2379/v3/kv/range");
    ck_assert_str_eq(acme_json_gets(js(f.bodies[0]), "key", NULL), "YS9i");
    ck_assert_ptr_null(f.auth[0]);
    ck_assert_str_eq(kv->key, "a/b");
    ck_assert_str_eq(kv->value, "hello");
    ck_assert_uint_eq(kv->value_len, 5);
    ck_assert_int_eq(kv->create_revision, 5);
    ck_assert_int_eq(kv->mod_revision, 9);
    ck_assert_int_eq(kv->version, 3);
    ck_assert_int_eq(kv->lease, 0);
    /* absent: the gateway leaves kvs out */
    ck_assert_int_eq(acme_etcd_get(&kv, e, "a/c", pool, r), APR_ENOENT);
    ck_assert_ptr_null(kv);
}
END_TEST

START_TEST(put_and_delete_encode_values_leases_and_ranges)
{
    static const canned_t script[] = {
        {200, "{" HDR "}"},
        {200, "{" HDR ",\"deleted\":\"3\"}"},
        {200, "{" HDR "}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 3, 1);
    acme_result_t *r = acme_result_make(pool);
    apr_int64_t rev, n;
    acme_json_t *b;

    ck_assert_int_eq(acme_etcd_put(&rev, e, "k", "v\0x", 3, 7587869481274716419LL, pool, r),
                     APR_SUCCESS);
    ck_assert_int_eq(rev, 42);
    b = js(f.bodies[0]);
    ck_assert_str_eq(f.urls[0], "http://e1:2379/v3/kv/put");
    ck_assert_str_eq(acme_json_gets(b, "key", NULL), "aw==");
    ck_assert_str_eq(acme_json_gets(b, "value", NULL), "dgB4");
    ck_assert_str_eq(acme_json_gets(b, "lease", NULL), "7587869481274716419");

    ck_assert_int_eq(acme_etcd_delete(&n, e, "p/", 1, pool, r), APR_SUCCESS);
    ck_assert_int_eq(n, 3);
    b = js(f.bodies[1]);
    ck_assert_str_eq(f.urls[1], "http://e1:2379/v3/kv/deleterange");
    ck_assert_str_eq(acme_json_gets(b, "key", NULL), "cC8=");
    ck_assert_str_eq(acme_json_gets(b, "range_end", NULL), "cDA=");   /* "p0" */
    ck_assert_int_eq(acme_etcd_delete(&n, e, "p/x", 0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(n, 0);
    ck_assert(!acme_json_has(js(f.bodies[2]), "range_end", NULL));
}
END_TEST

START_TEST(get_prefix_sends_range_limit_and_keys_only)
{
    static const canned_t script[] = {
        {200, "{" HDR ",\"kvs\":[{\"key\":\"cC9h\",\"create_revision\":\"2\","
              "\"mod_revision\":\"2\",\"version\":\"1\"},{\"key\":\"cC9i\","
              "\"create_revision\":\"3\",\"mod_revision\":\"4\",\"version\":\"2\"}],"
              "\"more\":true,\"count\":\"5\"}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 1, 1);
    acme_result_t *r = acme_result_make(pool);
    apr_array_header_t *kvs;
    acme_json_t *b;
    int more;

    ck_assert_int_eq(acme_etcd_get_prefix(&kvs, &more, e, "p/", 1, 2, pool, r), APR_SUCCESS);
    b = js(f.bodies[0]);
    ck_assert_str_eq(acme_json_gets(b, "range_end", NULL), "cDA=");
    ck_assert_str_eq(acme_json_gets(b, "limit", NULL), "2");
    ck_assert_int_eq(acme_json_getb(b, "keys_only", NULL), 1);
    ck_assert_int_eq(kvs->nelts, 2);
    ck_assert_int_eq(more, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(kvs, 1, acme_etcd_kv_t *)->key, "p/b");
    ck_assert_ptr_null(APR_ARRAY_IDX(kvs, 1, acme_etcd_kv_t *)->value);
}
END_TEST

/* ---- transactions ------------------------------------------------------------------ */

START_TEST(txn_encodes_compares_and_both_branches)
{
    static const canned_t script[] = {
        {200, "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":"
              "{\"revision\":\"42\"}}},{\"response_delete_range\":{\"header\":{}}}]}"},
        /* false is left out: the ELSE branch ran */
        {200, "{" HDR ",\"responses\":[{\"response_range\":{\"header\":{},\"kvs\":["
              "{\"key\":\"bG9jaw==\",\"create_revision\":\"40\",\"mod_revision\":\"41\","
              "\"version\":\"2\",\"value\":\"b3RoZXI=\",\"lease\":\"99\"}],\"count\":\"1\"}}]}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 2, 1);
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_txn_t *t = acme_etcd_txn_make(pool);
    acme_etcd_txn_result_t *res;
    acme_etcd_kv_t *kv;
    acme_json_t *b, *c;

    acme_etcd_txn_if_absent(t, "lock");
    acme_etcd_txn_if_mod(t, "a", 17);
    acme_etcd_txn_if_value(t, "b", "me", 2);
    acme_etcd_txn_if_prefix_unchanged(t, "d/", 41);
    acme_etcd_txn_put(t, ACME_ETCD_THEN, "lock", "me", 2, 99);
    acme_etcd_txn_delete(t, ACME_ETCD_THEN, "x/", 1);
    acme_etcd_txn_get(t, ACME_ETCD_ELSE, "lock", 0);
    ck_assert_int_eq(acme_etcd_txn_commit(&res, e, t, pool, r), APR_SUCCESS);
    ck_assert_str_eq(f.urls[0], "http://e1:2379/v3/kv/txn");
    b = js(f.bodies[0]);
    c = acme_json_getj(b, pool, "compare", NULL);
    ck_assert_uint_eq(acme_json_array_len(c), 4);
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 3), "result", NULL), "LESS");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 3), "mod_revision", NULL), "42");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 3), "range_end", NULL), "ZDA=");
    ck_assert(!acme_json_has(acme_json_array_at(c, pool, 0), "range_end", NULL));
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 0), "target", NULL), "CREATE");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 0), "create_revision", NULL),
                     "0");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 0), "key", NULL), "bG9jaw==");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 1), "target", NULL), "MOD");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 1), "mod_revision", NULL), "17");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 2), "target", NULL), "VALUE");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 2), "value", NULL), "bWU=");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 2), "result", NULL), "EQUAL");
    c = acme_json_getj(b, pool, "success", NULL);
    ck_assert_uint_eq(acme_json_array_len(c), 2);
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 0), "request_put", "lease", NULL),
                     "99");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 1), "request_delete_range",
                                    "range_end", NULL), "eDA=");
    c = acme_json_getj(b, pool, "failure", NULL);
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 0), "request_range", "key", NULL),
                     "bG9jaw==");
    ck_assert_int_eq(res->succeeded, 1);
    ck_assert_int_eq(res->revision, 42);
    ck_assert_int_eq(res->ranges->nelts, 0);

    ck_assert_int_eq(acme_etcd_txn_commit(&res, e, t, pool, r), APR_SUCCESS);
    ck_assert_int_eq(res->succeeded, 0);
    ck_assert_int_eq(res->ranges->nelts, 1);
    kv = APR_ARRAY_IDX(APR_ARRAY_IDX(res->ranges, 0, apr_array_header_t *), 0, acme_etcd_kv_t *);
    ck_assert_str_eq(kv->value, "other");
    ck_assert_int_eq(kv->create_revision, 40);
    ck_assert_int_eq(kv->lease, 99);
}
END_TEST

/* ---- failover ---------------------------------------------------------------------- */

START_TEST(failover_skips_dead_and_5xx_members_and_remembers_the_good_one)
{
    static const canned_t script[] = {
        {-1, NULL},
        {503, "{\"error\":\"etcdserver: no leader\",\"code\":14}"},
        {200, "{" HDR "}"},
        {200, "{" HDR "}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 4, 3);
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_SUCCESS);
    ck_assert_str_eq(f.urls[0], "http://e1:2379/v3/kv/put");
    ck_assert_str_eq(f.urls[1], "http://e2:2379/v3/kv/put");
    ck_assert_str_eq(f.urls[2], "http://e3:2379/v3/kv/put");
    ck_assert_str_eq(acme_etcd_endpoint(e), "http://e3:2379");
    ck_assert_int_eq(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_SUCCESS);
    ck_assert_str_eq(f.urls[3], "http://e3:2379/v3/kv/put");
}
END_TEST

START_TEST(all_members_down_is_a_network_error_naming_the_key)
{
    static const canned_t script[] = {{-1, NULL}, {502, "bad gateway"}, {-1, NULL}};
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 3, 3);
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_kv_t *kv;

    ck_assert_int_ne(acme_etcd_get(&kv, e, "mod_acme/domains/x/cert", pool, r), APR_SUCCESS);
    ck_assert_int_eq(f.next, 3);
    ck_assert_str_eq(r->problem, "acme:network");
    ck_assert_msg(contains(r->detail, "get mod_acme/domains/x/cert"), "%s", r->detail);
    ck_assert_msg(contains(r->detail, "no endpoint answered"), "%s", r->detail);
}
END_TEST

START_TEST(a_4xx_is_not_failed_over)
{
    static const canned_t script[] = {
        {400, "{\"error\":\"etcdserver: request is too large\",\"code\":3}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 1, 3);
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_ne(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(f.next, 1);
    ck_assert_str_eq(r->problem, "acme:store");
    ck_assert_int_eq(r->http_status, 400);
    ck_assert_msg(contains(r->detail, "request is too large"), "%s", r->detail);
}
END_TEST

START_TEST(a_foreign_cluster_among_the_endpoints_is_refused)
{
    static const canned_t script[] = {
        {200, "{" HDR "}"},
        {-1, NULL},
        {200, "{\"header\":{\"cluster_id\":\"78\",\"revision\":\"3\"}}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 3, 3);
    acme_result_t *r = acme_result_make(pool);

    ck_assert_int_eq(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_SUCCESS);
    ck_assert_int_ne(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_SUCCESS);
    ck_assert_str_eq(r->problem, "acme:config");
    ck_assert_msg(contains(r->detail, "not members of one cluster"), "%s", r->detail);
}
END_TEST

START_TEST(stop_flag_aborts_before_any_request)
{
    static const canned_t script[] = {{200, "{" HDR "}"}};
    volatile apr_uint32_t stop = 1;
    fake_t f;
    acme_etcd_t *e;
    acme_result_t *r = acme_result_make(pool);

    conf.stop = &stop;
    e = fake_etcd(&f, script, 1, 1);
    ck_assert_int_eq(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_EINTR);
    ck_assert_int_eq(f.next, 0);
    ck_assert_str_eq(r->problem, "acme:stopped");
    conf.stop = NULL;
}
END_TEST

/* ---- auth -------------------------------------------------------------------------- */

static const char *password_file(const char *content)
{
    const char *path = apr_psprintf(pool, "/tmp/test_etcd_pw.%ld", (long)getpid());
    apr_file_t *f;

    ck_assert_int_eq(apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                                   | APR_FOPEN_TRUNCATE, APR_FPROT_UREAD | APR_FPROT_UWRITE,
                                   pool), APR_SUCCESS);
    apr_file_puts(content, f);
    apr_file_close(f);
    return path;
}

START_TEST(auth_token_is_fetched_sent_and_renewed_when_invalid)
{
    static const canned_t script[] = {
        {200, "{" HDR ",\"token\":\"tok1.7\"}"},
        {200, "{" HDR "}"},
        {401, "{\"error\":\"etcdserver: invalid auth token\",\"code\":16}"},
        {200, "{" HDR ",\"token\":\"tok2.8\"}"},
        {200, "{" HDR "}"},
    };
    fake_t f;
    acme_etcd_t *e;
    acme_result_t *r = acme_result_make(pool);
    const char *pw = password_file("s3cret\n");
    acme_json_t *b;

    conf.user = "mod_acme";
    conf.password_file = pw;
    conf.password_flags = ACME_KEYFILE_ANY_OWNER;
    e = fake_etcd(&f, script, 5, 1);
    apr_file_remove(pw, pool);
    ck_assert_int_eq(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_SUCCESS);
    ck_assert_str_eq(f.urls[0], "http://e1:2379/v3/auth/authenticate");
    b = js(f.bodies[0]);
    ck_assert_str_eq(acme_json_gets(b, "name", NULL), "mod_acme");
    ck_assert_str_eq(acme_json_gets(b, "password", NULL), "s3cret");
    ck_assert_ptr_null(f.auth[0]);
    ck_assert_str_eq(f.auth[1], "tok1.7");
    ck_assert_int_eq(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_SUCCESS);
    ck_assert_str_eq(f.auth[2], "tok1.7");
    ck_assert_str_eq(f.urls[3], "http://e1:2379/v3/auth/authenticate");
    ck_assert_str_eq(f.auth[4], "tok2.8");
    conf.user = conf.password_file = NULL;
}
END_TEST

START_TEST(auth_with_a_wrong_password_is_a_config_error)
{
    static const canned_t script[] = {
        {400, "{\"error\":\"etcdserver: authentication failed, invalid user ID or password\","
              "\"code\":3}"},
    };
    fake_t f;
    acme_etcd_t *e;
    acme_result_t *r = acme_result_make(pool);
    const char *pw = password_file("wrong");

    conf.user = "mod_acme";
    conf.password_file = pw;
    conf.password_flags = ACME_KEYFILE_ANY_OWNER;
    e = fake_etcd(&f, script, 1, 2);
    apr_file_remove(pw, pool);
    ck_assert_int_ne(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_SUCCESS);
    ck_assert_int_eq(f.next, 1);
    ck_assert_str_eq(r->problem, "acme:config");
    ck_assert_msg(contains(r->detail, "authentication as 'mod_acme' failed"), "%s", r->detail);
    ck_assert_msg(!contains(r->detail, "wrong"), "%s", r->detail);
    conf.user = conf.password_file = NULL;
}
END_TEST

START_TEST(auth_token_with_a_newline_is_refused)
{
    static const canned_t script[] = {{200, "{" HDR ",\"token\":\"a\\r\\nX-Evil: 1\"}"}};
    fake_t f;
    acme_etcd_t *e;
    acme_result_t *r = acme_result_make(pool);
    const char *pw = password_file("pw");

    conf.user = "u";
    conf.password_file = pw;
    conf.password_flags = ACME_KEYFILE_ANY_OWNER;
    e = fake_etcd(&f, script, 1, 1);
    apr_file_remove(pw, pool);
    ck_assert_int_eq(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_EINVAL);
    ck_assert_int_eq(f.next, 1);
    ck_assert_msg(contains(r->detail, "no usable 'token'"), "%s", r->detail);
    conf.user = conf.password_file = NULL;
}
END_TEST

START_TEST(config_errors)
{
    acme_http_t http = {NULL, fake_perform};
    apr_array_header_t *eps = apr_array_make(pool, 1, sizeof(const char *));
    acme_etcd_t *e;
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_config_t c;

    acme_etcd_config_init(&c);
    c.endpoints = eps;
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "no etcd endpoint"), "%s", r->detail);
    APR_ARRAY_PUSH(eps, const char *) = "ftp://x";
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "not an http(s) URL"), "%s", r->detail);
    APR_ARRAY_IDX(eps, 0, const char *) = "https://x:2379";
    c.user = "u";
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "needs a password file"), "%s", r->detail);
    c.password_flags = ACME_KEYFILE_ANY_OWNER;
    c.password_file = "/nonexistent/pw";
    ck_assert_int_ne(acme_etcd_create(&e, pool, &c, &http, r), APR_SUCCESS);
    ck_assert_msg(contains(r->detail, "/nonexistent/pw"), "%s", r->detail);
    c.password_file = password_file("\n");
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "on one line"), "%s", r->detail);
    /* the encryption key's rule: a password others can read is refused */
    c.password_file = password_file("pw\n");
    ck_assert_int_eq(apr_file_perms_set(c.password_file, APR_FPROT_UREAD | APR_FPROT_WREAD),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, c.password_file) && contains(r->detail, "group or others")
                  && contains(r->detail, "chmod 0400"), "%s", r->detail);
    /* and one of another owner than root, unless the caller allows it */
    ck_assert_int_eq(apr_file_perms_set(c.password_file, APR_FPROT_UREAD), APR_SUCCESS);
    if (getuid() == 0) {
        ck_assert_int_eq(chown(c.password_file, 65534, 65534), 0);
    }
    c.password_flags = 0;
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "not owned by root"), "%s", r->detail);
    c.password_flags = ACME_KEYFILE_ANY_OWNER;
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, r), APR_SUCCESS);
    apr_file_remove(c.password_file, pool);
    c.user = NULL;
    c.cert_file = "/c.pem";
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "both a certificate and a key"), "%s", r->detail);
}
END_TEST

/* ---- malformed answers ------------------------------------------------------------- */

static const struct {
    const char *body;
    const char *msg;
} bad_gets[] = {
    {"<html>oops</html>", "not a JSON object"},
    {"[1,2]", "not a JSON object"},
    {"{" HDR ",\"kvs\":{\"key\":\"aw==\"}}", "'kvs' is not an array"},
    {"{" HDR ",\"kvs\":[\"aw==\"]}", "not an object"},
    {"{" HDR ",\"kvs\":[{\"key\":7,\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
     "no key string"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw=\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
     "'key' is not valid base64"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"1\",\"mod_revision\":\"1\","
     "\"value\":\"!!!!\"}]}", "'value' is not valid base64"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"1\",\"mod_revision\":\"1\","
     "\"value\":5}]}", "'value' is not a string"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"1x\",\"mod_revision\":\"1\"}]}",
     "'create_revision' is not a non-negative integer"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"1\",\"mod_revision\":"
     "\"99999999999999999999\"}]}", "'mod_revision' is not a non-negative integer"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"1\",\"mod_revision\":\"-1\"}]}",
     "'mod_revision' is not a non-negative integer"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":true,\"mod_revision\":\"1\"}]}",
     "'create_revision' is not a non-negative integer"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"1\"}]}", "impossible revisions"},
    {"{" HDR ",\"kvs\":[{\"key\":\"eA==\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
     "not asked for"},
    {"{" HDR ",\"kvs\":[{\"key\":\"awBq\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
     "not asked for"},
    /* 24 bytes against a 16-byte limit */
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"1\",\"mod_revision\":\"1\","
     "\"value\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3\"}]}", "larger than the limit of 16"},
    {"{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"1\",\"mod_revision\":\"1\"},"
     "{\"key\":\"aw==\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
     "2 entries for one key"},
    {"{" HDR ",\"more\":\"yes\"}", "'more' is not a boolean"},
};

START_TEST(malformed_get_answers_are_refused_with_a_reason)
{
    canned_t script[1];
    fake_t f;
    acme_etcd_t *e;
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_kv_t *kv;
    apr_status_t rv;

    script[0].status = 200;
    script[0].body = bad_gets[_i].body;
    conf.max_value = 16;
    e = fake_etcd(&f, script, 1, 1);
    rv = acme_etcd_get(&kv, e, "k", pool, r);
    ck_assert_int_ne(rv, APR_SUCCESS);
    ck_assert_int_ne(rv, APR_ENOENT);
    ck_assert_ptr_null(kv);
    ck_assert_msg(contains(r->detail, bad_gets[_i].msg), "case %d: '%s' lacks '%s'", _i,
                  r->detail, bad_gets[_i].msg);
    ck_assert_msg(contains(r->detail, "get k"), "case %d: '%s' does not name the key", _i,
                  r->detail);
    conf.max_value = 0;
}
END_TEST

START_TEST(a_value_at_the_limit_is_accepted_and_a_larger_put_refused)
{
    static const canned_t script[] = {
        {200, "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"1\","
              "\"mod_revision\":\"1\",\"value\":\"MDEyMzQ1Njc4OWFiY2RlZg==\"}]}"},
    };
    fake_t f;
    acme_etcd_t *e;
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_kv_t *kv;

    conf.max_value = 16;
    e = fake_etcd(&f, script, 1, 1);
    ck_assert_int_eq(acme_etcd_get(&kv, e, "k", pool, r), APR_SUCCESS);
    ck_assert_uint_eq(kv->value_len, 16);
    ck_assert_int_eq(acme_etcd_put(NULL, e, "big", "0123456789abcdefX", 17, 0, pool, r),
                     APR_ENOSPC);
    ck_assert_int_eq(f.next, 1);   /* refused before sending */
    ck_assert_msg(contains(r->detail, "put big"), "%s", r->detail);
    conf.max_value = 0;
}
END_TEST

START_TEST(malformed_write_answers_are_refused)
{
    static const canned_t script[] = {
        {200, "{\"kvs\":[]}"},                                   /* put: no header */
        {200, "{" HDR ",\"succeeded\":\"true\"}"},               /* txn: not a bool */
        {200, "{" HDR ",\"succeeded\":true}"},                   /* txn: responses missing */
        {200, "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_range\":{}}]}"},
        {200, "{" HDR ",\"deleted\":\"many\"}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 5, 1);
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_txn_t *t = acme_etcd_txn_make(pool);
    acme_etcd_txn_result_t *res;
    apr_int64_t n;

    ck_assert_int_eq(acme_etcd_put(NULL, e, "k", "v", 1, 0, pool, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "no 'header'"), "%s", r->detail);
    acme_etcd_txn_if_absent(t, "lock");
    acme_etcd_txn_put(t, ACME_ETCD_THEN, "lock", "me", 2, 0);
    ck_assert_int_eq(acme_etcd_txn_commit(&res, e, t, pool, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "'succeeded' is not a boolean"), "%s", r->detail);
    ck_assert_msg(contains(r->detail, "txn on lock"), "%s", r->detail);
    ck_assert_int_eq(acme_etcd_txn_commit(&res, e, t, pool, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "0 responses for 1 operations"), "%s", r->detail);
    ck_assert_int_eq(acme_etcd_txn_commit(&res, e, t, pool, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "is not a response_put"), "%s", r->detail);
    ck_assert_ptr_null(res);
    ck_assert_int_eq(acme_etcd_delete(&n, e, "k", 0, pool, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "'deleted'"), "%s", r->detail);
}
END_TEST

/* ---- leases ------------------------------------------------------------------------ */

START_TEST(lease_grant_keepalive_and_revoke)
{
    static const canned_t script[] = {
        {200, "{" HDR ",\"ID\":\"694d77aa\",\"TTL\":\"30\"}"},          /* not decimal */
        {200, "{" HDR ",\"ID\":\"7587869481274716419\",\"TTL\":\"30\"}"},
        {200, "{\"result\":{" HDR ",\"ID\":\"7587869481274716419\",\"TTL\":\"30\"}}\n"},
        {200, "{\"result\":{" HDR ",\"ID\":\"7587869481274716419\"}}"},  /* gone: TTL 0 */
        {200, "{\"result\":{" HDR ",\"ID\":\"5\",\"TTL\":\"30\"}}"},
        {404, "{\"error\":\"etcdserver: requested lease not found\",\"code\":5}"},
        {200, "{" HDR "}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 7, 1);
    acme_result_t *r = acme_result_make(pool);
    apr_int64_t id, ttl;

    ck_assert_int_eq(acme_etcd_lease_grant(&id, e, 30, pool, r), APR_EINVAL);
    ck_assert_int_eq(id, 0);
    ck_assert_int_eq(acme_etcd_lease_grant(&id, e, 30, pool, r), APR_SUCCESS);
    ck_assert_str_eq(f.urls[1], "http://e1:2379/v3/lease/grant");
    ck_assert_str_eq(acme_json_gets(js(f.bodies[1]), "TTL", NULL), "30");
    ck_assert_int_eq(id, 7587869481274716419LL);
    ck_assert_int_eq(acme_etcd_lease_keepalive(&ttl, e, id, pool, r), APR_SUCCESS);
    ck_assert_str_eq(acme_json_gets(js(f.bodies[2]), "ID", NULL), "7587869481274716419");
    ck_assert_int_eq(ttl, 30);
    ck_assert_int_eq(acme_etcd_lease_keepalive(&ttl, e, id, pool, r), APR_ENOENT);
    ck_assert_int_eq(acme_etcd_lease_keepalive(&ttl, e, id, pool, r), APR_EINVAL);
    ck_assert_msg(contains(r->detail, "about another lease"), "%s", r->detail);
    ck_assert_int_eq(acme_etcd_lease_revoke(e, id, pool, r), APR_SUCCESS);
    ck_assert_int_eq(acme_etcd_lease_revoke(e, id, pool, r), APR_SUCCESS);
    ck_assert_str_eq(f.urls[6], "http://e1:2379/v3/lease/revoke");
}
END_TEST

START_TEST(revision_reads_the_header)
{
    static const canned_t script[] = {
        {200, "{" HDR "}"},
        {200, "{\"header\":{\"revision\":\"0\"}}"},
    };
    fake_t f;
    acme_etcd_t *e = fake_etcd(&f, script, 2, 1);
    acme_result_t *r = acme_result_make(pool);
    apr_int64_t rev;

    ck_assert_int_eq(acme_etcd_revision(&rev, e, pool, r), APR_SUCCESS);
    ck_assert_int_eq(rev, 42);
    ck_assert_int_eq(acme_json_getb(js(f.bodies[0]), "count_only", NULL), 1);
    ck_assert_int_eq(acme_etcd_revision(&rev, e, pool, r), APR_EINVAL);
}
END_TEST

/* ---- mutated answers: a cheap fuzz run over every parser ---------------------------- */

typedef struct {
    const char *body;
    apr_size_t len;
} echo_t;

static apr_status_t echo_perform(acme_http_t *http, acme_http_response_t **presp,
                                 const acme_http_request_t *req, apr_pool_t *p,
                                 acme_result_t *result)
{
    echo_t *x = http->baton;
    acme_http_response_t *resp = apr_pcalloc(p, sizeof(*resp));

    (void)result;
    resp->status = 200;
    resp->headers = apr_table_make(p, 1);
    resp->body = apr_pstrmemdup(p, x->body, x->len);
    resp->body_len = x->len;
    resp->effective_url = req->url;
    *presp = resp;
    return APR_SUCCESS;
}

START_TEST(mutated_answers_are_refused_or_parsed_never_crash)
{
    static const char *valid[] = {
        "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"5\",\"mod_revision\":\"9\","
        "\"version\":\"3\",\"value\":\"aGVsbG8=\",\"lease\":\"7\"}],\"count\":\"1\"}",
        "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":"
        "\"aw==\",\"create_revision\":\"5\",\"mod_revision\":\"9\",\"value\":\"aGk=\"}]}}]}",
        "{\"result\":{" HDR ",\"ID\":\"12\",\"TTL\":\"30\"}}",
    };
    static const char alphabet[] = "{}[]\",:0aZ=\\-9 ";
    acme_http_t http = {NULL, echo_perform};
    apr_array_header_t *eps = apr_array_make(pool, 1, sizeof(const char *));
    acme_etcd_config_t c;
    acme_etcd_t *e;
    echo_t x;
    unsigned int seed = 1;
    int i, ok = 0, refused = 0;

    APR_ARRAY_PUSH(eps, const char *) = "http://e1:2379";
    acme_etcd_config_init(&c);
    c.endpoints = eps;
    http.baton = &x;
    ck_assert_int_eq(acme_etcd_create(&e, pool, &c, &http, acme_result_make(pool)), APR_SUCCESS);
    for (i = 0; i < 3000; ++i) {
        apr_pool_t *sub;
        const char *src = valid[i % 3];
        apr_size_t n = strlen(src), pos;
        char *buf;
        acme_result_t *r;
        acme_etcd_kv_t *kv;
        acme_etcd_txn_t *t;
        acme_etcd_txn_result_t *res;
        apr_int64_t ttl;
        apr_status_t rv;
        int k;

        apr_pool_create(&sub, pool);
        r = acme_result_make(sub);
        buf = apr_pstrmemdup(sub, src, n);
        for (k = 0; k < 1 + i % 3; ++k) {
            pos = (apr_size_t)rand_r(&seed) % n;
            switch (rand_r(&seed) % 3) {
            case 0: n = pos; break;                                            /* truncate */
            case 1: buf[pos] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)]; break;
            default: buf[pos] = (char)(rand_r(&seed) % 256); break;            /* any byte */
            }
            if (!n) {
                break;
            }
        }
        x.body = buf;
        x.len = n;
        if (i % 3 == 0) {
            rv = acme_etcd_get(&kv, e, "k", sub, r);
        }
        else if (i % 3 == 1) {
            t = acme_etcd_txn_make(sub);
            acme_etcd_txn_if_absent(t, "k");
            acme_etcd_txn_get(t, ACME_ETCD_THEN, "k", 0);
            acme_etcd_txn_get(t, ACME_ETCD_ELSE, "k", 0);
            rv = acme_etcd_txn_commit(&res, e, t, sub, r);
        }
        else {
            rv = acme_etcd_lease_keepalive(&ttl, e, 12, sub, r);
        }
        if (rv == APR_SUCCESS || rv == APR_ENOENT) {
            ++ok;
        }
        else {
            ck_assert_msg(r->detail && *r->detail, "case %d: refused without a reason", i);
            ++refused;
        }
        apr_pool_destroy(sub);
    }
    ck_assert_int_gt(refused, 1000);   /* the mutations do break answers */
    ck_assert_int_gt(ok, 10);          /* and some harmless ones still parse */
}
END_TEST

/* ---- the store on etcd ------------------------------------------------------------- */

static const unsigned char store_key[32] = "abcdefghijklmnopqrstuvwxyz012345";

static acme_store_t *fake_store(fake_t *f, const canned_t *script, int n)
{
    acme_store_t *st;
    const char *err;

    ck_assert_int_eq(acme_store_etcd_create(&st, pool, fake_etcd(f, script, n, 1), "pfx",
                                            store_key, &err), APR_SUCCESS);
    return st;
}

/* The value of the put request number i, decoded. */
static const char *put_value(fake_t *f, int i, apr_size_t *plen)
{
    unsigned char *raw;

    ck_assert_int_eq(acme_etcd_b64_decode(&raw, plen, pool,
                                          acme_json_gets(js(f->bodies[i]), "value", NULL)),
                     APR_SUCCESS);
    return (const char *)raw;
}

/* A range answer holding key = value. */
static const char *range_answer(const char *key, const char *value, apr_size_t len)
{
    return apr_psprintf(pool, "{" HDR ",\"kvs\":[{\"key\":\"%s\",\"create_revision\":\"3\","
                        "\"mod_revision\":\"4\",\"version\":\"1\",\"value\":\"%s\"}]}",
                        acme_etcd_b64_encode(pool, key, strlen(key)),
                        acme_etcd_b64_encode(pool, value, len));
}

/* value as a store with store_key writes data at key */
static const char *item(const char *key, const char *data, int secret, apr_time_t mtime,
                        apr_size_t *plen)
{
    static const canned_t none[] = {{200, "{" HDR "}"}};
    fake_t f;
    acme_store_t *st = fake_store(&f, none, 1);
    const char *v;
    apr_size_t len;

    ck_assert_int_eq(acme_store_etcd_item_encode(&v, &len, st, key, data, strlen(data), secret,
                                                 mtime, pool), APR_SUCCESS);
    if (plen) {
        *plen = len;
    }
    return v;
}

/* ---- watch ------------------------------------------------------------------------- */

#define WHDR "\"header\":{\"cluster_id\":\"77\",\"revision\":\"9\"}"
#define CREATED "{\"result\":{" WHDR ",\"created\":true}}\n"

typedef struct {
    int calls;
    const char *seen[8];
} watch_rec_t;

static apr_status_t record_change(void *baton, const acme_etcd_kv_t *kv, int deleted,
                                  apr_pool_t *p)
{
    watch_rec_t *w = baton;

    (void)p;
    if (w->calls < 8) {
        w->seen[w->calls] = !kv ? "created"
                            : apr_psprintf(pool, "%s %s=%s", deleted ? "del" : "put", kv->key,
                                           kv->value ? kv->value : "");
    }
    w->calls++;
    return APR_SUCCESS;
}

static const char *event(const char *type, const char *key, const char *value)
{
    return apr_psprintf(pool, "{\"result\":{" WHDR ",\"events\":[{%s%s%s\"kv\":{\"key\":\"%s\","
                        "\"create_revision\":\"5\",\"mod_revision\":\"6\",\"value\":\"%s\"}}]}}\n",
                        type ? "\"type\":\"" : "", type ? type : "", type ? "\"," : "",
                        acme_etcd_b64_encode(pool, key, strlen(key)),
                        acme_etcd_b64_encode(pool, value, strlen(value)));
}

START_TEST(watch_follows_puts_and_deletes_in_order_across_split_lines)
{
    canned_t script[1];
    watch_rec_t w = {0};
    fake_t f;
    acme_etcd_t *e;
    acme_result_t *r = acme_result_make(pool);
    acme_json_t *req;

    script[0].status = 200;
    script[0].body = apr_pstrcat(pool, CREATED, event(NULL, "w/a", "one"),
                                 event("PUT", "w/b", "two"),
                                 "{\"result\":{" WHDR ",\"events\":[{\"type\":\"DELETE\","
                                 "\"kv\":{\"key\":\"dy9h\",\"mod_revision\":\"7\"}}]}}\n", NULL);
    e = fake_etcd(&f, script, 1, 1);
    ck_assert_int_eq(acme_etcd_watch(e, "w/", 0, apr_time_from_sec(5), record_change, &w, pool, r),
                     APR_SUCCESS);
    ck_assert_str_eq(f.urls[0], "http://e1:2379/v3/watch");
    req = js(f.bodies[0]);
    ck_assert_str_eq(acme_json_gets(req, "create_request", "key", NULL), "dy8=");
    ck_assert_str_eq(acme_json_gets(req, "create_request", "range_end", NULL), "dzA=");
    ck_assert_int_eq(w.calls, 4);
    ck_assert_str_eq(w.seen[0], "created");
    ck_assert_str_eq(w.seen[1], "put w/a=one");
    ck_assert_str_eq(w.seen[2], "put w/b=two");
    ck_assert_str_eq(w.seen[3], "del w/a=");
}
END_TEST

START_TEST(watch_refuses_malformed_messages_naming_them)
{
    const char *bad[] = {
        CREATED "not json\n",
        CREATED "{\"nothing\":1}\n",
        CREATED "{\"result\":{" WHDR ",\"events\":{}}}\n",
        CREATED "{\"result\":{" WHDR ",\"events\":[7]}}\n",
        CREATED "{\"result\":{" WHDR ",\"events\":[{\"type\":\"BOOM\",\"kv\":{\"key\":\"dy9h\"}}]}}\n",
        CREATED "{\"result\":{" WHDR ",\"events\":[{\"kv\":{\"key\":\"eA==\",\"create_revision\":\"1\"}}]}}\n",
        CREATED "{\"result\":{" WHDR ",\"events\":[{\"kv\":{\"key\":\"dy9h\",\"create_revision\":\"1\","
                "\"mod_revision\":\"1\",\"value\":\"!!\"}}]}}\n",
        CREATED "{\"result\":{" WHDR ",\"canceled\":true,\"cancel_reason\":\"compacted\"}}\n",
        CREATED "{\"error\":{\"grpc_code\":14,\"message\":\"etcdserver: no leader\"}}\n",
        CREATED "{\"result\":{\"header\":{\"cluster_id\":\"78\"},\"events\":[]}}\n",
        "{\"result\":{" WHDR ",\"events\":[]}}\n",
    };
    const char *why[] = {"not a JSON object", "no 'result'", "not an array", "without a kv",
                         "unknown type", "not asked for", "not valid base64", "compacted",
                         "no leader", "cluster id", "before the watch was created"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        canned_t script[1] = {{200, bad[i]}};
        watch_rec_t w = {0};
        fake_t f;
        acme_result_t *r = acme_result_make(pool);
        acme_etcd_t *e = fake_etcd(&f, script, 1, 1);

        ck_assert_int_ne(acme_etcd_watch(e, "w/", 0, apr_time_from_sec(5), record_change, &w, pool,
                                         r), APR_SUCCESS);
        ck_assert_msg(contains(r->detail, why[i]), "%d: %s", (int)i, r->detail);
        ck_assert_int_le(w.calls, 1);
    }
}
END_TEST

START_TEST(watch_fails_over_and_a_line_over_the_limit_ends_it)
{
    canned_t script[2] = {{-1, NULL}, {200, CREATED}};
    watch_rec_t w = {0};
    fake_t f;
    acme_result_t *r = acme_result_make(pool);
    acme_etcd_t *e = fake_etcd(&f, script, 2, 2);
    char *big;

    ck_assert_int_eq(acme_etcd_watch(e, "w/", 0, apr_time_from_sec(5), record_change, &w, pool, r),
                     APR_SUCCESS);
    ck_assert_str_eq(f.urls[1], "http://e2:2379/v3/watch");
    ck_assert_str_eq(acme_etcd_endpoint(e), "http://e2:2379");
    /* all members down: a network error naming the prefix */
    script[1].status = -1;
    e = fake_etcd(&f, script, 2, 2);
    ck_assert_int_ne(acme_etcd_watch(e, "w/", 0, apr_time_from_sec(5), record_change, &w, pool, r),
                     APR_SUCCESS);
    ck_assert_str_eq(r->problem, "acme:network");
    ck_assert_msg(contains(r->detail, "watch w/*"), "%s", r->detail);
    /* a message that never ends is not buffered without bound (twice the
     * value limit and 64 KiB) */
    conf.max_value = 1000;
    big = apr_palloc(pool, 70000);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    script[0].status = 200;
    script[0].body = apr_pstrcat(pool, CREATED, "{\"a\":\"", big, NULL);
    e = fake_etcd(&f, script, 1, 1);
    conf.max_value = 0;
    r = acme_result_make(pool);
    ck_assert_int_eq(acme_etcd_watch(e, "w/", 0, apr_time_from_sec(5), record_change, &w, pool, r),
                     APR_ENOSPC);
}
END_TEST

typedef struct {
    int calls;
    const char *seen[8];
} store_rec_t;

static apr_status_t record_item(void *baton, const char *name, const char *aspect,
                                const char *data, apr_size_t len, apr_pool_t *p)
{
    store_rec_t *w = baton;

    (void)p;
    if (w->calls < 8) {
        w->seen[w->calls] = !name ? "created"
                            : apr_psprintf(pool, "%s/%s=%s", name, aspect,
                                           data ? apr_pstrmemdup(pool, data, len) : "(gone)");
    }
    w->calls++;
    return APR_SUCCESS;
}

START_TEST(store_watch_opens_authenticated_items_and_skips_foreign_keys)
{
    static const char pem[] = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
    canned_t script[2] = {{200, "{" HDR "}"}, {200, NULL}};
    const char *held = item("pfx/challenges/http-01/held", "kh", 0, 5, NULL);
    store_rec_t w = {0};
    fake_t f;
    acme_store_t *st = fake_store(&f, script, 1);
    const char *sealed;
    apr_size_t len;

    ck_assert_int_eq(st->save(st, ACME_SG_CHALLENGES, "tls-alpn-01", "a.org.key", pem,
                              strlen(pem), ACME_STORE_SECRET, pool), APR_SUCCESS);
    sealed = put_value(&f, 0, &len);
    /* first what the group holds (as of revision 42), then the changes after it */
    script[0].body = apr_psprintf(pool, "{" HDR ",\"kvs\":[{\"key\":\"%s\",\"create_revision\":"
                                  "\"3\",\"mod_revision\":\"4\",\"value\":\"%s\"}],\"count\":\"1\"}",
                                  acme_etcd_b64_encode(pool, "pfx/challenges/http-01/held", 27),
                                  acme_etcd_b64_encode(pool, held, strlen(held)));
    script[1].body = apr_pstrcat(pool, CREATED,
                                 event(NULL, "pfx/challenges/tls-alpn-01/a.org.key", sealed),
                                 event(NULL, "pfx/challenges/http-01/tok",
                                       item("pfx/challenges/http-01/tok", "ka", 0, 5, NULL)),
                                 /* planted: plain, or the MAC of another key's item */
                                 event(NULL, "pfx/challenges/http-01/t2", "acme-item 1 5 p\nka"),
                                 event(NULL, "pfx/challenges/http-01/t3",
                                       item("pfx/challenges/http-01/tok", "ka", 0, 5, NULL)),
                                 event(NULL, "pfx/challenges/stray", "acme-item 1 5 p\nx"),
                                 event(NULL, "pfx/challenges/http-01/.hidden", "acme-item 1 5 p\nx"),
                                 event(NULL, "pfx/challenges/http-01/raw", "not an item"),
                                 "{\"result\":{" WHDR ",\"events\":[{\"type\":\"DELETE\",\"kv\":{"
                                 "\"key\":\"", acme_etcd_b64_encode(pool, "pfx/challenges/http-01/tok", 26),
                                 "\"}}]}}\n", NULL);
    st = fake_store(&f, script, 2);
    ck_assert_int_eq(st->watch(st, ACME_SG_CHALLENGES, apr_time_from_sec(5), record_item, &w,
                               pool), APR_SUCCESS);
    ck_assert_str_eq(f.urls[0], "http://e1:2379/v3/kv/range");
    ck_assert_str_eq(f.urls[1], "http://e1:2379/v3/watch");
    ck_assert_str_eq(acme_json_gets(js(f.bodies[1]), "create_request", "key", NULL),
                     acme_etcd_b64_encode(pool, "pfx/challenges/", 15));
    ck_assert_str_eq(acme_json_gets(js(f.bodies[1]), "create_request", "start_revision", NULL),
                     "43");
    ck_assert_int_eq(w.calls, 5);
    ck_assert_str_eq(w.seen[0], "http-01/held=kh");
    ck_assert_str_eq(w.seen[1], "created");
    ck_assert_str_eq(w.seen[2], apr_pstrcat(pool, "tls-alpn-01/a.org.key=", pem, NULL));
    ck_assert_str_eq(w.seen[3], "http-01/tok=ka");
    ck_assert_str_eq(w.seen[4], "http-01/tok=(gone)");
}
END_TEST

START_TEST(store_snapshot_answers_a_names_reads_in_one_request_until_a_write)
{
    canned_t script[4] = {{200, NULL}, {200, "{" HDR "}"}, {200, NULL}, {200, NULL}};
    fake_t f;
    acme_store_t *st;
    const char *data, *v = item("pfx/domains/a.org/cert.pem", "C", 0, 77, NULL);
    apr_size_t len, vlen = strlen(v);
    apr_time_t mt;
    apr_pool_t *sp;

    script[0].body = apr_psprintf(pool, "{" HDR ",\"kvs\":[{\"key\":\"%s\",\"create_revision\":"
                                  "\"3\",\"mod_revision\":\"4\",\"value\":\"%s\"}]}",
                                  acme_etcd_b64_encode(pool, "pfx/domains/a.org/cert.pem", 26),
                                  acme_etcd_b64_encode(pool, v, vlen));
    v = item("pfx/domains/a.org/cert.pem", "D", 0, 78, &vlen);
    script[2].body = range_answer("pfx/domains/a.org/cert.pem", v, vlen);
    st = fake_store(&f, script, 4);
    apr_pool_create(&sp, pool);
    ck_assert_int_eq(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, "a.org", sp), APR_SUCCESS);
    ck_assert_int_eq(f.next, 1);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "a.org", "cert.pem", &data, &len, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(data, "C");
    ck_assert_int_eq(st->mtime(st, ACME_SG_DOMAINS, "a.org", "cert.pem", &mt, pool), APR_SUCCESS);
    ck_assert_int_eq(mt, 77);
    /* absent in the snapshot is absent, without asking */
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "a.org", "key.pem", &data, &len, pool),
                     APR_ENOENT);
    ck_assert_int_eq(f.next, 1);
    /* a write drops it: the next read asks etcd */
    ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, "a.org", "cert.pem", "D", 1, 0, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "a.org", "cert.pem", &data, &len, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(data, "D");
    ck_assert_int_eq(f.next, 3);
    /* a new snapshot asks again (this answer is garbage: refused) */
    ck_assert_int_ne(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, "a.org", sp), APR_SUCCESS);
    ck_assert_int_eq(f.next, 4);
    apr_pool_destroy(sp);
    /* the whole group: every name's items from one listing */
    v = item("pfx/domains/b.org/meta.json", "{}", 0, 9, NULL);
    script[0].body = apr_psprintf(pool, "{" HDR ",\"kvs\":[{\"key\":\"%s\",\"create_revision\":"
                                  "\"3\",\"mod_revision\":\"4\",\"value\":\"%s\"}]}",
                                  acme_etcd_b64_encode(pool, "pfx/domains/b.org/meta.json", 27),
                                  acme_etcd_b64_encode(pool, v, strlen(v)));
    st = fake_store(&f, script, 1);
    apr_pool_create(&sp, pool);
    ck_assert_int_eq(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, NULL, sp), APR_SUCCESS);
    ck_assert_str_eq(acme_json_gets(js(f.bodies[0]), "key", NULL),
                     acme_etcd_b64_encode(pool, "pfx/domains/", 12));
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "b.org", "meta.json", &data, &len, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(data, "{}");
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "c.org", "meta.json", &data, &len, pool),
                     APR_ENOENT);
    ck_assert_int_eq(f.next, 1);
    /* p NULL ends it */
    ck_assert_int_eq(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, NULL, NULL), APR_SUCCESS);
    ck_assert_int_ne(st->load(st, ACME_SG_DOMAINS, "b.org", "meta.json", &data, &len, pool),
                     APR_SUCCESS);
    /* it asked etcd: the script is exhausted, so that is a network error */
    apr_pool_destroy(sp);
}
END_TEST

/* A range answer as of rev, counting count keys: n items "<name>/cert.pem"
 * with their data and mod revisions (data NULL: keys only). */
static const char *items_answer(int rev, int count, int n, const char *const *names,
                                const char *const *data, const int *mods)
{
    const char *kvs = "";
    int i;

    for (i = 0; i < n; ++i) {
        const char *key = apr_pstrcat(pool, "pfx/domains/", names[i], "/cert.pem", NULL);
        const char *v = data ? item(key, data[i], 0, 1, NULL) : NULL;
        kvs = apr_psprintf(pool, "%s%s{\"key\":\"%s\",\"create_revision\":\"2\","
                           "\"mod_revision\":\"%d\",\"version\":\"1\"%s%s%s}", kvs, i ? "," : "",
                           acme_etcd_b64_encode(pool, key, strlen(key)), mods[i],
                           v ? ",\"value\":\"" : "",
                           v ? acme_etcd_b64_encode(pool, v, strlen(v)) : "", v ? "\"" : "");
    }
    return apr_psprintf(pool, "{\"header\":{\"cluster_id\":\"77\",\"revision\":\"%d\"},"
                        "\"kvs\":[%s],\"count\":\"%d\"}", rev, kvs, count);
}

/* The certificate that a store made anew (a new generation) loads for name. */
static const char *cert_of(acme_store_t *st, const char *name)
{
    const char *data;
    apr_size_t len;
    apr_status_t rv = st->load(st, ACME_SG_DOMAINS, name, "cert.pem", &data, &len, pool);

    return rv == APR_SUCCESS ? data : rv == APR_ENOENT ? "(absent)" : "(error)";
}

START_TEST(store_snapshot_kept_reads_only_what_changed_since)
{
    static const char *const abc[] = {"a.org", "b.org", "c.org"}, *const d1[] = {"A1", "B1",
                                                                                "C1"};
    static const char *const b[] = {"b.org"}, *const b2[] = {"B2"}, *const d[] = {"d.org"},
                             *const dd[] = {"D1"}, *const abd[] = {"a.org", "b.org", "d.org"};
    static const int m1[] = {5, 6, 7}, m2[] = {11}, m3[] = {14}, m3k[] = {5, 11, 14};
    canned_t script[3] = {{200, NULL}, {200, NULL}, {200, NULL}};
    apr_pool_t *keep, *sp;
    acme_store_t *st;
    acme_json_t *q;
    fake_t f;

    apr_pool_create(&keep, pool);
    /* the first pass reads everything, and keeps it with the revision */
    script[0].body = items_answer(10, 3, 3, abc, d1, m1);
    st = fake_store(&f, script, 1);
    acme_store_etcd_keep(st, keep, ACME_KEEP_MAKE);
    apr_pool_create(&sp, pool);
    ck_assert_int_eq(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, NULL, sp), APR_SUCCESS);
    ck_assert_int_eq(f.next, 1);
    ck_assert(!acme_json_has(js(f.bodies[0]), "min_mod_revision", NULL));
    ck_assert_str_eq(cert_of(st, "b.org"), "B1");
    apr_pool_destroy(sp);

    /* the next generation: what was written after revision 10 only */
    script[0].body = items_answer(12, 3, 1, b, b2, m2);
    st = fake_store(&f, script, 1);
    acme_store_etcd_keep(st, keep, ACME_KEEP_MAKE);
    apr_pool_create(&sp, pool);
    ck_assert_int_eq(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, NULL, sp), APR_SUCCESS);
    q = js(f.bodies[0]);
    ck_assert_str_eq(acme_json_gets(q, "min_mod_revision", NULL), "11");
    ck_assert(!acme_json_has(q, "keys_only", NULL));
    ck_assert_str_eq(cert_of(st, "a.org"), "A1");
    ck_assert_str_eq(cert_of(st, "b.org"), "B2");     /* never the kept B1 */
    ck_assert_str_eq(cert_of(st, "c.org"), "C1");
    ck_assert_int_eq(f.next, 1);
    apr_pool_destroy(sp);

    /* c.org deleted, d.org created: the count (3) minus the one new key is
     * not the 3 kept, so the keys (no values) say which is gone */
    script[0].body = items_answer(15, 3, 1, d, dd, m3);
    script[1].body = items_answer(15, 3, 3, abd, NULL, m3k);
    st = fake_store(&f, script, 2);
    acme_store_etcd_keep(st, keep, ACME_KEEP_MAKE);
    apr_pool_create(&sp, pool);
    ck_assert_int_eq(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, NULL, sp), APR_SUCCESS);
    ck_assert_int_eq(f.next, 2);
    q = js(f.bodies[1]);
    ck_assert(acme_json_getb(q, "keys_only", NULL));
    ck_assert_str_eq(acme_json_gets(q, "revision", NULL), "15");
    ck_assert_str_eq(cert_of(st, "c.org"), "(absent)");
    ck_assert_str_eq(cert_of(st, "d.org"), "D1");
    ck_assert_str_eq(cert_of(st, "b.org"), "B2");
    ck_assert_int_eq(f.next, 2);
    apr_pool_destroy(sp);

    /* etcd restored from an older backup (revision 8 < 15): all is read again */
    script[0].body = items_answer(8, 3, 0, NULL, NULL, NULL);
    script[1].body = items_answer(8, 3, 3, abc, d1, m1);
    st = fake_store(&f, script, 2);
    acme_store_etcd_keep(st, keep, ACME_KEEP_MAKE);
    apr_pool_create(&sp, pool);
    ck_assert_int_eq(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, NULL, sp), APR_SUCCESS);
    ck_assert_int_eq(f.next, 2);
    ck_assert(!acme_json_has(js(f.bodies[1]), "min_mod_revision", NULL));
    ck_assert_str_eq(cert_of(st, "b.org"), "B1");
    ck_assert_str_eq(cert_of(st, "d.org"), "(absent)");
    apr_pool_destroy(sp);

    /* a key written since that does not authenticate is refused, as a fresh read is */
    script[0].body = apr_psprintf(pool, "{\"header\":{\"cluster_id\":\"77\",\"revision\":\"9\"},"
                                  "\"kvs\":[{\"key\":\"%s\",\"create_revision\":\"2\","
                                  "\"mod_revision\":\"9\",\"value\":\"%s\"}],\"count\":\"3\"}",
                                  acme_etcd_b64_encode(pool, "pfx/domains/a.org/cert.pem", 26),
                                  acme_etcd_b64_encode(pool, "forged", 6));
    st = fake_store(&f, script, 1);
    acme_store_etcd_keep(st, keep, ACME_KEEP_MAKE);
    apr_pool_create(&sp, pool);
    ck_assert_int_eq(acme_store_etcd_snapshot(st, ACME_SG_DOMAINS, NULL, sp), APR_SUCCESS);
    ck_assert_str_eq(cert_of(st, "a.org"), "(error)");
    ck_assert_str_eq(cert_of(st, "c.org"), "C1");
    ck_assert_int_eq(f.next, 1);
    apr_pool_destroy(sp);
    apr_pool_destroy(keep);
}
END_TEST

START_TEST(store_view_of_two_groups_asks_again_only_when_older_than_max_age)
{
    static const char *const a[] = {"a.org"}, *const a1[] = {"A1"};
    static const int m1[] = {5};
    static const acme_store_group_t groups[] = {ACME_SG_DOMAINS, ACME_SG_JOBS};
    canned_t script[4] = {{200, NULL}, {200, NULL}, {200, NULL}, {200, NULL}};
    const char *data;
    apr_size_t len;
    apr_pool_t *keep, *vp;
    acme_store_t *st;
    fake_t f;

    apr_pool_create(&keep, pool);
    script[0].body = items_answer(10, 1, 1, a, a1, m1);
    script[1].body = "{\"header\":{\"cluster_id\":\"77\",\"revision\":\"10\"}}";
    script[2].body = "{\"header\":{\"cluster_id\":\"77\",\"revision\":\"11\"},\"count\":\"1\"}";
    script[3].body = "{\"header\":{\"cluster_id\":\"77\",\"revision\":\"11\"}}";
    st = fake_store(&f, script, 4);
    acme_store_etcd_keep(st, keep, ACME_KEEP_FIND);
    apr_pool_create(&vp, pool);
    ck_assert_int_eq(acme_store_etcd_view(st, groups, 2, apr_time_from_sec(60), vp),
                     APR_SUCCESS);
    ck_assert_int_eq(f.next, 2);    /* both groups read whole: nothing was kept */
    ck_assert_str_eq(cert_of(st, "a.org"), "A1");
    ck_assert_int_eq(st->load(st, ACME_SG_JOBS, "a.org", "job.json", &data, &len, pool),
                     APR_ENOENT);
    ck_assert_int_eq(f.next, 2);
    apr_pool_clear(vp);
    /* within max_age: no request at all */
    ck_assert_int_eq(acme_store_etcd_view(st, groups, 2, apr_time_from_sec(60), vp),
                     APR_SUCCESS);
    ck_assert_int_eq(f.next, 2);
    ck_assert_str_eq(cert_of(st, "a.org"), "A1");
    apr_pool_clear(vp);
    /* max_age 0: one request per group, for what changed since */
    ck_assert_int_eq(acme_store_etcd_view(st, groups, 2, 0, vp), APR_SUCCESS);
    ck_assert_int_eq(f.next, 4);
    ck_assert_str_eq(acme_json_gets(js(f.bodies[2]), "min_mod_revision", NULL), "11");
    ck_assert_str_eq(acme_json_gets(js(f.bodies[3]), "min_mod_revision", NULL), "11");
    ck_assert_str_eq(cert_of(st, "a.org"), "A1");
    apr_pool_destroy(vp);
    /* the view ended with its pool: a load asks etcd (the script is over) */
    ck_assert_str_eq(cert_of(st, "a.org"), "(error)");
    apr_pool_destroy(keep);
}
END_TEST

START_TEST(store_seals_secrets_under_their_key_name)
{
    static const char pem[] = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
    canned_t script[4] = {{200, "{" HDR "}"}, {200, "{" HDR "}"}, {200, NULL}, {200, NULL}};
    fake_t f;
    acme_store_t *st = fake_store(&f, script, 2);
    const char *v, *v2, *data, *key = "pfx/domains/example.org/privkey.pem";
    apr_size_t vlen, len;

    ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, "example.org", "privkey.pem", pem,
                              strlen(pem), 1, pool), APR_SUCCESS);
    ck_assert_str_eq(acme_json_gets(js(f.bodies[0]), "key", NULL),
                     acme_etcd_b64_encode(pool, key, strlen(key)));
    v = put_value(&f, 0, &vlen);
    ck_assert_msg(!strncmp(v, "acme-item 2 ", 12) && strstr(v, " s\nv1:"), "%s", v);
    ck_assert_ptr_null(strstr(v, "PRIVATE"));
    ck_assert_ptr_null(strstr(v, "MIGH"));
    ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, "example.org", "cert.pem", "C", 1, 0, pool),
                     APR_SUCCESS);
    v2 = put_value(&f, 1, &len);
    ck_assert_msg(!strncmp(v2, "acme-item 2 ", 12) && strstr(v2, " m ") && v2[len - 2] == '\n'
                  && v2[len - 1] == 'C', "the rest carries a MAC: %s", v2);

    /* back from etcd: it opens under its own name only */
    script[0].body = range_answer(key, v, vlen);
    script[1].body = range_answer("pfx/domains/other.org/privkey.pem", v, vlen);
    script[2].body = range_answer(key, "acme-item 1 5 x\nwhat", 20);
    script[3].body = range_answer(key, "-----BEGIN PRIVATE KEY-----", 27);
    st = fake_store(&f, script, 4);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "example.org", "privkey.pem", &data, &len,
                              pool), APR_SUCCESS);
    ck_assert_uint_eq(len, strlen(pem));
    ck_assert_str_eq(data, pem);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "other.org", "privkey.pem", &data, &len,
                              pool), APR_EINVAL);
    ck_assert_ptr_null(data);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "example.org", "privkey.pem", &data, &len,
                              pool), APR_EINVAL);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "example.org", "privkey.pem", &data, &len,
                              pool), APR_EINVAL);
}
END_TEST

START_TEST(store_refuses_invalid_names_without_asking_etcd)
{
    static const canned_t script[] = {{200, "{" HDR "}"}};
    fake_t f;
    acme_store_t *st = fake_store(&f, script, 1);
    const char *data;
    apr_size_t len;
    apr_array_header_t *names;
    acme_store_claim_t *c;

    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "../x", "a", &data, &len, pool), APR_EINVAL);
    ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, "a", "b/c", "x", 1, 0, pool), APR_EINVAL);
    ck_assert_int_eq(st->remove(st, ACME_SG_DOMAINS, NULL, NULL, pool), APR_EINVAL);
    ck_assert_int_eq(st->list(st, ACME_SG_COUNT, NULL, &names, pool), APR_EINVAL);
    ck_assert_int_eq(st->claim(st, &c, "a/b", "me", apr_time_from_sec(5), pool), APR_EINVAL);
    ck_assert_int_eq(st->claim(st, &c, "l", "two words", apr_time_from_sec(5), pool),
                     APR_EINVAL);
    ck_assert_int_eq(st->claim(st, &c, "l", "me", 0, pool), APR_EINVAL);
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_ARCHIVE, "a", 1, pool), APR_EINVAL);
    ck_assert_int_eq(f.next, 0);
    ck_assert_ptr_null(st->path(st, ACME_SG_DOMAINS, "a", "b", pool));
}
END_TEST

START_TEST(store_list_keeps_only_item_names_sorted_once)
{
    /* keys as etcd orders them (bytes): "a.b/" sorts before "a/" */
    static const canned_t script[] = {
        {200, "{" HDR ",\"kvs\":["
              "{\"key\":\"cGZ4L2RvbWFpbnMvYS5iL2NlcnQ=\",\"create_revision\":\"2\",\"mod_revision\":\"2\"},"
              "{\"key\":\"cGZ4L2RvbWFpbnMvYS9jZXJ0\",\"create_revision\":\"2\",\"mod_revision\":\"2\"},"
              "{\"key\":\"cGZ4L2RvbWFpbnMvYS9rZXk=\",\"create_revision\":\"2\",\"mod_revision\":\"2\"},"
              "{\"key\":\"cGZ4L2RvbWFpbnMvLmhpZGRlbi94\",\"create_revision\":\"2\",\"mod_revision\":\"2\"},"
              "{\"key\":\"cGZ4L2RvbWFpbnMvc3RyYXk=\",\"create_revision\":\"2\",\"mod_revision\":\"2\"}"
              "],\"more\":true}"},
        {200, "{" HDR ",\"kvs\":["
              "{\"key\":\"cGZ4L2RvbWFpbnMvei9jZXJ0\",\"create_revision\":\"2\",\"mod_revision\":\"2\"}"
              "]}"},
        {200, "{" HDR "}"},
    };
    fake_t f;
    acme_store_t *st = fake_store(&f, script, 3);
    apr_array_header_t *names;

    /* pfx/domains/{a.b/cert, a/cert, a/key, .hidden/x, stray}, then a second page */
    ck_assert_int_eq(st->list(st, ACME_SG_DOMAINS, NULL, &names, pool), APR_SUCCESS);
    ck_assert_int_eq(acme_json_getb(js(f.bodies[0]), "keys_only", NULL), 1);
    ck_assert_str_eq(acme_json_gets(js(f.bodies[0]), "key", NULL), "cGZ4L2RvbWFpbnMv");
    ck_assert_str_eq(acme_json_gets(js(f.bodies[1]), "key", NULL), "cGZ4L2RvbWFpbnMvc3RyYXkB");
    ck_assert_str_eq(acme_json_gets(js(f.bodies[1]), "range_end", NULL), "cGZ4L2RvbWFpbnMw");
    ck_assert_int_eq(names->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(names, 0, const char *), "a");
    ck_assert_str_eq(APR_ARRAY_IDX(names, 1, const char *), "a.b");
    ck_assert_str_eq(APR_ARRAY_IDX(names, 2, const char *), "z");
    ck_assert_int_eq(st->list(st, ACME_SG_DOMAINS, "gone", &names, pool), APR_ENOENT);
    ck_assert_int_eq(names->nelts, 0);
}
END_TEST

START_TEST(store_claim_held_by_another_owner_is_busy_and_says_who)
{
    canned_t script[1];
    fake_t f;
    acme_store_t *st;
    acme_store_claim_t *c;

    script[0].status = 200;
    script[0].body = range_answer("pfx/locks/a.org", "server-2", 8);
    st = fake_store(&f, script, 1);
    ck_assert_int_eq(st->claim(st, &c, "a.org", "server-1", apr_time_from_sec(30), pool),
                     APR_EBUSY);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->owner, "server-2");
    ck_assert_uint_eq(c->token, 0);
    ck_assert_int_eq(f.next, 1);   /* no lease granted for nothing */
    ck_assert_str_eq(st->kind, "etcd");
    ck_assert_str_eq(st->where, "http://e1:2379");
}
END_TEST

START_TEST(store_fenced_save_compares_the_token_and_is_refused_when_stale)
{
    canned_t script[2];
    fake_t f;
    acme_store_t *st, *v;
    acme_store_claim_t c;
    acme_json_t *b, *cmp;

    script[0].status = 200;
    script[0].body = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}";
    script[1].status = 200;
    script[1].body = apr_psprintf(pool, "{" HDR ",\"responses\":[{\"response_range\":%s}]}",
                                  range_answer("pfx/locks/a.org", "server-2", 8));
    st = fake_store(&f, script, 2);
    memset(&c, 0, sizeof(c));
    c.name = "a.org";
    c.owner = "server-1";
    c.token = 17;
    v = acme_store_fenced(pool, st, &c);
    ck_assert_int_eq(v->save(v, ACME_SG_STAGING, "a.org", "cert.pem", "C", 1, 0, pool),
                     APR_SUCCESS);
    b = js(f.bodies[0]);
    cmp = acme_json_array_at(acme_json_getj(b, pool, "compare", NULL), pool, 0);
    ck_assert_str_eq(acme_json_gets(cmp, "target", NULL), "CREATE");
    ck_assert_str_eq(acme_json_gets(cmp, "create_revision", NULL), "17");
    ck_assert_str_eq(acme_json_gets(cmp, "key", NULL),
                     acme_etcd_b64_encode(pool, "pfx/locks/a.org", 15));
    ck_assert_uint_eq(acme_json_array_len(acme_json_getj(b, pool, "failure", NULL)), 1);
    ck_assert_int_eq(v->save(v, ACME_SG_STAGING, "a.org", "cert.pem", "C", 1, 0, pool),
                     ACME_STORE_EFENCED);
    ck_assert_int_eq(f.next, 2);
}
END_TEST

/* An envelope as the store writes it, sealed for key. */
static const char *sealed_item(const char *key, const char *data)
{
    return item(key, data, 1, 1000, NULL);
}

/* An envelope as version 1 wrote it: sealed with the store key itself, or plain. */
static const char *v1_item(const char *key, const char *data, int secret)
{
    const char *sealed;

    if (!secret) {
        return apr_pstrcat(pool, "acme-item 1 1000 p\n", data, NULL);
    }
    ck_assert_int_eq(acme_seal(&sealed, pool, store_key, key, data, strlen(data)), APR_SUCCESS);
    return apr_pstrcat(pool, "acme-item 1 1000 s\n", sealed, NULL);
}

/* A range answer holding n keys, of mod revisions 10, 11, ... */
static const char *kvs_answer(int n, const char *const *keys, const char *const *values)
{
    const char *kvs = "";
    int i;

    for (i = 0; i < n; ++i) {
        kvs = apr_psprintf(pool, "%s%s{\"key\":\"%s\",\"create_revision\":\"3\","
                           "\"mod_revision\":\"%d\",\"version\":\"1\",\"value\":\"%s\"}", kvs,
                           i ? "," : "", acme_etcd_b64_encode(pool, keys[i], strlen(keys[i])),
                           10 + i, acme_etcd_b64_encode(pool, values[i], strlen(values[i])));
    }
    return apr_psprintf(pool, "{" HDR ",\"kvs\":[%s]}", kvs);
}

START_TEST(item_envelope_refuses_plain_tampered_moved_and_foreign_key_items)
{
    static const unsigned char other_key[32] = "0123456789abcdefghijklmnopqrstuv";
    static const canned_t none[] = {{200, "{" HDR "}"}};
    const char *k = "pfx/jobs/a.org/privkey.p256.pem", *data, *v, *err;
    fake_t f;
    acme_store_t *st = fake_store(&f, none, 1), *other;
    apr_size_t len, vlen, i;
    apr_time_t mt;
    int secret;

    ck_assert_int_eq(acme_store_etcd_create(&other, pool, fake_etcd(&f, none, 1, 1), "pfx",
                                            other_key, &err), APR_SUCCESS);
    for (secret = 0; secret < 2; ++secret) {
        v = item(k, "the data", secret, 1234, &vlen);
        ck_assert_msg((strstr(v, "the data") == NULL) == secret, "%s", v);
        ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st, k, v, vlen, pool),
                         APR_SUCCESS);
        ck_assert_str_eq(data, "the data");
        ck_assert_uint_eq(len, 8);
        ck_assert_int_eq(mt, 1234);
        /* moved to another key name */
        ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st,
                                                   "pfx/jobs/b.org/privkey.p256.pem", v, vlen,
                                                   pool), APR_EINVAL);
        ck_assert_ptr_null(data);
        /* written with another store key */
        ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, other, k, v, vlen, pool),
                         APR_EINVAL);
        /* any byte altered, the time and the form included */
        for (i = 0; i < vlen; ++i) {
            char *t = apr_pmemdup(pool, v, vlen + 1);

            t[i] ^= 0x01;
            ck_assert_msg(acme_store_etcd_item_open(&data, &len, &mt, st, k, t, vlen, pool)
                          == APR_EINVAL, "byte %d altered of %s", (int)i, v);
        }
        /* cut short, or longer */
        ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st, k, v, vlen - 1, pool),
                         APR_EINVAL);
        ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st, k,
                                                   apr_pstrcat(pool, v, "x", NULL), vlen + 1,
                                                   pool), APR_EINVAL);
    }
    /* plain, in the earlier format or made up in the current one */
    v = "acme-item 1 1234 p\nthe data";
    ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st, k, v, strlen(v), pool),
                     APR_EINVAL);
    v = "acme-item 2 1234 p\nthe data";
    ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st, k, v, strlen(v), pool),
                     APR_EINVAL);
    v = "acme-item 2 1234 m AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nthe data";
    ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st, k, v, strlen(v), pool),
                     APR_EINVAL);
    /* a sealed value of the store key itself (as version 1 sealed) in the
     * current form: the sealing key is derived, not the store key */
    ck_assert_int_eq(acme_seal(&data, pool, store_key, k, "x", 1), APR_SUCCESS);
    v = apr_pstrcat(pool, "acme-item 2 1234 s\n", data, NULL);
    ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st, k, v, strlen(v), pool),
                     APR_EINVAL);
    ck_assert_int_eq(f.next, 0);    /* all of it without asking etcd */
}
END_TEST

/* A name's items as version 1 left them: the sealed key, a plain
 * certificate of that key and its meta.json, a plain job file. */
typedef struct {
    const char *kpem, *cpem, *ppem, *pcert;
} pki_t;

static void make_pki(pki_t *k)
{
    acme_pkey_t *key;
    apr_array_header_t *names = apr_array_make(pool, 1, sizeof(const char *));

    APR_ARRAY_PUSH(names, const char *) = "a.org";
    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_to_pem(&k->kpem, pool, key), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_self_signed_pem(&k->cpem, pool, key, names, NULL,
                                               apr_time_from_sec(3600)), APR_SUCCESS);
    /* the attacker's */
    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_to_pem(&k->ppem, pool, key), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_self_signed_pem(&k->pcert, pool, key, names, NULL,
                                               apr_time_from_sec(3600)), APR_SUCCESS);
}

START_TEST(store_takes_over_version_1_items_only_where_a_sealed_key_vouches)
{
    const char *keys[] = {"pfx/domains/a.org/cert.p256.pem", "pfx/domains/a.org/job.json",
                          "pfx/domains/a.org/meta.json", "pfx/domains/a.org/privkey.p256.pem"};
    const char *values[4], *data;
    canned_t script[8];
    fake_t f;
    acme_store_t *st;
    acme_json_t *b, *c;
    apr_size_t len;
    apr_time_t mt;
    pki_t k;
    int i;

    make_pki(&k);
    values[0] = v1_item(keys[0], k.cpem, 0);
    values[1] = v1_item(keys[1], "{\"orders\":{}}", 0);
    values[2] = v1_item(keys[2], "{\"names\":[\"a.org\"]}", 0);
    values[3] = v1_item(keys[3], k.kpem, 1);
    for (i = 0; i < 8; ++i) {
        script[i].status = 200;
    }
    script[0].body = range_answer(keys[0], values[0], strlen(values[0]));
    script[1].body = kvs_answer(4, keys, values);
    script[2].body = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{}},"
                     "{\"response_put\":{}},{\"response_put\":{}}]}";
    script[3].body = range_answer(keys[1], values[1], strlen(values[1]));
    script[4].body = kvs_answer(4, keys, values);
    script[5].body = "{" HDR ",\"succeeded\":false}";
    st = fake_store(&f, script, 6);
    /* the certificate is its sealed key's: taken over */
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "a.org", "cert.p256.pem", &data, &len, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(data, k.cpem);
    /* and written anew with its key and meta.json, each only if unchanged */
    ck_assert_str_eq(f.urls[2], "http://e1:2379/v3/kv/txn");
    b = js(f.bodies[2]);
    c = acme_json_getj(b, pool, "compare", NULL);
    ck_assert_uint_eq(acme_json_array_len(c), 3);
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 0), "target", NULL), "MOD");
    ck_assert_str_eq(acme_json_gets(acme_json_array_at(c, pool, 0), "mod_revision", NULL), "10");
    c = acme_json_getj(b, pool, "success", NULL);
    ck_assert_uint_eq(acme_json_array_len(c), 3);
    for (i = 0; i < 3; ++i) {
        unsigned char *raw, *rk;
        apr_size_t rlen, klen;
        static const int which[] = {0, 2, 3};

        ck_assert_int_eq(acme_etcd_b64_decode(&rk, &klen, pool, acme_json_gets(
            acme_json_array_at(c, pool, i), "request_put", "key", NULL)), APR_SUCCESS);
        ck_assert_str_eq((const char *)rk, keys[which[i]]);
        ck_assert_int_eq(acme_etcd_b64_decode(&raw, &rlen, pool, acme_json_gets(
            acme_json_array_at(c, pool, i), "request_put", "value", NULL)), APR_SUCCESS);
        ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, &mt, st, keys[which[i]],
                                                   (const char *)raw, rlen, pool), APR_SUCCESS);
        ck_assert_int_eq(mt, 1000);
    }
    ck_assert_ptr_null(strstr(f.bodies[2], "PRIVATE"));
    /* a plain job file: nothing vouches for it */
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "a.org", "job.json", &data, &len, pool),
                     APR_EINVAL);
    ck_assert_ptr_null(data);

    /* Once a name is in the current form, a plain certificate is never
     * taken again, not even one of its own key. */
    values[3] = item(keys[3], k.kpem, 1, 1000, NULL);
    script[0].body = range_answer(keys[0], values[0], strlen(values[0]));
    script[1].body = kvs_answer(4, keys, values);
    script[2].body = script[0].body;
    script[3].body = script[1].body;
    st = fake_store(&f, script, 4);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "a.org", "cert.p256.pem", &data, &len, pool),
                     APR_EINVAL);
    ck_assert_int_eq(st->mtime(st, ACME_SG_DOMAINS, "a.org", "cert.p256.pem", &mt, pool),
                     APR_EINVAL);
    /* nor a planted certificate beside a sealed key of version 1 */
    values[0] = v1_item(keys[0], k.pcert, 0);
    values[3] = v1_item(keys[3], k.kpem, 1);
    script[0].body = range_answer(keys[0], values[0], strlen(values[0]));
    script[1].body = kvs_answer(4, keys, values);
    script[2].body = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}";
    st = fake_store(&f, script, 3);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "a.org", "cert.p256.pem", &data, &len, pool),
                     APR_EINVAL);
    ck_assert_ptr_null(strstr(f.bodies[2], acme_etcd_b64_encode(pool, keys[0], strlen(keys[0]))));
    /* nor a planted plain private key: the job makes its own */
    keys[0] = "pfx/jobs/a.org/privkey.p256.pem";
    values[0] = v1_item(keys[0], k.ppem, 0);
    script[0].body = range_answer(keys[0], values[0], strlen(values[0]));
    script[1].body = kvs_answer(1, keys, values);
    st = fake_store(&f, script, 2);
    ck_assert_int_eq(st->load(st, ACME_SG_JOBS, "a.org", "privkey.p256.pem", &data, &len, pool),
                     APR_EINVAL);
    ck_assert_int_eq(f.next, 2);    /* and nothing written */
}
END_TEST

typedef struct {
    const char *key;
    int errors, debugs;
} refusals_t;

static void count_refusals(void *baton, const char *file, int line, int level, apr_status_t rv,
                           const char *msg)
{
    refusals_t *r = baton;

    (void)file; (void)line; (void)rv;
    if (strstr(msg, "ACME1400: ") && strstr(msg, r->key)) {
        r->errors += level == ACME_LOG_ERR;
        r->debugs += level == ACME_LOG_DEBUG;
    }
}

START_TEST(a_refused_item_is_an_error_once_per_value_not_at_every_poll)
{
    /* the parent polls the batch markers every second: a plain one that a
     * server before the authenticated format left must not fill the log */
    const char *keys[] = {"pfx/staging/_batch/staged"}, *values[] = {"acme-item 1 5 p\n"};
    const char *bad_mac = "acme-item 2 5 m AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", *data;
    canned_t script[6];
    refusals_t r = {"pfx/staging/_batch/staged", 0, 0};
    fake_t f;
    acme_store_t *st;
    apr_size_t len;
    apr_time_t mt;
    int i;

    for (i = 0; i < 6; i += 2) {
        script[i].status = script[i + 1].status = 200;
        script[i].body = range_answer(keys[0], values[0], strlen(values[0]));
        script[i + 1].body = kvs_answer(1, keys, values);
    }
    st = fake_store(&f, script, 6);
    acme_log_set(count_refusals, &r, ACME_LOG_DEBUG);
    for (i = 0; i < 3; ++i) {
        ck_assert_int_eq(st->mtime(st, ACME_SG_STAGING, "_batch", "staged", &mt, pool),
                         APR_EINVAL);
    }
    ck_assert_int_eq(r.errors, 1);
    ck_assert_int_eq(r.debugs, 2);
    /* another value at the key is news, and so is the first one after it */
    ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, NULL, st, keys[0], bad_mac,
                                               strlen(bad_mac), pool), APR_EINVAL);
    ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, NULL, st, keys[0], bad_mac,
                                               strlen(bad_mac), pool), APR_EINVAL);
    ck_assert_int_eq(r.errors, 2);
    ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, NULL, st, keys[0], values[0],
                                               strlen(values[0]), pool), APR_EINVAL);
    ck_assert_int_eq(r.errors, 3);
    ck_assert_int_eq(r.debugs, 3);
    acme_log_set(NULL, NULL, 0);
}
END_TEST

START_TEST(store_verify_takes_over_a_version_1_schema_item)
{
    canned_t script[3];
    fake_t f;
    acme_store_t *st;
    const char *err, *v = v1_item("pfx/store", "{\"schema\": 1}", 1), *data;
    unsigned char *raw;
    apr_size_t rlen, len;
    acme_json_t *put;

    script[0].status = script[1].status = script[2].status = 200;
    script[0].body = range_answer("pfx/store", v, strlen(v));
    script[1].body = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}";
    st = fake_store(&f, script, 2);
    ck_assert_int_eq(acme_store_etcd_verify(st, pool, &err), APR_SUCCESS);
    ck_assert_int_eq(f.next, 2);
    put = acme_json_array_at(acme_json_getj(js(f.bodies[1]), pool, "success", NULL), pool, 0);
    ck_assert_int_eq(acme_etcd_b64_decode(&raw, &rlen, pool,
                                          acme_json_gets(put, "request_put", "value", NULL)),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_store_etcd_item_open(&data, &len, NULL, st, "pfx/store",
                                               (const char *)raw, rlen, pool), APR_SUCCESS);
    ck_assert_str_eq(data, "{\"schema\": 1}");
    /* a plain one was never written by mod_acme */
    v = v1_item("pfx/store", "{\"schema\": 1}", 0);
    script[0].body = range_answer("pfx/store", v, strlen(v));
    st = fake_store(&f, script, 1);
    ck_assert_int_eq(acme_store_etcd_verify(st, pool, &err), APR_EACCES);
}
END_TEST

START_TEST(store_verify_writes_the_schema_once_and_refuses_newer_or_corrupt)
{
    canned_t script[5];
    fake_t f;
    acme_store_t *st;
    const char *err, *v;
    acme_json_t *cmp;
    int i;

    for (i = 0; i < 5; ++i) {
        script[i].status = 200;
    }
    script[0].body = "{" HDR "}";   /* absent: the first server */
    script[1].body = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}";
    v = sealed_item("pfx/store", "{\"schema\": 99}");
    script[2].body = range_answer("pfx/store", v, strlen(v));
    v = sealed_item("pfx/store", "[1]");
    script[3].body = range_answer("pfx/store", v, strlen(v));
    v = sealed_item("pfx/store", "{\"schema\": 1}");
    script[4].body = range_answer("pfx/store", v, strlen(v));
    st = fake_store(&f, script, 5);
    ck_assert_int_eq(acme_store_etcd_verify(st, pool, &err), APR_SUCCESS);
    cmp = acme_json_array_at(acme_json_getj(js(f.bodies[1]), pool, "compare", NULL), pool, 0);
    ck_assert_str_eq(acme_json_gets(cmp, "create_revision", NULL), "0");
    ck_assert_int_eq(acme_store_etcd_verify(st, pool, &err), APR_EGENERAL);
    ck_assert_msg(strstr(err, "schema 99, newer"), "%s", err);
    ck_assert_int_eq(acme_store_etcd_verify(st, pool, &err), APR_EINVAL);
    ck_assert_msg(strstr(err, "is corrupt"), "%s", err);
    ck_assert_int_eq(acme_store_etcd_verify(st, pool, &err), APR_SUCCESS);
}
END_TEST

/* ---- the sweep of stale answers ------------------------------------------------------- */

typedef struct {
    const char *id;
    int level, count;
    const char *last;
} logged_t;

static void record_log(void *baton, const char *file, int line, int level, apr_status_t rv,
                       const char *msg)
{
    logged_t *l = baton;

    (void)file; (void)line; (void)rv;
    if (strstr(msg, l->id)) {
        l->level = level;
        l->count++;
        l->last = apr_pstrdup(pool, msg);
    }
}

/* The txn of request i: deletes key if its mod_revision is still mod. */
static void assert_guarded_delete(fake_t *f, int i, const char *key, const char *mod)
{
    acme_json_t *b = js(f->bodies[i]), *cmp, *del;
    const char *k = acme_etcd_b64_encode(pool, key, strlen(key));

    ck_assert_str_eq(f->urls[i], "http://e1:2379/v3/kv/txn");
    ck_assert_uint_eq(acme_json_array_len(acme_json_getj(b, pool, "compare", NULL)), 1);
    cmp = acme_json_array_at(acme_json_getj(b, pool, "compare", NULL), pool, 0);
    ck_assert_str_eq(acme_json_gets(cmp, "target", NULL), "MOD");
    ck_assert_str_eq(acme_json_gets(cmp, "result", NULL), "EQUAL");
    ck_assert_str_eq(acme_json_gets(cmp, "key", NULL), k);
    ck_assert_str_eq(acme_json_gets(cmp, "mod_revision", NULL), mod);
    ck_assert_uint_eq(acme_json_array_len(acme_json_getj(b, pool, "success", NULL)), 1);
    del = acme_json_array_at(acme_json_getj(b, pool, "success", NULL), pool, 0);
    ck_assert_str_eq(acme_json_gets(del, "request_delete_range", "key", NULL), k);
    ck_assert(!acme_json_has(del, "request_delete_range", "range_end", NULL));
    ck_assert(!acme_json_has(b, "failure", NULL)
              || !acme_json_array_len(acme_json_getj(b, pool, "failure", NULL)));
}

/* Answers a run that died left in etcd go after a day, each by a delete
 * that holds only while the value is the one read: one a job published
 * again meanwhile (the compare fails) stays, and is not counted. Younger
 * answers, keys that are no items of ours and values without a time stay
 * without a request. Pages are read one after the other. */
START_TEST(store_sweep_removes_answers_older_than_a_day_unless_written_again)
{
    apr_time_t now = apr_time_now();
    apr_time_t stale = now - ACME_STORE_ANSWER_STALE - apr_time_from_sec(60);
    apr_time_t young = now - ACME_STORE_ANSWER_STALE + apr_time_from_sec(3600);
    const char *stale_s = apr_psprintf(pool, "%" APR_TIME_T_FMT, stale);
    const char *keys[] = {
        "pfx/challenges/http-01/.hidden",           /* 10: not an item name */
        "pfx/challenges/http-01/garbage",           /* 11: no envelope, no time */
        "pfx/challenges/http-01/old",               /* 12: stale */
        "pfx/challenges/http-01/v1old",             /* 13: the earlier format, stale */
        "pfx/challenges/http-01/young",             /* 14: less than a day old */
        "pfx/challenges/stray",                     /* 15: not <type>/<aspect> */
        "pfx/challenges/tls-alpn-01/a.org.crt",     /* 16: stale, published again meanwhile */
        "pfx/challenges/tls-alpn-01/a.org.key",     /* 17: stale, sealed */
    };
    const char *values[8], *page2_keys[1], *page2_values[1], *page1;
    const char *deleted = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_delete_range\""
                          ":{\"header\":{},\"deleted\":\"1\"}}]}";
    canned_t script[8];
    logged_t l = {"ACME2500: ", 0, 0, NULL};
    fake_t f;
    acme_store_t *st;

    values[0] = item(keys[0], "t.thumb", 0, stale, NULL);
    values[1] = "t.thumb";
    values[2] = item(keys[2], "old.thumb", 0, stale, NULL);
    values[3] = apr_pstrcat(pool, "acme-item 1 ", stale_s, " p\nv1.thumb", NULL);
    values[4] = item(keys[4], "young.thumb", 0, young, NULL);
    values[5] = item("pfx/challenges/http-01/stray", "x", 0, stale, NULL);
    values[6] = item(keys[6], "CERT", 0, stale, NULL);
    values[7] = item(keys[7], "KEY", 1, stale, NULL);
    page1 = kvs_answer(8, keys, values);
    page1 = apr_psprintf(pool, "%.*s,\"more\":true}", (int)strlen(page1) - 1, page1);
    page2_keys[0] = "pfx/challenges/tls-alpn-01/z.org.crt";
    page2_values[0] = item(page2_keys[0], "CERT", 0, stale, NULL);
    script[0].status = script[1].status = script[2].status = script[3].status = 200;
    script[4].status = script[5].status = script[6].status = script[7].status = 200;
    script[0].body = page1;
    script[1].body = deleted;                                    /* old */
    script[2].body = deleted;                                    /* v1old */
    script[3].body = "{" HDR ",\"responses\":[]}";               /* a.org.crt: written again */
    script[4].body = deleted;                                    /* a.org.key */
    script[5].body = kvs_answer(1, page2_keys, page2_values);
    script[6].body = deleted;                                    /* z.org.crt */
    st = fake_store(&f, script, 7);
    ck_assert_ptr_nonnull(st->sweep);
    acme_log_set(record_log, &l, ACME_LOG_DEBUG);
    ck_assert_int_eq(st->sweep(st, ACME_STORE_STALE_AGE, pool), 4);
    acme_log_set(NULL, NULL, 0);
    ck_assert_int_eq(f.next, 7);
    ck_assert_str_eq(f.urls[0], "http://e1:2379/v3/kv/range");
    ck_assert_str_eq(acme_json_gets(js(f.bodies[0]), "key", NULL),
                     acme_etcd_b64_encode(pool, "pfx/challenges/", 15));
    ck_assert(!acme_json_getb(js(f.bodies[0]), "keys_only", NULL));
    assert_guarded_delete(&f, 1, keys[2], "12");
    assert_guarded_delete(&f, 2, keys[3], "13");
    assert_guarded_delete(&f, 3, keys[6], "16");
    assert_guarded_delete(&f, 4, keys[7], "17");
    /* the next page starts after the last key of the first */
    ck_assert_str_eq(acme_json_gets(js(f.bodies[5]), "key", NULL),
                     acme_etcd_b64_encode(pool, "pfx/challenges/tls-alpn-01/a.org.key\x01", 37));
    assert_guarded_delete(&f, 6, page2_keys[0], "10");
    ck_assert_int_eq(l.count, 1);
    ck_assert_int_eq(l.level, ACME_LOG_INFO);
    ck_assert(contains(l.last, "removed 4 challenge answer(s)"));
}
END_TEST

/* etcd down: nothing removed, one warning that says why, no error; a
 * delete that fails ends the sweep (the next one takes the rest). */
START_TEST(store_sweep_with_etcd_down_warns_once_and_removes_nothing)
{
    const char *keys[] = {"pfx/challenges/http-01/a", "pfx/challenges/http-01/b"};
    const char *values[2];
    apr_time_t stale = apr_time_now() - ACME_STORE_ANSWER_STALE - apr_time_from_sec(1);
    canned_t script[2];
    logged_t l = {"ACME2501: ", 0, 0, NULL};
    fake_t f;
    acme_store_t *st;

    script[0].status = -1;
    st = fake_store(&f, script, 1);
    ck_assert_ptr_nonnull(st->sweep);
    acme_log_set(record_log, &l, ACME_LOG_DEBUG);
    ck_assert_int_eq(st->sweep(st, ACME_STORE_STALE_AGE, pool), 0);
    ck_assert_int_eq(l.count, 1);
    ck_assert_int_eq(l.level, ACME_LOG_WARNING);
    ck_assert(contains(l.last, "pfx/challenges/"));
    ck_assert(contains(l.last, "Couldn't connect"));

    values[0] = item(keys[0], "a", 0, stale, NULL);
    values[1] = item(keys[1], "b", 0, stale, NULL);
    script[0].status = 200;
    script[0].body = kvs_answer(2, keys, values);
    script[1].status = -1;
    l.count = 0;
    st = fake_store(&f, script, 2);
    ck_assert_int_eq(st->sweep(st, ACME_STORE_STALE_AGE, pool), 0);
    acme_log_set(NULL, NULL, 0);
    ck_assert_int_eq(f.next, 2);    /* b is not tried after a's delete failed */
    ck_assert_int_eq(l.count, 1);
}
END_TEST

static Suite *etcd_suite(void)
{
    Suite *s = suite_create("acme_etcd");
    TCase *tc = tcase_create("client");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, b64_round_trip_and_strict_decode);
    tcase_add_test(tc, get_encodes_the_key_and_parses_the_answer);
    tcase_add_test(tc, put_and_delete_encode_values_leases_and_ranges);
    tcase_add_test(tc, get_prefix_sends_range_limit_and_keys_only);
    tcase_add_test(tc, txn_encodes_compares_and_both_branches);
    tcase_add_test(tc, failover_skips_dead_and_5xx_members_and_remembers_the_good_one);
    tcase_add_test(tc, all_members_down_is_a_network_error_naming_the_key);
    tcase_add_test(tc, a_4xx_is_not_failed_over);
    tcase_add_test(tc, a_foreign_cluster_among_the_endpoints_is_refused);
    tcase_add_test(tc, stop_flag_aborts_before_any_request);
    tcase_add_test(tc, auth_token_is_fetched_sent_and_renewed_when_invalid);
    tcase_add_test(tc, auth_with_a_wrong_password_is_a_config_error);
    tcase_add_test(tc, auth_token_with_a_newline_is_refused);
    tcase_add_test(tc, config_errors);
    tcase_add_loop_test(tc, malformed_get_answers_are_refused_with_a_reason, 0,
                        (int)(sizeof(bad_gets) / sizeof(bad_gets[0])));
    tcase_add_test(tc, a_value_at_the_limit_is_accepted_and_a_larger_put_refused);
    tcase_add_test(tc, malformed_write_answers_are_refused);
    tcase_add_test(tc, lease_grant_keepalive_and_revoke);
    tcase_add_test(tc, revision_reads_the_header);
    tcase_add_test(tc, watch_follows_puts_and_deletes_in_order_across_split_lines);
    tcase_add_test(tc, watch_refuses_malformed_messages_naming_them);
    tcase_add_test(tc, watch_fails_over_and_a_line_over_the_limit_ends_it);
    tcase_add_test(tc, mutated_answers_are_refused_or_parsed_never_crash);
    suite_add_tcase(s, tc);

    tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, store_seals_secrets_under_their_key_name);
    tcase_add_test(tc, store_watch_opens_authenticated_items_and_skips_foreign_keys);
    tcase_add_test(tc, store_snapshot_answers_a_names_reads_in_one_request_until_a_write);
    tcase_add_test(tc, store_snapshot_kept_reads_only_what_changed_since);
    tcase_add_test(tc, store_view_of_two_groups_asks_again_only_when_older_than_max_age);
    tcase_add_test(tc, store_refuses_invalid_names_without_asking_etcd);
    tcase_add_test(tc, store_list_keeps_only_item_names_sorted_once);
    tcase_add_test(tc, store_claim_held_by_another_owner_is_busy_and_says_who);
    tcase_add_test(tc, store_verify_writes_the_schema_once_and_refuses_newer_or_corrupt);
    tcase_add_test(tc, store_fenced_save_compares_the_token_and_is_refused_when_stale);
    tcase_add_test(tc, item_envelope_refuses_plain_tampered_moved_and_foreign_key_items);
    tcase_add_test(tc, store_takes_over_version_1_items_only_where_a_sealed_key_vouches);
    tcase_add_test(tc, store_verify_takes_over_a_version_1_schema_item);
    tcase_add_test(tc, a_refused_item_is_an_error_once_per_value_not_at_every_poll);
    tcase_add_test(tc, store_sweep_removes_answers_older_than_a_day_unless_written_again);
    tcase_add_test(tc, store_sweep_with_etcd_down_warns_once_and_removes_nothing);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(etcd_suite)
