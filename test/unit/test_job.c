/* test_job.c: acme_job_run and acme_job_ari_refresh against a fake CA (an
 * acme_http_t answering RFC 8555 from memory), a real fs store and a fake clock. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_http.h"
#include "acme_acme.h"
#include "acme_store.h"
#include "acme_publish.h"
#include "acme_job.h"
#include "acme_status.h"
#include "acme_preflight.h"
#include "acme_test.h"

#define CA "https://ca.test"
#define DOMAIN "job.example.org"
#define NAMES 2
#define MAX_ORDERS 8
static const char *const chall_types[] = {"http-01", "tls-alpn-01"};

/* ---- the fake CA ------------------------------------------------------------------- */

typedef struct {
    acme_state_t status;
    acme_state_t authz[NAMES];
    int used[NAMES];             /* the challenge type answered, or -1 */
    const char *names[NAMES];
    const char *chain;           /* PEM, once issued */
} ca_order_t;

typedef struct ca_t ca_t;
struct ca_t {
    apr_pool_t *pool;
    acme_store_t *store;         /* where the answers to challenges are read */
    /* what the test sets */
    int fail_from;               /* requests from this number on fail in the network (0: never) */
    int stop_at;                 /* the server stops as this request is about to start: it
                                  * is not sent (0: never) */
    int bad_nonce_every;         /* every n-th POST is refused with badNonce */
    const char *refuse;          /* validations of this type fail */
    const char *retry_after;     /* newOrder answers 429 with this Retry-After */
    int ari;                     /* the directory offers renewalInfo */
    int defer;                   /* validations wait for ca_validate_deferred() */
    void (*hook)(ca_t *ca, const char *event); /* "order-created", "responded", "polled",
                                                  "finalized" */
    /* what happened */
    int requests, posts, bad_nonces, url_mismatches, accounts, new_orders, finalizes,
        downloads, ari_asks, refused, validated[2], challenge_posts;
    /* state */
    apr_hash_t *nonces;
    int nonce_seq;
    const char *thumbprint;      /* of the account key */
    ca_order_t orders[MAX_ORDERS];
    int norders;
    EVP_PKEY *key;
    X509 *root;
    long serial;
    const char *ari_id;          /* of the last certificate issued */
    apr_time_t ari_start, ari_end;
};

static acme_http_response_t *answer(ca_t *ca, apr_pool_t *p, int status, const char *ctype,
                                    const char *body)
{
    acme_http_response_t *resp = apr_pcalloc(p, sizeof(*resp));
    const char *nonce = apr_psprintf(ca->pool, "nonce%d", ++ca->nonce_seq);

    resp->status = status;
    resp->headers = apr_table_make(p, 4);
    if (ctype) apr_table_set(resp->headers, "Content-Type", ctype);
    apr_table_set(resp->headers, "Replay-Nonce", nonce);
    apr_hash_set(ca->nonces, nonce, APR_HASH_KEY_STRING, nonce);
    resp->body = body ? body : "";
    resp->body_len = strlen(resp->body);
    return resp;
}

static acme_http_response_t *json_answer(ca_t *ca, apr_pool_t *p, int status,
                                         const acme_json_t *j, const char *location)
{
    acme_http_response_t *resp = answer(ca, p, status, "application/json",
                                        acme_json_dump(j, p, 1));
    if (location) apr_table_set(resp->headers, "Location", location);
    return resp;
}

static acme_json_t *problem_json(apr_pool_t *p, const char *type, const char *detail)
{
    acme_json_t *j = acme_json_new_object(p);

    acme_json_sets(j, apr_pstrcat(p, ACME_PROBLEM_NS, type, NULL), "type", NULL);
    acme_json_sets(j, detail, "detail", NULL);
    return j;
}

static acme_http_response_t *problem(ca_t *ca, apr_pool_t *p, int status, const char *type,
                                     const char *detail)
{
    return answer(ca, p, status, "application/problem+json",
                  acme_json_dump(problem_json(p, type, detail), p, 1));
}

static acme_json_t *b64_json(apr_pool_t *p, const char *b64)
{
    unsigned char *raw;
    apr_size_t len;
    acme_json_t *j = NULL;
    const char *err;

    if (b64 && *b64 && acme_b64url_decode(&raw, &len, p, b64) == APR_SUCCESS) {
        acme_json_parse(&j, p, (const char *)raw, len, &err);
    }
    return j;
}

/* ---- issuing: a root made here signs the CSR's key --------------------------------------- */

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ck_assert_ptr_nonnull(ext);
    ck_assert(X509_add_ext(x, ext, -1));
    X509_EXTENSION_free(ext);
}

/* san NULL: the CA's own root. */
static X509 *mk_cert(ca_t *ca, EVP_PKEY *pub, const char *cn, const char *san)
{
    X509 *x = X509_new();
    X509 *issuer = san ? ca->root : x;

    ck_assert(X509_set_version(x, 2));
    ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), ++ca->serial));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 90L * 86400));
    ck_assert(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                         (const unsigned char *)cn, -1, -1, 0));
    ck_assert(X509_set_issuer_name(x, X509_get_subject_name(issuer)));
    ck_assert(X509_set_pubkey(x, pub));
    add_ext(x, issuer, NID_basic_constraints, san ? "critical,CA:FALSE" : "critical,CA:TRUE");
    add_ext(x, issuer, NID_subject_key_identifier, "hash");
    if (san) {
        add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
        add_ext(x, issuer, NID_subject_alt_name, san);
    }
    ck_assert(X509_sign(x, ca->key, EVP_sha256()) > 0);
    return x;
}

static const char *x509_pem(X509 *x, apr_pool_t *p)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    const char *pem;

    ck_assert(PEM_write_bio_X509(bio, x));
    n = BIO_get_mem_data(bio, &data);
    pem = apr_pstrmemdup(p, data, (apr_size_t)n);
    BIO_free(bio);
    return pem;
}

static apr_status_t ca_cleanup(void *baton)
{
    ca_t *ca = baton;

    X509_free(ca->root);
    EVP_PKEY_free(ca->key);
    return APR_SUCCESS;
}

/* The chain for the CSR when it asks for exactly the order's names. */
static const char *ca_issue(ca_t *ca, ca_order_t *o, const char *csr_b64, apr_pool_t *p)
{
    apr_array_header_t *names;
    unsigned char *der;
    const unsigned char *q;
    const char *cn, *leaf;
    apr_size_t len;
    acme_cert_t *cert;
    X509_REQ *req;
    X509 *x;
    int i;

    if (!csr_b64 || acme_b64url_decode(&der, &len, p, csr_b64) != APR_SUCCESS
        || acme_csr_names(&names, &cn, p, der, len) != APR_SUCCESS || names->nelts != NAMES) {
        return NULL;
    }
    for (i = 0; i < NAMES; ++i) {
        if (strcmp(APR_ARRAY_IDX(names, i, const char *), o->names[i])) return NULL;
    }
    q = der;
    req = d2i_X509_REQ(NULL, &q, (long)len);
    ck_assert_ptr_nonnull(req);
    x = mk_cert(ca, X509_REQ_get0_pubkey(req), o->names[0],
                apr_psprintf(p, "DNS:%s,DNS:%s", o->names[0], o->names[1]));
    leaf = x509_pem(x, p);
    X509_free(x);
    X509_REQ_free(req);
    ck_assert_int_eq(acme_cert_from_pem(&cert, p, leaf, strlen(leaf)), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_ari_id(&ca->ari_id, ca->pool, cert), APR_SUCCESS);
    return apr_pstrcat(ca->pool, leaf, x509_pem(ca->root, p), NULL);
}

/* ---- the CA's objects ------------------------------------------------------------------- */

static const char *token(int n, int i, int t, apr_pool_t *p)
{
    return apr_psprintf(p, "tok%d-%d-%d", n, i, t);
}

static acme_json_t *challenge_json(ca_t *ca, int n, int i, int t, apr_pool_t *p)
{
    const ca_order_t *o = &ca->orders[n];
    acme_json_t *ch = acme_json_new_object(p);
    acme_state_t st = o->used[i] == t ? o->authz[i] : ACME_STATE_PENDING;

    acme_json_sets(ch, chall_types[t], "type", NULL);
    acme_json_sets(ch, apr_psprintf(p, CA "/chall/%d/%d/%d", n, i, t), "url", NULL);
    acme_json_sets(ch, token(n, i, t, p), "token", NULL);
    acme_json_sets(ch, acme_state_name(st), "status", NULL);
    if (st == ACME_STATE_INVALID) {
        acme_json_setj(ch, problem_json(p, "incorrectResponse", "the fake CA refuses it"),
                       "error", NULL);
    }
    return ch;
}

static acme_json_t *authz_json(ca_t *ca, int n, int i, apr_pool_t *p)
{
    acme_json_t *a = acme_json_new_object(p), *chs = acme_json_new_array(p);
    int t;

    acme_json_sets(a, "dns", "identifier", "type", NULL);
    acme_json_sets(a, ca->orders[n].names[i], "identifier", "value", NULL);
    acme_json_sets(a, acme_state_name(ca->orders[n].authz[i]), "status", NULL);
    for (t = 0; t < 2; ++t) {
        acme_json_array_append(chs, challenge_json(ca, n, i, t, p));
    }
    acme_json_setj(a, chs, "challenges", NULL);
    return a;
}

static acme_json_t *order_json(ca_t *ca, int n, apr_pool_t *p)
{
    ca_order_t *o = &ca->orders[n];
    acme_json_t *j = acme_json_new_object(p), *ids = acme_json_new_array(p);
    acme_json_t *authzs = acme_json_new_array(p);
    int i, valid = 0;

    for (i = 0; i < NAMES; ++i) {
        acme_json_t *id = acme_json_new_object(p);

        acme_json_sets(id, "dns", "type", NULL);
        acme_json_sets(id, o->names[i], "value", NULL);
        acme_json_array_append(ids, id);
        acme_json_array_appends(authzs, apr_psprintf(p, CA "/authz/%d/%d", n, i));
        valid += o->authz[i] == ACME_STATE_VALID;
        if (o->status == ACME_STATE_PENDING && o->authz[i] == ACME_STATE_INVALID) {
            o->status = ACME_STATE_INVALID;
        }
    }
    if (o->status == ACME_STATE_PENDING && valid == NAMES) o->status = ACME_STATE_READY;
    acme_json_sets(j, acme_state_name(o->status), "status", NULL);
    acme_json_setj(j, ids, "identifiers", NULL);
    acme_json_setj(j, authzs, "authorizations", NULL);
    acme_json_sets(j, apr_psprintf(p, CA "/finalize/%d", n), "finalize", NULL);
    if (o->status == ACME_STATE_VALID) {
        acme_json_sets(j, apr_psprintf(p, CA "/cert/%d", n), "certificate", NULL);
    }
    if (o->status == ACME_STATE_INVALID) {
        acme_json_setj(j, problem_json(p, "incorrectResponse", "an authorization failed"),
                       "error", NULL);
    }
    return j;
}

/* ---- the CA's endpoints ------------------------------------------------------------------ */

static acme_http_response_t *new_account(ca_t *ca, const acme_json_t *hdr, apr_pool_t *p)
{
    acme_pkey_t *key;
    const char *thumb;
    acme_json_t *acct = acme_json_new_object(p);
    int known;

    ck_assert_int_eq(acme_pkey_from_jwk(&key, p, acme_json_getj(hdr, p, "jwk", NULL)),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_jwk_thumbprint(&thumb, p, key), APR_SUCCESS);
    known = ca->thumbprint && !strcmp(ca->thumbprint, thumb);
    if (!known) {
        ca->thumbprint = apr_pstrdup(ca->pool, thumb);
        ++ca->accounts;
    }
    acme_json_sets(acct, "valid", "status", NULL);
    return json_answer(ca, p, known ? 200 : 201, acct, CA "/acct/1");
}

static acme_http_response_t *new_order(ca_t *ca, const acme_json_t *payload, apr_pool_t *p)
{
    acme_http_response_t *resp;
    ca_order_t *o;
    int i, n;

    if (ca->retry_after) {
        resp = problem(ca, p, 429, "rateLimited", "too many orders");
        apr_table_set(resp->headers, "Retry-After", ca->retry_after);
        return resp;
    }
    ck_assert_int_lt(ca->norders, MAX_ORDERS);
    n = ca->norders++;
    o = &ca->orders[n];
    o->status = ACME_STATE_PENDING;
    for (i = 0; i < NAMES; ++i) {
        acme_json_t *id = acme_json_array_at(acme_json_getj(payload, p, "identifiers", NULL), p,
                                             (apr_size_t)i);
        ck_assert_ptr_nonnull(acme_json_gets(id, "value", NULL));
        o->names[i] = apr_pstrdup(ca->pool, acme_json_gets(id, "value", NULL));
        o->authz[i] = ACME_STATE_PENDING;
        o->used[i] = -1;
    }
    ++ca->new_orders;
    if (ca->hook) ca->hook(ca, "order-created");
    return json_answer(ca, p, 201, order_json(ca, n, p), apr_psprintf(p, CA "/order/%d", n));
}

/* Does the store hold the right answer for challenge t of name i? */
static int answer_is_published(ca_t *ca, int n, int i, int t, apr_pool_t *p)
{
    const char *key_authz = apr_pstrcat(p, token(n, i, t, p), ".", ca->thumbprint, NULL);
    const char *data;
    apr_size_t len;
    unsigned char want[32];
    const unsigned char *digest;
    acme_cert_t *cert;
    int crit;

    if (t == 0) {
        return ca->store->load(ca->store, ACME_SG_CHALLENGES, "http-01", token(n, i, t, p),
                               &data, &len, p) == APR_SUCCESS && !strcmp(data, key_authz);
    }
    acme_sha256(want, key_authz, strlen(key_authz));
    return ca->store->load(ca->store, ACME_SG_CHALLENGES, "tls-alpn-01",
                           apr_pstrcat(p, ca->orders[n].names[i], ".crt", NULL), &data, &len, p)
               == APR_SUCCESS
           && acme_cert_from_pem(&cert, p, data, len) == APR_SUCCESS
           && acme_cert_get_acme_id(&digest, &crit, p, cert) == APR_SUCCESS && crit
           && !memcmp(digest, want, 32);
}

static void validate(ca_t *ca, int n, int i, int t, apr_pool_t *p)
{
    ca_order_t *o = &ca->orders[n];
    int ok = answer_is_published(ca, n, i, t, p);

    if (ok && ca->refuse && !strcmp(ca->refuse, chall_types[t])) {
        ok = 0;
        ++ca->refused;
    }
    o->authz[i] = ok ? ACME_STATE_VALID : ACME_STATE_INVALID;
    o->used[i] = t;
    ca->validated[t] += ok;
}

/* A CA that validates later than it was asked to, as a real one does. */
static void ca_validate_deferred(ca_t *ca)
{
    int n, i;

    for (n = 0; n < ca->norders; ++n) {
        for (i = 0; i < NAMES; ++i) {
            if (ca->orders[n].authz[i] == ACME_STATE_PENDING && ca->orders[n].used[i] >= 0) {
                validate(ca, n, i, ca->orders[n].used[i], ca->pool);
            }
        }
    }
}

static acme_http_response_t *respond(ca_t *ca, int n, int i, int t, apr_pool_t *p)
{
    ca_order_t *o = &ca->orders[n];

    ++ca->challenge_posts;
    if (o->authz[i] == ACME_STATE_PENDING && ca->defer) {
        o->used[i] = t;
        if (ca->hook) ca->hook(ca, "responded");
    }
    else if (o->authz[i] == ACME_STATE_PENDING) {
        validate(ca, n, i, t, p);
    }
    return json_answer(ca, p, 200, challenge_json(ca, n, i, t, p), NULL);
}

static acme_http_response_t *finalize(ca_t *ca, int n, const acme_json_t *payload, apr_pool_t *p)
{
    ca_order_t *o = &ca->orders[n];

    order_json(ca, n, p); /* brings the state up to date */
    if (o->status != ACME_STATE_READY) {
        return problem(ca, p, 403, "orderNotReady", "the order is not ready");
    }
    o->chain = ca_issue(ca, o, acme_json_gets(payload, "csr", NULL), p);
    if (!o->chain) {
        return problem(ca, p, 400, "badCSR", "the CSR does not ask for the order's names");
    }
    o->status = ACME_STATE_PROCESSING;
    ++ca->finalizes;
    if (ca->hook) ca->hook(ca, "finalized");
    return json_answer(ca, p, 200, order_json(ca, n, p), NULL);
}

static acme_http_response_t *ca_post(ca_t *ca, const acme_http_request_t *req, const char *path,
                                     apr_pool_t *p)
{
    acme_json_t *body = NULL, *hdr, *payload;
    const char *nonce, *url, *kid, *err;
    int n, i, t;

    ++ca->posts;
    ck_assert_int_eq(acme_json_parse(&body, p, req->body, req->body_len, &err), APR_SUCCESS);
    hdr = b64_json(p, acme_json_gets(body, "protected", NULL));
    ck_assert_ptr_nonnull(hdr);
    payload = b64_json(p, acme_json_gets(body, "payload", NULL));
    url = acme_json_gets(hdr, "url", NULL);
    if (!url || strcmp(url, req->url)) {
        ++ca->url_mismatches;
        return problem(ca, p, 400, "malformed", "the JWS is signed for another URL");
    }
    nonce = acme_json_gets(hdr, "nonce", NULL);
    if (!nonce || !apr_hash_get(ca->nonces, nonce, APR_HASH_KEY_STRING)
        || (ca->bad_nonce_every && ca->posts % ca->bad_nonce_every == 0)) {
        if (nonce) apr_hash_set(ca->nonces, nonce, APR_HASH_KEY_STRING, NULL);
        ++ca->bad_nonces;
        return problem(ca, p, 400, "badNonce", "unknown or used nonce");
    }
    apr_hash_set(ca->nonces, nonce, APR_HASH_KEY_STRING, NULL);
    if (!strcmp(path, "/new-acct")) {
        return new_account(ca, hdr, p);
    }
    kid = acme_json_gets(hdr, "kid", NULL);
    if (!kid || strcmp(kid, CA "/acct/1") || !ca->thumbprint) {
        return problem(ca, p, 401, "unauthorized", "unknown account");
    }
    if (!strcmp(path, "/new-order")) return new_order(ca, payload, p);
    if (sscanf(path, "/order/%d", &n) == 1 && n >= 0 && n < ca->norders) {
        if (ca->orders[n].status == ACME_STATE_PROCESSING) {
            ca->orders[n].status = ACME_STATE_VALID; /* processing is seen once */
        }
        if (ca->hook) ca->hook(ca, "polled");
        return json_answer(ca, p, 200, order_json(ca, n, p), NULL);
    }
    if (sscanf(path, "/authz/%d/%d", &n, &i) == 2 && n >= 0 && n < ca->norders && i >= 0
        && i < NAMES) {
        return json_answer(ca, p, 200, authz_json(ca, n, i, p), NULL);
    }
    if (sscanf(path, "/chall/%d/%d/%d", &n, &i, &t) == 3 && n >= 0 && n < ca->norders && i >= 0
        && i < NAMES && t >= 0 && t < 2) {
        return respond(ca, n, i, t, p);
    }
    if (sscanf(path, "/finalize/%d", &n) == 1 && n >= 0 && n < ca->norders) {
        return finalize(ca, n, payload, p);
    }
    if (sscanf(path, "/cert/%d", &n) == 1 && n >= 0 && n < ca->norders && ca->orders[n].chain) {
        ++ca->downloads;
        if (ca->hook) ca->hook(ca, "downloaded");
        return answer(ca, p, 200, "application/pem-certificate-chain", ca->orders[n].chain);
    }
    return problem(ca, p, 404, "malformed", "no such resource");
}

static acme_http_response_t *ca_get(ca_t *ca, const char *path, apr_pool_t *p)
{
    if (!strcmp(path, "/dir")) {
        return answer(ca, p, 200, "application/json", apr_pstrcat(p,
            "{\"newNonce\":\"" CA "/nonce\",\"newAccount\":\"" CA "/new-acct\","
            "\"newOrder\":\"" CA "/new-order\",\"revokeCert\":\"" CA "/revoke\","
            "\"keyChange\":\"" CA "/key-change\"",
            ca->ari ? ",\"renewalInfo\":\"" CA "/ari\"" : "", "}", NULL));
    }
    if (!strncmp(path, "/ari/", 5) && ca->ari_id && !strcmp(path + 5, ca->ari_id)) {
        ++ca->ari_asks;
        return answer(ca, p, 200, "application/json", apr_psprintf(p,
            "{\"suggestedWindow\":{\"start\":\"%s\",\"end\":\"%s\"}}",
            acme_time_rfc3339(p, ca->ari_start), acme_time_rfc3339(p, ca->ari_end)));
    }
    return problem(ca, p, 404, "malformed", "no such resource");
}

/* The server's stop flag, as the tests set it (a graceful restart). */
static volatile apr_uint32_t stop_flag;

static apr_status_t ca_perform(acme_http_t *http, acme_http_response_t **presp,
                               const acme_http_request_t *req, apr_pool_t *p, acme_result_t *r)
{
    ca_t *ca = http->baton;
    const char *path;

    *presp = NULL;
    ++ca->requests;
    if (ca->stop_at && ca->requests == ca->stop_at) {
        apr_atomic_set32(&stop_flag, 1);
        return acme_result_set(r, APR_EINTR, "acme:stopped", "%s %s: stopped", req->method,
                               req->url);
    }
    if (ca->fail_from && ca->requests >= ca->fail_from) {
        return acme_result_set(r, APR_ECONNREFUSED, "acme:network", "%s %s: connection refused",
                               req->method, req->url);
    }
    ck_assert_msg(!strncmp(req->url, CA "/", strlen(CA) + 1), "request to %s", req->url);
    path = req->url + strlen(CA);
    if (!strcmp(req->method, "HEAD")) {
        ck_assert_str_eq(path, "/nonce");
        *presp = answer(ca, p, 200, NULL, NULL);
    }
    else if (!strcmp(req->method, "GET")) {
        *presp = ca_get(ca, path, p);
    }
    else {
        ck_assert_str_eq(req->method, "POST");
        *presp = ca_post(ca, req, path, p);
    }
    (*presp)->effective_url = req->url;
    return APR_SUCCESS;
}

static apr_status_t ca_http(acme_http_t **phttp, apr_pool_t *p, const acme_http_config_t *conf,
                            void *baton)
{
    (void)conf;
    *phttp = apr_pcalloc(p, sizeof(**phttp));
    (*phttp)->baton = baton;
    (*phttp)->perform = ca_perform;
    return APR_SUCCESS;
}

/* ---- the test's world: store, clock, spec ------------------------------------------------- */

static struct {
    apr_pool_t *p;
    char dir[64];
    acme_store_t *store;
    ca_t ca;
    apr_time_t now;
    acme_job_memo_t memo;
    acme_job_spec_t spec;
    apr_array_header_t *types;
    apr_array_header_t *staged;   /* aspects saved into staging, in order */
    int kill_after_meta;          /* writes after staging's meta.json are lost */
    int killed;
} W;

static apr_status_t (*fs_save)(acme_store_t *s, acme_store_group_t g, const char *name,
                               const char *aspect, const char *data, apr_size_t len, int flags,
                               apr_pool_t *p);

/* The fs store's save, noting what lands in staging. */
static apr_status_t noting_save(acme_store_t *s, acme_store_group_t g, const char *name,
                                const char *aspect, const char *data, apr_size_t len, int flags,
                                apr_pool_t *p)
{
    apr_status_t rv;

    if (W.killed) {
        return APR_SUCCESS; /* the process is gone: nothing reaches the disk */
    }
    rv = fs_save(s, g, name, aspect, data, len, flags, p);
    if (rv == APR_SUCCESS && g == ACME_SG_STAGING) {
        APR_ARRAY_PUSH(W.staged, const char *) = apr_pstrdup(W.p, aspect);
        W.killed = W.kill_after_meta && !strcmp(aspect, ACME_JOB_META);
    }
    return rv;
}

static apr_status_t (*fs_remove)(acme_store_t *s, acme_store_group_t g, const char *name,
                                 const char *aspect, apr_pool_t *p);

static apr_status_t noting_remove(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, apr_pool_t *p)
{
    return W.killed ? APR_SUCCESS : fs_remove(s, g, name, aspect, p);
}

static apr_time_t fake_clock(void *baton)
{
    return *(apr_time_t *)baton;
}

static apr_array_header_t *strs(const char *a, const char *b)
{
    apr_array_header_t *arr = apr_array_make(W.p, 2, sizeof(const char *));

    APR_ARRAY_PUSH(arr, const char *) = a;
    if (b) APR_ARRAY_PUSH(arr, const char *) = b;
    return arr;
}

static void setup(void)
{
    static apr_pool_t *global;
    apr_array_header_t *pubs;
    const char *err = NULL;

    if (!global) {
        apr_pool_create(&global, NULL);
        ck_assert_int_eq(acme_job_init(global), APR_SUCCESS);
    }
    memset(&W, 0, sizeof(W));
    apr_pool_create(&W.p, NULL);
    apr_cpystrn(W.dir, "/tmp/acme-test-job-XXXXXX", sizeof(W.dir));
    ck_assert_ptr_nonnull(mkdtemp(W.dir));
    ck_assert_int_eq(acme_store_fs_create(&W.store, W.p, W.dir, &err), APR_SUCCESS);
    ck_assert_ptr_null(err);
    /* whole seconds (job.json keeps seconds), a day ahead: what reads the real
     * clock instead of the job's shows (certificates are valid for 90 days) */
    W.now = apr_time_from_sec(apr_time_sec(apr_time_now()) + 86400);
    acme_store_fs_set_clock(W.store, fake_clock, &W.now);
    fs_save = W.store->save;
    W.store->save = noting_save;
    fs_remove = W.store->remove;
    W.store->remove = noting_remove;
    W.staged = apr_array_make(W.p, 4, sizeof(const char *));

    W.ca.pool = W.p;
    W.ca.store = W.store;
    W.ca.nonces = apr_hash_make(W.p);
    W.ca.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    W.ca.root = mk_cert(&W.ca, W.ca.key, "Fake Test Root", NULL);
    apr_pool_cleanup_register(W.p, &W.ca, ca_cleanup, apr_pool_cleanup_null);

    pubs = apr_array_make(W.p, 2, sizeof(const acme_publisher_t *));
    APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = &acme_publisher_http01;
    APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = &acme_publisher_tlsalpn01;
    W.types = apr_array_make(W.p, 1, sizeof(acme_key_type_t));
    APR_ARRAY_PUSH(W.types, acme_key_type_t) = ACME_KEY_P256;
    W.spec.domain = DOMAIN;
    W.spec.names = strs(DOMAIN, "www." DOMAIN);
    W.spec.ca_url = CA "/dir";
    W.spec.agree_tos = 1;
    W.spec.publishers = pubs;
    W.spec.challenges = strs("http-01", "tls-alpn-01");
    W.spec.key_types = W.types;
    W.spec.window.is_percent = 1;
    W.spec.window.percent = 33.0;
    W.spec.retry_delay = apr_time_from_sec(600);
    W.spec.memo = &W.memo;
    W.spec.clock = fake_clock;
    W.spec.clock_baton = &W.now;
    W.spec.http = ca_http;
    W.spec.http_baton = &W.ca;
}

static void teardown(void)
{
    chmod(apr_pstrcat(W.p, W.dir, "/jobs", NULL), 0755);
    acme_store_fs_remove_all(W.store, W.p);
    apr_pool_destroy(W.p);
}

static apr_status_t run(acme_result_t **pr)
{
    acme_result_t *r = acme_result_make(W.p);
    apr_status_t rv = acme_job_run(W.store, &W.spec, W.types, W.p, r);

    if (pr) *pr = r;
    return rv;
}

static acme_json_t *job_json(void)
{
    acme_json_t *j = NULL;

    ck_assert_int_eq(acme_store_load_json(W.store, ACME_SG_JOBS, DOMAIN, ACME_JOB_STATE, &j,
                                          W.p), APR_SUCCESS);
    return j;
}

static const char *job_path(void)
{
    return apr_pstrcat(W.p, W.dir, "/jobs/" DOMAIN "/" ACME_JOB_STATE, NULL);
}

/* staging/<domain>/ holds a usable key and chain for the names, and meta.json. */
static void assert_staged(void)
{
    apr_array_header_t *chain, *names;
    acme_pkey_t *key;
    acme_json_t *meta = NULL;
    const char *why = NULL;

    ck_assert_int_eq(acme_store_load_chain(W.store, ACME_SG_STAGING, DOMAIN,
                                           acme_job_cert_file(W.p, ACME_KEY_P256), &chain, W.p),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_store_load_pkey(W.store, ACME_SG_STAGING, DOMAIN,
                                          acme_job_key_file(W.p, ACME_KEY_P256), &key, W.p),
                     APR_SUCCESS);
    ck_assert_msg(acme_pair_check(chain, key, W.spec.names, W.now, &why, W.p) == APR_SUCCESS,
                  "staged pair: %s", why);
    ck_assert_str_eq(acme_cert_issuer_cn(APR_ARRAY_IDX(chain, 0, acme_cert_t *), W.p),
                     "Fake Test Root");
    ck_assert_int_eq(acme_store_load_json(W.store, ACME_SG_STAGING, DOMAIN, ACME_JOB_META, &meta,
                                          W.p), APR_SUCCESS);
    ck_assert_int_eq(acme_json_getsa(&names, meta, W.p, "names", NULL), APR_SUCCESS);
    ck_assert_int_eq(names->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(names, 1, const char *),
                     APR_ARRAY_IDX(W.spec.names, 1, const char *));
    ck_assert_str_eq(acme_json_gets(job_json(), "state", NULL), "staged");
    ck_assert_int_eq(acme_json_getl(job_json(), "errors", NULL), 0);
    ck_assert(!acme_json_has(job_json(), "orders", "p256", NULL));
}

static int count_items(acme_store_group_t g, const char *name)
{
    apr_array_header_t *items;

    W.store->list(W.store, g, name, &items, W.p);
    return items->nelts;
}

/* A first wait before the CA was asked: base, jittered by +-20%. */
static int first_wait(apr_time_t at, apr_interval_time_t base)
{
    return at >= W.now + base * 8 / 10 && at <= W.now + base * 12 / 10 + 1;
}

/* ---- the cases ----------------------------------------------------------------------- */

START_TEST(happy_path_stages_key_chain_then_meta)
{
    acme_result_t *r;

    ck_assert_int_eq(run(&r), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(W.staged->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(W.staged, 2, const char *), ACME_JOB_META);
    ck_assert_int_eq(W.ca.accounts, 1);
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.ca.finalizes, 1);
    ck_assert_int_eq(W.ca.downloads, 1);
    ck_assert_int_eq(W.ca.validated[0], 2);
    ck_assert_int_eq(W.ca.url_mismatches, 0);
    ck_assert_int_eq(W.ca.bad_nonces, 0);
    ck_assert_int_eq(acme_json_getl(job_json(), "last-success", NULL), apr_time_sec(W.now));
    /* answers withdrawn, the order's key no longer kept in jobs/ */
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), 0);
    ck_assert_int_eq(count_items(ACME_SG_JOBS, DOMAIN), 1);
    ck_assert_int_eq(W.memo.errors, 0);
    ck_assert(W.memo.next_attempt == 0);
    /* once activated, the next run orders again with the same account */
    ck_assert_int_eq(W.store->move(W.store, ACME_SG_STAGING, ACME_SG_DOMAINS, DOMAIN, 1, W.p),
                     APR_SUCCESS);
    ck_assert_int_eq(run(&r), APR_SUCCESS);
    ck_assert_int_eq(W.ca.accounts, 1);
    ck_assert_int_eq(W.ca.new_orders, 2);
}
END_TEST

START_TEST(bad_nonce_is_retried_within_one_order)
{
    W.ca.bad_nonce_every = 3;
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    assert_staged();
    ck_assert_int_ge(W.ca.bad_nonces, 3);
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.ca.url_mismatches, 0);
}
END_TEST

START_TEST(invalid_authorization_is_recorded_and_the_other_type_used_next)
{
    acme_json_t *job;
    acme_result_t *r;
    apr_array_header_t *failed;
    apr_interval_time_t d = W.spec.retry_delay;

    W.ca.refuse = "http-01";
    ck_assert_int_ne(run(&r), APR_SUCCESS);
    job = job_json();
    ck_assert_int_eq(acme_json_getl(job, "errors", NULL), 1);
    ck_assert_str_eq(acme_json_gets(job, "state", NULL), "error");
    ck_assert_str_eq(acme_json_gets(job, "last-error", "problem", NULL),
                     ACME_PROBLEM_NS "incorrectResponse");
    ck_assert_int_ge(acme_json_getl(job, "next-attempt", NULL),
                     apr_time_sec(acme_backoff_next(W.now, 1, d, 0.0, 0, 0)) + 1);
    ck_assert_int_le(acme_json_getl(job, "next-attempt", NULL),
                     apr_time_sec(acme_backoff_next(W.now, 1, d, 0.999999, 0, 0)) + 1);
    ck_assert(W.memo.next_attempt == apr_time_from_sec(acme_json_getl(job, "next-attempt", NULL)));
    ck_assert_int_eq(W.memo.errors, 1);
    ck_assert_int_eq(acme_json_getsa(&failed, job, W.p, "failed-challenges", NULL), APR_SUCCESS);
    ck_assert_int_eq(failed->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(failed, 0, const char *), "http-01");
    /* the order is over: forgotten; the answers were there and are withdrawn */
    ck_assert(!acme_json_has(job, "orders", "p256", NULL));
    ck_assert_int_eq(W.ca.refused, 2);
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), 0);
    ck_assert_int_eq(count_items(ACME_SG_STAGING, DOMAIN), 0);

    /* the next attempt answers tls-alpn-01, in a new order */
    ck_assert_int_eq(run(&r), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(W.ca.validated[0], 0);
    ck_assert_int_eq(W.ca.validated[1], 2);
    ck_assert_int_eq(W.ca.new_orders, 2);
    ck_assert(!acme_json_has(job_json(), "failed-challenges", NULL));
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "tls-alpn-01"), 0);
}
END_TEST

/* The pre-flight's network: http-01 fetches answered from the store (serve)
 * or with 404; the client that connects elsewhere (connect_to) is the pre-flight's. */
static struct {
    int serve, fetches;
} pf_net;

static apr_status_t pf_perform(acme_http_t *http, acme_http_response_t **presp,
                               const acme_http_request_t *req, apr_pool_t *p, acme_result_t *r)
{
    acme_http_response_t *resp = apr_pcalloc(p, sizeof(*resp));
    const char *data = NULL;
    apr_size_t len = 0;

    (void)http;
    (void)r;
    ++pf_net.fetches;
    resp->headers = apr_table_make(p, 1);
    resp->remote_ip = "203.0.113.5";
    resp->status = 404;
    resp->body = "";
    if (pf_net.serve && W.store->load(W.store, ACME_SG_CHALLENGES, "http-01",
                                      strrchr(req->url, '/') + 1, &data, &len, p) == APR_SUCCESS) {
        resp->status = 200;
        resp->body = data;
        resp->body_len = len;
    }
    *presp = resp;
    return APR_SUCCESS;
}

static apr_status_t split_http(acme_http_t **phttp, apr_pool_t *p,
                               const acme_http_config_t *conf, void *baton)
{
    if (!conf->connect_to) return ca_http(phttp, p, conf, baton);
    *phttp = apr_pcalloc(p, sizeof(**phttp));
    (*phttp)->perform = pf_perform;
    return APR_SUCCESS;
}

START_TEST(only_after_a_failed_validation_the_ca_waits_for_the_preflight)
{
    acme_preflight_conf_t pf;
    acme_result_t *r;
    acme_json_t *job;
    int requests;

    acme_preflight_conf_init(&pf);
    pf.address = "192.0.2.7";
    memset(&pf_net, 0, sizeof(pf_net));
    W.spec.preflight = &pf;
    W.spec.http = split_http;
    W.spec.challenges = strs("http-01", NULL);
    W.ca.refuse = "http-01";
    /* a first attempt goes straight to the CA (and is refused): no pre-flight */
    ck_assert_int_ne(run(&r), APR_SUCCESS);
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.ca.refused, 2);
    ck_assert_int_eq(pf_net.fetches, 0);
    ck_assert(!acme_json_has(job_json(), "preflight", NULL));

    /* now it looks, and holds the CA back: not one request, the CA's error stays */
    requests = W.ca.requests;
    ck_assert_int_eq(run(&r), APR_EAGAIN);
    ck_assert_str_eq(r->problem, ACME_PROBLEM_PREFLIGHT);
    ck_assert_int_eq(W.ca.requests, requests);
    ck_assert_int_eq(pf_net.fetches, 1);
    job = job_json();
    ck_assert_ptr_nonnull(strstr(acme_json_gets(job, "preflight", "diagnosis", NULL),
                                 "gave 404 from 203.0.113.5"));
    ck_assert(acme_json_getb(job, "preflight", "holding", NULL));
    ck_assert_int_eq(acme_json_getl(job, "errors", NULL), 1);
    ck_assert_str_eq(acme_json_gets(job, "last-error", "problem", NULL),
                     ACME_PROBLEM_NS "incorrectResponse");
    ck_assert_int_eq(acme_json_getl(job, "next-attempt", NULL),
                     apr_time_sec(W.now + W.spec.retry_delay) + 1);
    ck_assert(W.memo.next_attempt == apr_time_from_sec(acme_json_getl(job, "next-attempt", NULL)));
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), 0);
    {
        acme_status_t *st;
        ck_assert_int_eq(acme_status_get(&st, W.store, &W.spec, NULL, W.now, W.p), APR_SUCCESS);
        ck_assert_str_eq(acme_status_state_name(st->state), "error");
        ck_assert(st->preflight_holding && st->last_error);
        ck_assert_ptr_nonnull(strstr(st->preflight, "http-01 for " DOMAIN ": fetching it"));
    }

    /* fixed: it passes, the CA is asked again and issues */
    pf_net.serve = 1;
    W.ca.refuse = NULL;
    ck_assert_int_eq(run(&r), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 2);
    ck_assert(!acme_json_has(job_json(), "preflight", NULL));
}
END_TEST

/* How many requests a whole run makes, measured on a CA of its own. */
static int requests_of_a_run(void)
{
    int n;

    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    n = W.ca.requests;
    teardown();
    setup();
    return n;
}

START_TEST(resume_after_a_crash_at_every_request)
{
    int total = requests_of_a_run(), n;

    ck_assert_int_gt(total, 10);
    for (n = 1; n <= total; ++n) {
        acme_result_t *r;

        W.ca.fail_from = n;
        ck_assert_msg(run(&r) != APR_SUCCESS, "run failing at request %d succeeded", n);
        ck_assert_str_eq(r->problem, "acme:network");
        ck_assert_int_eq(acme_json_getl(job_json(), "errors", NULL), 1);
        ck_assert_int_eq(count_items(ACME_SG_STAGING, DOMAIN), 0);
        W.ca.fail_from = 0;
        ck_assert_msg(run(&r) == APR_SUCCESS, "resume after request %d: %s", n,
                      acme_result_describe(r, W.p));
        assert_staged();
        ck_assert_msg(W.ca.new_orders == 1, "crash at request %d: %d orders", n,
                      W.ca.new_orders);
        ck_assert_int_eq(W.ca.finalizes, 1);
        ck_assert_int_eq(W.ca.accounts, 1);
        teardown();
        setup();
    }
}
END_TEST

/* The network goes down right after event (the CA did its part). */
static const char *crash_event;
static void crash_hook(ca_t *ca, const char *event)
{
    if (!strcmp(event, crash_event)) ca->fail_from = ca->requests + 1;
}

START_TEST(crash_between_two_steps_resumes_the_order)
{
    static const struct {
        const char *event;
        acme_state_t state;
    } cases[] = {
        {"order-created", ACME_STATE_PENDING},  /* before finalize */
        {"finalized", ACME_STATE_PROCESSING},   /* before the download */
    };
    int i = _i;

    crash_event = cases[i].event;
    W.ca.hook = crash_hook;
    ck_assert_int_ne(run(NULL), APR_SUCCESS);
    ck_assert_str_eq(acme_json_gets(job_json(), "orders", "p256", NULL), CA "/order/0");
    ck_assert_int_eq(W.ca.orders[0].status, cases[i].state);
    ck_assert_int_eq(W.ca.downloads, 0);
    W.ca.hook = NULL;
    W.ca.fail_from = 0;
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.ca.finalizes, 1);
    ck_assert_int_eq(W.ca.downloads, 1);
}
END_TEST

/* An order in flight that cannot give the certificate now wanted (it
 * expired, or the names changed since) is replaced in the same run. */
START_TEST(an_order_that_cannot_be_finished_is_replaced)
{
    acme_result_t *r;

    crash_event = "order-created";
    W.ca.hook = crash_hook;
    ck_assert_int_ne(run(NULL), APR_SUCCESS);
    ck_assert_str_eq(acme_json_gets(job_json(), "orders", "p256", NULL), CA "/order/0");
    W.ca.hook = NULL;
    W.ca.fail_from = 0;
    if (_i == 0) {
        W.ca.orders[0].status = ACME_STATE_EXPIRED;
    }
    else {
        W.spec.names = strs(DOMAIN, "other." DOMAIN);
    }
    ck_assert_msg(run(&r) == APR_SUCCESS, "%s", acme_result_describe(r, W.p));
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 2);
    ck_assert_int_eq(W.ca.finalizes, 1);
    ck_assert_str_eq(W.ca.orders[1].names[1], _i == 0 ? "www." DOMAIN : "other." DOMAIN);
    ck_assert_int_eq(acme_json_getl(job_json(), "errors", NULL), 0);
}
END_TEST

/* Killed right after staging, before job.json forgets the order: the
 * staged set is activated, and the next renewal does not take the order's
 * certificate (the one in use) for a new one. */
START_TEST(an_order_left_by_a_kill_after_staging_is_not_taken_again)
{
    const char *first, *second;
    apr_size_t len;
    acme_result_t *r;

    W.kill_after_meta = 1;
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    W.killed = W.kill_after_meta = 0;
    ck_assert_str_eq(acme_json_gets(job_json(), "orders", "p256", NULL), CA "/order/0");
    ck_assert_int_eq(count_items(ACME_SG_JOBS, DOMAIN), 2); /* job.json and the order's key */
    ck_assert_int_eq(W.store->move(W.store, ACME_SG_STAGING, ACME_SG_DOMAINS, DOMAIN, 1, W.p),
                     APR_SUCCESS);
    W.now += apr_time_from_sec(61 * 86400); /* due: 2/3 of 90 days */
    ck_assert_msg(run(&r) == APR_SUCCESS, "%s", acme_result_describe(r, W.p));
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 2);
    ck_assert_int_eq(W.store->load(W.store, ACME_SG_DOMAINS, DOMAIN,
                                   acme_job_cert_file(W.p, ACME_KEY_P256), &first, &len, W.p),
                     APR_SUCCESS);
    ck_assert_int_eq(W.store->load(W.store, ACME_SG_STAGING, DOMAIN,
                                   acme_job_cert_file(W.p, ACME_KEY_P256), &second, &len, W.p),
                     APR_SUCCESS);
    ck_assert_str_ne(first, second);
    ck_assert_int_eq(count_items(ACME_SG_JOBS, DOMAIN), 1);
}
END_TEST

/* The second key type's order is cut off, by the network or by a stopping
 * server: the first type's staged result is kept, not ordered again. */
static int cut_by_stop;
static void cut_second_type(ca_t *ca, const char *event)
{
    /* the job looks at the stop flag between key types, the network fails anywhere */
    if (cut_by_stop && !strcmp(event, "downloaded")) {
        apr_atomic_set32(&stop_flag, 1);
    }
    if (!cut_by_stop && !strcmp(event, "order-created") && ca->norders == 2) {
        ca->fail_from = ca->requests + 1;
    }
}

START_TEST(a_cut_between_key_types_keeps_the_first_result)
{
    apr_array_header_t *types;
    acme_json_t *meta;
    acme_result_t *r;

    cut_by_stop = _i;
    APR_ARRAY_PUSH(W.types, acme_key_type_t) = ACME_KEY_P384;
    W.spec.stop = &stop_flag;
    W.ca.hook = cut_second_type;
    ck_assert_int_eq(run(&r), cut_by_stop ? APR_EINTR : APR_ECONNREFUSED);
    ck_assert_int_eq(W.ca.new_orders, cut_by_stop ? 1 : 2);
    ck_assert_int_eq(W.ca.downloads, 1);
    ck_assert_int_eq(count_items(ACME_SG_STAGING, DOMAIN), 2); /* key and chain, no meta */
    /* a stop is no failure */
    ck_assert_int_eq(acme_json_getl(job_json(), "errors", NULL), cut_by_stop ? 0 : 1);
    apr_atomic_set32(&stop_flag, 0);
    W.ca.hook = NULL;
    W.ca.fail_from = 0;
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(acme_store_load_json(W.store, ACME_SG_STAGING, DOMAIN, ACME_JOB_META, &meta,
                                          W.p), APR_SUCCESS);
    ck_assert_int_eq(acme_json_getsa(&types, meta, W.p, "key-types", NULL), APR_SUCCESS);
    ck_assert_int_eq(types->nelts, 2);
    ck_assert_int_eq(W.ca.new_orders, 2);
    ck_assert_int_eq(W.ca.downloads, 2);
    ck_assert_int_eq(count_items(ACME_SG_STAGING, DOMAIN), 5);
}
END_TEST

/* A graceful restart stops the job while the CA validates its answers (a
 * real CA validates after it answered the challenge POST; in a cluster it
 * asks the other servers, which read the answers from the store). They stay
 * published: the resumed run finishes the same order, then withdraws them. */
static void stop_on_response(ca_t *ca, const char *event)
{
    (void)ca;
    if (!strcmp(event, "responded")) apr_atomic_set32(&stop_flag, 1);
}

START_TEST(a_stop_while_the_ca_validates_keeps_the_answers_and_the_order)
{
    W.spec.stop = &stop_flag;
    W.ca.defer = 1;
    W.ca.hook = stop_on_response;
    ck_assert_int_eq(run(NULL), APR_EINTR);
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), NAMES);
    ck_assert_int_eq(acme_json_array_len(acme_json_getj(job_json(), W.p, "kept-answers", NULL)),
                     NAMES);
    /* the CA validates while the server restarts */
    ca_validate_deferred(&W.ca);
    ck_assert_int_eq(W.ca.validated[0], NAMES);
    apr_atomic_set32(&stop_flag, 0);
    W.ca.hook = NULL;
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), 0);
    ck_assert(!acme_json_has(job_json(), "kept-answers", NULL));
}
END_TEST

/* The resumed run must not POST a challenge the stopped run POSTed: a CA
 * like pebble 2.4 shows it "pending" until its validation ends and takes a
 * second POST as a second validation (which fails once the first answer is
 * withdrawn). It polls the CA, which validates meanwhile, and withdraws the
 * answers once the authorizations are final. */
static int count_key(void *baton, const char *key, acme_json_t *value)
{
    (void)key; (void)value;
    ++*(int *)baton;
    return 0;
}

static void validate_on_poll(ca_t *ca, const char *event)
{
    if (!strcmp(event, "polled")) ca_validate_deferred(ca);
}

START_TEST(a_resumed_order_does_not_post_a_challenge_again)
{
    int posted = 0;

    W.spec.stop = &stop_flag;
    W.ca.defer = 1;
    W.ca.hook = stop_on_response;
    ck_assert_int_eq(run(NULL), APR_EINTR);
    ck_assert_int_eq(W.ca.challenge_posts, NAMES);
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), NAMES);
    /* noted before they were POSTed */
    acme_json_iter(acme_json_getj(job_json(), W.p, "posted-challenges", NULL), W.p, count_key,
                   &posted);
    ck_assert_int_eq(posted, NAMES);
    apr_atomic_set32(&stop_flag, 0);
    W.ca.hook = validate_on_poll;
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.ca.challenge_posts, NAMES);
    ck_assert_int_eq(W.ca.validated[0], NAMES);
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), 0);
    ck_assert(!acme_json_has(job_json(), "kept-answers", NULL));
    ck_assert(!acme_json_has(job_json(), "posted-challenges", NULL));
}
END_TEST

/* A challenge POST that never left (the server stopping at that moment)
 * leaves no note: the run resuming the order answers it, and does not wait
 * for a validation that the CA never started. */
static void stop_at_first_challenge_post(ca_t *ca, const char *event)
{
    if (!strcmp(event, "order-created")) {
        ca->stop_at = ca->requests + NAMES + 1; /* the authorizations, then the POST */
    }
}

START_TEST(a_challenge_post_that_failed_is_answered_by_the_next_run)
{
    int posted = 0;

    W.spec.stop = &stop_flag;
    W.ca.hook = stop_at_first_challenge_post;
    ck_assert_int_eq(run(NULL), APR_EINTR);
    ck_assert_int_eq(W.ca.challenge_posts, 0);
    acme_json_iter(acme_json_getj(job_json(), W.p, "posted-challenges", NULL), W.p, count_key,
                   &posted);
    ck_assert_int_eq(posted, 0);
    apr_atomic_set32(&stop_flag, 0);
    W.ca.stop_at = 0;
    W.ca.hook = NULL;
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.ca.challenge_posts, NAMES);
}
END_TEST

/* A run that ends by itself (here a network failure right after the
 * challenge POSTs, the CA validating later) withdraws no answer the CA may
 * still check; the next run withdraws them once the CA says the
 * authorizations are final, without POSTing them again. */
static void fail_after_response(ca_t *ca, const char *event)
{
    if (!strcmp(event, "responded") && ca->challenge_posts == NAMES) {
        ca->fail_from = ca->requests + 1;
    }
}

START_TEST(answers_stay_published_until_the_authorization_is_final)
{
    W.ca.defer = 1;
    W.ca.hook = fail_after_response;
    ck_assert_int_ne(run(NULL), APR_SUCCESS);
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), NAMES);
    ck_assert_int_eq(acme_json_array_len(acme_json_getj(job_json(), W.p, "kept-answers", NULL)),
                     NAMES);
    /* the CA validates what it was asked, with the answers still there */
    W.ca.fail_from = 0;
    W.ca.hook = NULL;
    ca_validate_deferred(&W.ca);
    ck_assert_int_eq(W.ca.validated[0], NAMES);
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.ca.challenge_posts, NAMES);
    ck_assert_int_eq(count_items(ACME_SG_CHALLENGES, "http-01"), 0);
    ck_assert(!acme_json_has(job_json(), "kept-answers", NULL));
}
END_TEST

/* job.json is the child's: a "ca-index" outside the configured CAs counts
 * as the first, also where a failover computes the next one. */
START_TEST(failover_with_a_hostile_ca_index)
{
    static const char job[] = "{\"ca-index\": -8, \"ca-errors\": 2}";
    apr_time_t at = W.now + apr_time_from_sec(3600);
    char date[APR_RFC822_DATE_LEN];

    W.spec.ca_urls = strs(CA "/dir", CA "/other");
    ck_assert_int_eq(W.store->save(W.store, ACME_SG_JOBS, DOMAIN, ACME_JOB_STATE, job,
                                   sizeof(job) - 1, 0, W.p), APR_SUCCESS);
    ck_assert_str_eq(acme_job_current_ca(&W.spec, job_json()), CA "/dir");
    apr_rfc822_date(date, at);
    W.ca.retry_after = date;   /* the first CA fails a third time */
    ck_assert_int_ne(run(NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_json_getl(job_json(), ACME_JK_CA_INDEX, NULL), 1);
    ck_assert_str_eq(acme_job_current_ca(&W.spec, job_json()), CA "/other");
}
END_TEST

START_TEST(retry_after_sets_the_next_attempt)
{
    apr_time_t at = W.now + apr_time_from_sec(2 * 86400);
    char date[APR_RFC822_DATE_LEN];
    acme_result_t *r;

    apr_rfc822_date(date, at);
    W.ca.retry_after = date;
    ck_assert_int_ne(run(&r), APR_SUCCESS);
    ck_assert_str_eq(r->problem, ACME_PROBLEM_NS "rateLimited");
    ck_assert_int_eq(W.ca.norders, 0);
    ck_assert_int_eq(acme_json_getl(job_json(), "next-attempt", NULL), apr_time_sec(at) + 1);
    ck_assert(W.memo.next_attempt == at + apr_time_from_sec(1));
    ck_assert_int_eq(acme_json_getl(job_json(), "last-error", "retry-after", NULL),
                     apr_time_sec(at));
}
END_TEST

/* One domain's 429 pauses every job for that CA, in this process and in any
 * other that shares the store: another domain is not ordered before. */
START_TEST(a_rate_limit_pauses_every_domain_of_the_ca)
{
    apr_time_t at = W.now + apr_time_from_sec(3600);
    char date[APR_RFC822_DATE_LEN];
    acme_job_memo_t other_memo;
    acme_job_spec_t other = W.spec;
    acme_status_t *st;
    acme_result_t *r;
    int requests;

    apr_rfc822_date(date, at);
    W.ca.retry_after = date;
    ck_assert_int_ne(run(&r), APR_SUCCESS);
    ck_assert(acme_job_ca_pause_until(W.store, CA "/dir", W.p) == at);
    ck_assert(acme_job_ca_pause_until(W.store, "https://other.ca.test/dir", W.p) == 0);
    /* a pause is never shortened */
    ck_assert_int_eq(acme_job_ca_pause_set(W.store, CA "/dir", W.now + 1, NULL, W.p),
                     APR_SUCCESS);
    ck_assert(acme_job_ca_pause_until(W.store, CA "/dir", W.p) == at);
    W.ca.retry_after = NULL;
    memset(&other_memo, 0, sizeof(other_memo));
    other.domain = "other.example.org";
    other.names = strs("other.example.org", "www.other.example.org");
    other.memo = &other_memo;
    ck_assert_int_eq(acme_status_get(&st, W.store, &other, NULL, W.now, W.p), APR_SUCCESS);
    ck_assert_int_eq(st->due->nelts, 1);
    ck_assert(st->next_attempt == at);
    /* a job started anyway (decided before the pause) asks the CA nothing */
    requests = W.ca.requests;
    r = acme_result_make(W.p);
    ck_assert_int_eq(acme_job_run(W.store, &other, W.types, W.p, r), APR_EBUSY);
    ck_assert_int_eq(W.ca.requests, requests);
    ck_assert(other_memo.next_attempt == at);
    /* once it is over, the other domain is ordered */
    W.now = at + apr_time_from_sec(1);
    r = acme_result_make(W.p);
    ck_assert_int_eq(acme_job_run(W.store, &other, W.types, W.p, r), APR_SUCCESS);
    ck_assert_int_eq(W.ca.new_orders, 1);
}
END_TEST

/* The difference between this server's settings and those the stored
 * certificates were made with, named for the log. */
START_TEST(settings_that_differ_from_the_stored_ones_are_named)
{
    acme_job_spec_t other = W.spec;
    apr_array_header_t *types = apr_array_make(W.p, 2, sizeof(acme_key_type_t));
    apr_time_t staged;
    const char *diff;

    ck_assert_ptr_null(acme_job_settings_diff(W.store, ACME_SG_DOMAINS, &W.spec, &staged, W.p));
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    /* the staged result, before its activation: the parent's view */
    staged = 0;
    ck_assert_ptr_null(acme_job_settings_diff(W.store, ACME_SG_STAGING, &W.spec, &staged, W.p));
    ck_assert(staged == W.now);
    ck_assert_int_eq(W.store->move(W.store, ACME_SG_STAGING, ACME_SG_DOMAINS, DOMAIN, 1, W.p),
                     APR_SUCCESS);
    ck_assert_ptr_null(acme_job_settings_diff(W.store, ACME_SG_DOMAINS, &W.spec, &staged, W.p));
    ck_assert(staged == W.now);
    other.names = strs(DOMAIN, "api." DOMAIN);
    APR_ARRAY_PUSH(types, acme_key_type_t) = ACME_KEY_P384;
    other.key_types = types;
    other.ca_url = "https://other.ca.test/dir";
    diff = acme_job_settings_diff(W.store, ACME_SG_DOMAINS, &other, &staged, W.p);
    ck_assert_ptr_nonnull(diff);
    ck_assert_str_eq(diff, "names: only here api." DOMAIN ", only stored www." DOMAIN
                     ";key types: here P-384, stored P-256"
                     ";CA: here https://other.ca.test/dir, stored " CA "/dir");
}
END_TEST

START_TEST(unwritable_store_asks_nothing_of_the_ca)
{
    acme_result_t *r;

    if (geteuid() == 0) {
        /* root writes through modes: a directory in job.json's place stops the rename */
        ck_assert_int_eq(mkdir(apr_pstrcat(W.p, W.dir, "/jobs/" DOMAIN, NULL), 0755), 0);
        ck_assert_int_eq(mkdir(job_path(), 0755), 0);
    }
    else {
        ck_assert_int_eq(chmod(apr_pstrcat(W.p, W.dir, "/jobs", NULL), 0555), 0);
    }
    ck_assert_int_ne(run(&r), APR_SUCCESS);
    ck_assert_str_eq(r->problem, ACME_PROBLEM_STORE_UNWRITABLE);
    ck_assert_int_eq(W.ca.requests, 0);
    ck_assert(first_wait(W.memo.next_attempt, W.spec.retry_delay));
}
END_TEST

/* job.json becomes unwritable once the order exists; the network fails after. */
static void break_job_json(ca_t *ca, const char *event)
{
    if (!strcmp(event, "order-created")) {
        ck_assert_int_eq(unlink(job_path()), 0);
        ck_assert_int_eq(mkdir(job_path(), 0755), 0);
        ca->fail_from = ca->requests + 1;
    }
}

START_TEST(failures_the_store_cannot_record_stay_in_the_memo)
{
    acme_status_t *st;
    acme_job_spec_t nomemo;
    acme_result_t *r;
    int requests;

    W.ca.hook = break_job_json;
    ck_assert_int_ne(run(NULL), APR_SUCCESS);
    ck_assert_int_eq(W.memo.errors, 1);
    ck_assert(W.memo.next_attempt > W.now);
    ck_assert_int_eq(acme_status_get(&st, W.store, &W.spec, NULL, W.now, W.p), APR_SUCCESS);
    ck_assert_int_eq(st->due->nelts, 1);
    ck_assert(st->next_attempt == W.memo.next_attempt);
    ck_assert_int_eq(st->errors, 1);
    /* without the memo the store alone would make it due at once */
    nomemo = W.spec;
    nomemo.memo = NULL;
    ck_assert_int_eq(acme_status_get(&st, W.store, &nomemo, NULL, W.now, W.p), APR_SUCCESS);
    ck_assert(st->next_attempt == 0);
    /* the next run stops before the CA and keeps the count */
    W.ca.hook = NULL;
    W.ca.fail_from = 0;
    requests = W.ca.requests;
    W.now += apr_time_from_sec(3600);
    ck_assert_int_ne(run(&r), APR_SUCCESS);
    ck_assert_str_eq(r->problem, ACME_PROBLEM_STORE_UNWRITABLE);
    ck_assert_int_eq(W.ca.requests, requests);
    ck_assert_int_eq(W.memo.errors, 1);
    ck_assert(first_wait(W.memo.next_attempt, W.spec.retry_delay));
}
END_TEST

START_TEST(a_domain_claimed_by_another_owner_is_left_alone)
{
    acme_store_claim_t *other;
    acme_result_t *r;

    ck_assert_int_eq(W.store->claim(W.store, &other, DOMAIN, "acmectl pid 1 on elsewhere",
                                    apr_time_from_sec(300), W.p), APR_SUCCESS);
    ck_assert_int_eq(run(&r), APR_EBUSY);
    ck_assert_str_eq(r->problem, ACME_PROBLEM_BUSY);
    ck_assert_ptr_nonnull(strstr(r->detail, "acmectl pid 1 on elsewhere"));
    ck_assert_int_eq(W.ca.requests, 0);
    ck_assert(first_wait(W.memo.next_attempt, ACME_JOB_BUSY_WAIT));
    ck_assert_int_eq(count_items(ACME_SG_JOBS, DOMAIN), 0);
    /* released, the job runs */
    ck_assert_int_eq(W.store->release(W.store, other, W.p), APR_SUCCESS);
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    assert_staged();
}
END_TEST

/* The job's lease runs out while it waits for the CA, and another takes over. */
static void take_over(ca_t *ca, const char *event)
{
    acme_store_claim_t *c;

    (void)ca;
    if (!strcmp(event, "finalized")) {
        W.now += ACME_JOB_LEASE + apr_time_from_sec(1);
        ck_assert_int_eq(W.store->claim(W.store, &c, DOMAIN, "another server",
                                        ACME_JOB_LEASE, W.p), APR_SUCCESS);
        ck_assert(c->token >= 2);
    }
}

START_TEST(a_stale_claim_writes_nothing)
{
    acme_json_t *job;
    acme_result_t *r;

    W.ca.hook = take_over;
    ck_assert_int_eq(run(&r), ACME_STORE_EFENCED);
    ck_assert_str_eq(r->problem, "acme:store");
    ck_assert_int_eq(W.ca.downloads, 1); /* it got that far */
    ck_assert_int_eq(W.staged->nelts, 0);
    ck_assert_int_eq(count_items(ACME_SG_STAGING, DOMAIN), 0);
    /* job.json is as the job left it while its claim was current: the order
     * in flight (for the new holder to finish), no error recorded */
    job = job_json();
    ck_assert_str_eq(acme_json_gets(job, "orders", "p256", NULL), CA "/order/0");
    ck_assert(!acme_json_has(job, "errors", NULL));
    ck_assert(!acme_json_has(job, "state", NULL));
}
END_TEST

START_TEST(ari_refresh_stores_the_window)
{
    acme_result_t *r = acme_result_make(W.p);
    acme_json_t *job;
    apr_array_header_t *chain;
    const char *id;

    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    ck_assert_int_eq(W.store->move(W.store, ACME_SG_STAGING, ACME_SG_DOMAINS, DOMAIN, 1, W.p),
                     APR_SUCCESS);
    W.ca.ari = 1;
    W.ca.ari_start = W.now + apr_time_from_sec(10 * 86400);
    W.ca.ari_end = W.now + apr_time_from_sec(12 * 86400);
    W.spec.ari = 1;
    ck_assert_int_eq(acme_job_ari_refresh(W.store, &W.spec, W.p, r), APR_SUCCESS);
    ck_assert_int_eq(W.ca.ari_asks, 1);
    job = job_json();
    ck_assert_int_eq(acme_store_load_chain(W.store, ACME_SG_DOMAINS, DOMAIN,
                                           acme_job_cert_file(W.p, ACME_KEY_P256), &chain, W.p),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_cert_ari_id(&id, W.p, APR_ARRAY_IDX(chain, 0, acme_cert_t *)),
                     APR_SUCCESS);
    ck_assert_str_eq(acme_json_gets(job, "ari", "p256", "cert-id", NULL), id);
    ck_assert_int_eq(acme_json_getl(job, "ari", "p256", "start", NULL),
                     apr_time_sec(W.ca.ari_start));
    ck_assert_int_eq(acme_json_getl(job, "ari", "p256", "end", NULL), apr_time_sec(W.ca.ari_end));
    ck_assert_int_ge(acme_json_getl(job, "ari", "p256", "chosen", NULL),
                     apr_time_sec(W.ca.ari_start));
    ck_assert_int_le(acme_json_getl(job, "ari", "p256", "chosen", NULL),
                     apr_time_sec(W.ca.ari_end));
    ck_assert_int_gt(acme_json_getl(job, "ari", "p256", "next-poll", NULL), apr_time_sec(W.now));
    /* the job's own state is kept */
    ck_assert_str_eq(acme_json_gets(job, "state", NULL), "staged");
}
END_TEST

START_TEST(ari_refresh_remembers_a_ca_without_it_for_a_day)
{
    acme_result_t *r = acme_result_make(W.p);

    W.spec.ari = 1;
    ck_assert_int_eq(acme_job_ari_refresh(W.store, &W.spec, W.p, r), APR_SUCCESS);
    ck_assert_int_eq(W.ca.ari_asks, 0);
    ck_assert_int_eq(W.ca.requests, 1); /* the directory */
    ck_assert_int_eq(acme_json_getl(job_json(), "ari", "unsupported-until", NULL),
                     apr_time_sec(W.now) + 86400);
}
END_TEST

START_TEST(ari_refresh_on_an_unwritable_store_asks_nothing)
{
    acme_result_t *r = acme_result_make(W.p);

    ck_assert_int_eq(mkdir(apr_pstrcat(W.p, W.dir, "/jobs/" DOMAIN, NULL), 0755), 0);
    ck_assert_int_eq(mkdir(job_path(), 0755), 0);
    W.spec.ari = 1;
    ck_assert_int_ne(acme_job_ari_refresh(W.store, &W.spec, W.p, r), APR_SUCCESS);
    ck_assert_str_eq(r->problem, ACME_PROBLEM_STORE_UNWRITABLE);
    ck_assert_int_eq(W.ca.requests, 0);
    ck_assert(first_wait(W.memo.ari_next, W.spec.retry_delay));
}
END_TEST

/* While another holds the domain (a run here or on another server), the
 * refresh writes nothing and asks nothing: it looks again soon. */
START_TEST(ari_refresh_while_a_run_holds_the_domain_waits_for_it)
{
    static const char rec[] = "{\"state\":  \"error\", \"errors\": 2}";
    acme_result_t *r = acme_result_make(W.p);
    acme_store_claim_t *c;
    const char *data;
    apr_size_t len;

    ck_assert_int_eq(W.store->save(W.store, ACME_SG_JOBS, DOMAIN, ACME_JOB_STATE, rec,
                                   strlen(rec), 0, W.p), APR_SUCCESS);
    ck_assert_int_eq(W.store->claim(W.store, &c, DOMAIN, "mod_acme-pid-1@other.test",
                                    ACME_JOB_LEASE, W.p), APR_SUCCESS);
    W.spec.ari = 1;
    ck_assert_int_eq(acme_job_ari_refresh(W.store, &W.spec, W.p, r), APR_SUCCESS);
    ck_assert_int_eq(W.ca.requests, 0);
    ck_assert(W.memo.ari_next == W.now + ACME_JOB_BUSY_WAIT);
    ck_assert_int_eq(W.store->load(W.store, ACME_SG_JOBS, DOMAIN, ACME_JOB_STATE, &data, &len,
                                   W.p), APR_SUCCESS);
    ck_assert_str_eq(data, rec);
}
END_TEST

/* A CA that cannot be reached is not asked for renewal information again at
 * once (the scheduler looked every few milliseconds). */
START_TEST(ari_refresh_with_the_ca_down_waits)
{
    acme_result_t *r = acme_result_make(W.p);

    W.spec.ari = 1;
    W.ca.fail_from = 1;
    ck_assert_int_ne(acme_job_ari_refresh(W.store, &W.spec, W.p, r), APR_SUCCESS);
    ck_assert(first_wait(W.memo.ari_next, W.spec.retry_delay));
}
END_TEST

/* ---- the per-CA order guard --------------------------------------------------------- */

static acme_job_guard_t *guard_make(const char *server, int limit)
{
    acme_job_guard_t *g;

    ck_assert_int_eq(acme_job_guard_create(&g, W.p, W.store, server, limit), APR_SUCCESS);
    return g;
}

/* No room for one more order at the CA of the spec. */
static int guard_full(acme_job_guard_t *g)
{
    return acme_job_guard_fits(g, W.spec.ca_url, W.now, 1) != 0;
}

/* The claim is busy, again and again (etcd holds another's lease, or is
 * down): nothing reached the CA, so nothing is counted. */
START_TEST(a_run_that_fails_at_its_claim_costs_the_guard_nothing)
{
    acme_store_claim_t *other;
    acme_result_t *r;
    int i;

    W.spec.guard = guard_make("here", 1);
    ck_assert_int_eq(W.store->claim(W.store, &other, DOMAIN, "another-server",
                                    apr_time_from_sec(300), W.p), APR_SUCCESS);
    for (i = 0; i < 20; ++i) {
        ck_assert_int_eq(run(&r), APR_EBUSY);
        W.now += apr_time_from_sec(10); /* within the other's lease */
    }
    ck_assert_int_eq(W.ca.new_orders, 0);
    ck_assert(!guard_full(W.spec.guard));
    ck_assert_int_eq(W.store->release(W.store, other, W.p), APR_SUCCESS);
    ck_assert_msg(run(&r) == APR_SUCCESS, "%s", acme_result_describe(r, W.p));
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert(guard_full(W.spec.guard));
}
END_TEST

/* Resuming an order sends no newOrder: with room for one order in the
 * hour, the order made before the crash is still finished. */
START_TEST(a_resumed_order_is_not_counted)
{
    acme_result_t *r;

    W.spec.guard = guard_make("here", 1);
    crash_event = "order-created";
    W.ca.hook = crash_hook;
    ck_assert_int_ne(run(NULL), APR_SUCCESS);
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert(guard_full(W.spec.guard));
    W.ca.hook = NULL;
    W.ca.fail_from = 0;
    W.now += apr_time_from_sec(60);
    ck_assert_msg(run(&r) == APR_SUCCESS, "%s", acme_result_describe(r, W.p));
    assert_staged();
    ck_assert_int_eq(W.ca.new_orders, 1);
}
END_TEST

/* A new order is counted, in the store: the guard of a new child (after
 * a restart) still holds it, stops the next new order before the CA sees
 * it, and lets it through an hour later. Another server counts its own. */
START_TEST(the_guard_counts_new_orders_and_outlives_a_restart)
{
    apr_time_t t0 = W.now, next;
    acme_result_t *r;
    acme_json_t *j;

    W.spec.guard = guard_make("here", 1);
    ck_assert_int_eq(run(NULL), APR_SUCCESS);
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.store->move(W.store, ACME_SG_STAGING, ACME_SG_DOMAINS, DOMAIN, 1, W.p),
                     APR_SUCCESS);
    W.now += apr_time_from_sec(120);
    W.spec.guard = guard_make("here", 1); /* a new child */
    ck_assert(guard_full(W.spec.guard));
    ck_assert(!guard_full(guard_make("elsewhere", 1)));
    ck_assert_int_ne(run(&r), APR_SUCCESS);
    ck_assert_str_eq(r->problem, ACME_PROBLEM_SAFETY_STOP);
    ck_assert_ptr_nonnull(strstr(r->detail, "SAFETY STOP"));
    ck_assert_int_eq(W.ca.new_orders, 1);
    /* not the CA's failure: no error counted, no order before the hour is over */
    j = job_json();
    ck_assert_int_eq(acme_json_getl(j, "errors", NULL), 0);
    next = acme_json_gett(j, "next-attempt", NULL);
    ck_assert(next > t0 + ACME_RATE_GUARD_WINDOW && next <= t0 + ACME_RATE_GUARD_WINDOW
                                                               + apr_time_from_sec(2));
    ck_assert(W.memo.next_attempt == next);
    W.now = next;
    ck_assert_msg(run(&r) == APR_SUCCESS, "%s", acme_result_describe(r, W.p));
    ck_assert_int_eq(W.ca.new_orders, 2);
}
END_TEST

/* The record is a cap only: damaged, it counts from zero; entries that
 * are not times are skipped; more than the limit keeps the newest. */
START_TEST(a_damaged_guard_record_counts_from_zero)
{
    static const char *const bad[] = {
        "not json",
        "[1, 2, 3]",
        "{\"orders\": 7}",
        "{\"orders\": {\"" CA "/dir\": \"x\"}}",
        "{\"orders\": {\"" CA "/dir\": [-5, \"1\", null, 1e300, 99999999999999999]}}",
    };
    acme_job_guard_t *g;
    const char *data;
    int i;

    for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); ++i) {
        ck_assert_int_eq(W.store->save(W.store, ACME_SG_JOBS, ACME_GUARD_NAME, "here.json",
                                       bad[i], strlen(bad[i]), 0, W.p), APR_SUCCESS);
        g = guard_make("here", 1);
        ck_assert_msg(!guard_full(g), "record %d blocks", i);
        ck_assert_int_eq(acme_job_guard_take(g, W.spec.ca_url, W.now, W.p,
                                             acme_result_make(W.p)), APR_SUCCESS);
        ck_assert(guard_full(g));
    }
    data = apr_psprintf(W.p, "{\"orders\": {\"%s\": [%" APR_TIME_T_FMT ", %" APR_TIME_T_FMT
                        ", %" APR_TIME_T_FMT "]}}", W.spec.ca_url, apr_time_sec(W.now) - 30,
                        apr_time_sec(W.now) - 20, apr_time_sec(W.now) - 10);
    ck_assert_int_eq(W.store->save(W.store, ACME_SG_JOBS, ACME_GUARD_NAME, "here.json", data,
                                   strlen(data), 0, W.p), APR_SUCCESS);
    g = guard_make("here", 2);
    /* the newest two: room again when the one of 20 s ago leaves the hour */
    ck_assert(acme_job_guard_fits(g, W.spec.ca_url, W.now, 1)
              == W.now - apr_time_from_sec(20) + ACME_RATE_GUARD_WINDOW);
    /* a record naming a thousand CAs is read up to a bound */
    {
        acme_json_t *j = acme_json_new_object(W.p), *back;
        for (i = 0; i < 1000; ++i) {
            acme_json_t *arr = acme_json_new_array(W.p);
            acme_json_array_appendl(arr, apr_time_sec(W.now));
            acme_json_setj(j, arr, "orders", apr_psprintf(W.p, "https://ca%d.test/dir", i), NULL);
        }
        ck_assert_int_eq(acme_store_save_json(W.store, ACME_SG_JOBS, ACME_GUARD_NAME, "here.json",
                                              j, W.p), APR_SUCCESS);
        g = guard_make("here", 2);
        ck_assert_int_eq(acme_job_guard_take(g, W.spec.ca_url, W.now, W.p,
                                             acme_result_make(W.p)), APR_SUCCESS);
        ck_assert_int_eq(acme_store_load_json(W.store, ACME_SG_JOBS, ACME_GUARD_NAME, "here.json",
                                              &back, W.p), APR_SUCCESS);
        data = acme_json_dump(acme_json_getj(back, W.p, "orders", NULL), W.p, 1);
        ck_assert_ptr_nonnull(strstr(data, W.spec.ca_url));
        {
            const char *at;
            int cas = 0;
            for (at = strstr(data, "https://ca"); at; at = strstr(at + 1, "https://ca")) {
                cas++;
            }
            ck_assert_int_gt(cas, 0);
            ck_assert_int_lt(cas, 100);
        }
    }
}
END_TEST

static apr_status_t unreachable_claim(acme_store_t *s, acme_store_claim_t **pclaim,
                                      const char *name, const char *owner,
                                      apr_interval_time_t lease, apr_pool_t *p)
{
    (void)s; (void)name; (void)owner; (void)lease; (void)p;
    *pclaim = NULL;
    return APR_ECONNREFUSED;
}

/* etcd down: every run fails at its claim. It waits longer each time, up
 * to a bound, asks nothing of the CA, counts no CA error and no order;
 * back, the next run orders. */
START_TEST(a_store_outage_backs_off_without_counting)
{
    apr_status_t (*claim)(acme_store_t *, acme_store_claim_t **, const char *, const char *,
                          apr_interval_time_t, apr_pool_t *) = W.store->claim;
    apr_interval_time_t expect = apr_time_from_sec(10);
    acme_result_t *r;
    int i;

    W.spec.retry_delay = apr_time_from_sec(10);
    W.spec.guard = guard_make("here", 1);
    W.store->claim = unreachable_claim;
    for (i = 0; i < 12; ++i) {
        apr_interval_time_t wait;

        ck_assert_int_ne(run(&r), APR_SUCCESS);
        ck_assert_str_eq(r->problem, ACME_PROBLEM_STORE_UNWRITABLE);
        wait = W.memo.next_attempt - W.now;
        ck_assert_msg(wait >= expect * 8 / 10 && wait <= expect * 12 / 10 + 1
                      && wait <= ACME_JOB_STORE_WAIT_MAX,
                      "wait %d: %" APR_TIME_T_FMT " s", i, apr_time_sec(wait));
        expect = expect * 2 > ACME_JOB_STORE_WAIT_MAX ? ACME_JOB_STORE_WAIT_MAX : expect * 2;
        W.now = W.memo.next_attempt;
    }
    ck_assert_int_eq(W.ca.requests, 0);
    ck_assert_int_eq(W.memo.errors, 0);
    ck_assert(!guard_full(W.spec.guard));
    W.store->claim = claim;
    ck_assert_msg(run(&r) == APR_SUCCESS, "%s", acme_result_describe(r, W.p));
    ck_assert_int_eq(W.ca.new_orders, 1);
    ck_assert_int_eq(W.memo.waits, 0);
}
END_TEST

static Suite *job_suite(void)
{
    Suite *s = suite_create("job");
    TCase *tc = tcase_create("job");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, happy_path_stages_key_chain_then_meta);
    tcase_add_test(tc, bad_nonce_is_retried_within_one_order);
    tcase_add_test(tc, invalid_authorization_is_recorded_and_the_other_type_used_next);
    tcase_add_test(tc, only_after_a_failed_validation_the_ca_waits_for_the_preflight);
    tcase_add_test(tc, resume_after_a_crash_at_every_request);
    tcase_add_loop_test(tc, crash_between_two_steps_resumes_the_order, 0, 2);
    tcase_add_test(tc, an_order_left_by_a_kill_after_staging_is_not_taken_again);
    tcase_add_test(tc, a_resumed_order_does_not_post_a_challenge_again);
    tcase_add_test(tc, a_challenge_post_that_failed_is_answered_by_the_next_run);
    tcase_add_test(tc, answers_stay_published_until_the_authorization_is_final);
    tcase_add_loop_test(tc, an_order_that_cannot_be_finished_is_replaced, 0, 2);
    tcase_add_loop_test(tc, a_cut_between_key_types_keeps_the_first_result, 0, 2);
    tcase_add_test(tc, a_stop_while_the_ca_validates_keeps_the_answers_and_the_order);
    tcase_add_test(tc, retry_after_sets_the_next_attempt);
    tcase_add_test(tc, failover_with_a_hostile_ca_index);
    tcase_add_test(tc, a_rate_limit_pauses_every_domain_of_the_ca);
    tcase_add_test(tc, settings_that_differ_from_the_stored_ones_are_named);
    tcase_add_test(tc, unwritable_store_asks_nothing_of_the_ca);
    tcase_add_test(tc, failures_the_store_cannot_record_stay_in_the_memo);
    tcase_add_test(tc, a_domain_claimed_by_another_owner_is_left_alone);
    tcase_add_test(tc, a_stale_claim_writes_nothing);
    tcase_add_test(tc, ari_refresh_stores_the_window);
    tcase_add_test(tc, ari_refresh_remembers_a_ca_without_it_for_a_day);
    tcase_add_test(tc, ari_refresh_on_an_unwritable_store_asks_nothing);
    tcase_add_test(tc, ari_refresh_while_a_run_holds_the_domain_waits_for_it);
    tcase_add_test(tc, ari_refresh_with_the_ca_down_waits);
    tcase_add_test(tc, a_run_that_fails_at_its_claim_costs_the_guard_nothing);
    tcase_add_test(tc, a_resumed_order_is_not_counted);
    tcase_add_test(tc, the_guard_counts_new_orders_and_outlives_a_restart);
    tcase_add_test(tc, a_damaged_guard_record_counts_from_zero);
    tcase_add_test(tc, a_store_outage_backs_off_without_counting);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(job_suite)
