/* acme_http_curl.c: the libcurl implementation of acme_http_t (the only
 * file that includes curl.h). TLS verification is always on. */
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include <curl/curl.h>
#include <apr_atomic.h>

#include "acme_util.h"
#include "acme_result.h"
#include "acme_http.h"

typedef struct {
    apr_pool_t *pool;
    CURL *curl;
    CURLM *multi;            /* drives the transfer, so that a stop ends it at once */
    acme_http_config_t conf;
} curl_http_t;

/* How often a transfer looks at the stop flag, in every phase of it. */
#define ABORT_CHECK_MS 100
/* A POST sent in full when the stop comes may have changed something at
 * the CA (an order made, a validation started): its answer is waited for
 * this long, so that the job can note what it got (the order URL). */
#define ABORT_GRACE apr_time_from_msec(1000)

/* State of one exchange, shared by the header and body callbacks. */
typedef struct {
    apr_pool_t *p;
    apr_table_t *headers;
    char *buf;
    apr_size_t len;
    apr_size_t cap;
    apr_size_t max;
    int too_large;
    const acme_http_request_t *req;   /* on_data: a stream */
    apr_status_t stream_rv;           /* what on_data returned when it ended it */
} exchange_t;

static apr_status_t curl_cleanup(void *data)
{
    curl_http_t *ch = data;

    if (ch->curl) {
        curl_easy_cleanup(ch->curl);
        ch->curl = NULL;
    }
    if (ch->multi) {
        curl_multi_cleanup(ch->multi);
        ch->multi = NULL;
    }
    return APR_SUCCESS;
}

apr_status_t acme_http_global_init(void)
{
    static int initialized;
    CURLcode rc;

    if (initialized) {
        return APR_SUCCESS;
    }
    rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, APR_EGENERAL, ACMELOG(0601) "curl_global_init failed: %s",
                 curl_easy_strerror(rc));
        return APR_EGENERAL;
    }
    initialized = 1;
    return APR_SUCCESS;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *baton)
{
    exchange_t *x = baton;
    size_t n = size * nmemb;
    const char *colon, *end, *v;
    char *name;

    /* A new status line starts a new response (redirect, 100 Continue):
     * only the headers of the final response count. */
    if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
        apr_table_clear(x->headers);
        return n;
    }
    colon = memchr(data, ':', n);
    if (!colon || colon == data) {
        return n; /* blank line at the end, or garbage we ignore */
    }
    end = data + n;
    while (end > colon + 1 && apr_isspace(end[-1])) {
        --end;
    }
    v = colon + 1;
    while (v < end && apr_isspace(*v)) {
        ++v;
    }
    name = apr_pstrmemdup(x->p, data, (apr_size_t)(colon - data));
    apr_table_addn(x->headers, name, apr_pstrmemdup(x->p, v, (apr_size_t)(end - v)));
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *baton)
{
    exchange_t *x = baton;
    size_t n = size * nmemb;

    if (x->req->on_data) {
        x->len += n;
        x->stream_rv = x->req->on_data(x->req->on_data_baton, data, n);
        return x->stream_rv == APR_SUCCESS ? n : 0;
    }
    if (n > x->max || x->len > x->max - n) {
        x->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (x->len + n + 1 > x->cap) {
        apr_size_t ncap = x->cap ? x->cap : 8192;
        char *nbuf;

        while (ncap < x->len + n + 1) {
            ncap *= 2;
        }
        if (ncap > x->max + 1) {
            ncap = x->max + 1;
        }
        nbuf = apr_palloc(x->p, ncap);
        if (x->len) {
            memcpy(nbuf, x->buf, x->len);
        }
        x->buf = nbuf;
        x->cap = ncap;
    }
    memcpy(x->buf + x->len, data, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

typedef struct {
    struct curl_slist *list;
    int failed;
} hdr_ctx;

static int add_header(void *baton, const char *key, const char *value)
{
    hdr_ctx *ctx = baton;
    struct curl_slist *nl;
    char line[4096];

    if (strlen(key) + strlen(value) + 3 > sizeof(line)) {
        ctx->failed = 1;
        return 0;
    }
    apr_snprintf(line, sizeof(line), "%s: %s", key, value);
    nl = curl_slist_append(ctx->list, line);
    if (!nl) {
        ctx->failed = 1;
        return 0;
    }
    ctx->list = nl;
    return 1;
}

static apr_status_t status_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return APR_TIMEUP;
    case CURLE_COULDNT_CONNECT:
        return APR_ECONNREFUSED;
    default:
        return APR_EGENERAL;
    }
}

/* curl_easy_perform() calls a progress callback only now and then, and not
 * at all in some phases (a TLS handshake that hangs took 10 s to notice):
 * our own loop looks at the stop flag every ABORT_CHECK_MS instead. */
static CURLcode perform_abortable(curl_http_t *ch, apr_size_t body_len)
{
    CURLcode rc = CURLE_OK;
    CURLMsg *msg;
    curl_off_t sent = 0;
    apr_time_t grace_end = 0;
    int running = 1, left;

    if (ch->conf.abort && apr_atomic_read32(ch->conf.abort)) {
        return CURLE_ABORTED_BY_CALLBACK; /* no new request once stopping */
    }
    if (curl_multi_add_handle(ch->multi, ch->curl) != CURLM_OK) {
        return CURLE_FAILED_INIT;
    }
    while (running) {
        if (curl_multi_perform(ch->multi, &running) != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
        if (running && ch->conf.abort && apr_atomic_read32(ch->conf.abort)) {
            if (!grace_end) {
                curl_easy_getinfo(ch->curl, CURLINFO_SIZE_UPLOAD_T, &sent);
                grace_end = body_len && sent >= (curl_off_t)body_len
                                ? apr_time_now() + ABORT_GRACE : 1;
            }
            if (apr_time_now() >= grace_end) {
                rc = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
        }
        if (running && curl_multi_poll(ch->multi, NULL, 0, ABORT_CHECK_MS, NULL) != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
    }
    while (!running && (msg = curl_multi_info_read(ch->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
    }
    curl_multi_remove_handle(ch->multi, ch->curl);
    return rc;
}

static apr_status_t curl_perform(acme_http_t *http, acme_http_response_t **presp,
                                 const acme_http_request_t *req, apr_pool_t *p,
                                 acme_result_t *result)
{
    curl_http_t *ch = http->baton;
    CURL *c = ch->curl;
    acme_http_response_t *resp = NULL;
    exchange_t x;
    hdr_ctx hc;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode rc;
    long code = 0;
    char *eff = NULL, *ip = NULL;
    struct curl_slist *ct = NULL;
    apr_status_t rv = APR_SUCCESS;
    int follow = req->follow_redirects && !strcmp(req->method, "GET");

    memset(&x, 0, sizeof(x));
    memset(&hc, 0, sizeof(hc));
    errbuf[0] = '\0';
    x.p = p;
    x.headers = apr_table_make(p, 16);
    x.max = ch->conf.max_body;
    x.req = req;

    /* reset keeps the connection cache, so keep-alive survives requests */
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* A transfer stopped while the threaded resolver works would otherwise
     * wait for getaddrinfo() to return (curl joins the thread, 5 s and more
     * with a name server that does not answer); this leaves the thread to
     * finish and clean up on its own. */
    curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ch->conf.ca_file) {
        curl_easy_setopt(c, CURLOPT_CAINFO, ch->conf.ca_file);
    }
    if (ch->conf.cert_file) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, ch->conf.cert_file);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (ch->conf.key_file) {
        curl_easy_setopt(c, CURLOPT_SSLKEY, ch->conf.key_file);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    /* Only an explicitly configured proxy: a daemon must not change its
     * route because of an environment variable it happened to inherit
     * (no_proxy included, which would let some requests bypass it). */
    curl_easy_setopt(c, CURLOPT_PROXY, ch->conf.proxy ? ch->conf.proxy : "");
    curl_easy_setopt(c, CURLOPT_NOPROXY, "");
    if (ch->conf.proxy) {
        curl_easy_setopt(c, CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
        if (ch->conf.proxy_ca_file) {
            curl_easy_setopt(c, CURLOPT_PROXY_CAINFO, ch->conf.proxy_ca_file);
        }
    }
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)apr_time_as_msec(ch->conf.connect_timeout));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     (long)apr_time_as_msec(req->timeout > 0 ? req->timeout : ch->conf.timeout));
    /* a peer that vanished without a word ends a long stream */
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ACME_USER_AGENT);
    if (ch->conf.connect_to) {
        ct = curl_slist_append(NULL, ch->conf.connect_to);
        curl_easy_setopt(c, CURLOPT_CONNECT_TO, ct);
    }
    if (!req->on_data) {
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ch->conf.max_body);
    }
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    if (follow) {
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)ACME_HTTP_MAX_REDIRECTS);
    }
    else {
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    }

    if (!strcmp(req->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    else if (!strcmp(req->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    else if (strcmp(req->method, "GET")) {
        rv = acme_result_set(result, APR_EINVAL, "acme:config",
                             "unsupported HTTP method %s for %s", req->method, req->url);
        goto leave;
    }

    /* ACME bodies are small: waiting for 100 Continue only costs a round trip */
    hc.list = curl_slist_append(NULL, "Expect:");
    if (req->headers) {
        apr_table_do(add_header, &hc, req->headers, NULL);
    }
    if (!hc.list || hc.failed) {
        rv = acme_result_set(result, APR_EINVAL, "acme:config",
                             "%s %s: cannot build the request headers", req->method, req->url);
        goto leave;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hc.list);

    acme_log(ACME_LOG_MARK, ACME_LOG_TRACE1, 0, "http: %s %s", req->method, req->url);
    rc = perform_abortable(ch, req->body ? req->body_len : 0);
    if (rc != CURLE_OK) {
        if (x.stream_rv != APR_SUCCESS) {
            rv = x.stream_rv;   /* on_data ended it, and said why in its own words */
        }
        else if (x.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
            rv = acme_result_set(result, APR_ENOSPC, "acme:malformed-response",
                                 "%s %s: response body exceeds the limit of %lu bytes, "
                                 "transfer aborted", req->method, req->url,
                                 (unsigned long)ch->conf.max_body);
        }
        else if (rc == CURLE_ABORTED_BY_CALLBACK) {
            rv = acme_result_set(result, APR_EINTR, "acme:stopped", "%s %s: aborted, the server "
                                 "is stopping", req->method, req->url);
        }
        else if (rc == CURLE_TOO_MANY_REDIRECTS) {
            rv = acme_result_set(result, APR_EGENERAL, "acme:network",
                                 "%s %s: more than %d redirects (redirect loop?)",
                                 req->method, req->url, ACME_HTTP_MAX_REDIRECTS);
        }
        else {
            rv = acme_result_set(result, status_of(rc), "acme:network", "%s %s: %s%s%s",
                                 req->method, req->url, curl_easy_strerror(rc),
                                 errbuf[0] ? ": " : "", errbuf);
        }
        goto leave;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &eff);
    curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip);

    resp = apr_pcalloc(p, sizeof(*resp));
    resp->status = (int)code;
    resp->headers = x.headers;
    resp->body = x.buf ? x.buf : "";
    resp->body_len = x.len;
    resp->effective_url = apr_pstrdup(p, eff ? eff : req->url);
    resp->remote_ip = ip && *ip ? apr_pstrdup(p, ip) : NULL;
    acme_log(ACME_LOG_MARK, ACME_LOG_TRACE1, 0, "http: %s %s -> %d, %lu bytes", req->method,
             req->url, resp->status, (unsigned long)resp->body_len);

leave:
    /* the handle must not keep pointers into this call's stack */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_CONNECT_TO, NULL);
    if (ct) {
        curl_slist_free_all(ct);
    }
    curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    if (hc.list) {
        curl_slist_free_all(hc.list);
    }
    *presp = resp;
    return rv;
}

apr_status_t acme_http_curl_create(acme_http_t **phttp, apr_pool_t *p,
                                   const acme_http_config_t *conf)
{
    acme_http_t *http = NULL;
    curl_http_t *ch;
    apr_status_t rv = APR_SUCCESS;

    rv = acme_http_global_init();
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    ch = apr_pcalloc(p, sizeof(*ch));
    ch->pool = p;
    acme_http_config_init(&ch->conf);
    if (conf) {
        ch->conf.ca_file = conf->ca_file ? apr_pstrdup(p, conf->ca_file) : NULL;
        ch->conf.proxy = conf->proxy ? apr_pstrdup(p, conf->proxy) : NULL;
        ch->conf.proxy_ca_file = conf->proxy_ca_file ? apr_pstrdup(p, conf->proxy_ca_file)
                                                     : NULL;
        ch->conf.cert_file = conf->cert_file ? apr_pstrdup(p, conf->cert_file) : NULL;
        ch->conf.key_file = conf->key_file ? apr_pstrdup(p, conf->key_file) : NULL;
        ch->conf.abort = conf->abort;
        ch->conf.connect_to = conf->connect_to ? apr_pstrdup(p, conf->connect_to) : NULL;
        if (conf->connect_timeout > 0) {
            ch->conf.connect_timeout = conf->connect_timeout;
        }
        if (conf->timeout > 0) {
            ch->conf.timeout = conf->timeout;
        }
        if (conf->max_body > 0) {
            ch->conf.max_body = conf->max_body;
        }
    }
    ch->curl = curl_easy_init();
    ch->multi = curl_multi_init();
    if (!ch->curl || !ch->multi) {
        rv = APR_ENOMEM;
        goto leave;
    }
    apr_pool_cleanup_register(p, ch, curl_cleanup, apr_pool_cleanup_null);
    http = apr_pcalloc(p, sizeof(*http));
    http->baton = ch;
    http->perform = curl_perform;

leave:
    *phttp = http;
    return rv;
}
