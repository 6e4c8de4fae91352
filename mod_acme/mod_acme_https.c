/* mod_acme_https.c: ManagedRequireHttps. An http request for a managed name
 * is redirected to https once the domain has a certificate from its CA, and
 * with "permanent" https answers carry Strict-Transport-Security. */
#include <apr_strings.h>
#include <apr_uri.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>

#include "mod_acme.h"
#include "mod_acme_config.h"

APLOG_USE_MODULE(acme);

#define ACME_CHALLENGE_PREFIX "/.well-known/acme-challenge/"

/* The domain of the request's name, when it wants https and an SSL vhost
 * serves it: never while the temporary certificate is served (a redirect
 * would lead to a certificate warning and a 503). */
static acme_domain_t *https_domain(request_rec *r)
{
    acme_global_t *g = acme_config_global(r->server);
    acme_domain_t *d;

    if (!g || !r->hostname) {
        return NULL;
    }
    d = acme_mod_domain_for_name(g, r->hostname, r->pool);
    if (!d || !d->has_cert || !d->driven || d->settings->require_https == ACME_HTTPS_OFF) {
        return NULL;
    }
    return d;
}

/* Where clients reach the domain's SSL vhost: its port, unless that is
 * where the CA's (and so everyone's) 443 arrives (ManagedPortMap), for a
 * port forwarded from 443 is not the one a browser uses. */
static apr_port_t https_port(const acme_domain_t *d, const acme_global_t *g)
{
    apr_port_t port = 0;
    int i;

    for (i = 0; d->servers && i < d->servers->nelts && !port; ++i) {
        const server_rec *s = APR_ARRAY_IDX(d->servers, i, server_rec *);
        const server_addr_rec *a;
        for (a = s->addrs; a && !port; a = a->next) {
            port = a->host_port;
        }
    }
    return (!port || port == g->port_https) ? 443 : port;
}

static int hook_require_https(request_rec *r)
{
    acme_domain_t *d;
    apr_port_t port;
    const char *host, *path;
    int permanent, status;

    if (ap_ssl_conn_is_ssl(r->connection)) {
        d = https_domain(r);
        if (d && d->settings->require_https == ACME_HTTPS_PERMANENT) {
            /* err_headers_out: on error answers too, which browsers heed as well */
            apr_table_setn(r->err_headers_out, "Strict-Transport-Security",
                           apr_psprintf(r->pool, "max-age=%" APR_INT64_T_FMT,
                                        d->settings->hsts_max_age));
        }
        return DECLINED;
    }
    /* The CA validates http-01 over http: its requests are never redirected
     * (it would follow, but only to port 80 or 443 of the same name). */
    if (r->parsed_uri.path && !strncmp(r->parsed_uri.path, ACME_CHALLENGE_PREFIX,
                                       sizeof(ACME_CHALLENGE_PREFIX) - 1)) {
        return DECLINED;
    }
    d = https_domain(r);
    if (!d) {
        return DECLINED;
    }
    port = https_port(d, acme_config_global(r->server));
    host = ap_strchr_c(r->hostname, ':') ? apr_pstrcat(r->pool, "[", r->hostname, "]", NULL)
                                         : r->hostname;   /* an IPv6 identifier */
    /* the path and query of the request, also when its line had an absolute URI */
    path = apr_uri_unparse(r->pool, &r->parsed_uri, APR_URI_UNP_OMITSITEPART);
    apr_table_setn(r->headers_out, "Location",
                   apr_psprintf(r->pool, "https://%s%s%s", host,
                                port == 443 ? "" : apr_psprintf(r->pool, ":%u", port),
                                *path ? path : "/"));
    permanent = d->settings->require_https == ACME_HTTPS_PERMANENT;
    /* 307/308 keep the method and the body; 301/302 are what GET and HEAD
     * have always been given */
    if (r->method_number == M_GET) {
        status = permanent ? HTTP_MOVED_PERMANENTLY : HTTP_MOVED_TEMPORARILY;
    }
    else {
        status = permanent ? HTTP_PERMANENT_REDIRECT : HTTP_TEMPORARY_REDIRECT;
    }
    return status;
}

void acme_https_register_hooks(void)
{
    static const char *const before_ssl[] = {"mod_ssl.c", NULL};

    /* after the http-01 hook (APR_HOOK_FIRST), which answers the CA first */
    ap_hook_post_read_request(hook_require_https, NULL, before_ssl, APR_HOOK_MIDDLE);
}
