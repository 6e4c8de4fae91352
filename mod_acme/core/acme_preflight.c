/* acme_preflight.c: looks at http-01 and tls-alpn-01 from here before the CA
 * does, with an answer of its own, and turns what it saw into a diagnosis. */
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>

#include "acme_util.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_http.h"
#include "acme_json.h"
#include "acme_store.h"
#include "acme_publish.h"
#include "acme_job.h"
#include "acme_names.h"
#include "acme_preflight.h"

#define PREFLIGHT_TIMEOUT apr_time_from_sec(10)
/* Resolving and connecting: a name server that does not answer is a finding,
 * not a reason to hold a job (curl's connect timeout includes the resolution). */
#define PREFLIGHT_CONNECT_TIMEOUT apr_time_from_sec(5)
/* As many as the CAs follow (Let's Encrypt: 10). */
#define PREFLIGHT_MAX_REDIRECTS 10

void acme_preflight_conf_init(acme_preflight_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->enabled = 1;
    conf->http_port = 80;
    conf->tls_port = 443;
}

static int port_parse(apr_port_t *pport, const char *s)
{
    apr_int64_t n;
    char *end;

    if (!apr_isdigit(*s)) return 0;
    n = apr_strtoi64(s, &end, 10);
    if (*end || n < 1 || n > 65535) return 0;
    *pport = (apr_port_t)n;
    return 1;
}

apr_status_t acme_preflight_conf_parse(acme_preflight_conf_t *conf, apr_pool_t *p, int argc,
                                       const char *const *argv, const char **perr)
{
    int i;

    acme_preflight_conf_init(conf);
    *perr = NULL;
    if (argc < 1) {
        *perr = "takes on, off, or an address with optional 80:PORT 443:PORT";
        return APR_EINVAL;
    }
    if (!strcasecmp(argv[0], "on") || !strcasecmp(argv[0], "off")) {
        conf->enabled = !strcasecmp(argv[0], "on");
        if (argc > 1) {
            *perr = apr_psprintf(p, "'%s' takes nothing after it", argv[0]);
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    if (strchr(argv[0], '/') || (!acme_name_is_ip(argv[0]) && !acme_name_is_valid(argv[0]))
        || acme_name_is_wildcard(argv[0])) {
        *perr = apr_psprintf(p, "'%s' is not on, off, an IP address or a host name", argv[0]);
        return APR_EINVAL;
    }
    conf->address = apr_pstrdup(p, argv[0]);
    for (i = 1; i < argc; ++i) {
        const char *colon = strchr(argv[i], ':');
        apr_port_t *target = NULL;

        if (colon && colon - argv[i] == 2 && !strncmp(argv[i], "80", 2)) {
            target = &conf->http_port;
        }
        else if (colon && colon - argv[i] == 3 && !strncmp(argv[i], "443", 3)) {
            target = &conf->tls_port;
        }
        if (!target || !port_parse(target, colon + 1)) {
            *perr = apr_psprintf(p, "'%s' is not of the form 80:PORT or 443:PORT", argv[i]);
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

int acme_preflight_checks(const char *type)
{
    return !strcmp(type, "http-01") || !strcmp(type, "tls-alpn-01");
}

apr_interval_time_t acme_preflight_retry(apr_interval_time_t retry_delay, int blocks)
{
    apr_interval_time_t d = retry_delay > 0 ? retry_delay : apr_time_from_sec(1);

    while (--blocks > 0 && d < ACME_PREFLIGHT_RETRY_MAX) {
        d *= 2;
    }
    return d < ACME_PREFLIGHT_RETRY_MAX ? d : ACME_PREFLIGHT_RETRY_MAX;
}

/* An address as a URL or CONNECT_TO host: IPv6 in brackets. */
static const char *host_part(apr_pool_t *p, const char *host)
{
    return strchr(host, ':') ? apr_pstrcat(p, "[", host, "]", NULL) : host;
}

const char *acme_preflight_connect_to(apr_pool_t *p, const acme_preflight_conf_t *conf)
{
    if (!conf || !conf->address) return NULL;
    /* Any name and port: a redirect the CA would follow goes there as well. */
    return apr_psprintf(p, "::%s:%d", host_part(p, conf->address), (int)conf->http_port);
}

const char *acme_preflight_message(apr_pool_t *p, const acme_preflight_result_t *res)
{
    const char *head = apr_psprintf(p, "%s for %s: ", res->type, res->name);
    const char *from = res->remote ? apr_pstrcat(p, " from ", res->remote, NULL) : "";
    const char *dns = res->via
        ? apr_psprintf(p, "is %s this server (ManagedPreflight)? is port %d forwarded to it?",
                       res->via, (int)res->ca_port)
        : apr_psprintf(p, "does %s's DNS point at this server? is port %d forwarded to it?",
                       res->name, (int)res->ca_port);
    const char *detail = res->detail ? apr_pstrcat(p, " (", res->detail, ")", NULL) : "";

    switch (res->kind) {
    case ACME_PF_PASSED:
        return NULL;
    case ACME_PF_UNREACHABLE:
        return apr_pstrcat(p, head, "it cannot be reached from here", detail, ": ", dns, NULL);
    case ACME_PF_HTTP_STATUS:
        return apr_psprintf(p, "%sfetching it from here gave %d%s: %s", head, res->http_status,
                            from, dns);
    case ACME_PF_WRONG_ANSWER:
        return apr_pstrcat(p, head, "fetching it from here gave another server's answer", from,
                           ": ", dns, NULL);
    case ACME_PF_TLS_FAILED:
        return apr_pstrcat(p, head, "the TLS handshake from here failed", from, detail, ": ",
                           dns, NULL);
    case ACME_PF_NO_ACME_TLS:
        return apr_pstrcat(p, head, "the server that answers", from, " does not offer acme-tls/1",
                           detail, ": ", dns, " (a TLS proxy in front must pass it through)",
                           NULL);
    case ACME_PF_WRONG_CERT:
        return apr_pstrcat(p, head, "the server that answers", from, " shows another challenge "
                           "certificate", detail, ": ", dns, NULL);
    case ACME_PF_NOT_PUBLISHED:
        return apr_pstrcat(p, head, "a test answer could not be published here", detail, NULL);
    }
    return apr_pstrcat(p, head, "failed", NULL);
}

/* The body the CA accepts: the key authorization, trailing whitespace ignored. */
static int body_matches(const char *body, apr_size_t len, const char *key_authz)
{
    apr_size_t n = strlen(key_authz);

    while (len > n && apr_isspace(body[len - 1])) {
        --len;
    }
    return len == n && !memcmp(body, key_authz, n);
}

/* Where a redirect from 'from' to 'location' leads, if the CA would go
 * there: http or https, on port 80 or 443 (RFC 8555 8.3, and what the CAs
 * do). NULL with *pwhy otherwise. */
static const char *redirect_target(apr_pool_t *p, const char *from, const char *location,
                                   const char **pwhy)
{
    apr_uri_t u;
    const char *url = location;
    int port;

    if (location[0] == '/' && location[1] != '/') {
        if (apr_uri_parse(p, from, &u) != APR_SUCCESS || !u.scheme || !u.hostinfo) {
            *pwhy = "a redirect that cannot be followed";
            return NULL;
        }
        url = apr_pstrcat(p, u.scheme, "://", u.hostinfo, location, NULL);
    }
    if (apr_uri_parse(p, url, &u) != APR_SUCCESS || !u.scheme || !u.hostname) {
        *pwhy = "a redirect to something that is not a URL";
        return NULL;
    }
    if (strcasecmp(u.scheme, "http") && strcasecmp(u.scheme, "https")) {
        *pwhy = "a redirect to a scheme other than http and https, which the CA does not follow";
        return NULL;
    }
    port = u.port_str ? (int)u.port : (int)apr_uri_port_of_scheme(u.scheme);
    if (port != 80 && port != 443) {
        *pwhy = apr_psprintf(p, "a redirect to port %d, which the CA does not follow (only 80 "
                             "and 443)", port);
        return NULL;
    }
    return url;
}

static void fetch_http01(acme_preflight_result_t *res, acme_http_t *http, const char *name,
                         const char *token, const char *key_authz, apr_pool_t *p)
{
    acme_result_t *r = acme_result_make(p);
    acme_http_response_t *resp = NULL;
    const char *url = apr_psprintf(p, "http://%s/.well-known/acme-challenge/%s",
                                   host_part(p, name), token), *loc, *why = NULL;
    int hops = 0;

    /* The CA follows redirects for http-01, so do we, but only where it
     * goes: the redirects are followed here, one by one. */
    for (;;) {
        if (acme_http_do(http, &resp, p, "GET", url, NULL, NULL, 0, 0, r) != APR_SUCCESS) {
            res->kind = ACME_PF_UNREACHABLE;
            res->detail = r->detail;
            return;
        }
        loc = resp->status >= 300 && resp->status < 400
                  ? apr_table_get(resp->headers, "Location") : NULL;
        if (!loc) {
            break;
        }
        if (++hops > PREFLIGHT_MAX_REDIRECTS) {
            why = apr_psprintf(p, "more than %d redirects", PREFLIGHT_MAX_REDIRECTS);
        }
        if (why || !(url = redirect_target(p, url, loc, &why))) {
            res->kind = ACME_PF_UNREACHABLE;
            res->detail = acme_str_printable(p, why);
            return;
        }
    }
    res->remote = resp->remote_ip;
    if (resp->status != 200) {
        res->kind = ACME_PF_HTTP_STATUS;
        res->http_status = resp->status;
    }
    else if (!body_matches(resp->body, resp->body_len, key_authz)) {
        res->kind = ACME_PF_WRONG_ANSWER;
    }
}

static void probe_tlsalpn01(acme_preflight_result_t *res, const acme_preflight_conf_t *conf,
                            const char *name, const char *key_authz,
                            volatile apr_uint32_t *stop, apr_pool_t *p)
{
    acme_alpn_probe_t pr;

    acme_tls_alpn01_probe(&pr, p, conf->address ? conf->address : name, conf->tls_port, name,
                          key_authz, PREFLIGHT_CONNECT_TIMEOUT, PREFLIGHT_TIMEOUT, stop);
    res->remote = pr.remote;
    res->detail = pr.detail;
    switch (pr.stage) {
    case ACME_ALPN_PROBE_OK:
        res->kind = ACME_PF_PASSED;
        res->detail = NULL;
        break;
    case ACME_ALPN_PROBE_NO_CONNECT:
        res->kind = ACME_PF_UNREACHABLE;
        res->remote = NULL;
        break;
    case ACME_ALPN_PROBE_NO_HANDSHAKE:
        res->kind = ACME_PF_TLS_FAILED;
        break;
    case ACME_ALPN_PROBE_NO_ALPN:
        res->kind = ACME_PF_NO_ACME_TLS;
        break;
    case ACME_ALPN_PROBE_WRONG_CERT:
        res->kind = ACME_PF_WRONG_CERT;
        break;
    }
}

apr_status_t acme_preflight_check(acme_preflight_result_t **pres,
                                  const acme_preflight_conf_t *conf,
                                  const acme_publisher_t *pub, acme_store_t *store,
                                  acme_http_t *http, const char *domain, const char *name,
                                  volatile apr_uint32_t *stop, apr_pool_t *p)
{
    acme_preflight_result_t *res = apr_pcalloc(p, sizeof(*res));
    acme_result_t *r = acme_result_make(p);
    unsigned char rnd[32];
    acme_answer_t a;
    apr_status_t rv;

    res->type = pub->type;
    res->name = name;
    res->ca_port = strcmp(pub->type, "tls-alpn-01") ? 80 : 443;
    res->via = conf ? conf->address : NULL;
    *pres = res;
    if (!acme_preflight_checks(pub->type) || acme_name_is_wildcard(name)
        || (acme_name_is_ip(name) && !strcmp(pub->type, "tls-alpn-01"))) {
        return APR_ENOTIMPL; /* nothing to look at from here */
    }
    memset(&a, 0, sizeof(a));
    a.domain = domain;
    a.name = name;
    a.stop = stop;
    /* Not a CA's token: one of our own that nobody else can know. */
    acme_random_bytes(rnd, sizeof(rnd));
    a.token = acme_b64url_encode(p, rnd, sizeof(rnd));
    acme_random_bytes(rnd, sizeof(rnd));
    a.key_authz = apr_pstrcat(p, a.token, ".", acme_b64url_encode(p, rnd, sizeof(rnd)), NULL);
    rv = pub->publish(pub, store, &a, p, r);
    if (rv != APR_SUCCESS) {
        res->kind = ACME_PF_NOT_PUBLISHED;
        res->detail = r->detail;
        return rv;
    }
    if (!strcmp(pub->type, "http-01")) {
        fetch_http01(res, http, name, a.token, a.key_authz, p);
    }
    else {
        probe_tlsalpn01(res, conf, name, a.key_authz, stop, p);
    }
    pub->withdraw(pub, store, &a, p);
    return res->kind == ACME_PF_PASSED ? APR_SUCCESS : APR_EGENERAL;
}

/* ---- the job's policy --------------------------------------------------------- */

/* The CA already refused a validation for this domain: another attempt must
 * wait until the pre-flight passes. */
static int after_failed_validation(const acme_json_t *job, apr_pool_t *p)
{
    acme_result_t *last = acme_result_make(p);

    if (acme_json_type(job, ACME_JK_FAILED_CHALLENGES, NULL) == ACME_JSON_ARRAY) {
        return 1;
    }
    if (acme_json_getl(job, ACME_JK_ERRORS, NULL) <= 0
        || acme_json_type(job, ACME_JK_LAST_ERROR, NULL) != ACME_JSON_OBJECT) {
        return 0;
    }
    acme_result_from_json(last, acme_json_getj(job, p, ACME_JK_LAST_ERROR, NULL));
    return acme_result_classify(last) == ACME_ERRCLASS_VALIDATION;
}

static apr_status_t make_http(acme_http_t **phttp, const acme_job_spec_t *spec, apr_pool_t *p)
{
    acme_http_config_t hconf;

    acme_http_config_init(&hconf);
    hconf.connect_to = acme_preflight_connect_to(p, spec->preflight);
    hconf.abort = spec->stop;
    hconf.connect_timeout = PREFLIGHT_CONNECT_TIMEOUT;
    hconf.timeout = PREFLIGHT_TIMEOUT;
    hconf.max_body = 64 * 1024;
    return spec->http ? spec->http(phttp, p, &hconf, spec->http_baton)
                      : acme_http_curl_create(phttp, p, &hconf);
}

apr_status_t acme_preflight_run(acme_json_t *job, acme_store_t *store, const acme_job_spec_t *spec,
                                apr_time_t now, apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *passed = apr_array_make(p, 2, sizeof(const char *));
    apr_array_header_t *failed = apr_array_make(p, 2, sizeof(const char *));
    apr_array_header_t *msgs = apr_array_make(p, 2, sizeof(const char *));
    acme_json_t *rec = acme_json_new_object(p);
    acme_http_t *http = NULL;
    int i, j, blocks;
    const char *diag;

    if (!spec->preflight || !spec->preflight->enabled || !spec->challenges) {
        return APR_SUCCESS;
    }
    if (!after_failed_validation(job, p)) {
        /* Nothing to decide: the CA is asked straight away. A diagnosis from
         * before stays for the status, but no longer holds anything back. */
        if (acme_json_getb(job, ACME_JK_PREFLIGHT, ACME_JK_PF_HOLDING, NULL)) {
            acme_json_setb(job, 0, ACME_JK_PREFLIGHT, ACME_JK_PF_HOLDING, NULL);
        }
        return APR_SUCCESS;
    }
    for (i = 0; i < spec->challenges->nelts; ++i) {
        const char *type = APR_ARRAY_IDX(spec->challenges, i, const char *);
        const acme_publisher_t *pub = acme_publisher_find(spec->publishers, type);
        int ok = 1, checked = 0;

        if (!pub || !acme_preflight_checks(type)) continue;
        if (spec->stop && apr_atomic_read32(spec->stop)) break;
        if (!http && !strcmp(type, "http-01") && make_http(&http, spec, p) != APR_SUCCESS) {
            continue;
        }
        for (j = 0; j < spec->names->nelts; ++j) {
            const char *name = APR_ARRAY_IDX(spec->names, j, const char *);
            acme_preflight_result_t *res;
            apr_status_t rv = acme_preflight_check(&res, spec->preflight, pub, store, http,
                                                   spec->domain, name, spec->stop, p);
            if (rv == APR_ENOTIMPL) continue;
            checked = 1;
            if (rv != APR_SUCCESS) {
                ok = 0;
                APR_ARRAY_PUSH(msgs, const char *) = acme_preflight_message(p, res);
                break; /* one diagnosis per type is enough */
            }
        }
        if (checked) {
            APR_ARRAY_PUSH(ok ? passed : failed, const char *) = type;
        }
    }
    if (spec->stop && apr_atomic_read32(spec->stop)) {
        /* what it saw was cut short: no diagnosis, no hold */
        return acme_result_set(r, APR_EINTR, "acme:stopped", "stopped by a server restart "
                               "during the pre-flight");
    }
    if (!passed->nelts && !failed->nelts) {
        acme_json_del(job, ACME_JK_PREFLIGHT, NULL);
        return APR_SUCCESS; /* nothing we can look at (dns-01 checks itself) */
    }
    diag = NULL;
    for (i = 0; i < msgs->nelts; ++i) {
        const char *m = APR_ARRAY_IDX(msgs, i, const char *);
        diag = diag ? apr_pstrcat(p, diag, "; ", m, NULL) : m;
    }
    blocks = (int)acme_json_getl(job, ACME_JK_PREFLIGHT, ACME_JK_PF_BLOCKS, NULL);
    acme_json_setl(rec, apr_time_sec(now), ACME_JK_PF_TIME, NULL);
    acme_json_setsa(rec, passed, ACME_JK_PF_PASSED, NULL);
    if (diag) acme_json_sets(rec, diag, ACME_JK_PF_DIAGNOSIS, NULL);
    if (!diag) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0431) "%s: pre-flight passed (%s)",
                 spec->domain, apr_array_pstrcat(p, passed, ' '));
    }
    else if (passed->nelts) {
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, 0, ACMELOG(0432) "%s: pre-flight: %s The CA "
                 "is asked again with %s.", spec->domain, diag,
                 APR_ARRAY_IDX(passed, 0, const char *));
        /* steer the order to a type that can pass */
        acme_json_setsa(job, failed, ACME_JK_FAILED_CHALLENGES, NULL);
    }
    if (passed->nelts) {
        acme_json_setj(job, rec, ACME_JK_PREFLIGHT, NULL);
        return APR_SUCCESS;
    }
    /* The CA refused before and nothing passes from here: another attempt
     * would only spend the CA's failed-validation limit. */
    blocks++;
    acme_json_setl(rec, blocks, ACME_JK_PF_BLOCKS, NULL);
    acme_json_setb(rec, 1, ACME_JK_PF_HOLDING, NULL);
    acme_json_setj(job, rec, ACME_JK_PREFLIGHT, NULL);
    acme_json_setl(job, apr_time_sec(now + acme_preflight_retry(spec->retry_delay, blocks)) + 1,
                   ACME_JK_NEXT_ATTEMPT, NULL);
    if (spec->memo) {
        spec->memo->next_attempt =
            acme_json_gett(job, ACME_JK_NEXT_ATTEMPT, NULL);
    }
    /* a run ends with "staged" or "errored" (acme_status.c counts on it) */
    acme_job_event(job, p, "errored", apr_pstrcat(p, "held back by the pre-flight: ", diag, NULL));
    return acme_result_set(r, APR_EAGAIN, ACME_PROBLEM_PREFLIGHT,
                           "after the CA's failed validation, it is not asked again until the "
                           "pre-flight passes (checked again at %s): %s",
                           acme_time_rfc3339(p, acme_json_gett(
                               job, ACME_JK_NEXT_ATTEMPT, NULL)), diag);
}
