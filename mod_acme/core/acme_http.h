/* acme_http.h: the HTTP client interface the ACME engine talks through.
 * A table of functions so tests or another transport can replace libcurl. */
#ifndef ACME_HTTP_H
#define ACME_HTTP_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

struct acme_result_t;

#define ACME_HTTP_MAX_BODY_DEFAULT (1024 * 1024)
#define ACME_HTTP_CONNECT_TIMEOUT_DEFAULT apr_time_from_sec(10)
#define ACME_HTTP_TIMEOUT_DEFAULT apr_time_from_sec(60)
#define ACME_HTTP_MAX_REDIRECTS 5

typedef struct acme_http_config_t {
    const char *ca_file;                    /* PEM trust anchors; NULL = system bundle */
    const char *cert_file;                  /* PEM client certificate (mTLS) or NULL */
    const char *key_file;                   /* its private key (PEM) or NULL */
    const char *proxy;                      /* "http[s]://host:port" or NULL */
    const char *proxy_ca_file;              /* PEM trust anchors of an https proxy; NULL = system */
    apr_interval_time_t connect_timeout;    /* 0 = default */
    apr_interval_time_t timeout;            /* whole transfer; 0 = default */
    apr_size_t max_body;                    /* response bodies above this abort; 0 = default */
    /* When this becomes non-zero, a transfer under way is aborted (a
     * server stopping must not wait for a slow CA). May be NULL. */
    volatile apr_uint32_t *abort;
    /* "HOST:PORT:ADDR:PORT2" (curl's CONNECT_TO; empty HOST/PORT match any):
     * connect there instead of resolving, keeping the URL's name. May be NULL. */
    const char *connect_to;
} acme_http_config_t;

typedef struct acme_http_request_t {
    const char *method;      /* "GET", "HEAD" or "POST" */
    const char *url;
    apr_table_t *headers;    /* extra request headers, may be NULL */
    const char *body;        /* POST body, may be NULL */
    apr_size_t body_len;
    /* Only honoured for GET: follow up to ACME_HTTP_MAX_REDIRECTS redirects.
     * ACME POSTs never follow redirects: a redirected JWS would be signed for
     * the wrong URL anyway. */
    int follow_redirects;
    /* A stream (etcd's watch): when set, the body goes to on_data as it
     * arrives and is not kept (max_body does not apply); a non-success
     * return ends the transfer with that status. */
    apr_status_t (*on_data)(void *baton, const char *data, apr_size_t len);
    void *on_data_baton;
    apr_interval_time_t timeout;   /* the whole transfer; 0: the client's */
} acme_http_request_t;

typedef struct acme_http_response_t {
    int status;
    apr_table_t *headers;    /* case-insensitive; repeated headers stay separate entries */
    const char *body;        /* NUL-terminated for convenience (not counted) */
    apr_size_t body_len;
    const char *effective_url;
    const char *remote_ip;   /* the address that answered, or NULL */
} acme_http_response_t;

typedef struct acme_http_t acme_http_t;

struct acme_http_t {
    void *baton;
    /* Performs one exchange. Transport failures (DNS, connect, TLS, timeout,
     * body too large, redirect loop) return non-success with *result filled
     * (problem "acme:network", detail naming the URL). Any HTTP status,
     * including 4xx/5xx, is a success of the transport. Not thread-safe:
     * one acme_http_t serves one thread at a time. */
    apr_status_t (*perform)(acme_http_t *http, acme_http_response_t **presp,
                            const acme_http_request_t *req, apr_pool_t *p,
                            struct acme_result_t *result);
};

/* Call once per process before any thread uses acme_http_curl_create
 * (curl_global_init is not thread-safe). Safe to call more than once. */
apr_status_t acme_http_global_init(void);

void acme_http_config_init(acme_http_config_t *conf);

/* The libcurl implementation. The handle lives as long as pool p; it keeps
 * connections alive between requests. conf is copied. */
apr_status_t acme_http_curl_create(acme_http_t **phttp, apr_pool_t *p,
                                   const acme_http_config_t *conf);

/* Convenience: an exchange with the given method/url/body. */
apr_status_t acme_http_do(acme_http_t *http, acme_http_response_t **presp, apr_pool_t *p,
                          const char *method, const char *url, apr_table_t *headers,
                          const char *body, apr_size_t body_len, int follow_redirects,
                          struct acme_result_t *result);

#endif /* ACME_HTTP_H */
