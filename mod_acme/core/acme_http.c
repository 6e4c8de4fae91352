/* acme_http.c: transport-independent parts of the HTTP interface
 * (configuration defaults and the convenience call). */
#include <string.h>

#include <apr_strings.h>

#include "acme_http.h"
#include "acme_result.h"

void acme_http_config_init(acme_http_config_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->connect_timeout = ACME_HTTP_CONNECT_TIMEOUT_DEFAULT;
    conf->timeout = ACME_HTTP_TIMEOUT_DEFAULT;
    conf->max_body = ACME_HTTP_MAX_BODY_DEFAULT;
}

apr_status_t acme_http_do(acme_http_t *http, acme_http_response_t **presp, apr_pool_t *p,
                          const char *method, const char *url, apr_table_t *headers,
                          const char *body, apr_size_t body_len, int follow_redirects,
                          acme_result_t *result)
{
    acme_http_request_t req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.body = body;
    req.body_len = body_len;
    req.follow_redirects = follow_redirects;
    return http->perform(http, presp, &req, p, result);
}
