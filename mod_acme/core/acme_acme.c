/* acme_acme.c: ACME protocol basics: parsing the CA's objects, checking
 * responses, the directory, nonces, signed POSTs and accounts (RFC 8555). */
#include <string.h>

#include <stdlib.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_date.h>
#include <apr_hash.h>
#include <apr_thread_mutex.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_http.h"
#include "acme_acme.h"
#include "acme_renew.h"

#define NONCE_MAX 256
#define NONCE_RETRIES_DEFAULT 10
/* What the clients of one process share per CA (acme_ca_shared_t). */
#define SHARED_DIR_TTL apr_time_from_sec(600)
#define SHARED_NONCES 32
#define SHARED_NONCE_TTL apr_time_from_sec(60)
#define POLL_GUESS_FIRST apr_time_from_msec(50)   /* nothing learned yet */
#define POLL_GUESS_MIN apr_time_from_msec(10)
#define POLL_GUESS_MAX apr_time_from_sec(5)
/* A Retry-After beyond this is nonsense, not a plan. */
#define RETRY_AFTER_MAX_SEC (400L * 24 * 3600)

struct acme_client_t {
    apr_pool_t *pool;
    acme_http_t *http;
    const char *dir_url;
    acme_directory_t *dir;
    const acme_pkey_t *key;
    const char *kid;
    int nonce_retries;
    volatile apr_uint32_t *abort;  /* set: stop waiting between polls */
    acme_client_wait_cb *wait_cb;  /* told of waits between polls, may be NULL */
    void *wait_baton;
    struct ca_entry_t *shared;     /* NULL: this client keeps everything itself */
    apr_interval_time_t guess[ACME_POLL_KINDS];
    /* Fixed storage: a long-lived client must not grow its pool per request. */
    char nonce[NONCE_MAX + 1];
};

/* One CA in acme_ca_shared_t, guarded by its mutex. */
typedef struct ca_entry_t {
    acme_ca_shared_t *owner;
    char *dir_text;                /* malloc'd: the directory as the CA sent it */
    apr_time_t dir_at;
    struct {
        char value[NONCE_MAX + 1];
        apr_time_t at;
    } nonces[SHARED_NONCES];
    int nnonces;
    apr_interval_time_t guess[ACME_POLL_KINDS];
} ca_entry_t;

struct acme_ca_shared_t {
    apr_pool_t *pool;
    apr_thread_mutex_t *mutex;
    apr_hash_t *cas;               /* directory URL -> ca_entry_t */
};

/* ---- states ---------------------------------------------------------------- */

static const char *const state_names[] = {
    "unknown", "pending", "ready", "processing", "valid",
    "invalid", "deactivated", "expired", "revoked"
};

acme_state_t acme_state_parse(const char *s)
{
    int i;

    if (!s) {
        return ACME_STATE_UNKNOWN;
    }
    for (i = 1; i < (int)(sizeof(state_names) / sizeof(state_names[0])); ++i) {
        if (!strcmp(s, state_names[i])) {
            return (acme_state_t)i;
        }
    }
    return ACME_STATE_UNKNOWN;
}

const char *acme_state_name(acme_state_t st)
{
    if ((int)st < 0 || (int)st >= (int)(sizeof(state_names) / sizeof(state_names[0]))) {
        return "unknown";
    }
    return state_names[st];
}

/* ---- JSON member helpers ------------------------------------------------------ */

static apr_status_t bad_member(acme_result_t *r, const char *what, const char *member,
                               const char *why)
{
    return acme_result_set(r, APR_EINVAL, "acme:malformed-response", "%s: member '%s' %s",
                           what, member, why);
}

static int is_url(const char *s)
{
    return s && (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7)) && !strchr(s, ' ');
}

/* Optional string: absent is fine, any other type is an error. */
static apr_status_t opt_str(const char **pv, apr_pool_t *p, const acme_json_t *j,
                            const char *key, const char *what, acme_result_t *r)
{
    acme_json_type_t t = acme_json_type(j, key, NULL);

    *pv = NULL;
    if (t == ACME_JSON_NONE || t == ACME_JSON_NULL) {
        return APR_SUCCESS;
    }
    if (t != ACME_JSON_STRING) {
        return bad_member(r, what, key, "is not a string");
    }
    *pv = apr_pstrdup(p, acme_json_gets(j, key, NULL));
    return APR_SUCCESS;
}

static apr_status_t req_str(const char **pv, apr_pool_t *p, const acme_json_t *j,
                            const char *key, const char *what, acme_result_t *r)
{
    apr_status_t rv = opt_str(pv, p, j, key, what, r);

    if (rv == APR_SUCCESS && !*pv) {
        rv = bad_member(r, what, key, "is missing");
    }
    return rv;
}

static apr_status_t opt_url(const char **pv, apr_pool_t *p, const acme_json_t *j,
                            const char *key, const char *what, acme_result_t *r)
{
    apr_status_t rv = opt_str(pv, p, j, key, what, r);

    if (rv == APR_SUCCESS && *pv && !is_url(*pv)) {
        rv = bad_member(r, what, key, "is not an http(s) URL");
    }
    return rv;
}

static apr_status_t req_url(const char **pv, apr_pool_t *p, const acme_json_t *j,
                            const char *key, const char *what, acme_result_t *r)
{
    apr_status_t rv = opt_url(pv, p, j, key, what, r);

    if (rv == APR_SUCCESS && !*pv) {
        rv = bad_member(r, what, key, "is missing");
    }
    return rv;
}

static apr_status_t opt_time(apr_time_t *pt, const acme_json_t *j, const char *key,
                             const char *what, acme_result_t *r)
{
    const char *s;
    apr_status_t rv;

    *pt = 0;
    rv = opt_str(&s, r->pool, j, key, what, r);
    if (rv == APR_SUCCESS && s && acme_time_parse_rfc3339(pt, s) != APR_SUCCESS) {
        rv = bad_member(r, what, key, "is not an RFC 3339 timestamp");
    }
    return rv;
}

static apr_status_t req_state(acme_state_t *pst, const acme_json_t *j, const char *what,
                              acme_result_t *r)
{
    const char *s;
    apr_status_t rv;

    rv = req_str(&s, r->pool, j, "status", what, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pst = acme_state_parse(s);
    if (*pst == ACME_STATE_UNKNOWN) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "%s: unknown status '%s'", what, s);
    }
    return APR_SUCCESS;
}

static apr_status_t opt_bool(int *pb, const acme_json_t *j, const char *key, const char *what,
                             acme_result_t *r)
{
    acme_json_type_t t = acme_json_type(j, key, NULL);

    *pb = 0;
    if (t == ACME_JSON_NONE || t == ACME_JSON_NULL) {
        return APR_SUCCESS;
    }
    if (t != ACME_JSON_BOOL) {
        return bad_member(r, what, key, "is not a boolean");
    }
    *pb = acme_json_getb(j, key, NULL);
    return APR_SUCCESS;
}

static apr_status_t opt_problem(acme_json_t **pj, apr_pool_t *p, const acme_json_t *j,
                                const char *key, const char *what, acme_result_t *r)
{
    acme_json_type_t t = acme_json_type(j, key, NULL);

    *pj = NULL;
    if (t == ACME_JSON_NONE || t == ACME_JSON_NULL) {
        return APR_SUCCESS;
    }
    if (t != ACME_JSON_OBJECT) {
        return bad_member(r, what, key, "is not an object");
    }
    *pj = acme_json_getj(j, p, key, NULL);
    return APR_SUCCESS;
}

static apr_status_t parse_identifier(acme_identifier_t *id, apr_pool_t *p, const acme_json_t *j,
                                     const char *what, acme_result_t *r)
{
    apr_status_t rv;

    if (acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "%s: identifier is not an object", what);
    }
    rv = req_str(&id->type, p, j, "type", what, r);
    if (rv == APR_SUCCESS) {
        rv = req_str(&id->value, p, j, "value", what, r);
    }
    return rv;
}

/* ---- parsers ------------------------------------------------------------------ */

typedef struct {
    apr_table_t *profiles;
    int bad;
    const char *bad_key;
} profiles_ctx;

static int collect_profile(void *baton, const char *key, acme_json_t *value)
{
    profiles_ctx *ctx = baton;
    const char *desc = acme_json_gets(value, NULL);

    if (!desc) {
        ctx->bad = 1;
        ctx->bad_key = key;
        return 1;
    }
    apr_table_set(ctx->profiles, key, desc);
    return 0;
}

apr_status_t acme_directory_parse(acme_directory_t **pdir, apr_pool_t *p, const acme_json_t *j,
                                  const char *url, acme_result_t *r)
{
    const char *what = "directory";
    acme_directory_t *d = apr_pcalloc(p, sizeof(*d));
    acme_json_t *meta = NULL;
    apr_status_t rv;

    *pdir = NULL;
    d->url = apr_pstrdup(p, url);
    d->profiles = apr_table_make(p, 4);
    if (!j || acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "directory %s: not a JSON object", url);
        goto leave;
    }
    if ((rv = req_url(&d->new_nonce, p, j, "newNonce", what, r)) != APR_SUCCESS
        || (rv = req_url(&d->new_account, p, j, "newAccount", what, r)) != APR_SUCCESS
        || (rv = req_url(&d->new_order, p, j, "newOrder", what, r)) != APR_SUCCESS
        || (rv = opt_url(&d->new_authz, p, j, "newAuthz", what, r)) != APR_SUCCESS
        || (rv = opt_url(&d->revoke_cert, p, j, "revokeCert", what, r)) != APR_SUCCESS
        || (rv = opt_url(&d->key_change, p, j, "keyChange", what, r)) != APR_SUCCESS
        || (rv = opt_url(&d->renewal_info, p, j, "renewalInfo", what, r)) != APR_SUCCESS) {
        goto leave;
    }
    switch (acme_json_type(j, "meta", NULL)) {
    case ACME_JSON_NONE:
    case ACME_JSON_NULL:
        break;
    case ACME_JSON_OBJECT:
        meta = acme_json_getj(j, p, "meta", NULL);
        break;
    default:
        rv = bad_member(r, what, "meta", "is not an object");
        goto leave;
    }
    if (meta) {
        const char *mwhat = "directory meta";

        if ((rv = opt_str(&d->terms_of_service, p, meta, "termsOfService", mwhat, r))
                != APR_SUCCESS
            || (rv = opt_str(&d->website, p, meta, "website", mwhat, r)) != APR_SUCCESS
            || (rv = opt_bool(&d->eab_required, meta, "externalAccountRequired", mwhat, r))
                != APR_SUCCESS) {
            goto leave;
        }
        switch (acme_json_type(meta, "profiles", NULL)) {
        case ACME_JSON_NONE:
        case ACME_JSON_NULL:
            break;
        case ACME_JSON_OBJECT: {
            profiles_ctx ctx;

            memset(&ctx, 0, sizeof(ctx));
            ctx.profiles = d->profiles;
            acme_json_iter(acme_json_getj(meta, p, "profiles", NULL), p, collect_profile, &ctx);
            if (ctx.bad) {
                rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                                     "directory meta: profile '%s' has no string description",
                                     ctx.bad_key);
                goto leave;
            }
            break;
        }
        default:
            rv = bad_member(r, mwhat, "profiles", "is not an object");
            goto leave;
        }
    }
    *pdir = d;
leave:
    return rv;
}

apr_status_t acme_challenge_parse(acme_challenge_t **pch, apr_pool_t *p, const acme_json_t *j,
                                  const char *what, acme_result_t *r)
{
    acme_challenge_t *ch = apr_pcalloc(p, sizeof(*ch));
    apr_status_t rv;

    *pch = NULL;
    if (!j || acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: challenge is not a JSON object", what);
        goto leave;
    }
    if ((rv = req_str(&ch->type, p, j, "type", what, r)) != APR_SUCCESS
        || (rv = req_url(&ch->url, p, j, "url", what, r)) != APR_SUCCESS
        || (rv = req_state(&ch->status, j, what, r)) != APR_SUCCESS
        || (rv = opt_str(&ch->token, p, j, "token", what, r)) != APR_SUCCESS
        || (rv = opt_problem(&ch->error, p, j, "error", what, r)) != APR_SUCCESS) {
        goto leave;
    }
    /* The token names a file and an URL path: accept only what RFC 8555
     * allows (base64url), so a hostile CA cannot inject "../" or headers. */
    if (ch->token && !acme_b64url_is_token(ch->token, 256)) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: challenge %s has an invalid token", what, ch->type);
        goto leave;
    }
    if (!ch->token && (!strcmp(ch->type, "http-01") || !strcmp(ch->type, "dns-01")
                       || !strcmp(ch->type, "tls-alpn-01"))) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: challenge %s has no token", what, ch->type);
        goto leave;
    }
    *pch = ch;
leave:
    return rv;
}

apr_status_t acme_authz_parse(acme_authz_t **pauthz, apr_pool_t *p, const acme_json_t *j,
                              const char *url, const char *what, acme_result_t *r)
{
    acme_authz_t *a = apr_pcalloc(p, sizeof(*a));
    acme_json_t *id, *chs;
    apr_size_t i, n;
    apr_status_t rv;

    *pauthz = NULL;
    a->url = url ? apr_pstrdup(p, url) : NULL;
    a->challenges = apr_array_make(p, 3, sizeof(acme_challenge_t *));
    if (!j || acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: not a JSON object", what);
        goto leave;
    }
    id = acme_json_getj(j, p, "identifier", NULL);
    if (!id) {
        rv = bad_member(r, what, "identifier", "is missing");
        goto leave;
    }
    if ((rv = parse_identifier(&a->identifier, p, id, what, r)) != APR_SUCCESS
        || (rv = req_state(&a->status, j, what, r)) != APR_SUCCESS
        || (rv = opt_bool(&a->wildcard, j, "wildcard", what, r)) != APR_SUCCESS
        || (rv = opt_time(&a->expires, j, "expires", what, r)) != APR_SUCCESS) {
        goto leave;
    }
    if (acme_json_type(j, "challenges", NULL) != ACME_JSON_ARRAY) {
        rv = bad_member(r, what, "challenges",
                        acme_json_has(j, "challenges", NULL) ? "is not an array" : "is missing");
        goto leave;
    }
    chs = acme_json_getj(j, p, "challenges", NULL);
    n = acme_json_array_len(chs);
    for (i = 0; i < n; ++i) {
        acme_challenge_t *ch;

        rv = acme_challenge_parse(&ch, p, acme_json_array_at(chs, p, i), what, r);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        APR_ARRAY_PUSH(a->challenges, acme_challenge_t *) = ch;
    }
    *pauthz = a;
leave:
    return rv;
}

apr_status_t acme_order_parse(acme_order_t **porder, apr_pool_t *p, const acme_json_t *j,
                              const char *url, const char *what, acme_result_t *r)
{
    acme_order_t *o = apr_pcalloc(p, sizeof(*o));
    acme_json_t *ids;
    apr_size_t i, n;
    apr_status_t rv;

    *porder = NULL;
    o->url = url ? apr_pstrdup(p, url) : NULL;
    o->identifiers = apr_array_make(p, 3, sizeof(acme_identifier_t *));
    if (!j || acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: not a JSON object", what);
        goto leave;
    }
    if ((rv = req_state(&o->status, j, what, r)) != APR_SUCCESS
        || (rv = opt_time(&o->expires, j, "expires", what, r)) != APR_SUCCESS
        || (rv = req_url(&o->finalize, p, j, "finalize", what, r)) != APR_SUCCESS
        || (rv = opt_url(&o->certificate, p, j, "certificate", what, r)) != APR_SUCCESS
        || (rv = opt_str(&o->profile, p, j, "profile", what, r)) != APR_SUCCESS
        || (rv = opt_str(&o->replaces, p, j, "replaces", what, r)) != APR_SUCCESS
        || (rv = opt_problem(&o->error, p, j, "error", what, r)) != APR_SUCCESS) {
        goto leave;
    }
    if (acme_json_type(j, "identifiers", NULL) != ACME_JSON_ARRAY) {
        rv = bad_member(r, what, "identifiers",
                        acme_json_has(j, "identifiers", NULL) ? "is not an array" : "is missing");
        goto leave;
    }
    ids = acme_json_getj(j, p, "identifiers", NULL);
    n = acme_json_array_len(ids);
    for (i = 0; i < n; ++i) {
        acme_identifier_t *id = apr_pcalloc(p, sizeof(*id));

        rv = parse_identifier(id, p, acme_json_array_at(ids, p, i), what, r);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        APR_ARRAY_PUSH(o->identifiers, acme_identifier_t *) = id;
    }
    if (acme_json_type(j, "authorizations", NULL) != ACME_JSON_ARRAY) {
        rv = bad_member(r, what, "authorizations",
                        acme_json_has(j, "authorizations", NULL) ? "is not an array"
                                                                 : "is missing");
        goto leave;
    }
    if (acme_json_getsa(&o->authorizations, j, p, "authorizations", NULL) != APR_SUCCESS) {
        rv = bad_member(r, what, "authorizations", "holds a non-string");
        goto leave;
    }
    for (i = 0; i < (apr_size_t)o->authorizations->nelts; ++i) {
        if (!is_url(APR_ARRAY_IDX(o->authorizations, i, const char *))) {
            rv = bad_member(r, what, "authorizations", "holds a non-URL");
            goto leave;
        }
    }
    if (o->status == ACME_STATE_VALID && !o->certificate) {
        rv = bad_member(r, what, "certificate", "is missing in a valid order");
        goto leave;
    }
    *porder = o;
leave:
    return rv;
}

apr_status_t acme_account_parse(acme_account_t **pacct, apr_pool_t *p, const acme_json_t *j,
                                const char *url, const char *what, acme_result_t *r)
{
    acme_account_t *a = apr_pcalloc(p, sizeof(*a));
    acme_json_type_t t;
    apr_status_t rv;

    *pacct = NULL;
    a->url = url ? apr_pstrdup(p, url) : NULL;
    if (!j || acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: not a JSON object", what);
        goto leave;
    }
    if ((rv = req_state(&a->status, j, what, r)) != APR_SUCCESS
        || (rv = opt_str(&a->orders, p, j, "orders", what, r)) != APR_SUCCESS) {
        goto leave;
    }
    t = acme_json_type(j, "contact", NULL);
    if (t != ACME_JSON_NONE && t != ACME_JSON_NULL && t != ACME_JSON_ARRAY) {
        rv = bad_member(r, what, "contact", "is not an array");
        goto leave;
    }
    if (acme_json_getsa(&a->contact, j, p, "contact", NULL) != APR_SUCCESS) {
        rv = bad_member(r, what, "contact", "holds a non-string");
        goto leave;
    }
    *pacct = a;
leave:
    return rv;
}

/* ---- header parsers ----------------------------------------------------------- */

apr_status_t acme_retry_after_parse(apr_time_t *pt, const char *value, apr_time_t now)
{
    const char *s, *e;
    char buf[64];
    apr_time_t t;

    *pt = 0;
    if (!value) {
        return APR_EINVAL;
    }
    for (s = value; apr_isspace(*s); ++s) {
    }
    for (e = s + strlen(s); e > s && apr_isspace(e[-1]); --e) {
    }
    if (e == s) {
        return APR_EINVAL;
    }
    if (apr_isdigit(*s)) {
        const char *c;
        apr_int64_t secs = 0;

        for (c = s; c < e; ++c) {
            if (!apr_isdigit(*c)) {
                break;
            }
            secs = secs * 10 + (*c - '0');
            if (secs > RETRY_AFTER_MAX_SEC) {
                return APR_EINVAL;
            }
        }
        if (c == e) {
            *pt = now + apr_time_from_sec(secs);
            return APR_SUCCESS;
        }
        return APR_EINVAL; /* "120abc", "1.5": HTTP dates never start with a digit */
    }
    if ((apr_size_t)(e - s) >= sizeof(buf)) {
        return APR_EINVAL;
    }
    memcpy(buf, s, (apr_size_t)(e - s));
    buf[e - s] = '\0';
    t = apr_date_parse_http(buf);
    if (t == APR_DATE_BAD) {
        return APR_EINVAL;
    }
    if (t < now) {
        t = now;
    }
    if (t - now > apr_time_from_sec(RETRY_AFTER_MAX_SEC)) {
        return APR_EINVAL;
    }
    *pt = t;
    return APR_SUCCESS;
}

/* scheme://authority of an absolute URL, or NULL */
static const char *url_origin(apr_pool_t *p, const char *url)
{
    const char *s, *e;

    if (!url || !(s = strstr(url, "://"))) {
        return NULL;
    }
    e = strchr(s + 3, '/');
    return e ? apr_pstrmemdup(p, url, (apr_size_t)(e - url)) : apr_pstrdup(p, url);
}

static int rel_matches(const char *rels, apr_size_t len, const char *rel)
{
    /* rel may hold several space-separated relation types (RFC 8288 3.3) */
    apr_size_t i = 0, start, rlen = strlen(rel);

    while (i < len) {
        while (i < len && apr_isspace(rels[i])) {
            ++i;
        }
        start = i;
        while (i < len && !apr_isspace(rels[i])) {
            ++i;
        }
        if (i - start == rlen && !strncasecmp(rels + start, rel, rlen)) {
            return 1;
        }
    }
    return 0;
}

apr_status_t acme_link_parse(apr_array_header_t **purls, apr_pool_t *p, const char *value,
                             const char *rel, const char *base_url)
{
    const char *s = value, *target, *tend, *name, *nend, *v, *vend;
    int matched;

    if (!*purls) {
        *purls = apr_array_make(p, 2, sizeof(const char *));
    }
    if (!value) {
        return APR_SUCCESS;
    }
    while (*s) {
        while (*s == ',' || apr_isspace(*s)) {
            ++s;
        }
        if (!*s) {
            break;
        }
        if (*s != '<') {
            /* junk: skip to the next link */
            while (*s && *s != ',') {
                ++s;
            }
            continue;
        }
        target = s + 1;
        tend = strchr(target, '>');
        if (!tend) {
            break; /* unterminated target: nothing after it can be trusted */
        }
        s = tend + 1;
        matched = 0;
        /* parameters: ; name [= token | quoted-string] */
        for (;;) {
            while (apr_isspace(*s)) {
                ++s;
            }
            if (*s != ';') {
                break;
            }
            ++s;
            while (apr_isspace(*s)) {
                ++s;
            }
            name = s;
            while (*s && *s != '=' && *s != ';' && *s != ',' && !apr_isspace(*s)) {
                ++s;
            }
            nend = s;
            while (apr_isspace(*s)) {
                ++s;
            }
            v = vend = s;
            if (*s == '=') {
                ++s;
                while (apr_isspace(*s)) {
                    ++s;
                }
                if (*s == '"') {
                    v = ++s;
                    while (*s && *s != '"') {
                        if (*s == '\\' && s[1]) {
                            ++s;
                        }
                        ++s;
                    }
                    vend = s;
                    if (*s == '"') {
                        ++s;
                    }
                }
                else {
                    v = s;
                    while (*s && *s != ';' && *s != ',' && !apr_isspace(*s)) {
                        ++s;
                    }
                    vend = s;
                }
            }
            if (nend - name == 3 && !strncasecmp(name, "rel", 3)
                && rel_matches(v, (apr_size_t)(vend - v), rel)) {
                matched = 1;
            }
        }
        /* skip anything unparsed up to the next link */
        while (*s && *s != ',') {
            ++s;
        }
        if (matched && tend > target) {
            const char *url = apr_pstrmemdup(p, target, (apr_size_t)(tend - target));

            if (!is_url(url)) {
                const char *origin = url_origin(p, base_url);

                url = (url[0] == '/' && url[1] != '/' && origin)
                    ? apr_pstrcat(p, origin, url, NULL) : NULL;
            }
            if (url) {
                APR_ARRAY_PUSH(*purls, const char *) = url;
            }
        }
    }
    return APR_SUCCESS;
}

typedef struct {
    apr_array_header_t *urls;
    apr_pool_t *p;
    const char *rel;
    const char *base;
} links_ctx;

static int collect_link(void *baton, const char *key, const char *value)
{
    links_ctx *ctx = baton;

    (void)key;
    acme_link_parse(&ctx->urls, ctx->p, value, ctx->rel, ctx->base);
    return 1;
}

apr_status_t acme_links_get(apr_array_header_t **purls, apr_pool_t *p, apr_table_t *headers,
                            const char *rel, const char *base_url)
{
    links_ctx ctx;

    ctx.urls = apr_array_make(p, 2, sizeof(const char *));
    ctx.p = p;
    ctx.rel = rel;
    ctx.base = base_url;
    if (headers) {
        apr_table_do(collect_link, &ctx, headers, "Link", NULL);
    }
    *purls = ctx.urls;
    return APR_SUCCESS;
}

/* ---- challenge selection ------------------------------------------------------- */

apr_status_t acme_challenge_select(const acme_challenge_t **pch, const acme_authz_t *authz,
                                   const apr_array_header_t *allowed, acme_result_t *r)
{
    const acme_challenge_t *ch;
    const char *type, *offered = "";
    int i, k;

    *pch = NULL;
    /* A validation already under way (a resumed order) must not be
     * abandoned for another type: the CA would wait for it. */
    for (k = 0; k < authz->challenges->nelts; ++k) {
        ch = APR_ARRAY_IDX(authz->challenges, k, const acme_challenge_t *);
        if (ch->status != ACME_STATE_PROCESSING) {
            continue;
        }
        for (i = 0; allowed && i < allowed->nelts; ++i) {
            if (!strcmp(APR_ARRAY_IDX(allowed, i, const char *), ch->type)) {
                *pch = ch;
                return APR_SUCCESS;
            }
        }
    }
    for (i = 0; allowed && i < allowed->nelts; ++i) {
        type = APR_ARRAY_IDX(allowed, i, const char *);
        if (authz->wildcard && strcmp(type, "dns-01")) {
            continue; /* RFC 8555 7.1.3: wildcards validate only over DNS */
        }
        for (k = 0; k < authz->challenges->nelts; ++k) {
            ch = APR_ARRAY_IDX(authz->challenges, k, const acme_challenge_t *);
            if (!strcmp(ch->type, type)) {
                *pch = ch;
                return APR_SUCCESS;
            }
        }
    }
    for (k = 0; k < authz->challenges->nelts; ++k) {
        ch = APR_ARRAY_IDX(authz->challenges, k, const acme_challenge_t *);
        offered = apr_pstrcat(r->pool, offered, k ? ", " : "", ch->type, NULL);
    }
    return acme_result_set(r, APR_ENOENT, "acme:config",
                           "no usable challenge for %s%s: the CA offers [%s], allowed are [%s]%s",
                           authz->wildcard ? "*." : "", authz->identifier.value, offered,
                           allowed && allowed->nelts ? apr_array_pstrcat(r->pool, allowed, ',')
                                                     : "",
                           authz->wildcard ? " (wildcards need dns-01)" : "");
}

/* ---- responses ------------------------------------------------------------------ */

/* The media type without parameters, lower-cased; "" if absent. */
const char *acme_response_media_type(apr_pool_t *p, const acme_http_response_t *resp)
{
    const char *ct = apr_table_get(resp->headers, "Content-Type");
    const char *e;
    char *mt, *c;

    if (!ct) {
        return "";
    }
    while (apr_isspace(*ct)) {
        ++ct;
    }
    e = strchr(ct, ';');
    if (!e) {
        e = ct + strlen(ct);
    }
    while (e > ct && apr_isspace(e[-1])) {
        --e;
    }
    mt = apr_pstrmemdup(p, ct, (apr_size_t)(e - ct));
    for (c = mt; *c; ++c) {
        *c = (char)apr_tolower(*c);
    }
    return mt;
}

apr_time_t acme_response_retry_after(const acme_http_response_t *resp, apr_time_t now)
{
    const char *ra = apr_table_get(resp->headers, "Retry-After");
    apr_time_t t = 0;

    if (!ra || acme_retry_after_parse(&t, ra, now) != APR_SUCCESS) {
        t = 0;
    }
    return t;
}

static void note_retry_after(const acme_http_response_t *resp, acme_result_t *r)
{
    apr_time_t t = acme_response_retry_after(resp, apr_time_now());

    if (t) {
        r->retry_after = t;
    }
}

apr_status_t acme_renewal_info_parse(acme_ari_window_t *pw, apr_time_t *pretry,
                                     const acme_http_response_t *resp, const char *url,
                                     apr_time_t now, apr_pool_t *p, acme_result_t *r)
{
    const char *s, *e, *jerr;
    acme_json_t *answer;

    if (resp->status != 200) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "renewalInfo %s answered HTTP %d", url, resp->status);
    }
    if (acme_json_parse(&answer, p, resp->body, resp->body_len, &jerr) != APR_SUCCESS
        || !(s = acme_json_gets(answer, "suggestedWindow", "start", NULL))
        || !(e = acme_json_gets(answer, "suggestedWindow", "end", NULL))
        || acme_time_parse_rfc3339(&pw->start, s) != APR_SUCCESS
        || acme_time_parse_rfc3339(&pw->end, e) != APR_SUCCESS || pw->end < pw->start) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "renewalInfo %s: the answer has no valid suggestedWindow", url);
    }
    pw->explanation_url = acme_json_gets(answer, "explanationURL", NULL);
    *pretry = acme_response_retry_after(resp, now);
    return APR_SUCCESS;
}

apr_status_t acme_response_check(const acme_http_response_t *resp, apr_pool_t *p,
                                 const char *what, acme_result_t *r)
{
    const char *mt, *perr = NULL;
    acme_json_t *j = NULL;
    apr_status_t rv = APR_SUCCESS;

    if (resp->status >= 200 && resp->status < 300) {
        goto leave;
    }
    mt = acme_response_media_type(p, resp);
    if ((!strcmp(mt, "application/problem+json") || !strcmp(mt, "application/json"))
        && acme_json_parse(&j, p, resp->body, resp->body_len, &perr) == APR_SUCCESS) {
        acme_result_reset(r);
        if (acme_result_from_problem(r, j, resp->status) == APR_SUCCESS) {
            /* 404 / accountDoesNotExist are "not there", callers test for it */
            rv = (resp->status == 404
                  || !strcmp(acme_problem_short(r->problem), "accountDoesNotExist"))
                ? APR_ENOENT : APR_EGENERAL;
            r->status = rv;
            r->detail = apr_psprintf(r->pool, "%s: %s", what,
                                     r->detail ? r->detail : "the CA reports a problem");
            note_retry_after(resp, r);
            goto leave;
        }
    }
    rv = acme_result_set(r, resp->status == 404 ? APR_ENOENT : APR_EGENERAL,
                         "acme:malformed-response", "%s: HTTP %d from %s (%s%s)", what,
                         resp->status, resp->effective_url, *mt ? mt : "no content type",
                         j ? ", not a problem document"
                           : (perr ? apr_pstrcat(p, ", ", perr, NULL) : ""));
    r->http_status = resp->status;
    note_retry_after(resp, r);
leave:
    return rv;
}

apr_status_t acme_response_json(acme_json_t **pjson, apr_pool_t *p,
                                const acme_http_response_t *resp, const char *what,
                                acme_result_t *r)
{
    const char *mt, *perr = NULL;
    acme_json_t *j = NULL;
    apr_status_t rv;

    *pjson = NULL;
    rv = acme_response_check(resp, p, what, r);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    mt = acme_response_media_type(p, resp);
    if (strcmp(mt, "application/json")) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: response is not JSON (%s)", what,
                             *mt ? mt : "no content type");
        r->http_status = resp->status;
        goto leave;
    }
    if (acme_json_parse(&j, p, resp->body, resp->body_len, &perr) != APR_SUCCESS) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: response is not valid JSON: %s", what, perr);
        r->http_status = resp->status;
        goto leave;
    }
    if (acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "%s: response is not a JSON object", what);
        r->http_status = resp->status;
        goto leave;
    }
    *pjson = j;
leave:
    return rv;
}

/* ---- the client ------------------------------------------------------------------- */

apr_status_t acme_client_create(acme_client_t **pclient, apr_pool_t *p, const char *dir_url,
                                acme_http_t *http)
{
    acme_client_t *c = apr_pcalloc(p, sizeof(*c));

    c->pool = p;
    c->http = http;
    c->dir_url = apr_pstrdup(p, dir_url);
    c->nonce_retries = NONCE_RETRIES_DEFAULT;
    c->guess[ACME_POLL_AUTHZ] = c->guess[ACME_POLL_CERT] = POLL_GUESS_FIRST;
    *pclient = c;
    return is_url(dir_url) ? APR_SUCCESS : APR_EINVAL;
}

void acme_client_set_account(acme_client_t *c, const acme_pkey_t *key, const char *kid)
{
    c->key = key;
    if (!kid) {
        c->kid = NULL;
    }
    else if (!c->kid || strcmp(c->kid, kid)) {
        c->kid = apr_pstrdup(c->pool, kid);
    }
}

const char *acme_client_account_url(const acme_client_t *c)
{
    return c->kid;
}

const acme_pkey_t *acme_client_account_key(const acme_client_t *c)
{
    return c->key;
}

void acme_client_set_abort(acme_client_t *c, volatile apr_uint32_t *abort_flag)
{
    c->abort = abort_flag;
}

volatile apr_uint32_t *acme_client_abort(const acme_client_t *c)
{
    return c->abort;
}

void acme_client_set_wait_cb(acme_client_t *c, acme_client_wait_cb *cb, void *baton)
{
    c->wait_cb = cb;
    c->wait_baton = baton;
}

void acme_client_waiting(acme_client_t *c, int waiting)
{
    if (c->wait_cb) c->wait_cb(c->wait_baton, waiting);
}

const char *acme_client_dir_url(const acme_client_t *c)
{
    return c->dir_url;
}

void acme_client_set_nonce_retries(acme_client_t *c, int retries)
{
    c->nonce_retries = retries < 0 ? 0 : retries;
}

static apr_status_t free_dir_text(void *data)
{
    free(((ca_entry_t *)data)->dir_text);
    return APR_SUCCESS;
}

apr_status_t acme_ca_shared_create(acme_ca_shared_t **pshared, apr_pool_t *p)
{
    acme_ca_shared_t *sh = apr_pcalloc(p, sizeof(*sh));

    sh->pool = p;
    sh->cas = apr_hash_make(p);
    *pshared = sh;
    return apr_thread_mutex_create(&sh->mutex, APR_THREAD_MUTEX_DEFAULT, p);
}

void acme_client_share(acme_client_t *c, acme_ca_shared_t *sh)
{
    ca_entry_t *e;

    apr_thread_mutex_lock(sh->mutex);
    e = apr_hash_get(sh->cas, c->dir_url, APR_HASH_KEY_STRING);
    if (!e) {
        e = apr_pcalloc(sh->pool, sizeof(*e));
        e->owner = sh;
        e->guess[ACME_POLL_AUTHZ] = e->guess[ACME_POLL_CERT] = POLL_GUESS_FIRST;
        apr_pool_cleanup_register(sh->pool, e, free_dir_text, apr_pool_cleanup_null);
        apr_hash_set(sh->cas, apr_pstrdup(sh->pool, c->dir_url), APR_HASH_KEY_STRING, e);
    }
    apr_thread_mutex_unlock(sh->mutex);
    c->shared = e;
}

apr_interval_time_t acme_client_poll_guess(const acme_client_t *c, acme_poll_kind_t kind)
{
    apr_interval_time_t g;

    if (!c->shared) return c->guess[kind];
    apr_thread_mutex_lock(c->shared->owner->mutex);
    g = c->shared->guess[kind];
    apr_thread_mutex_unlock(c->shared->owner->mutex);
    return g;
}

void acme_client_poll_learn(acme_client_t *c, acme_poll_kind_t kind, int attempt,
                            apr_interval_time_t took)
{
    /* Done at the first look: it may be sooner. Else 'took' ran past the
     * moment it was done by up to one step: a little less. */
    apr_interval_time_t g = attempt == 0 ? acme_client_poll_guess(c, kind) * 3 / 4
                                         : took * 7 / 8;

    if (g < POLL_GUESS_MIN) g = POLL_GUESS_MIN;
    if (g > POLL_GUESS_MAX) g = POLL_GUESS_MAX;
    if (!c->shared) {
        c->guess[kind] = g;
        return;
    }
    apr_thread_mutex_lock(c->shared->owner->mutex);
    c->shared->guess[kind] = g;
    apr_thread_mutex_unlock(c->shared->owner->mutex);
}

/* A nonce from a response: the client's next one, or, when shared, one
 * for whichever client of this CA signs next. */
static void keep_nonce(acme_client_t *c, const acme_http_response_t *resp)
{
    const char *n = resp ? apr_table_get(resp->headers, "Replay-Nonce") : NULL;
    ca_entry_t *e = c->shared;

    if (!n || !acme_b64url_is_token(n, NONCE_MAX)) {
        return;
    }
    if (!e) {
        apr_cpystrn(c->nonce, n, sizeof(c->nonce));
        return;
    }
    apr_thread_mutex_lock(e->owner->mutex);
    if (e->nnonces == SHARED_NONCES) { /* the oldest goes */
        memmove(&e->nonces[0], &e->nonces[1], sizeof(e->nonces[0]) * (SHARED_NONCES - 1));
        --e->nnonces;
    }
    apr_cpystrn(e->nonces[e->nnonces].value, n, sizeof(e->nonces[0].value));
    e->nonces[e->nnonces++].at = apr_time_now();
    apr_thread_mutex_unlock(e->owner->mutex);
}

/* Takes the newest fresh shared nonce into c->nonce, if there is one. */
static void take_shared_nonce(acme_client_t *c)
{
    ca_entry_t *e = c->shared;
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(e->owner->mutex);
    if (e->nnonces > 0) {
        --e->nnonces;
        if (now - e->nonces[e->nnonces].at < SHARED_NONCE_TTL) {
            apr_cpystrn(c->nonce, e->nonces[e->nnonces].value, sizeof(c->nonce));
        }
        else {
            e->nnonces = 0; /* the newest is stale, and so are the older ones */
        }
    }
    apr_thread_mutex_unlock(e->owner->mutex);
}

apr_status_t acme_client_directory(const acme_directory_t **pdir, acme_client_t *c,
                                   acme_result_t *r)
{
    apr_pool_t *ptemp = NULL;
    acme_http_response_t *resp;
    acme_json_t *j;
    apr_table_t *hdrs;
    ca_entry_t *e = c->shared;
    const char *text = NULL, *err;
    apr_status_t rv = APR_SUCCESS;

    if (c->dir) {
        goto leave;
    }
    apr_pool_create(&ptemp, c->pool);
    if (e) {
        apr_thread_mutex_lock(e->owner->mutex);
        if (e->dir_text && apr_time_now() - e->dir_at < SHARED_DIR_TTL) {
            text = apr_pstrdup(ptemp, e->dir_text);
        }
        apr_thread_mutex_unlock(e->owner->mutex);
    }
    if (text && acme_json_parse(&j, ptemp, text, strlen(text), &err) == APR_SUCCESS) {
        rv = acme_directory_parse(&c->dir, c->pool, j, c->dir_url, r);
        goto leave;
    }
    hdrs = apr_table_make(ptemp, 1);
    apr_table_setn(hdrs, "Accept", "application/json");
    rv = acme_http_do(c->http, &resp, ptemp, "GET", c->dir_url, hdrs, NULL, 0, 1, r);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    keep_nonce(c, resp);
    rv = acme_response_json(&j, ptemp, resp, "directory", r);
    if (rv == APR_SUCCESS) {
        rv = acme_directory_parse(&c->dir, c->pool, j, c->dir_url, r);
    }
    if (rv == APR_SUCCESS && e) {
        char *copy = malloc(resp->body_len + 1);
        if (copy) {
            memcpy(copy, resp->body, resp->body_len);
            copy[resp->body_len] = '\0';
            apr_thread_mutex_lock(e->owner->mutex);
            free(e->dir_text);
            e->dir_text = copy;
            e->dir_at = apr_time_now();
            apr_thread_mutex_unlock(e->owner->mutex);
        }
    }
leave:
    if (ptemp) {
        apr_pool_destroy(ptemp);
    }
    *pdir = c->dir;
    return rv;
}

static apr_status_t fresh_nonce(acme_client_t *c, apr_pool_t *p, acme_result_t *r)
{
    const acme_directory_t *dir;
    acme_http_response_t *resp;
    apr_status_t rv;

    if (!c->nonce[0] && c->shared) {
        take_shared_nonce(c);
    }
    if (c->nonce[0]) {
        return APR_SUCCESS;
    }
    if ((rv = acme_client_directory(&dir, c, r)) != APR_SUCCESS) {
        return rv;
    }
    rv = acme_http_do(c->http, &resp, p, "HEAD", dir->new_nonce, NULL, NULL, 0, 0, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((rv = acme_response_check(resp, p, "newNonce", r)) != APR_SUCCESS) {
        return rv;
    }
    keep_nonce(c, resp);
    if (!c->nonce[0] && c->shared) {
        take_shared_nonce(c);
    }
    if (!c->nonce[0]) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "newNonce: no valid Replay-Nonce header from %s", dir->new_nonce);
    }
    return APR_SUCCESS;
}

static int is_bad_nonce(const acme_http_response_t *resp, apr_pool_t *p)
{
    acme_result_t *tmp;

    if (resp->status != 400) {
        return 0;
    }
    tmp = acme_result_make(p);
    acme_response_check(resp, p, "", tmp);
    return tmp->problem && !strcmp(tmp->problem, ACME_PROBLEM_NS "badNonce");
}

apr_status_t acme_client_post(acme_http_response_t **presp, acme_client_t *c, const char *url,
                              const char *payload, int use_jwk, const acme_pkey_t *key,
                              const char *accept, const char *what, apr_pool_t *p,
                              acme_result_t *r)
{
    acme_http_response_t *resp = NULL;
    apr_table_t *hdrs;
    const char *jws, *nonce;
    int tries;
    apr_status_t rv = APR_SUCCESS;

    if (!key) {
        key = c->key;
    }
    if (!key) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config", "%s: no account key", what);
        goto leave;
    }
    if (!use_jwk && !c->kid) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config",
                             "%s: no account URL (register or find the account first)", what);
        goto leave;
    }
    if (!payload) {
        payload = ""; /* POST-as-GET (RFC 8555 6.3) */
    }
    hdrs = apr_table_make(p, 2);
    apr_table_setn(hdrs, "Content-Type", "application/jose+json");
    if (accept) {
        apr_table_setn(hdrs, "Accept", accept);
    }
    for (tries = 0;; ++tries) {
        if ((rv = fresh_nonce(c, p, r)) != APR_SUCCESS) {
            goto leave;
        }
        /* a nonce is single-use: forget it before anything can fail */
        nonce = apr_pstrdup(p, c->nonce);
        c->nonce[0] = '\0';
        rv = acme_jws_sign(&jws, p, key, use_jwk ? NULL : c->kid, nonce, url, payload,
                           strlen(payload));
        if (rv != APR_SUCCESS) {
            rv = acme_result_set(r, rv, "acme:config", "%s: signing the request failed", what);
            goto leave;
        }
        rv = acme_http_do(c->http, &resp, p, "POST", url, hdrs, jws, strlen(jws), 0, r);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        keep_nonce(c, resp);
        if (tries < c->nonce_retries && is_bad_nonce(resp, p)) {
            acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, 0, "%s: badNonce from %s, retrying (%d)",
                     what, url, tries + 1);
            continue;
        }
        break;
    }
leave:
    *presp = resp;
    return rv;
}

apr_status_t acme_client_post_json(acme_json_t **pjson, acme_http_response_t **presp,
                                   acme_client_t *c, const char *url, const char *payload,
                                   int use_jwk, const char *what, apr_pool_t *p,
                                   acme_result_t *r)
{
    acme_http_response_t *resp = NULL;
    apr_status_t rv;

    *pjson = NULL;
    rv = acme_client_post(&resp, c, url, payload, use_jwk, NULL, "application/json", what, p, r);
    if (rv == APR_SUCCESS) {
        rv = acme_response_json(pjson, p, resp, what, r);
    }
    if (presp) {
        *presp = resp;
    }
    return rv;
}

/* ---- accounts ---------------------------------------------------------------------- */

static apr_status_t account_post(acme_account_t **pacct, acme_client_t *c, const char *url,
                                 const acme_json_t *payload, int use_jwk, const char *what,
                                 int set_kid, apr_pool_t *p, acme_result_t *r)
{
    acme_http_response_t *resp;
    acme_json_t *j;
    const char *loc = NULL;
    apr_status_t rv;

    *pacct = NULL;
    rv = acme_client_post_json(&j, &resp, c, url, acme_json_dump(payload, p, 1), use_jwk, what,
                               p, r);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (set_kid) {
        loc = apr_table_get(resp->headers, "Location");
        if (!is_url(loc)) {
            rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                                 "%s: no account URL in the Location header", what);
            goto leave;
        }
    }
    rv = acme_account_parse(pacct, p, j, set_kid ? loc : c->kid, what, r);
    if (rv == APR_SUCCESS && set_kid) {
        acme_client_set_account(c, c->key, loc);
    }
leave:
    return rv;
}

apr_status_t acme_account_new(acme_account_t **pacct, acme_client_t *c,
                              const apr_array_header_t *contact, int tos_agreed,
                              const char *eab_kid, const char *eab_hmac, apr_pool_t *p,
                              acme_result_t *r)
{
    const acme_directory_t *dir;
    acme_json_t *payload, *eab;
    apr_status_t rv;

    *pacct = NULL;
    if ((rv = acme_client_directory(&dir, c, r)) != APR_SUCCESS) {
        goto leave;
    }
    if (!c->key) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config", "newAccount: no account key");
        goto leave;
    }
    payload = acme_json_new_object(p);
    if (contact && contact->nelts) {
        acme_json_setsa(payload, contact, "contact", NULL);
    }
    if (tos_agreed) {
        acme_json_setb(payload, 1, "termsOfServiceAgreed", NULL);
    }
    if (eab_kid && eab_hmac) {
        rv = acme_jws_eab(&eab, p, c->key, eab_kid, eab_hmac, dir->new_account);
        if (rv != APR_SUCCESS) {
            /* never echo the HMAC: only say which key id failed */
            rv = acme_result_set(r, rv, "acme:config",
                                 "newAccount: cannot sign the external account binding for "
                                 "key id '%s' (is the HMAC valid base64url?)", eab_kid);
            goto leave;
        }
        acme_json_setj(payload, eab, "externalAccountBinding", NULL);
    }
    else if (dir->eab_required) {
        rv = acme_result_set(r, APR_EINVAL, ACME_PROBLEM_NS "externalAccountRequired",
                             "newAccount: the CA at %s requires External Account Binding "
                             "(meta.externalAccountRequired), but no EAB key id and HMAC "
                             "are configured", c->dir_url);
        goto leave;
    }
    rv = account_post(pacct, c, dir->new_account, payload, 1, "newAccount", 1, p, r);
leave:
    return rv;
}

apr_status_t acme_account_find(acme_account_t **pacct, acme_client_t *c, apr_pool_t *p,
                               acme_result_t *r)
{
    const acme_directory_t *dir;
    acme_json_t *payload;
    apr_status_t rv;

    *pacct = NULL;
    if ((rv = acme_client_directory(&dir, c, r)) != APR_SUCCESS) {
        return rv;
    }
    payload = acme_json_new_object(p);
    acme_json_setb(payload, 1, "onlyReturnExisting", NULL);
    return account_post(pacct, c, dir->new_account, payload, 1, "newAccount(onlyReturnExisting)",
                        1, p, r);
}

apr_status_t acme_account_update(acme_account_t **pacct, acme_client_t *c,
                                 const apr_array_header_t *contact, apr_pool_t *p,
                                 acme_result_t *r)
{
    acme_json_t *payload = acme_json_new_object(p);

    *pacct = NULL;
    if (!c->kid) {
        return acme_result_set(r, APR_EINVAL, "acme:config", "account: no account URL");
    }
    if (contact) {
        acme_json_setsa(payload, contact, "contact", NULL);
    }
    return account_post(pacct, c, c->kid, payload, 0, "account", 0, p, r);
}

apr_status_t acme_account_deactivate(acme_client_t *c, apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *payload = acme_json_new_object(p);
    acme_account_t *acct;
    apr_status_t rv;

    if (!c->kid) {
        return acme_result_set(r, APR_EINVAL, "acme:config", "account: no account URL");
    }
    acme_json_sets(payload, "deactivated", "status", NULL);
    rv = account_post(&acct, c, c->kid, payload, 0, "account deactivation", 0, p, r);
    if (rv == APR_SUCCESS && acct->status != ACME_STATE_DEACTIVATED) {
        rv = acme_result_set(r, APR_EGENERAL, "acme:malformed-response",
                             "account deactivation: the CA answered status '%s'",
                             acme_state_name(acct->status));
    }
    return rv;
}

apr_status_t acme_account_key_change(acme_client_t *c, const acme_pkey_t *new_key, apr_pool_t *p,
                                     acme_result_t *r)
{
    const acme_directory_t *dir;
    acme_http_response_t *resp;
    acme_json_t *inner;
    apr_status_t rv;

    if ((rv = acme_client_directory(&dir, c, r)) != APR_SUCCESS) {
        goto leave;
    }
    if (!dir->key_change) {
        rv = acme_result_set(r, APR_ENOTIMPL, "acme:config",
                             "keyChange: the CA's directory has no keyChange URL");
        goto leave;
    }
    if (!c->kid || !c->key) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config", "keyChange: no account");
        goto leave;
    }
    rv = acme_jws_keychange_inner(&inner, p, new_key, c->key, c->kid, dir->key_change);
    if (rv != APR_SUCCESS) {
        rv = acme_result_set(r, rv, "acme:config", "keyChange: signing with the new key failed");
        goto leave;
    }
    rv = acme_client_post(&resp, c, dir->key_change, acme_json_dump(inner, p, 1), 0, NULL,
                          "application/json", "keyChange", p, r);
    if (rv == APR_SUCCESS) {
        rv = acme_response_check(resp, p, "keyChange", r);
    }
    if (rv == APR_SUCCESS) {
        c->key = new_key;
    }
leave:
    return rv;
}
