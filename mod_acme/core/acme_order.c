/* acme_order.c: ACME orders from newOrder to the certificate chain:
 * authorizations, challenges, polling, finalize, download, revocation. */
#include <string.h>

#include <apr_strings.h>
#include <apr_atomic.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_http.h"
#include "acme_acme.h"

/* Polls follow the CA: the first comes after about as long as the CA took
 * last time (acme_client_poll_guess), later ones back off; Retry-After from the CA
 * decides when it sends one. */
#define POLL_MIN apr_time_from_msec(10)
#define POLL_MAX apr_time_from_sec(10)
#define POLL_STEP_MIN apr_time_from_msec(50)
#define ORDER_TIMEOUT_DEFAULT apr_time_from_sec(300)
#define PEM_CHAIN_TYPE "application/pem-certificate-chain"

apr_array_header_t *acme_identifiers_make(apr_pool_t *p, const apr_array_header_t *names)
{
    apr_array_header_t *ids = apr_array_make(p, names ? names->nelts : 1,
                                             sizeof(acme_identifier_t *));
    int i;

    for (i = 0; names && i < names->nelts; ++i) {
        acme_identifier_t *id = apr_pcalloc(p, sizeof(*id));

        id->value = APR_ARRAY_IDX(names, i, const char *);
        id->type = acme_name_is_ip(id->value) ? "ip" : "dns";
        APR_ARRAY_PUSH(ids, acme_identifier_t *) = id;
    }
    return ids;
}

static int has_profile(const acme_directory_t *dir, const char *profile)
{
    return apr_table_get(dir->profiles, profile) != NULL;
}

static int add_name(void *baton, const char *key, const char *value)
{
    apr_array_header_t *a = baton;

    (void)value;
    APR_ARRAY_PUSH(a, const char *) = key;
    return 1;
}

static const char *profile_list(apr_pool_t *p, const acme_directory_t *dir)
{
    apr_array_header_t *a = apr_array_make(p, 4, sizeof(const char *));

    apr_table_do(add_name, a, dir->profiles, NULL);
    return apr_array_pstrcat(p, a, ',');
}

apr_status_t acme_order_new(acme_order_t **porder, acme_client_t *c,
                            const apr_array_header_t *names, const char *profile,
                            const char *replaces, apr_pool_t *p, acme_result_t *r)
{
    const acme_directory_t *dir;
    acme_http_response_t *resp;
    acme_json_t *payload, *arr, *j;
    apr_array_header_t *ids;
    const char *loc;
    apr_status_t rv;
    int i;

    *porder = NULL;
    if ((rv = acme_client_directory(&dir, c, r)) != APR_SUCCESS) {
        goto leave;
    }
    if (!names || !names->nelts) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config", "newOrder: no names");
        goto leave;
    }
    if (profile && !has_profile(dir, profile)) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config",
                             "newOrder: the CA at %s does not offer the profile '%s' (%s)",
                             acme_client_dir_url(c), profile,
                             apr_is_empty_table(dir->profiles)
                                 ? "it announces no profiles at all"
                                 : apr_pstrcat(p, "it offers: ", profile_list(p, dir), NULL));
        goto leave;
    }
    payload = acme_json_new_object(p);
    arr = acme_json_new_array(p);
    ids = acme_identifiers_make(p, names);
    for (i = 0; i < ids->nelts; ++i) {
        const acme_identifier_t *id = APR_ARRAY_IDX(ids, i, const acme_identifier_t *);
        acme_json_t *o = acme_json_new_object(p);

        acme_json_sets(o, id->type, "type", NULL);
        acme_json_sets(o, id->value, "value", NULL);
        acme_json_array_append(arr, o);
    }
    acme_json_setj(payload, arr, "identifiers", NULL);
    if (profile) {
        acme_json_sets(payload, profile, "profile", NULL);
    }
    if (replaces) {
        acme_json_sets(payload, replaces, "replaces", NULL);
    }
    rv = acme_client_post_json(&j, &resp, c, dir->new_order, acme_json_dump(payload, p, 1), 0,
                               "newOrder", p, r);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    loc = apr_table_get(resp->headers, "Location");
    if (!loc || (strncmp(loc, "https://", 8) && strncmp(loc, "http://", 7))) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "newOrder: no order URL in the Location header");
        goto leave;
    }
    rv = acme_order_parse(porder, p, j, loc, "newOrder", r);
    if (rv == APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, 0, "newOrder: %s is %s", loc,
                 acme_state_name((*porder)->status));
    }
leave:
    return rv;
}

/* POST-as-GET of an object; *pra gets its Retry-After (0 if none). */
static apr_status_t get_object(acme_json_t **pj, apr_time_t *pra, acme_client_t *c,
                               const char *url, const char *what, apr_pool_t *p,
                               acme_result_t *r)
{
    acme_http_response_t *resp;
    apr_status_t rv;

    *pra = 0;
    rv = acme_client_post_json(pj, &resp, c, url, NULL, 0, what, p, r);
    if (rv == APR_SUCCESS) {
        *pra = acme_response_retry_after(resp, apr_time_now());
    }
    return rv;
}

apr_status_t acme_order_get(acme_order_t **porder, acme_client_t *c, const char *url,
                            apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *j;
    apr_time_t ra;
    apr_status_t rv;

    *porder = NULL;
    rv = get_object(&j, &ra, c, url, "order", p, r);
    if (rv == APR_SUCCESS && (rv = acme_order_parse(porder, p, j, url, "order", r))
                                 == APR_SUCCESS) {
        (*porder)->retry_after = ra;
    }
    return rv;
}

apr_status_t acme_authz_get(acme_authz_t **pauthz, acme_client_t *c, const char *url,
                            apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *j;
    apr_time_t ra;
    apr_status_t rv;

    *pauthz = NULL;
    rv = get_object(&j, &ra, c, url, "authz", p, r);
    if (rv == APR_SUCCESS && (rv = acme_authz_parse(pauthz, p, j, url, "authz", r))
                                 == APR_SUCCESS) {
        (*pauthz)->retry_after = ra;
    }
    return rv;
}

apr_status_t acme_challenge_respond(acme_challenge_t **pch, acme_client_t *c,
                                    const acme_challenge_t *ch, apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *j;
    apr_status_t rv;

    *pch = NULL;
    rv = acme_client_post_json(&j, NULL, c, ch->url, "{}", 0, "challenge", p, r);
    if (rv == APR_SUCCESS) {
        rv = acme_challenge_parse(pch, p, j, "challenge", r);
    }
    return rv;
}

apr_status_t acme_challenge_key_authz(const char **pkey_authz, acme_client_t *c,
                                      const acme_challenge_t *ch, apr_pool_t *p, acme_result_t *r)
{
    apr_status_t rv;

    *pkey_authz = NULL;
    if (!ch->token || !acme_client_account_key(c)) {
        return acme_result_set(r, APR_EINVAL, "acme:config",
                               "challenge %s: no token or no account key", ch->type);
    }
    rv = acme_key_authz(pkey_authz, p, acme_client_account_key(c), ch->token);
    if (rv != APR_SUCCESS) {
        rv = acme_result_set(r, rv, "acme:config",
                             "challenge %s: cannot compute the key authorization", ch->type);
    }
    return rv;
}

/* ---- polling ------------------------------------------------------------------------- */

apr_interval_time_t acme_poll_interval(apr_interval_time_t guess, int attempt)
{
    apr_interval_time_t w = guess;
    int i;

    if (attempt > 0) {
        /* The guess was a little short: look again soon, in steps that grow
         * by half. Doubling the guess would see a validation that took 10%
         * longer than the last one a whole guess late. */
        w = guess / 4 > POLL_STEP_MIN ? guess / 4 : POLL_STEP_MIN;
        for (i = 1; i < attempt && w < POLL_MAX; ++i) {
            w += w / 2;
        }
    }
    return w < POLL_MIN ? POLL_MIN : w > POLL_MAX ? POLL_MAX : w;
}

/* Sleeps before poll number 'attempt': the CA's Retry-After, else
 * acme_poll_interval(). Fails (APR_TIMEUP) when the poll would be past the
 * deadline. */
static apr_status_t poll_wait(acme_client_t *c, acme_poll_kind_t kind, apr_time_t retry_after, int attempt,
                              apr_time_t deadline, const char *what, const char *state,
                              acme_result_t *r)
{
    volatile apr_uint32_t *abort_flag = acme_client_abort(c);
    apr_time_t until;
    apr_time_t now = apr_time_now();
    apr_interval_time_t wait;
    apr_status_t rv = APR_SUCCESS;
    int idle;

    if (retry_after > now) {
        wait = retry_after - now;
    }
    else {
        wait = acme_poll_interval(acme_client_poll_guess(c, kind), attempt);
    }
    if (wait > POLL_MAX) {
        wait = POLL_MAX;
    }
    if (now + wait > deadline) {
        return acme_result_set(r, APR_TIMEUP, "acme:timeout",
                               "%s is still %s, giving up after the deadline", what, state);
    }
    /* Sleep in slices so that a stopping server is not held up. A long
     * wait is told: the job holds no working slot meanwhile. */
    until = now + wait;
    idle = wait >= ACME_CLIENT_IDLE_MIN;
    if (idle) acme_client_waiting(c, 1);
    while ((now = apr_time_now()) < until) {
        if (abort_flag && apr_atomic_read32(abort_flag)) {
            rv = acme_result_set(r, APR_EINTR, "acme:stopped",
                                 "%s: stopped while waiting for the CA", what);
            break;
        }
        apr_sleep(until - now < apr_time_from_msec(100) ? until - now : apr_time_from_msec(100));
    }
    if (idle) acme_client_waiting(c, 0);
    return rv;
}

/* r filled from the failed challenge of an invalid authz. */
static apr_status_t authz_failed(const acme_authz_t *a, acme_result_t *r)
{
    const acme_challenge_t *ch;
    const char *name = apr_pstrcat(r->pool, a->wildcard ? "*." : "", a->identifier.value, NULL);
    int i;

    for (i = 0; i < a->challenges->nelts; ++i) {
        ch = APR_ARRAY_IDX(a->challenges, i, const acme_challenge_t *);
        if (ch->error) {
            acme_result_reset(r);
            if (acme_result_from_problem(r, ch->error, 0) == APR_SUCCESS) {
                r->status = APR_EGENERAL;
                r->detail = apr_psprintf(r->pool, "%s validation of %s failed: %s", ch->type,
                                         name, r->detail ? r->detail : "no detail");
                return r->status;
            }
        }
    }
    return acme_result_set(r, APR_EGENERAL, "acme:validation",
                           "authorization of %s is %s (%s)", name, acme_state_name(a->status),
                           a->url);
}

/* Why an order is invalid: the failed challenge of its first invalid
 * authorization says most (what the CA saw), else the order's problem. */
static apr_status_t order_failed(acme_client_t *c, const acme_order_t *o, apr_pool_t *p,
                                 acme_result_t *r)
{
    acme_result_t *ar = acme_result_make(p);
    acme_authz_t *a;
    int i;

    for (i = 0; o->authorizations && i < o->authorizations->nelts; ++i) {
        if (acme_authz_get(&a, c, APR_ARRAY_IDX(o->authorizations, i, const char *), p, ar)
                == APR_SUCCESS
            && a->status == ACME_STATE_INVALID) {
            acme_result_reset(r);
            return authz_failed(a, r);
        }
    }
    if (o->error) {
        acme_result_reset(r);
        if (acme_result_from_problem(r, o->error, 0) == APR_SUCCESS) {
            r->status = APR_EGENERAL;
            r->detail = apr_psprintf(r->pool, "order %s is invalid: %s", o->url,
                                     r->detail ? r->detail : "no detail");
            return r->status;
        }
    }
    return acme_result_set(r, APR_EGENERAL, "acme:order-invalid", "order %s is %s", o->url,
                           acme_state_name(o->status));
}

apr_status_t acme_order_poll(acme_order_t **porder, acme_client_t *c, const char *url,
                             int wait_pending, apr_time_t deadline, apr_pool_t *p,
                             acme_result_t *r)
{
    acme_poll_kind_t kind = wait_pending ? ACME_POLL_AUTHZ : ACME_POLL_CERT;
    apr_time_t start = apr_time_now(), ra = 0;
    apr_pool_t *ptemp;
    acme_order_t *o = NULL;
    acme_json_t *j;
    int attempt;
    apr_status_t rv;

    *porder = NULL;
    apr_pool_create(&ptemp, p);
    for (attempt = 0;; ++attempt) {
        /* each round in a fresh pool: long polls must not grow p */
        apr_pool_clear(ptemp);
        rv = poll_wait(c, kind, ra, attempt, deadline, apr_psprintf(r->pool, "order %s", url),
                       attempt == 0 ? (wait_pending ? "pending" : "processing")
                                    : acme_state_name(o->status), r);
        if (rv != APR_SUCCESS
            || (rv = get_object(&j, &ra, c, url, "order", ptemp, r)) != APR_SUCCESS
            || (rv = acme_order_parse(&o, ptemp, j, url, "order", r)) != APR_SUCCESS) {
            goto leave;
        }
        o->retry_after = ra;
        if (!(o->status == ACME_STATE_PROCESSING
              || (wait_pending && o->status == ACME_STATE_PENDING))) {
            break;
        }
    }
    acme_client_poll_learn(c, kind, attempt, apr_time_now() - start);
    rv = acme_order_parse(&o, p, acme_json_clone(j, p), url, "order", r);
    if (rv == APR_SUCCESS && o->status == ACME_STATE_INVALID) {
        rv = order_failed(c, o, p, r);
    }
    *porder = o;
leave:
    apr_pool_destroy(ptemp);
    return rv;
}

/* ---- finalize, download, revoke -------------------------------------------------------- */

apr_status_t acme_order_finalize(acme_order_t **porder, acme_client_t *c,
                                 const acme_order_t *order, const acme_pkey_t *cert_key,
                                 const apr_array_header_t *names, apr_pool_t *p,
                                 acme_result_t *r)
{
    apr_array_header_t *csr_names;
    const unsigned char *der;
    apr_size_t der_len;
    acme_json_t *payload, *j;
    apr_status_t rv;
    int i;

    *porder = NULL;
    if (names) {
        csr_names = (apr_array_header_t *)names;
    }
    else {
        csr_names = apr_array_make(p, order->identifiers->nelts, sizeof(const char *));
        for (i = 0; i < order->identifiers->nelts; ++i) {
            APR_ARRAY_PUSH(csr_names, const char *) =
                APR_ARRAY_IDX(order->identifiers, i, const acme_identifier_t *)->value;
        }
    }
    rv = acme_csr_make(&der, &der_len, p, cert_key, csr_names);
    if (rv != APR_SUCCESS) {
        rv = acme_result_set(r, rv, "acme:config", "finalize: cannot make a CSR for %s",
                             apr_array_pstrcat(p, csr_names, ','));
        goto leave;
    }
    payload = acme_json_new_object(p);
    acme_json_sets(payload, acme_b64url_encode(p, der, der_len), "csr", NULL);
    rv = acme_client_post_json(&j, NULL, c, order->finalize, acme_json_dump(payload, p, 1), 0,
                               "finalize", p, r);
    if (rv == APR_SUCCESS) {
        rv = acme_order_parse(porder, p, j, order->url, "finalize", r);
    }
    if (rv == APR_SUCCESS && (*porder)->status == ACME_STATE_INVALID) {
        rv = order_failed(c, *porder, p, r);
    }
leave:
    return rv;
}

/* One chain from url: the PEM, its parsed certificates and alternates. */
static apr_status_t fetch_chain(const char **ppem, apr_array_header_t **pchain,
                                apr_array_header_t **palts, acme_client_t *c, const char *url,
                                apr_pool_t *p, acme_result_t *r)
{
    acme_http_response_t *resp;
    const char *mt;
    apr_status_t rv;

    *ppem = NULL;
    rv = acme_client_post(&resp, c, url, NULL, 0, NULL, PEM_CHAIN_TYPE, "certificate", p, r);
    if (rv != APR_SUCCESS || (rv = acme_response_check(resp, p, "certificate", r))
                                 != APR_SUCCESS) {
        goto leave;
    }
    mt = acme_response_media_type(p, resp);
    if (strcmp(mt, PEM_CHAIN_TYPE)) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "certificate: response from %s is %s, not " PEM_CHAIN_TYPE, url,
                             *mt ? mt : "without content type");
        goto leave;
    }
    rv = acme_chain_from_pem(pchain, p, resp->body, resp->body_len);
    if (rv != APR_SUCCESS) {
        rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                             "certificate: response from %s holds no valid PEM certificate", url);
        goto leave;
    }
    if (palts) {
        acme_links_get(palts, p, resp->headers, "alternate", url);
    }
    *ppem = resp->body;
leave:
    return rv;
}

static int chain_has_issuer(const apr_array_header_t *chain, const char *issuer, apr_pool_t *p)
{
    const acme_cert_t *top;
    const char *cn;

    if (!chain->nelts) {
        return 0;
    }
    top = APR_ARRAY_IDX(chain, chain->nelts - 1, const acme_cert_t *);
    cn = acme_cert_issuer_cn(top, p);
    return cn && !strcmp(cn, issuer);
}

apr_status_t acme_cert_download(const char **ppem, acme_client_t *c, const char *cert_url,
                                const char *preferred_issuer, apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *chain, *alts = NULL, *achain;
    const char *pem, *apem;
    acme_result_t *ar;
    apr_status_t rv;
    int i;

    *ppem = NULL;
    rv = fetch_chain(&pem, &chain, &alts, c, cert_url, p, r);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    *ppem = pem;
    if (!preferred_issuer || chain_has_issuer(chain, preferred_issuer, p)) {
        goto leave;
    }
    for (i = 0; i < alts->nelts; ++i) {
        const char *url = APR_ARRAY_IDX(alts, i, const char *);

        /* an alternate that fails to load is no reason to lose the default */
        ar = acme_result_make(p);
        if (fetch_chain(&apem, &achain, NULL, c, url, p, ar) != APR_SUCCESS) {
            acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, ar->status, ACMELOG(0801) "%s",
                     acme_result_describe(ar, p));
            continue;
        }
        if (chain_has_issuer(achain, preferred_issuer, p)) {
            *ppem = apem;
            goto leave;
        }
    }
    acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0,
             ACMELOG(0802) "certificate %s: no chain with issuer '%s' among %d alternates, using the default",
             cert_url, preferred_issuer, alts->nelts);
leave:
    return rv;
}

apr_status_t acme_cert_revoke(acme_client_t *c, const acme_cert_t *cert, int reason,
                              const acme_pkey_t *cert_key, apr_pool_t *p, acme_result_t *r)
{
    const acme_directory_t *dir;
    acme_http_response_t *resp;
    const unsigned char *der;
    apr_size_t der_len;
    acme_json_t *payload;
    apr_status_t rv;

    if ((rv = acme_client_directory(&dir, c, r)) != APR_SUCCESS) {
        goto leave;
    }
    if (!dir->revoke_cert) {
        rv = acme_result_set(r, APR_ENOTIMPL, "acme:config",
                             "revokeCert: the CA's directory has no revokeCert URL");
        goto leave;
    }
    if ((rv = acme_cert_to_der(&der, &der_len, p, cert)) != APR_SUCCESS) {
        rv = acme_result_set(r, rv, "acme:config", "revokeCert: cannot encode the certificate");
        goto leave;
    }
    payload = acme_json_new_object(p);
    acme_json_sets(payload, acme_b64url_encode(p, der, der_len), "certificate", NULL);
    if (reason >= 0) {
        acme_json_setl(payload, reason, "reason", NULL);
    }
    rv = acme_client_post(&resp, c, dir->revoke_cert, acme_json_dump(payload, p, 1),
                          cert_key != NULL, cert_key, NULL, "revokeCert", p, r);
    if (rv == APR_SUCCESS) {
        rv = acme_response_check(resp, p, "revokeCert", r);
    }
leave:
    return rv;
}

/* ---- driving a whole order --------------------------------------------------------------- */

typedef struct {
    const acme_challenge_t *ch;
    const char *name;
    const char *key_authz;
    const char *url;           /* the authorization */
    int posted;                /* the CA was asked to validate (by this run or before) */
} published_t;

/* The CA chose the authorization's identifier: it must be one of the names
 * the order asked for (a wildcard authorization for "*.NAME" is NAME with
 * the flag), never a string of the CA's making. */
static int authz_asked_for(const acme_authz_t *a, const apr_array_header_t *names)
{
    const char *v = a->identifier.value;
    int i;

    if (!v || !acme_name_is_valid(v) || acme_name_is_wildcard(v)) {
        return 0;
    }
    for (i = 0; i < names->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);
        if (a->wildcard ? (acme_name_is_wildcard(n) && !strcasecmp(n + 2, v))
                        : !strcasecmp(n, v)) {
            return 1;
        }
    }
    return 0;
}

int acme_authz_final(acme_client_t *c, const char *url, apr_pool_t *p)
{
    volatile apr_uint32_t *abort_flag = acme_client_abort(c);
    acme_result_t *ar;
    acme_authz_t *a;

    if (abort_flag && apr_atomic_read32(abort_flag)) {
        return 0;
    }
    ar = acme_result_make(p);
    if (acme_authz_get(&a, c, url, p, ar) != APR_SUCCESS) {
        return ar->http_status == 404;
    }
    return a->status != ACME_STATE_PENDING && a->status != ACME_STATE_PROCESSING;
}

/* An answer goes once the CA can no longer look at it: never asked to
 * (not POSTed), or its authorization is final. The others stay published
 * (keep): the CA may still validate them, after a restart as well. */
static void answers_end(acme_client_t *c, const apr_array_header_t *published,
                        const acme_order_t *result, const acme_order_params_t *params,
                        apr_pool_t *p)
{
    /* ready and beyond: every authorization is valid */
    int all_final = result && (result->status == ACME_STATE_READY
                               || result->status == ACME_STATE_PROCESSING
                               || result->status == ACME_STATE_VALID);
    int i;

    for (i = 0; i < published->nelts; ++i) {
        const published_t *pub = &APR_ARRAY_IDX(published, i, published_t);

        if (pub->posted && !all_final && params->keep && !acme_authz_final(c, pub->url, p)) {
            params->keep(params->baton, pub->ch->type, pub->name, pub->ch->token,
                         pub->key_authz, pub->url, p);
        }
        else if (params->withdraw) {
            params->withdraw(params->baton, pub->ch->type, pub->name, pub->ch->token,
                             pub->key_authz, p);
        }
    }
}

apr_status_t acme_order_authorize(acme_order_t **porder, acme_client_t *c,
                                  const acme_order_t *order, const acme_order_params_t *params,
                                  apr_time_t deadline, apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *published = apr_array_make(p, 4, sizeof(published_t));
    const acme_challenge_t *ch;
    acme_challenge_t *answered;
    acme_authz_t *a;
    const char *key_authz;
    apr_status_t rv = APR_SUCCESS;
    int i;

    *porder = NULL;
    /* Publish everything first: a dns-01 publisher waits for propagation,
     * once for all records rather than once per authorization. */
    for (i = 0; i < order->authorizations->nelts; ++i) {
        const char *url = APR_ARRAY_IDX(order->authorizations, i, const char *);
        published_t *pub;

        if ((rv = acme_authz_get(&a, c, url, p, r)) != APR_SUCCESS) {
            goto leave;
        }
        if (!authz_asked_for(a, params->names)) {
            /* it becomes a record name, a hook's argument, a log line */
            rv = acme_result_set(r, APR_EINVAL, "acme:malformed-response", "the CA's "
                                 "authorization %s is for '%s', a name this order did not ask "
                                 "for", url, acme_str_printable(p, a->identifier.value));
            goto leave;
        }
        if (a->status == ACME_STATE_VALID) {
            continue; /* reused or already validated: nothing to prove */
        }
        if (a->status != ACME_STATE_PENDING) {
            rv = authz_failed(a, r);
            goto leave;
        }
        if ((rv = acme_challenge_select(&ch, a, params->challenges, r)) != APR_SUCCESS) {
            goto leave;
        }
        if ((rv = acme_challenge_key_authz(&key_authz, c, ch, p, r)) != APR_SUCCESS) {
            goto leave;
        }
        rv = params->publish(params->baton, ch->type, a->identifier.value, ch->token, key_authz,
                             p, r);
        if (rv != APR_SUCCESS) {
            if (r->status == APR_SUCCESS) {
                acme_result_set(r, rv, "acme:config", "publishing the %s challenge for %s failed",
                                ch->type, a->identifier.value);
            }
            goto leave;
        }
        pub = apr_array_push(published);
        pub->ch = ch;
        pub->name = a->identifier.value;
        pub->key_authz = key_authz;
        pub->url = url;
        /* not pending: the CA is at it (processing) or done with it */
        pub->posted = ch->status != ACME_STATE_PENDING;
    }
    for (i = 0; i < published->nelts; ++i) {
        published_t *pub = &APR_ARRAY_IDX(published, i, published_t);

        if (pub->posted) {
            continue;
        }
        /* Some CAs (pebble before 2.5) show a POSTed challenge "pending"
         * until its validation ends, and take a second POST as a second
         * validation: only the record of the first one tells. */
        rv = params->posting ? params->posting(params->baton, pub->ch->url, p, r) : APR_SUCCESS;
        pub->posted = APR_STATUS_IS_EEXIST(rv) || rv == APR_SUCCESS;
        if (APR_STATUS_IS_EEXIST(rv)) {
            acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, 0, "authz %s: %s for %s was answered before, "
                     "waiting for the CA", pub->url, pub->ch->type, pub->name);
            rv = APR_SUCCESS;
            continue;
        }
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, 0, "authz %s: answering %s for %s", pub->url,
                 pub->ch->type, pub->name);
        if ((rv = acme_challenge_respond(&answered, c, pub->ch, p, r)) != APR_SUCCESS) {
            pub->posted = 0; /* its answer is withdrawn, and the note goes */
            if (params->unposted) params->unposted(params->baton, pub->ch->url);
            goto leave;
        }
    }
    /* One poll of the order, not one per authorization: the order is
     * ready once all of them are valid, and an invalid one says why. */
    rv = acme_order_poll(porder, c, order->url, 1, deadline, p, r);
leave:
    answers_end(c, published, *porder, params, p);
    return rv;
}

apr_status_t acme_order_continue(const char **ppem, acme_client_t *c, acme_order_t *order,
                                 const acme_order_params_t *params, apr_time_t deadline,
                                 apr_pool_t *p, acme_result_t *r)
{
    apr_status_t rv = APR_SUCCESS;
    int round;

    *ppem = NULL;
    /* each state moves forward; a CA that loops back gets a bounded number
     * of rounds, not an endless job */
    for (round = 0; round < 8; ++round) {
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, 0, "order %s: %s", order->url,
                 acme_state_name(order->status));
        switch (order->status) {
        case ACME_STATE_PENDING:
            acme_result_activity(r, "authorizing %s",
                                 apr_array_pstrcat(p, params->names, ','));
            rv = acme_order_authorize(&order, c, order, params, deadline, p, r);
            break;
        case ACME_STATE_READY:
            acme_result_activity(r, "finalizing the order for %s",
                                 apr_array_pstrcat(p, params->names, ','));
            rv = acme_order_finalize(&order, c, order, params->cert_key, params->names, p, r);
            break;
        case ACME_STATE_PROCESSING:
            acme_result_activity(r, "waiting for the certificate of %s",
                                 apr_array_pstrcat(p, params->names, ','));
            rv = acme_order_poll(&order, c, order->url, 0, deadline, p, r);
            break;
        case ACME_STATE_VALID:
            acme_result_activity(r, "downloading the certificate of %s",
                                 apr_array_pstrcat(p, params->names, ','));
            rv = acme_cert_download(ppem, c, order->certificate, params->preferred_issuer, p, r);
            goto leave;
        default:
            rv = order_failed(c, order, p, r);
            goto leave;
        }
        if (rv != APR_SUCCESS) {
            goto leave;
        }
    }
    rv = acme_result_set(r, APR_EGENERAL, "acme:order-invalid",
                         "order %s did not progress (still %s)", order->url,
                         acme_state_name(order->status));
leave:
    return rv;
}

/* Can the order still give a certificate for exactly these names? */
static int order_resumable(const acme_order_t *o, const apr_array_header_t *names)
{
    int i, j, found;

    if (o->status == ACME_STATE_INVALID || o->status == ACME_STATE_EXPIRED
        || o->status == ACME_STATE_DEACTIVATED || o->status == ACME_STATE_REVOKED
        || o->identifiers->nelts != names->nelts) {
        return 0;
    }
    for (i = 0; i < names->nelts; ++i) {
        for (j = 0, found = 0; j < o->identifiers->nelts && !found; ++j) {
            found = !strcasecmp(APR_ARRAY_IDX(names, i, const char *),
                                APR_ARRAY_IDX(o->identifiers, j, const acme_identifier_t *)->value);
        }
        if (!found) return 0;
    }
    return 1;
}

apr_status_t acme_order_run(const char **ppem, const char **porder_url, acme_client_t *c,
                            const acme_order_params_t *params, apr_pool_t *p, acme_result_t *r)
{
    apr_interval_time_t timeout = params->timeout > 0 ? params->timeout : ORDER_TIMEOUT_DEFAULT;
    apr_time_t deadline = apr_time_now() + timeout;
    acme_order_t *order = NULL;
    apr_status_t rv = APR_SUCCESS;

    *ppem = NULL;
    if (porder_url) {
        *porder_url = NULL;
    }
    if (!params->names || !params->names->nelts || !params->cert_key || !params->publish) {
        rv = acme_result_set(r, APR_EINVAL, "acme:config",
                             "order: names, certificate key and a challenge publisher are "
                             "required");
        goto leave;
    }
    if (params->order_url) {
        acme_result_activity(r, "resuming order %s", params->order_url);
        rv = acme_order_get(&order, c, params->order_url, p, r);
        if (rv == APR_SUCCESS && !order_resumable(order, params->names)) {
            /* failed, expired, or for names no longer wanted: finishing
             * it cannot help, a new order in this run can */
            acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, "ACME0803: order %s (%s) cannot give a "
                     "certificate for %s; ordering anew", order->url,
                     acme_state_name(order->status), apr_array_pstrcat(p, params->names, ','));
            order = NULL;
        }
    }
    if (!order && rv == APR_SUCCESS) {
        acme_result_activity(r, "creating an order for %s",
                             apr_array_pstrcat(p, params->names, ','));
        if (params->before_new) {
            rv = params->before_new(params->baton, p, r);
        }
        if (rv == APR_SUCCESS) {
            rv = acme_order_new(&order, c, params->names, params->profile, params->replaces, p,
                                r);
        }
        if (rv == APR_SUCCESS && params->created) {
            params->created(params->baton, order->url);
        }
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (porder_url) {
        *porder_url = order->url;
    }
    rv = acme_order_continue(ppem, c, order, params, deadline, p, r);
leave:
    return rv;
}

apr_status_t acme_tls_alpn01_make(const char **pcert_pem, const char **pkey_pem, apr_pool_t *p,
                                  const char *name, const char *key_authz)
{
    acme_pkey_t *key;
    acme_cert_t *cert;
    apr_status_t rv;

    *pcert_pem = *pkey_pem = NULL;
    if ((rv = acme_pkey_gen(&key, p, ACME_KEY_P256)) != APR_SUCCESS
        || (rv = acme_cert_tls_alpn01(&cert, p, key, name, key_authz)) != APR_SUCCESS
        || (rv = acme_cert_to_pem(pcert_pem, p, cert)) != APR_SUCCESS
        || (rv = acme_pkey_to_pem(pkey_pem, p, key)) != APR_SUCCESS) {
        *pcert_pem = *pkey_pem = NULL;
    }
    return rv;
}
