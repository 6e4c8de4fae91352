/* acme_publish.c: the challenge publishers that need nothing but the store
 * (http-01, tls-alpn-01) and the operator's dns-01 hook program. */

#include <apr_strings.h>

#include <string.h>

#include "acme_acme.h"
#include "acme_jws.h"
#include "acme_proc.h"
#include "acme_publish.h"
#include "acme_result.h"
#include "acme_store.h"
#include "acme_util.h"

/* ---- http-01: challenges/http-01/<token> ------------------------------------ */

static apr_status_t http01_publish(const acme_publisher_t *pub, acme_store_t *s,
                                   const acme_answer_t *a, apr_pool_t *p, acme_result_t *r)
{
    (void)pub;
    if (!acme_b64url_is_token(a->token, 256)) {
        /* a token becomes a file name and a URL path */
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "the CA sent an http-01 token for %s that is not base64url",
                               a->name);
    }
    /* Volatile: a crash of the process keeps it (the page cache does), and
     * one of the machine loses the CA's validation under way anyway. */
    return s->save(s, ACME_SG_CHALLENGES, "http-01", a->token, a->key_authz,
                   strlen(a->key_authz), ACME_STORE_VOLATILE, p);
}

static void http01_withdraw(const acme_publisher_t *pub, acme_store_t *s,
                            const acme_answer_t *a, apr_pool_t *p)
{
    (void)pub;
    if (acme_b64url_is_token(a->token, 256)) {
        s->remove(s, ACME_SG_CHALLENGES, "http-01", a->token, p);
    }
}

const acme_publisher_t acme_publisher_http01 = {"http-01", NULL, http01_publish,
                                                http01_withdraw};

/* ---- tls-alpn-01: challenges/tls-alpn-01/<name>.{key,crt} --------------------- */

static apr_status_t tlsalpn01_publish(const acme_publisher_t *pub, acme_store_t *s,
                                      const acme_answer_t *a, apr_pool_t *p, acme_result_t *r)
{
    const char *cert_pem, *key_pem;
    apr_status_t rv;

    (void)pub;
    (void)r;
    rv = acme_tls_alpn01_make(&cert_pem, &key_pem, p, a->name, a->key_authz);
    /* the key first: a reader that finds the certificate finds its key */
    if (rv == APR_SUCCESS) {
        rv = s->save(s, ACME_SG_CHALLENGES, "tls-alpn-01", apr_pstrcat(p, a->name, ".key", NULL),
                     key_pem, strlen(key_pem), ACME_STORE_SECRET | ACME_STORE_VOLATILE, p);
    }
    if (rv == APR_SUCCESS) {   /* volatile as http-01's */
        rv = s->save(s, ACME_SG_CHALLENGES, "tls-alpn-01", apr_pstrcat(p, a->name, ".crt", NULL),
                     cert_pem, strlen(cert_pem), ACME_STORE_VOLATILE, p);
    }
    return rv;
}

static void tlsalpn01_withdraw(const acme_publisher_t *pub, acme_store_t *s,
                               const acme_answer_t *a, apr_pool_t *p)
{
    (void)pub;
    s->remove(s, ACME_SG_CHALLENGES, "tls-alpn-01", apr_pstrcat(p, a->name, ".crt", NULL), p);
    s->remove(s, ACME_SG_CHALLENGES, "tls-alpn-01", apr_pstrcat(p, a->name, ".key", NULL), p);
}

const acme_publisher_t acme_publisher_tlsalpn01 = {"tls-alpn-01", NULL, tlsalpn01_publish,
                                                   tlsalpn01_withdraw};

/* ---- dns-01 through the operator's program ----------------------------------- */

/* "program [args] set|unset NAME VALUE": the program returns once the
 * record is (or is no longer) visible to the CA. */
static apr_status_t run_hook(const acme_publisher_t *pub, const char *op, const acme_answer_t *a,
                             apr_pool_t *p, acme_result_t *r)
{
    const apr_array_header_t *hook = pub->baton;
    const char *value = acme_dns01_value(p, a->key_authz);
    const char **args, *env[5];
    acme_proc_result_t res;
    apr_status_t rv;
    int i;

    args = apr_palloc(p, sizeof(const char *) * (apr_size_t)(hook->nelts + 4));
    for (i = 0; i < hook->nelts; ++i) {
        args[i] = APR_ARRAY_IDX(hook, i, const char *);
    }
    args[i++] = op;
    args[i++] = a->name;
    args[i++] = value;
    args[i] = NULL;
    env[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
    env[1] = apr_pstrcat(p, "MOD_ACME_DOMAIN=", a->domain, NULL);
    env[2] = apr_pstrcat(p, "MOD_ACME_RECORD=_acme-challenge.", a->name, NULL);
    env[3] = apr_pstrcat(p, "MOD_ACME_TXT=", value, NULL);
    env[4] = NULL;
    rv = acme_proc_run(&res, p, args, env, ACME_DNS_HOOK_TIMEOUT);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:config", "cannot run ManagedDNSHook %s", args[0]);
    }
    if (res.signalled || res.exit_code != 0) {
        return acme_result_set(r, APR_EGENERAL, "acme:dns", "ManagedDNSHook %s %s: %s%s %d%s%s",
                               op, a->name, res.timed_out ? "timed out, " : "",
                               res.signalled ? "died of signal" : "exited with", res.exit_code,
                               *res.output ? ", output: " : "", res.output);
    }
    acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0423) "%s: ManagedDNSHook %s %s done%s%s",
             a->domain, op, a->name, *res.output ? ", output: " : "", res.output);
    return APR_SUCCESS;
}

static apr_status_t hook_publish(const acme_publisher_t *pub, acme_store_t *s,
                                 const acme_answer_t *a, apr_pool_t *p, acme_result_t *r)
{
    (void)s;
    return run_hook(pub, "set", a, p, r);
}

static void hook_withdraw(const acme_publisher_t *pub, acme_store_t *s, const acme_answer_t *a,
                          apr_pool_t *p)
{
    acme_result_t *r = acme_result_make(p);

    (void)s;
    if (run_hook(pub, "unset", a, p, r) != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, r->status, ACMELOG(0422) "%s: %s; the TXT record "
                 "may have stayed", a->domain, r->detail);
    }
}

acme_publisher_t *acme_publisher_dns_hook(apr_pool_t *p, const apr_array_header_t *argv)
{
    acme_publisher_t *pub = apr_pcalloc(p, sizeof(*pub));

    pub->type = "dns-01";
    pub->baton = (void *)argv;
    pub->publish = hook_publish;
    pub->withdraw = hook_withdraw;
    return pub;
}

const acme_publisher_t *acme_publisher_find(const apr_array_header_t *pubs, const char *type)
{
    int i;

    for (i = 0; pubs && i < pubs->nelts; ++i) {
        const acme_publisher_t *pub = APR_ARRAY_IDX(pubs, i, const acme_publisher_t *);
        if (!strcmp(pub->type, type)) {
            return pub;
        }
    }
    return NULL;
}
