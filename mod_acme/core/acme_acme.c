/* acme_acme.c: ACME protocol basics: parsing the CA's objects, checking
 * responses, the directory, nonces, signed POSTs and accounts (RFC 8555). */
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_date.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_http.h"
#include "acme_acme.h"

#define NONCE_MAX 256
#define NONCE_RETRIES_DEFAULT 10
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
    /* Fixed storage: a long-lived client must not grow its pool per request. */
    char nonce[NONCE_MAX + 1];
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
