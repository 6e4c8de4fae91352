/* acme_etcd.c: the etcd v3 client over the JSON gateway: failover between
 * endpoints, auth tokens, and strict checks of every answer (untrusted input). */
#include <string.h>
#include <errno.h>

#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_atomic.h>
#include <apr_lib.h>
#include <apr_thread_mutex.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_http.h"
#include "acme_etcd.h"
#include "acme_crypto.h"

#define MAX_TOKEN 2048

struct acme_etcd_t {
    apr_pool_t *pool;
    acme_http_t *http;
    apr_array_header_t *endpoints;  /* const char * */
    int good;                       /* index of the endpoint that answered last */
    const char *user;
    const char *password;
    const char *token;              /* NULL: authenticate before the next request */
    const char *cluster_id;         /* from the first answer: all endpoints must agree */
    apr_size_t max_value;
    volatile apr_uint32_t *stop;
    volatile apr_uint32_t *errors;
#if APR_HAS_THREADS
    apr_thread_mutex_t *mutex;      /* one exchange at a time: acme_http_t is single-threaded */
#endif
};

typedef struct {
    int kind;               /* OP_* */
    const char *key;
    const char *value;
    apr_size_t len;
    apr_int64_t lease;
    int prefix;
} txn_op_t;

typedef struct {
    int target;             /* CMP_* */
    int prefix;             /* over every key starting with key */
    const char *key;
    apr_int64_t rev;
    const char *value;
    apr_size_t len;
} txn_cmp_t;

enum { OP_PUT, OP_DELETE, OP_GET };
enum { CMP_CREATE, CMP_MOD, CMP_VALUE, CMP_MOD_BELOW };

struct acme_etcd_txn_t {
    apr_pool_t *pool;
    apr_array_header_t *cmps;     /* txn_cmp_t */
    apr_array_header_t *ops[2];   /* txn_op_t, [ACME_ETCD_ELSE], [ACME_ETCD_THEN] */
};

/* ---- base64 (standard alphabet, padded) ------------------------------------------ */

const char *acme_etcd_b64_encode(apr_pool_t *p, const void *data, apr_size_t len)
{
    char *s = (char *)acme_b64url_encode(p, data, len);
    apr_size_t n = strlen(s), i;
    char *out = apr_palloc(p, n + 3);

    for (i = 0; i < n; ++i) {
        out[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    }
    while (i % 4) {
        out[i++] = '=';
    }
    out[i] = '\0';
    return out;
}

apr_status_t acme_etcd_b64_decode(unsigned char **pdata, apr_size_t *plen, apr_pool_t *p,
                                  const char *s)
{
    apr_size_t n = strlen(s), i, pad = 0;
    char *u;

    *pdata = NULL;
    *plen = 0;
    if (n % 4) {
        return APR_EINVAL;
    }
    while (pad < 2 && n > pad && s[n - 1 - pad] == '=') {
        ++pad;
    }
    u = apr_palloc(p, n + 1);
    for (i = 0; i < n - pad; ++i) {
        char c = s[i];

        if (c == '+') c = '-';
        else if (c == '/') c = '_';
        else if (!apr_isalnum(c)) return APR_EINVAL;   /* also '-', '_', '=' inside */
        u[i] = c;
    }
    u[i] = '\0';
    return acme_b64url_decode(pdata, plen, p, u);
}

/* ---- helpers ------------------------------------------------------------------------ */

static const char *i64s(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

/* A bounded, printable copy of text from the network, for messages. */
static const char *clean(apr_pool_t *p, const char *s)
{
    char *out;
    apr_size_t i, n;

    if (!s) {
        return "";
    }
    n = strlen(s);
    if (n > 200) {
        n = 200;
    }
    out = apr_pstrmemdup(p, s, n);
    for (i = 0; i < n; ++i) {
        if (!apr_isprint(out[i])) {
            out[i] = '?';
        }
    }
    return out;
}

static int is_stopped(const acme_etcd_t *e)
{
    return e->stop && apr_atomic_read32(e->stop);
}

/* A non-negative 64-bit integer field: a JSON string of digits (how the
 * gateway sends int64) or a JSON integer. Missing means 0. */
static apr_status_t get_i64(apr_int64_t *pv, const acme_json_t *j, const char *field,
                            const char *what, apr_pool_t *p, acme_result_t *r)
{
    const char *s, *c;
    char *end;
    long long l;

    *pv = 0;
    switch (acme_json_type(j, field, NULL)) {
    case ACME_JSON_NONE:
        return APR_SUCCESS;
    case ACME_JSON_INT:
        l = acme_json_getl(j, field, NULL);
        if (l < 0) {
            break;
        }
        *pv = l;
        return APR_SUCCESS;
    case ACME_JSON_STRING:
        s = acme_json_gets(j, field, NULL);
        if (!*s || strlen(s) > 19) {
            break;
        }
        for (c = s; *c; ++c) {
            if (!apr_isdigit(*c)) {
                goto bad;
            }
        }
        errno = 0;
        *pv = apr_strtoi64(s, &end, 10);
        if (errno || *end || *pv < 0) {
            *pv = 0;
            break;
        }
        return APR_SUCCESS;
    default:
        break;
    }
bad:
    (void)p;
    return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                           "etcd answer to %s: '%s' is not a non-negative integer", what, field);
}

/* Decodes a base64 field into a NUL-terminated buffer of at most max bytes. */
static apr_status_t get_b64(const char **pv, apr_size_t *plen, const acme_json_t *j,
                            const char *field, apr_size_t max, const char *what, apr_pool_t *p,
                            acme_result_t *r)
{
    const char *s;
    unsigned char *raw;
    apr_size_t len;

    *pv = NULL;
    *plen = 0;
    switch (acme_json_type(j, field, NULL)) {
    case ACME_JSON_NONE:
        *pv = "";
        return APR_SUCCESS;
    case ACME_JSON_STRING:
        break;
    default:
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: '%s' is not a string", what, field);
    }
    s = acme_json_gets(j, field, NULL);
    if (strlen(s) / 4 * 3 > max + 3) {
        return acme_result_set(r, APR_ENOSPC, "acme:malformed-response",
                               "etcd answer to %s: '%s' is larger than the limit of %lu bytes",
                               what, field, (unsigned long)max);
    }
    if (acme_etcd_b64_decode(&raw, &len, p, s) != APR_SUCCESS) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: '%s' is not valid base64", what, field);
    }
    if (len > max) {
        return acme_result_set(r, APR_ENOSPC, "acme:malformed-response",
                               "etcd answer to %s: '%s' is larger than the limit of %lu bytes",
                               what, field, (unsigned long)max);
    }
    *pv = (const char *)raw;
    *plen = len;
    return APR_SUCCESS;
}

/* The key of a kvs entry or event; prefix (or the exact key when exact)
 * must match: an answer about other keys is garbage too. */
static apr_status_t parse_key(const char **pkey, const acme_json_t *j, const char *want,
                              int exact, const char *what, apr_pool_t *p, acme_result_t *r)
{
    apr_size_t klen;
    apr_status_t rv;

    if (acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: a kvs entry is not an object", what);
    }
    if (acme_json_type(j, "key", NULL) != ACME_JSON_STRING) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: a kvs entry has no key string", what);
    }
    rv = get_b64(pkey, &klen, j, "key", ACME_ETCD_MAX_KEY, what, p, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!klen || strlen(*pkey) != klen
        || (exact ? strcmp(*pkey, want) : strncmp(*pkey, want, strlen(want)))) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: it holds a key that was not asked for", what);
    }
    return APR_SUCCESS;
}

/* One key-value of an answer, its key checked by parse_key. */
static apr_status_t parse_kv(acme_etcd_kv_t **pkv, acme_etcd_t *e, const acme_json_t *j,
                             const char *want, int exact, int keys_only, const char *what,
                             apr_pool_t *p, acme_result_t *r)
{
    acme_etcd_kv_t *kv = apr_pcalloc(p, sizeof(*kv));
    apr_status_t rv;

    *pkv = NULL;
    if ((rv = parse_key(&kv->key, j, want, exact, what, p, r)) != APR_SUCCESS) {
        return rv;
    }
    what = apr_pstrcat(p, what, " (key ", clean(p, kv->key), ")", NULL);
    if ((rv = get_i64(&kv->create_revision, j, "create_revision", what, p, r)) != APR_SUCCESS
        || (rv = get_i64(&kv->mod_revision, j, "mod_revision", what, p, r)) != APR_SUCCESS
        || (rv = get_i64(&kv->version, j, "version", what, p, r)) != APR_SUCCESS
        || (rv = get_i64(&kv->lease, j, "lease", what, p, r)) != APR_SUCCESS) {
        return rv;
    }
    if (!kv->create_revision || kv->mod_revision < kv->create_revision) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: impossible revisions %" APR_INT64_T_FMT
                               "/%" APR_INT64_T_FMT, what, kv->create_revision,
                               kv->mod_revision);
    }
    if (!keys_only) {
        rv = get_b64(&kv->value, &kv->value_len, j, "value", e->max_value, what, p, r);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    *pkv = kv;
    return APR_SUCCESS;
}

/* The kvs of a range answer. */
static apr_status_t parse_range(apr_array_header_t **pkvs, int *pmore, acme_etcd_t *e,
                                const acme_json_t *ans, const char *want, int exact,
                                int keys_only, const char *what, apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *kvs = apr_array_make(p, 8, sizeof(acme_etcd_kv_t *));
    acme_json_t *arr;
    acme_etcd_kv_t *kv;
    apr_size_t i, n;
    apr_status_t rv = APR_SUCCESS;

    *pkvs = NULL;
    if (pmore) {
        *pmore = 0;
    }
    switch (acme_json_type(ans, "kvs", NULL)) {
    case ACME_JSON_NONE:
        break;
    case ACME_JSON_ARRAY:
        arr = acme_json_getj(ans, p, "kvs", NULL);
        n = acme_json_array_len(arr);
        for (i = 0; i < n; ++i) {
            rv = parse_kv(&kv, e, acme_json_array_at(arr, p, i), want, exact, keys_only, what,
                          p, r);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            APR_ARRAY_PUSH(kvs, acme_etcd_kv_t *) = kv;
        }
        if (exact && n > 1) {
            return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                                   "etcd answer to %s: %lu entries for one key", what,
                                   (unsigned long)n);
        }
        break;
    default:
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: 'kvs' is not an array", what);
    }
    if (acme_json_has(ans, "more", NULL) && acme_json_type(ans, "more", NULL) != ACME_JSON_BOOL) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: 'more' is not a boolean", what);
    }
    if (pmore) {
        *pmore = acme_json_getb(ans, "more", NULL);
    }
    *pkvs = kvs;
    return rv;
}

static apr_status_t header_revision(apr_int64_t *prev, const acme_json_t *ans, const char *what,
                                    apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *h;
    apr_status_t rv;

    if (acme_json_type(ans, "header", NULL) != ACME_JSON_OBJECT) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: no 'header' object", what);
    }
    h = acme_json_getj(ans, p, "header", NULL);
    rv = get_i64(prev, h, "revision", what, p, r);
    if (rv == APR_SUCCESS && *prev <= 0) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "etcd answer to %s: no revision in the header", what);
    }
    return rv;
}

/* The end of the key range covering every key that starts with prefix. */
static const char *prefix_end(apr_pool_t *p, const char *prefix, apr_size_t *plen)
{
    apr_size_t n = strlen(prefix);
    unsigned char *end = (unsigned char *)apr_pstrmemdup(p, prefix, n);

    while (n > 0) {
        if (end[n - 1] < 0xff) {
            end[n - 1]++;
            *plen = n;
            return (const char *)end;
        }
        --n;
    }
    /* all 0xff (or empty): the range end "\0" means every key */
    *plen = 1;
    return "\0";
}

static const char *b64s(apr_pool_t *p, const char *s)
{
    return acme_etcd_b64_encode(p, s, strlen(s));
}

/* ---- the exchange, with failover and auth ------------------------------------------ */

/* The gateway's error body {"error": "...", "code": n}, for a message. */
static const char *error_text(const acme_http_response_t *resp, int *pcode, apr_pool_t *p)
{
    acme_json_t *j;
    const char *err, *msg;

    *pcode = -1;
    if (acme_json_parse(&j, p, resp->body, resp->body_len, &err) == APR_SUCCESS) {
        msg = acme_json_gets(j, "error", NULL);
        if (!msg) {
            msg = acme_json_gets(j, "message", NULL);
        }
        if (acme_json_type(j, "code", NULL) == ACME_JSON_INT) {
            *pcode = (int)acme_json_getl(j, "code", NULL);
        }
        if (msg) {
            return clean(p, msg);
        }
    }
    if (resp->body_len) {
        return apr_psprintf(p, "HTTP %d: %s", resp->status, clean(p, resp->body));
    }
    return apr_psprintf(p, "HTTP %d", resp->status);
}

/* One POST to one endpoint. *pretry is set when the next endpoint should
 * be tried (network error, 5xx). */
static apr_status_t post(acme_json_t **pans, int *pretry, int *pstatus, acme_etcd_t *e, int idx,
                         const char *path, const char *body, int with_token, const char *what,
                         apr_pool_t *p, acme_result_t *r)
{
    const char *url = apr_pstrcat(p, APR_ARRAY_IDX(e->endpoints, idx, const char *), path, NULL);
    apr_table_t *hdrs = apr_table_make(p, 2);
    acme_http_response_t *resp;
    const char *err;
    apr_status_t rv;
    int code;

    *pans = NULL;
    *pretry = 0;
    *pstatus = 0;
    apr_table_setn(hdrs, "Content-Type", "application/json");
    if (with_token && e->token) {
        apr_table_setn(hdrs, "Authorization", e->token);
    }
    rv = acme_http_do(e->http, &resp, p, "POST", url, hdrs, body, strlen(body), 0, r);
    if (rv != APR_SUCCESS) {
        *pretry = !is_stopped(e);
        return rv;
    }
    *pstatus = resp->status;
    if (resp->status >= 500) {
        *pretry = 1;
        return acme_result_set(r, APR_EGENERAL, "acme:network", "etcd %s: %s", url,
                               error_text(resp, &code, p));
    }
    if (resp->status != 200) {
        rv = acme_result_set(r, APR_EGENERAL, "acme:store", "etcd refused %s at %s: %s", what,
                             url, error_text(resp, &code, p));
        r->http_status = resp->status;
        return rv;
    }
    if (acme_json_parse(pans, p, resp->body, resp->body_len, &err) != APR_SUCCESS
        || acme_json_type(*pans, NULL) != ACME_JSON_OBJECT) {
        *pans = NULL;
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s from %s is not a JSON object", what, url);
    }
    return APR_SUCCESS;
}

static apr_status_t authenticate(int *pretry, acme_etcd_t *e, int idx, apr_pool_t *p,
                                 acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans;
    const char *tok, *c;
    apr_status_t rv;
    int status;

    acme_json_sets(req, e->user, "name", NULL);
    acme_json_sets(req, e->password, "password", NULL);
    rv = post(&ans, pretry, &status, e, idx, "/v3/auth/authenticate", acme_json_dump(req, p, 1),
              0, "authenticate", p, r);
    if (rv != APR_SUCCESS) {
        if (!*pretry && status) {
            /* a wrong user or password: retrying cannot fix it */
            r->problem = "acme:config";
            r->detail = apr_psprintf(r->pool ? r->pool : p, "etcd authentication as '%s' "
                                     "failed: %s", clean(p, e->user), r->detail);
        }
        return rv;
    }
    tok = acme_json_gets(ans, "token", NULL);
    /* the token goes into a request header: no control characters */
    for (c = tok; c && *c; ++c) {
        if (!apr_isgraph(*c)) {
            tok = NULL;
            break;
        }
    }
    if (!tok || !*tok || strlen(tok) > MAX_TOKEN) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to authenticate: no usable 'token'");
    }
    e->token = apr_pstrdup(e->pool, tok);
    return APR_SUCCESS;
}

/* All endpoints must belong to one cluster: a wrong URL in the list would
 * otherwise split the fleet's state silently. */
static apr_status_t check_cluster(acme_etcd_t *e, const acme_json_t *ans, const char *what,
                                  apr_pool_t *p, acme_result_t *r)
{
    const char *id = acme_json_gets(ans, "header", "cluster_id", NULL);

    if (!id) {
        return APR_SUCCESS;
    }
    if (!e->cluster_id) {
        e->cluster_id = apr_pstrdup(e->pool, id);
        return APR_SUCCESS;
    }
    if (strcmp(id, e->cluster_id)) {
        return acme_result_set(r, APR_EGENERAL, "acme:config",
                               "etcd answer to %s from %s: cluster id %s differs from %s: the "
                               "endpoints are not members of one cluster", what,
                               APR_ARRAY_IDX(e->endpoints, e->good, const char *),
                               clean(p, id), e->cluster_id);
    }
    return APR_SUCCESS;
}

static apr_status_t call_unlocked(acme_json_t **pans, acme_etcd_t *e, const char *path,
                                  const char *body, const char *what, apr_pool_t *p,
                                  acme_result_t *r)
{
    const char *from = APR_ARRAY_IDX(e->endpoints, e->good, const char *);
    const char *last = "no endpoint configured";
    int n = e->endpoints->nelts, tries = 0, reauthed = 0, retry, status, idx;
    apr_status_t rv = APR_EGENERAL;

    *pans = NULL;
    while (tries < n) {
        if (is_stopped(e)) {
            return acme_result_set(r, APR_EINTR, "acme:stopped", "etcd %s: aborted, the server "
                                   "is stopping", what);
        }
        idx = (e->good + tries) % n;
        if (e->user && !e->token) {
            rv = authenticate(&retry, e, idx, p, r);
            if (rv != APR_SUCCESS) {
                if (!retry) {
                    return rv;
                }
                last = r->detail;
                ++tries;
                continue;
            }
        }
        rv = post(pans, &retry, &status, e, idx, path, body, 1, what, p, r);
        if (rv == APR_SUCCESS) {
            if (idx != e->good) {
                acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, 0, ACMELOG(1101) "etcd: %s did not "
                         "answer, using %s", from, APR_ARRAY_IDX(e->endpoints, idx, const char *));
            }
            e->good = idx;
            return check_cluster(e, *pans, what, p, r);
        }
        if (status == 401 && e->user && !reauthed) {
            /* tokens expire (and a restarted member forgets simple tokens) */
            e->token = NULL;
            reauthed = 1;
            continue;
        }
        if (!retry) {
            if (status) {
                e->good = idx;   /* it answered, even if with a refusal */
            }
            return rv;
        }
        last = r->detail;
        ++tries;
    }
    if (is_stopped(e)) {
        return acme_result_set(r, APR_EINTR, "acme:stopped", "etcd %s: aborted, the server "
                               "is stopping", what);
    }
    return acme_result_set(r, rv == APR_SUCCESS ? APR_EGENERAL : rv, "acme:network",
                           "etcd %s: no endpoint answered (last: %s)", what, last);
}

static apr_status_t call(acme_json_t **pans, acme_etcd_t *e, const char *path,
                         const acme_json_t *req, const char *what, apr_pool_t *p,
                         acme_result_t *r)
{
    const char *body = acme_json_dump(req, p, 1);
    apr_status_t rv;

#if APR_HAS_THREADS
    apr_thread_mutex_lock(e->mutex);
#endif
    rv = call_unlocked(pans, e, path, body, what, p, r);
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(e->mutex);
#endif
    if (rv != APR_SUCCESS && rv != APR_EINTR && e->errors) {
        apr_atomic_inc32(e->errors);   /* for the acme_store_errors_total metric */
    }
    return rv;
}

/* ---- set-up ------------------------------------------------------------------------- */

void acme_etcd_config_init(acme_etcd_config_t *conf)
{
    memset(conf, 0, sizeof(*conf));
}

/* The password file is a secret like the store key, and checked by the
 * same rule: anyone who can replace it chooses the identity we write as. */
static apr_status_t read_password(const char **ppw, apr_pool_t *p, const char *path, int flags,
                                  acme_result_t *r)
{
    const char *data, *err = NULL;
    apr_size_t n;
    apr_status_t rv;

    *ppw = NULL;
    rv = acme_secret_file_read(&data, &n, p, path, "the etcd password file",
                               ACME_ETCD_MAX_PASSWORD, flags, NULL, &err);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:config", "%s (ManagedStoreAuth)",
                               err ? err : path);
    }
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r')) {
        --n;
    }
    if (!n || memchr(data, '\0', n) || memchr(data, '\n', n)) {
        return acme_result_set(r, APR_EINVAL, "acme:config", "the etcd password file %s must "
                               "hold the password on one line", path);
    }
    *ppw = apr_pstrmemdup(p, data, n);
    return APR_SUCCESS;
}

apr_status_t acme_etcd_create(acme_etcd_t **petcd, apr_pool_t *p, const acme_etcd_config_t *conf,
                              acme_http_t *http, acme_result_t *r)
{
    acme_etcd_t *e = apr_pcalloc(p, sizeof(*e));
    acme_http_config_t hc;
    apr_status_t rv = APR_SUCCESS;
    int i;

    *petcd = NULL;
    e->pool = p;
    e->stop = conf->stop;
    e->errors = conf->errors;
    e->max_value = conf->max_value ? conf->max_value : ACME_ETCD_MAX_VALUE_DEFAULT;
    e->endpoints = apr_array_make(p, 4, sizeof(const char *));
    for (i = 0; conf->endpoints && i < conf->endpoints->nelts; ++i) {
        const char *u = APR_ARRAY_IDX(conf->endpoints, i, const char *);
        apr_size_t n = strlen(u);

        if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) {
            rv = acme_result_set(r, APR_EINVAL, "acme:config", "etcd endpoint '%s' is not an "
                                 "http(s) URL", u);
            goto leave;
        }
        while (n > 0 && u[n - 1] == '/') {
            --n;   /* the gateway paths are appended */
        }
        APR_ARRAY_PUSH(e->endpoints, const char *) = apr_pstrmemdup(p, u, n);
    }
    if (!e->endpoints->nelts) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config", "no etcd endpoint configured");
        goto leave;
    }
    if ((conf->cert_file != NULL) != (conf->key_file != NULL)) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config", "an etcd client certificate needs "
                             "both a certificate and a key file");
        goto leave;
    }
    if (conf->user) {
        if (!conf->password_file) {
            rv = acme_result_set(r, APR_EINVAL, "acme:config", "etcd user '%s' needs a "
                                 "password file", conf->user);
            goto leave;
        }
        e->user = apr_pstrdup(p, conf->user);
        rv = read_password(&e->password, p, conf->password_file, conf->password_flags, r);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
    }
    if (!http) {
        acme_http_config_init(&hc);
        hc.ca_file = conf->ca_file;
        hc.cert_file = conf->cert_file;
        hc.key_file = conf->key_file;
        hc.abort = conf->stop;
        hc.connect_timeout = apr_time_from_sec(2);
        hc.timeout = conf->timeout > 0 ? conf->timeout : ACME_ETCD_TIMEOUT_DEFAULT;
        /* a prefix listing with values may hold many items */
        hc.max_body = e->max_value * 2 + 64 * 1024;
        rv = acme_http_curl_create(&http, p, &hc);
        if (rv != APR_SUCCESS) {
            rv = acme_result_set(r, rv, "acme:internal", "cannot set up the etcd HTTP client");
            goto leave;
        }
    }
#if APR_HAS_THREADS
    rv = apr_thread_mutex_create(&e->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        rv = acme_result_set(r, rv, "acme:internal", "cannot create the etcd client's mutex");
        goto leave;
    }
#endif
    e->http = http;
    *petcd = e;
leave:
    return rv;
}

const char *acme_etcd_endpoint(const acme_etcd_t *e)
{
    return APR_ARRAY_IDX(e->endpoints, e->good, const char *);
}

const char *acme_etcd_endpoints(const acme_etcd_t *e, apr_pool_t *p)
{
    return apr_array_pstrcat(p, e->endpoints, ',');
}

/* ---- key-value ---------------------------------------------------------------------- */

static apr_status_t check_key(const char *key, const char *what, acme_result_t *r)
{
    if (!key || !*key || strlen(key) > ACME_ETCD_MAX_KEY) {
        return acme_result_set(r, APR_EINVAL, "acme:internal", "etcd %s: a key must have 1 to "
                               "%d bytes", what, ACME_ETCD_MAX_KEY);
    }
    return APR_SUCCESS;
}

static apr_status_t check_value(acme_etcd_t *e, apr_size_t len, const char *key, acme_result_t *r)
{
    if (len > e->max_value) {
        return acme_result_set(r, APR_ENOSPC, "acme:store", "etcd put %s: the value has %lu "
                               "bytes, above the limit of %lu", key, (unsigned long)len,
                               (unsigned long)e->max_value);
    }
    return APR_SUCCESS;
}

apr_status_t acme_etcd_get(acme_etcd_kv_t **pkv, acme_etcd_t *e, const char *key, apr_pool_t *p,
                           acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans;
    apr_array_header_t *kvs;
    const char *what = apr_pstrcat(p, "get ", key, NULL);
    apr_status_t rv;

    *pkv = NULL;
    if ((rv = check_key(key, what, r)) != APR_SUCCESS) {
        return rv;
    }
    acme_json_sets(req, b64s(p, key), "key", NULL);
    rv = call(&ans, e, "/v3/kv/range", req, what, p, r);
    if (rv == APR_SUCCESS) {
        rv = parse_range(&kvs, NULL, e, ans, key, 1, 0, what, p, r);
    }
    if (rv == APR_SUCCESS) {
        if (!kvs->nelts) {
            return APR_ENOENT;
        }
        *pkv = APR_ARRAY_IDX(kvs, 0, acme_etcd_kv_t *);
    }
    return rv;
}

apr_status_t acme_etcd_get_prefix(apr_array_header_t **pkvs, int *pmore, acme_etcd_t *e,
                                  const char *prefix, int keys_only, apr_int64_t limit,
                                  apr_pool_t *p, acme_result_t *r)
{
    return acme_etcd_get_prefix_from(pkvs, pmore, e, prefix, NULL, keys_only, limit, p, r);
}

apr_status_t acme_etcd_get_prefix_from(apr_array_header_t **pkvs, int *pmore, acme_etcd_t *e,
                                       const char *prefix, const char *from, int keys_only,
                                       apr_int64_t limit, apr_pool_t *p, acme_result_t *r)
{
    acme_etcd_range_t q;
    acme_etcd_range_result_t res;
    apr_status_t rv;

    memset(&q, 0, sizeof(q));
    q.prefix = prefix;
    q.from = from;
    q.keys_only = keys_only;
    q.limit = limit;
    rv = acme_etcd_range(&res, e, &q, p, r);
    *pkvs = res.kvs;
    if (pmore) {
        *pmore = res.more;
    }
    return rv;
}

apr_status_t acme_etcd_range(acme_etcd_range_result_t *res, acme_etcd_t *e,
                             const acme_etcd_range_t *q, apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans;
    const char *what = apr_pstrcat(p, "list ", q->prefix, "*", NULL), *end;
    apr_size_t elen;
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    if ((rv = check_key(q->prefix, what, r)) != APR_SUCCESS) {
        return rv;
    }
    if (q->from && (strncmp(q->from, q->prefix, strlen(q->prefix))
                    || strlen(q->from) > ACME_ETCD_MAX_KEY)) {
        return acme_result_set(r, APR_EINVAL, "acme:internal", "etcd %s: the start key is "
                               "outside the prefix", what);
    }
    end = prefix_end(p, q->prefix, &elen);
    acme_json_sets(req, b64s(p, q->from ? q->from : q->prefix), "key", NULL);
    acme_json_sets(req, acme_etcd_b64_encode(p, end, elen), "range_end", NULL);
    if (q->limit > 0) {
        acme_json_sets(req, i64s(p, q->limit), "limit", NULL);
    }
    if (q->revision > 0) {
        acme_json_sets(req, i64s(p, q->revision), "revision", NULL);
    }
    if (q->min_mod_revision > 0) {
        acme_json_sets(req, i64s(p, q->min_mod_revision), "min_mod_revision", NULL);
    }
    if (q->keys_only) {
        acme_json_setb(req, 1, "keys_only", NULL);
    }
    rv = call(&ans, e, "/v3/kv/range", req, what, p, r);
    if (rv == APR_SUCCESS) {
        rv = parse_range(&res->kvs, &res->more, e, ans, q->prefix, 0, q->keys_only, what, p, r);
    }
    /* the header's revision, which a plain listing does without */
    if (rv == APR_SUCCESS && (q->revision || q->min_mod_revision
                              || acme_json_has(ans, "header", NULL))) {
        rv = header_revision(&res->revision, ans, what, p, r);
    }
    if (rv == APR_SUCCESS) {
        rv = get_i64(&res->count, ans, "count", what, p, r);
    }
    if (rv == APR_SUCCESS && q->limit > 0 && res->kvs->nelts > q->limit) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response", "etcd answer to %s: "
                             "more entries than the limit", what);
    }
    if (rv == APR_SUCCESS && q->revision > 0 && res->revision < q->revision) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response", "etcd answer to %s: "
                             "revision %" APR_INT64_T_FMT " is older than the one asked for",
                             what, res->revision);
    }
    if (rv == APR_SUCCESS && q->min_mod_revision && res->count < res->kvs->nelts) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response", "etcd answer to %s: "
                             "a count below the entries", what);
    }
    return rv;
}

const char *acme_etcd_cluster_id(const acme_etcd_t *e)
{
    return e->cluster_id;
}

apr_status_t acme_etcd_put(apr_int64_t *prevision, acme_etcd_t *e, const char *key,
                           const char *value, apr_size_t len, apr_int64_t lease, apr_pool_t *p,
                           acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans;
    const char *what = apr_pstrcat(p, "put ", key, NULL);
    apr_int64_t rev = 0;
    apr_status_t rv;

    if ((rv = check_key(key, what, r)) != APR_SUCCESS
        || (rv = check_value(e, len, key, r)) != APR_SUCCESS) {
        goto leave;
    }
    acme_json_sets(req, b64s(p, key), "key", NULL);
    acme_json_sets(req, acme_etcd_b64_encode(p, value, len), "value", NULL);
    if (lease) {
        acme_json_sets(req, i64s(p, lease), "lease", NULL);
    }
    rv = call(&ans, e, "/v3/kv/put", req, what, p, r);
    if (rv == APR_SUCCESS) {
        rv = header_revision(&rev, ans, what, p, r);
    }
leave:
    if (prevision) {
        *prevision = rev;
    }
    return rv;
}

apr_status_t acme_etcd_delete(apr_int64_t *pdeleted, acme_etcd_t *e, const char *key, int prefix,
                              apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans;
    const char *what = apr_pstrcat(p, "delete ", key, prefix ? "*" : "", NULL), *end;
    apr_int64_t deleted = 0;
    apr_size_t elen;
    apr_status_t rv;

    if ((rv = check_key(key, what, r)) != APR_SUCCESS) {
        goto leave;
    }
    acme_json_sets(req, b64s(p, key), "key", NULL);
    if (prefix) {
        end = prefix_end(p, key, &elen);
        acme_json_sets(req, acme_etcd_b64_encode(p, end, elen), "range_end", NULL);
    }
    rv = call(&ans, e, "/v3/kv/deleterange", req, what, p, r);
    if (rv == APR_SUCCESS) {
        rv = get_i64(&deleted, ans, "deleted", what, p, r);
    }
leave:
    if (pdeleted) {
        *pdeleted = deleted;
    }
    return rv;
}

apr_status_t acme_etcd_revision(apr_int64_t *prevision, acme_etcd_t *e, apr_pool_t *p,
                                acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans;
    apr_status_t rv;

    *prevision = 0;
    /* a count of one (likely absent) key: cheap, and the header has the revision */
    acme_json_sets(req, b64s(p, "\x01"), "key", NULL);
    acme_json_setb(req, 1, "count_only", NULL);
    rv = call(&ans, e, "/v3/kv/range", req, "revision", p, r);
    if (rv == APR_SUCCESS) {
        rv = header_revision(prevision, ans, "revision", p, r);
    }
    return rv;
}

/* ---- transactions ------------------------------------------------------------------- */

acme_etcd_txn_t *acme_etcd_txn_make(apr_pool_t *p)
{
    acme_etcd_txn_t *t = apr_pcalloc(p, sizeof(*t));

    t->pool = p;
    t->cmps = apr_array_make(p, 4, sizeof(txn_cmp_t));
    t->ops[0] = apr_array_make(p, 4, sizeof(txn_op_t));
    t->ops[1] = apr_array_make(p, 4, sizeof(txn_op_t));
    return t;
}

static void add_cmp(acme_etcd_txn_t *t, int target, const char *key, apr_int64_t rev,
                    const char *value, apr_size_t len)
{
    txn_cmp_t *c = apr_array_push(t->cmps);

    c->target = target;
    c->prefix = 0;
    c->key = key;
    c->rev = rev;
    c->value = value;
    c->len = len;
}

void acme_etcd_txn_if_absent(acme_etcd_txn_t *t, const char *key)
{
    add_cmp(t, CMP_CREATE, key, 0, NULL, 0);
}

void acme_etcd_txn_if_mod(acme_etcd_txn_t *t, const char *key, apr_int64_t mod_revision)
{
    add_cmp(t, CMP_MOD, key, mod_revision, NULL, 0);
}

void acme_etcd_txn_if_create(acme_etcd_txn_t *t, const char *key, apr_int64_t create_revision)
{
    add_cmp(t, CMP_CREATE, key, create_revision, NULL, 0);
}

void acme_etcd_txn_if_value(acme_etcd_txn_t *t, const char *key, const char *value,
                            apr_size_t len)
{
    add_cmp(t, CMP_VALUE, key, 0, value, len);
}

void acme_etcd_txn_if_prefix_unchanged(acme_etcd_txn_t *t, const char *prefix,
                                       apr_int64_t revision)
{
    add_cmp(t, CMP_MOD_BELOW, prefix, revision + 1, NULL, 0);
    APR_ARRAY_IDX(t->cmps, t->cmps->nelts - 1, txn_cmp_t).prefix = 1;
}

static void add_op(acme_etcd_txn_t *t, int branch, int kind, const char *key, const char *value,
                   apr_size_t len, apr_int64_t lease, int prefix)
{
    txn_op_t *o = apr_array_push(t->ops[branch ? 1 : 0]);

    o->kind = kind;
    o->key = key;
    o->value = value;
    o->len = len;
    o->lease = lease;
    o->prefix = prefix;
}

void acme_etcd_txn_put(acme_etcd_txn_t *t, int branch, const char *key, const char *value,
                       apr_size_t len, apr_int64_t lease)
{
    add_op(t, branch, OP_PUT, key, value, len, lease, 0);
}

void acme_etcd_txn_delete(acme_etcd_txn_t *t, int branch, const char *key, int prefix)
{
    add_op(t, branch, OP_DELETE, key, NULL, 0, 0, prefix);
}

void acme_etcd_txn_get(acme_etcd_txn_t *t, int branch, const char *key, int prefix)
{
    add_op(t, branch, OP_GET, key, NULL, 0, 0, prefix);
}

static apr_status_t ops_json(acme_json_t **parr, acme_etcd_t *e, const apr_array_header_t *ops,
                             apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *arr = acme_json_new_array(p);
    apr_size_t elen;
    apr_status_t rv;
    int i;

    *parr = arr;
    for (i = 0; i < ops->nelts; ++i) {
        const txn_op_t *o = &APR_ARRAY_IDX(ops, i, txn_op_t);
        acme_json_t *op = acme_json_new_object(p);
        const char *name = o->kind == OP_PUT ? "request_put"
                         : o->kind == OP_DELETE ? "request_delete_range" : "request_range";

        if ((rv = check_key(o->key, "txn", r)) != APR_SUCCESS) {
            return rv;
        }
        acme_json_sets(op, b64s(p, o->key), name, "key", NULL);
        if (o->kind == OP_PUT) {
            if ((rv = check_value(e, o->len, o->key, r)) != APR_SUCCESS) {
                return rv;
            }
            acme_json_sets(op, acme_etcd_b64_encode(p, o->value, o->len), name, "value", NULL);
            if (o->lease) {
                acme_json_sets(op, i64s(p, o->lease), name, "lease", NULL);
            }
        }
        if (o->prefix) {
            const char *end = prefix_end(p, o->key, &elen);
            acme_json_sets(op, acme_etcd_b64_encode(p, end, elen), name, "range_end", NULL);
        }
        acme_json_array_append(arr, op);
    }
    return APR_SUCCESS;
}

apr_status_t acme_etcd_txn_commit(acme_etcd_txn_result_t **pres, acme_etcd_t *e,
                                  const acme_etcd_txn_t *t, apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *cmps = acme_json_new_array(p), *arr, *ans;
    acme_json_t *resps;
    acme_etcd_txn_result_t *res = apr_pcalloc(p, sizeof(*res));
    const apr_array_header_t *ops;
    const char *what = "txn";
    apr_status_t rv;
    apr_size_t n;
    int i;

    *pres = NULL;
    for (i = 0; i < t->cmps->nelts; ++i) {
        const txn_cmp_t *c = &APR_ARRAY_IDX(t->cmps, i, txn_cmp_t);
        acme_json_t *cj = acme_json_new_object(p);

        if ((rv = check_key(c->key, what, r)) != APR_SUCCESS) {
            return rv;
        }
        if (i == 0) {
            what = apr_pstrcat(p, "txn on ", c->key, NULL);
        }
        acme_json_sets(cj, b64s(p, c->key), "key", NULL);
        acme_json_sets(cj, c->target == CMP_MOD_BELOW ? "LESS" : "EQUAL", "result", NULL);
        if (c->prefix) {
            apr_size_t elen;
            const char *end = prefix_end(p, c->key, &elen);
            acme_json_sets(cj, acme_etcd_b64_encode(p, end, elen), "range_end", NULL);
        }
        switch (c->target) {
        case CMP_CREATE:
            acme_json_sets(cj, "CREATE", "target", NULL);
            acme_json_sets(cj, i64s(p, c->rev), "create_revision", NULL);
            break;
        case CMP_MOD:
        case CMP_MOD_BELOW:
            acme_json_sets(cj, "MOD", "target", NULL);
            acme_json_sets(cj, i64s(p, c->rev), "mod_revision", NULL);
            break;
        default:
            acme_json_sets(cj, "VALUE", "target", NULL);
            acme_json_sets(cj, acme_etcd_b64_encode(p, c->value, c->len), "value", NULL);
            break;
        }
        acme_json_array_append(cmps, cj);
    }
    acme_json_setj(req, cmps, "compare", NULL);
    if ((rv = ops_json(&arr, e, t->ops[1], p, r)) != APR_SUCCESS) {
        return rv;
    }
    acme_json_setj(req, arr, "success", NULL);
    if ((rv = ops_json(&arr, e, t->ops[0], p, r)) != APR_SUCCESS) {
        return rv;
    }
    acme_json_setj(req, arr, "failure", NULL);

    rv = call(&ans, e, "/v3/kv/txn", req, what, p, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((rv = header_revision(&res->revision, ans, what, p, r)) != APR_SUCCESS) {
        return rv;
    }
    if (acme_json_has(ans, "succeeded", NULL)
        && acme_json_type(ans, "succeeded", NULL) != ACME_JSON_BOOL) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: 'succeeded' is not a boolean", what);
    }
    res->succeeded = acme_json_getb(ans, "succeeded", NULL);
    ops = t->ops[res->succeeded ? 1 : 0];
    res->ranges = apr_array_make(p, 2, sizeof(apr_array_header_t *));
    resps = acme_json_getj(ans, p, "responses", NULL);
    n = acme_json_array_len(resps);
    if ((resps && acme_json_type(resps, NULL) != ACME_JSON_ARRAY)
        || n != (apr_size_t)ops->nelts) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: %lu responses for %d operations", what,
                               (unsigned long)n, ops->nelts);
    }
    for (i = 0; i < ops->nelts; ++i) {
        const txn_op_t *o = &APR_ARRAY_IDX(ops, i, txn_op_t);
        acme_json_t *one = acme_json_array_at(resps, p, (apr_size_t)i);
        const char *name = o->kind == OP_PUT ? "response_put"
                         : o->kind == OP_DELETE ? "response_delete_range" : "response_range";
        apr_array_header_t *kvs;

        if (acme_json_type(one, name, NULL) != ACME_JSON_OBJECT) {
            return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                                   "etcd answer to %s: response %d is not a %s", what, i, name);
        }
        if (o->kind == OP_GET) {
            rv = parse_range(&kvs, NULL, e, acme_json_getj(one, p, name, NULL), o->key,
                             !o->prefix, 0, apr_pstrcat(p, what, ": get ", o->key, NULL), p, r);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            APR_ARRAY_PUSH(res->ranges, apr_array_header_t *) = kvs;
        }
    }
    *pres = res;
    return APR_SUCCESS;
}

/* ---- leases ------------------------------------------------------------------------- */

apr_status_t acme_etcd_lease_grant(apr_int64_t *pid, acme_etcd_t *e, apr_int64_t ttl,
                                   apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans;
    apr_int64_t got = 0;
    apr_status_t rv;

    *pid = 0;
    acme_json_sets(req, i64s(p, ttl), "TTL", NULL);
    rv = call(&ans, e, "/v3/lease/grant", req, "lease grant", p, r);
    if (rv == APR_SUCCESS && acme_json_has(ans, "error", NULL)) {
        rv = acme_result_set(r, APR_EGENERAL, "acme:store", "etcd lease grant: %s",
                             clean(p, acme_json_gets(ans, "error", NULL)));
    }
    if (rv == APR_SUCCESS
        && (rv = get_i64(pid, ans, "ID", "lease grant", p, r)) == APR_SUCCESS
        && (rv = get_i64(&got, ans, "TTL", "lease grant", p, r)) == APR_SUCCESS
        && (!*pid || got <= 0)) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "etcd answer to lease grant: no lease ID or TTL");
    }
    if (rv != APR_SUCCESS) {
        *pid = 0;
    }
    return rv;
}

apr_status_t acme_etcd_lease_keepalive(apr_int64_t *pttl, acme_etcd_t *e, apr_int64_t id,
                                       apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans, *res;
    const char *what = apr_psprintf(p, "lease keepalive %" APR_INT64_T_FMT, id);
    apr_int64_t got = 0;
    apr_status_t rv;

    *pttl = 0;
    acme_json_sets(req, i64s(p, id), "ID", NULL);
    /* a stream in gRPC: the gateway wraps each message as {"result": ...} */
    rv = call(&ans, e, "/v3/lease/keepalive", req, what, p, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (acme_json_has(ans, "error", NULL)) {
        return acme_result_set(r, APR_EGENERAL, "acme:store", "etcd %s: %s", what,
                               clean(p, acme_json_gets(ans, "error", "message", NULL)));
    }
    if (acme_json_type(ans, "result", NULL) != ACME_JSON_OBJECT) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: no 'result' object", what);
    }
    res = acme_json_getj(ans, p, "result", NULL);
    if ((rv = get_i64(&got, res, "ID", what, p, r)) != APR_SUCCESS
        || (rv = get_i64(pttl, res, "TTL", what, p, r)) != APR_SUCCESS) {
        return rv;
    }
    if (got != id) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: about another lease", what);
    }
    return *pttl > 0 ? APR_SUCCESS : APR_ENOENT;
}

apr_status_t acme_etcd_lease_revoke(acme_etcd_t *e, apr_int64_t id, apr_pool_t *p,
                                    acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p), *ans;
    const char *what = apr_psprintf(p, "lease revoke %" APR_INT64_T_FMT, id);
    apr_status_t rv;

    acme_json_sets(req, i64s(p, id), "ID", NULL);
    rv = call(&ans, e, "/v3/lease/revoke", req, what, p, r);
    if (rv != APR_SUCCESS && r->http_status == 404) {
        acme_result_reset(r);   /* "requested lease not found": already gone */
        rv = APR_SUCCESS;
    }
    return rv;
}

/* ---- watch ----------------------------------------------------------------------------- */

/* The gateway streams one JSON object per line: {"result": {...}} with
 * "created", then "events" as they happen, or {"error": ...}. */
typedef struct {
    acme_etcd_t *e;
    const char *prefix;
    const char *url;
    acme_etcd_watch_fn *fn;
    void *baton;
    apr_pool_t *p;          /* the line buffer */
    apr_pool_t *mp;         /* one message, cleared after it */
    acme_result_t *r;
    char *buf;
    apr_size_t len, cap, max;
    apr_size_t scanned;     /* buf[0..scanned) holds no newline */
    int created;
} watch_t;

static apr_status_t watch_event(watch_t *w, const acme_json_t *ev, const char *what)
{
    const char *type;
    acme_etcd_kv_t *kv;
    apr_status_t rv;
    int deleted;

    if (acme_json_type(ev, NULL) != ACME_JSON_OBJECT
        || acme_json_type(ev, "kv", NULL) != ACME_JSON_OBJECT) {
        return acme_result_set(w->r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: an event without a kv object", what);
    }
    type = acme_json_gets(ev, "type", NULL);
    if (acme_json_has(ev, "type", NULL) && (!type || (strcmp(type, "PUT")
                                                      && strcmp(type, "DELETE")))) {
        return acme_result_set(w->r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: an event of unknown type", what);
    }
    deleted = type && !strcmp(type, "DELETE");
    if (deleted) {
        /* a deletion carries the key and the revision of the deletion only */
        kv = apr_pcalloc(w->mp, sizeof(*kv));
        rv = parse_key(&kv->key, acme_json_getj(ev, w->mp, "kv", NULL), w->prefix, 0, what,
                       w->mp, w->r);
    }
    else {
        rv = parse_kv(&kv, w->e, acme_json_getj(ev, w->mp, "kv", NULL), w->prefix, 0, 0, what,
                      w->mp, w->r);
    }
    return rv != APR_SUCCESS ? rv : w->fn(w->baton, kv, deleted, w->mp);
}

static apr_status_t watch_message(watch_t *w, const char *line, apr_size_t n)
{
    const char *what = apr_pstrcat(w->mp, "watch ", w->prefix, "*", NULL), *err;
    acme_json_t *j, *res, *evs;
    apr_size_t i, k;
    apr_status_t rv;

    if (acme_json_parse(&j, w->mp, line, n, &err) != APR_SUCCESS
        || acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        return acme_result_set(w->r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s from %s is not a JSON object", what, w->url);
    }
    if (acme_json_has(j, "error", NULL)) {
        err = acme_json_gets(j, "error", "message", NULL);
        if (!err) err = acme_json_gets(j, "error", NULL);
        if (acme_json_getl(j, "error", "grpc_code", NULL) == 16 || acme_json_getl(j, "code", NULL)
            == 16) {
            w->e->token = NULL;   /* unauthenticated: log in again next time */
        }
        return acme_result_set(w->r, APR_EGENERAL, "acme:store", "etcd refused %s at %s: %s",
                               what, w->url, err ? clean(w->mp, err) : "an error");
    }
    if (acme_json_type(j, "result", NULL) != ACME_JSON_OBJECT) {
        return acme_result_set(w->r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s from %s: no 'result' object", what, w->url);
    }
    res = acme_json_getj(j, w->mp, "result", NULL);
    if ((rv = check_cluster(w->e, res, what, w->mp, w->r)) != APR_SUCCESS) {
        return rv;
    }
    if (acme_json_getb(res, "canceled", NULL)) {
        err = acme_json_gets(res, "cancel_reason", NULL);
        return acme_result_set(w->r, APR_EGENERAL, "acme:store", "etcd canceled %s at %s%s%s",
                               what, w->url, err ? ": " : "", err ? clean(w->mp, err) : "");
    }
    if (acme_json_getb(res, "created", NULL) && !w->created) {
        w->created = 1;
        if ((rv = w->fn(w->baton, NULL, 0, w->mp)) != APR_SUCCESS) {
            return rv;
        }
    }
    switch (acme_json_type(res, "events", NULL)) {
    case ACME_JSON_NONE:
        return APR_SUCCESS;
    case ACME_JSON_ARRAY:
        break;
    default:
        return acme_result_set(w->r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: 'events' is not an array", what);
    }
    if (!w->created) {
        return acme_result_set(w->r, APR_EINVAL, "acme:malformed-response",
                               "etcd answer to %s: events before the watch was created", what);
    }
    evs = acme_json_getj(res, w->mp, "events", NULL);
    for (i = 0, k = acme_json_array_len(evs); i < k; ++i) {
        if ((rv = watch_event(w, acme_json_array_at(evs, w->mp, i), what)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* The body as it arrives: whole lines are messages. */
static apr_status_t watch_data(void *baton, const char *data, apr_size_t n)
{
    watch_t *w = baton;
    apr_size_t start = 0, i;
    apr_status_t rv = APR_SUCCESS;

    if (n > w->max || w->len > w->max - n) {
        return acme_result_set(w->r, APR_ENOSPC, "acme:malformed-response", "etcd watch at %s: "
                               "a message larger than %lu bytes", w->url,
                               (unsigned long)w->max);
    }
    if (w->len + n > w->cap) {
        apr_size_t ncap = w->cap ? w->cap * 2 : 8192;
        char *nbuf;
        while (ncap < w->len + n) ncap *= 2;
        nbuf = apr_palloc(w->p, ncap);
        if (w->len) memcpy(nbuf, w->buf, w->len);
        w->buf = nbuf;
        w->cap = ncap;
    }
    memcpy(w->buf + w->len, data, n);
    w->len += n;
    for (i = w->scanned; i < w->len && rv == APR_SUCCESS; ++i) {
        if (w->buf[i] == '\n') {
            if (i > start) {
                rv = watch_message(w, w->buf + start, i - start);
                apr_pool_clear(w->mp);
            }
            start = i + 1;
        }
    }
    memmove(w->buf, w->buf + start, w->len - start);
    w->len -= start;
    w->scanned = w->len;
    return rv;
}

apr_status_t acme_etcd_watch(acme_etcd_t *e, const char *prefix, apr_int64_t start_revision,
                             apr_interval_time_t duration, acme_etcd_watch_fn *fn, void *baton,
                             apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *req = acme_json_new_object(p);
    const char *what = apr_pstrcat(p, "watch ", prefix, "*", NULL), *end, *body, *last = "";
    acme_http_request_t hr;
    acme_http_response_t *resp;
    apr_table_t *hdrs;
    watch_t w;
    apr_size_t elen;
    apr_status_t rv;
    int n = e->endpoints->nelts, tries, idx, retry;

    if ((rv = check_key(prefix, what, r)) != APR_SUCCESS) {
        return rv;
    }
    end = prefix_end(p, prefix, &elen);
    acme_json_sets(req, b64s(p, prefix), "create_request", "key", NULL);
    acme_json_sets(req, acme_etcd_b64_encode(p, end, elen), "create_request", "range_end", NULL);
    if (start_revision > 0) {
        acme_json_sets(req, i64s(p, start_revision), "create_request", "start_revision", NULL);
    }
    body = acme_json_dump(req, p, 1);
    memset(&w, 0, sizeof(w));
    w.e = e;
    w.prefix = prefix;
    w.fn = fn;
    w.baton = baton;
    w.p = p;
    w.r = r;
    w.max = e->max_value * 2 + 64 * 1024;
    apr_pool_create(&w.mp, p);
#if APR_HAS_THREADS
    apr_thread_mutex_lock(e->mutex);   /* the client is the watch's for its duration */
#endif
    for (tries = 0, rv = APR_EGENERAL; tries < n && !w.created && !is_stopped(e); ++tries) {
        idx = (e->good + tries) % n;
        if (e->user && !e->token && authenticate(&retry, e, idx, p, r) != APR_SUCCESS) {
            if (!retry) break;
            last = r->detail;
            continue;
        }
        w.url = apr_pstrcat(p, APR_ARRAY_IDX(e->endpoints, idx, const char *), "/v3/watch",
                            NULL);
        w.len = w.scanned = 0;
        hdrs = apr_table_make(p, 2);
        apr_table_setn(hdrs, "Content-Type", "application/json");
        if (e->token) apr_table_setn(hdrs, "Authorization", e->token);
        memset(&hr, 0, sizeof(hr));
        hr.method = "POST";
        hr.url = w.url;
        hr.headers = hdrs;
        hr.body = body;
        hr.body_len = strlen(body);
        hr.on_data = watch_data;
        hr.on_data_baton = &w;
        hr.timeout = duration;
        rv = e->http->perform(e->http, &resp, &hr, p, r);
        if (rv == APR_SUCCESS && resp->status != 200) {
            rv = acme_result_set(r, APR_EGENERAL, resp->status >= 500 ? "acme:network"
                                 : "acme:store", "etcd %s at %s: HTTP %d", what, w.url,
                                 resp->status);
            if (resp->status == 401) e->token = NULL;
        }
        if (w.created) {
            e->good = idx;
        }
        else if (rv == APR_SUCCESS) {
            rv = acme_result_set(r, APR_EGENERAL, "acme:network", "etcd %s at %s: the stream "
                                 "ended before the watch was created", what, w.url);
        }
        last = r->detail;
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(e->mutex);
#endif
    apr_pool_destroy(w.mp);
    if (is_stopped(e)) {
        return acme_result_set(r, APR_EINTR, "acme:stopped", "etcd %s: aborted, the server "
                               "is stopping", what);
    }
    if (w.created && (rv == APR_SUCCESS || rv == APR_TIMEUP)) {
        return APR_SUCCESS;   /* the stream ran its time (or the member closed it) */
    }
    if (!w.created && tries >= n && rv != APR_SUCCESS) {
        rv = acme_result_set(r, rv, "acme:network", "etcd %s: no endpoint answered (last: %s)",
                             what, last);
    }
    if (e->errors) {
        apr_atomic_inc32(e->errors);
    }
    return rv;
}
