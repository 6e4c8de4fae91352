/* mod_acme_challenge.c: answers the CA's challenges: http-01 from a
 * post_read_request hook, tls-alpn-01 through ALPN "acme-tls/1" and the
 * ssl_answer_challenge hook. The renewal job publishes the data in the
 * store; the hooks read it through a per-process cache. With etcd, a
 * thread of each child follows the challenges through a watch, so that what
 * another server publishes is here before the CA asks and a withdrawal is
 * seen at once; a key the watch has not brought is looked up. */
#include <signal.h>
#include <pthread.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <apr_atomic.h>
#include <apr_lib.h>

#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>

#include "acme_util.h"
#include "acme_store.h"
#include "mod_acme.h"
#include "mod_acme_config.h"

APLOG_USE_MODULE(acme);

#define ACME_CHALLENGE_PREFIX "/.well-known/acme-challenge/"
#define ACME_TLS_1 "acme-tls/1"
#define ACME_TOKEN_MAX 256

/* With etcd, another server may have published: a key not in the cache is
 * looked up, at most this often per second and process (bogus tokens must
 * not flood etcd), and the answer is kept for a while. tls-alpn-01 data is
 * named after the domain, so a new publication replaces it: kept briefly. */
#define ACME_LOOKUPS_PER_SEC 50
#define ACME_LOOKUP_KEEP 2000          /* entries made; the table starts over beyond */
/* A watch is made again this often (a connection that died quietly ends
 * with it); after a failure, the next try waits 1 s, doubling up to 30 s. */
#define ACME_WATCH_SPAN apr_time_from_sec(300)
#define ACME_WATCH_RETRY_MAX apr_time_from_sec(30)

typedef struct {
    apr_time_t at;
    const char *value;           /* NULL: not published when asked */
    apr_uint32_t watch;          /* the watch that brought it (0: a lookup): current
                                  * while that watch runs, whatever its age */
} lookup_t;

/* A copy of one challenge directory, reloaded when the directory's mtime
 * changes (every publish is a rename into it). */
typedef struct {
    const char *dir;             /* "http-01" or "tls-alpn-01" */
    apr_interval_time_t keep_found, keep_missing;   /* shared store: lookups kept so long */
    apr_thread_mutex_t *mutex;
    apr_pool_t *root;
    apr_pool_t *pool;            /* holds entries; replaced on reload */
    apr_hash_t *entries;         /* aspect -> content */
    apr_time_t mtime;
    int loaded;
    apr_pool_t *lpool;           /* shared store: lookups (lookup_t) */
    apr_hash_t *lookups;
    int made;                    /* entries made in lpool */
    apr_uint32_t watch;          /* the running watch's number, 0: none */
    apr_time_t window;           /* start of the second being counted */
    int window_lookups;
} chall_cache_t;

static chall_cache_t http_cache = {.dir = "http-01", .keep_found = apr_time_from_sec(30),
                                   .keep_missing = apr_time_from_sec(2)};
static chall_cache_t alpn_cache = {.dir = "tls-alpn-01", .keep_found = apr_time_from_sec(1),
                                   .keep_missing = apr_time_from_sec(1)};

static void cache_init(chall_cache_t *cc, apr_pool_t *p)
{
    cc->root = p;
    cc->pool = NULL;
    cc->entries = NULL;
    cc->loaded = 0;
    if (apr_thread_mutex_create(&cc->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        cc->mutex = NULL;
    }
    apr_pool_create(&cc->lpool, p);
    cc->lookups = apr_hash_make(cc->lpool);
    cc->made = 0;
    cc->watch = 0;
    cc->window = 0;
    cc->window_lookups = 0;
}

static void cache_reload(chall_cache_t *cc, acme_store_t *st, apr_time_t mtime)
{
    apr_array_header_t *aspects;
    apr_pool_t *np;
    int i;

    apr_pool_create(&np, cc->root);
    cc->entries = apr_hash_make(np);
    if (st->list(st, ACME_SG_CHALLENGES, cc->dir, &aspects, np) == APR_SUCCESS) {
        for (i = 0; i < aspects->nelts; ++i) {
            const char *a = APR_ARRAY_IDX(aspects, i, const char *), *data;
            apr_size_t len;
            if (st->load(st, ACME_SG_CHALLENGES, cc->dir, a, &data, &len, np) == APR_SUCCESS) {
                apr_hash_set(cc->entries, a, APR_HASH_KEY_STRING, data);
            }
        }
    }
    if (cc->pool) {
        apr_pool_destroy(cc->pool);
    }
    cc->pool = np;
    cc->mtime = mtime;
    cc->loaded = 1;
}

/* Shared store: remembers what key holds (value NULL: nothing). With the
 * mutex held. */
static void entry_set(chall_cache_t *cc, const char *key, const char *value, apr_size_t len,
                      apr_uint32_t watch, apr_time_t now)
{
    lookup_t *e;

    if (cc->made >= ACME_LOOKUP_KEEP) {
        apr_pool_clear(cc->lpool);
        cc->lookups = apr_hash_make(cc->lpool);
        cc->made = 0;
    }
    cc->made++;
    e = apr_palloc(cc->lpool, sizeof(*e));
    e->at = now;
    e->value = value ? apr_pstrmemdup(cc->lpool, value, len) : NULL;
    e->watch = watch;
    apr_hash_set(cc->lookups, apr_pstrdup(cc->lpool, key), APR_HASH_KEY_STRING, e);
}

/* Shared store: the cached answer for key, or one from etcd. Called with
 * the mutex held; it is released during the lookup. */
static const char *lookup_get(chall_cache_t *cc, acme_store_t *st, const char *key,
                              apr_pool_t *p)
{
    lookup_t *e = apr_hash_get(cc->lookups, key, APR_HASH_KEY_STRING);
    apr_time_t now = apr_time_now();
    const char *data = NULL;
    apr_size_t len;
    apr_status_t rv;

    if (e && ((e->watch && e->watch == cc->watch)
              || now - e->at < (e->value ? cc->keep_found : cc->keep_missing))) {
        return e->value ? apr_pstrdup(p, e->value) : NULL;
    }
    if (now - cc->window >= apr_time_from_sec(1)) {
        cc->window = now;
        cc->window_lookups = 0;
    }
    if (cc->window_lookups >= ACME_LOOKUPS_PER_SEC) {
        return e && e->value ? apr_pstrdup(p, e->value) : NULL;
    }
    cc->window_lookups++;
    apr_thread_mutex_unlock(cc->mutex);
    rv = st->load(st, ACME_SG_CHALLENGES, cc->dir, key, &data, &len, p);
    apr_thread_mutex_lock(cc->mutex);
    /* the table may have started over meanwhile (the watch, other requests) */
    e = apr_hash_get(cc->lookups, key, APR_HASH_KEY_STRING);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)) {
        /* etcd unreachable: what we had, and no new lookup for a moment */
        data = e && e->value ? apr_pstrdup(p, e->value) : NULL;
    }
    entry_set(cc, key, data, data ? strlen(data) : 0, 0, now);
    return data;
}

/* Looks up key; the result is copied into p (the cache may reload). */
static const char *cache_get(chall_cache_t *cc, const char *key, apr_pool_t *p)
{
    acme_store_t *st = acme_mod_store;
    apr_time_t mtime = 0;
    const char *v = NULL;

    if (!st || !cc->mutex) {
        return NULL;
    }
    if (acme_mod_lookup_store) {
        apr_thread_mutex_lock(cc->mutex);
        v = lookup_get(cc, acme_mod_lookup_store, key, p);
        apr_thread_mutex_unlock(cc->mutex);
        return v;
    }
    if (st->mtime(st, ACME_SG_CHALLENGES, cc->dir, NULL, &mtime, p) != APR_SUCCESS) {
        return NULL; /* nothing was ever published */
    }
    apr_thread_mutex_lock(cc->mutex);
    if (!cc->loaded || mtime != cc->mtime) {
        cache_reload(cc, st, mtime);
    }
    v = apr_hash_get(cc->entries, key, APR_HASH_KEY_STRING);
    if (v) {
        v = apr_pstrdup(p, v);
    }
    apr_thread_mutex_unlock(cc->mutex);
    return v;
}

static acme_domain_t *managed_domain(server_rec *s, const char *host)
{
    acme_global_t *g = acme_config_global(s);
    char buf[256];
    apr_size_t i;

    if (!g || !host) {
        return NULL;
    }
    for (i = 0; host[i] && i < sizeof(buf) - 1; ++i) {
        buf[i] = (char)apr_tolower(host[i]);
    }
    if (host[i]) {
        return NULL; /* longer than any valid name */
    }
    buf[i] = '\0';
    return apr_hash_get(g->names, buf, APR_HASH_KEY_STRING);
}

/* The identifier a TLS SNI stands for: the name itself, or for IP
 * identifiers the address behind its reverse-DNS name (RFC 8738). */
static const char *sni_identifier(apr_pool_t *p, const char *sni)
{
    const char *ip = acme_ip_from_reverse_name(p, sni);

    return ip ? ip : sni;
}

/* ---- http-01 -------------------------------------------------------------- */

static int hook_http01(request_rec *r)
{
    const char *token, *authz;
    apr_size_t len;

    /* The common case costs one prefix compare. */
    if (!r->parsed_uri.path
        || strncmp(r->parsed_uri.path, ACME_CHALLENGE_PREFIX, sizeof(ACME_CHALLENGE_PREFIX) - 1)) {
        return DECLINED;
    }
    if (!managed_domain(r->server, r->hostname)) {
        return DECLINED; /* not ours: other modules or files may serve it */
    }
    if (r->method_number != M_GET) { /* HEAD is M_GET with header_only */
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD");
        return HTTP_METHOD_NOT_ALLOWED;
    }
    token = r->parsed_uri.path + sizeof(ACME_CHALLENGE_PREFIX) - 1;
    if (r->parsed_uri.query || !acme_b64url_is_token(token, ACME_TOKEN_MAX)) {
        return HTTP_NOT_FOUND;
    }
    authz = cache_get(&http_cache, token, r->pool);
    if (!authz) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ACMELOG(0201)
                      "http-01: no challenge for token %s on %s", token, r->hostname);
        return HTTP_NOT_FOUND;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ACMELOG(0202)
                  "http-01: answering the challenge for %s", r->hostname);
    len = strlen(authz);
    r->status = HTTP_OK;
    ap_set_content_type(r, "application/octet-stream");
    ap_set_content_length(r, (apr_off_t)len);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) {
        ap_rwrite(authz, (int)len, r);
    }
    ap_finalize_request_protocol(r);
    return DONE;
}

/* ---- tls-alpn-01 ---------------------------------------------------------- */

static int offers_acme_tls(const apr_array_header_t *offers)
{
    int i;

    for (i = 0; offers && i < offers->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(offers, i, const char *), ACME_TLS_1)) return 1;
    }
    return 0;
}

static int hook_protocol_propose(conn_rec *c, request_rec *r, server_rec *s,
                                 const apr_array_header_t *offers, apr_array_header_t *proposals)
{
    const char *sni;
    acme_domain_t *d;

    if (r || !offers_acme_tls(offers)) {
        return DECLINED;
    }
    sni = ap_ssl_var_lookup(c->pool, s, c, NULL, "SSL_TLS_SNI");
    d = managed_domain(s, sni_identifier(c->pool, sni));
    if (!d || !d->tls_alpn_ok) {
        return DECLINED;
    }
    APR_ARRAY_PUSH(proposals, const char *) = ACME_TLS_1;
    return OK;
}

static int hook_protocol_switch(conn_rec *c, request_rec *r, server_rec *s, const char *protocol)
{
    if (r || strcmp(protocol, ACME_TLS_1)) {
        return DECLINED;
    }
    apr_table_setn(c->notes, ACME_TLS_1, "1");
    return DONE;
}

static const char *hook_protocol_get(const conn_rec *c)
{
    return apr_table_get(c->notes, ACME_TLS_1) ? ACME_TLS_1 : NULL;
}

/* Some virtual host proposes acme-tls/1 (set at post_config, read by the
 * children it forks). */
static int acme_tls_offered;

/* RFC 8737 3: a connection that negotiated acme-tls/1 carries no
 * application data: once the handshake is done it is closed, unread. The
 * handshake runs here (an AP_MODE_INIT read, as mod_http2 does), so the
 * protocol is known before HTTP reads anything. */
static int hook_process_connection(conn_rec *c)
{
    apr_bucket_brigade *bb;

    /* only where acme-tls/1 can be negotiated at all: other connections
     * keep their handshake where mod_ssl and the protocol modules run it */
    if (!acme_tls_offered || !ap_ssl_conn_is_ssl(c)) {
        return DECLINED;
    }
    bb = apr_brigade_create(c->pool, c->bucket_alloc);
    ap_get_brigade(c->input_filters, bb, AP_MODE_INIT, APR_BLOCK_READ, 0);
    apr_brigade_destroy(bb);
    if (!apr_table_get(c->notes, ACME_TLS_1)) {
        return DECLINED;
    }
    c->keepalive = AP_CONN_CLOSE;
    c->aborted = 1;
    return DONE;
}

static int hook_answer_challenge(conn_rec *c, const char *server_name, const char **pcert_pem,
                                 const char **pkey_pem)
{
    const char *cert, *key;

    if (!server_name || !apr_table_get(c->notes, ACME_TLS_1)) {
        return DECLINED;
    }
    server_name = sni_identifier(c->pool, server_name);
    if (!managed_domain(c->base_server, server_name)) {
        return DECLINED;
    }
    cert = cache_get(&alpn_cache, apr_pstrcat(c->pool, server_name, ".crt", NULL), c->pool);
    key = cache_get(&alpn_cache, apr_pstrcat(c->pool, server_name, ".key", NULL), c->pool);
    if (!cert || !key) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, ACMELOG(0203)
                      "tls-alpn-01: no challenge published for %s", server_name);
        return DECLINED;
    }
    ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, c, ACMELOG(0204)
                  "tls-alpn-01: answering the challenge for %s", server_name);
    *pcert_pem = cert;
    *pkey_pem = key;
    return OK;
}

/* ---- setup ----------------------------------------------------------------- */

void acme_challenge_setup_protocols(acme_global_t *g, apr_pool_t *p)
{
    int i, j;

    acme_tls_offered = 0;
    for (i = 0; i < g->domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);
        if (!d->tls_alpn_ok) continue;
        for (j = 0; j < d->servers->nelts; ++j) {
            server_rec *s = APR_ARRAY_IDX(d->servers, j, server_rec *);
            core_server_config *core = ap_get_core_module_config(s->module_config);

            if (!core->protocols) {
                core->protocols = apr_array_make(p, 3, sizeof(const char *));
            }
            if (core->protocols->nelts == 0) {
                /* Unset means "http/1.1 only": keep that, add the challenge. */
                APR_ARRAY_PUSH(core->protocols, const char *) = AP_PROTOCOL_HTTP1;
            }
            if (!ap_array_str_contains(core->protocols, ACME_TLS_1)) {
                APR_ARRAY_PUSH(core->protocols, const char *) = ACME_TLS_1;
            }
            acme_tls_offered = 1;
        }
    }
}

/* ---- the watch (etcd) ------------------------------------------------------ */

static apr_thread_t *watch_thread;

static chall_cache_t *cache_of(const char *dir)
{
    return !strcmp(dir, http_cache.dir) ? &http_cache
           : !strcmp(dir, alpn_cache.dir) ? &alpn_cache : NULL;
}

/* Each new watch gets a new number: what an earlier one brought ages as a
 * lookup does, since changes between two watches are not replayed. */
static void watch_number(apr_uint32_t n)
{
    chall_cache_t *caches[2] = {&http_cache, &alpn_cache};
    int i;

    for (i = 0; i < 2; ++i) {
        apr_thread_mutex_lock(caches[i]->mutex);
        caches[i]->watch = n;
        apr_thread_mutex_unlock(caches[i]->mutex);
    }
}

static apr_status_t watch_change(void *baton, const char *dir, const char *key,
                                 const char *data, apr_size_t len, apr_pool_t *p)
{
    apr_uint32_t *number = baton;
    chall_cache_t *cc;

    (void)p;
    if (!dir) {
        watch_number(++*number ? *number : ++*number);
        return APR_SUCCESS;
    }
    if ((cc = cache_of(dir)) != NULL) {
        apr_thread_mutex_lock(cc->mutex);
        entry_set(cc, key, data, len, cc->watch, apr_time_now());
        apr_thread_mutex_unlock(cc->mutex);
    }
    return APR_SUCCESS;
}

static void *APR_THREAD_FUNC watch_main(apr_thread_t *t, void *data)
{
    acme_store_t *st = data;
    apr_interval_time_t pause = 0;
    apr_uint32_t number = 0;
    apr_pool_t *p;
    apr_time_t began;
    apr_status_t rv;
    sigset_t all;

    (void)t;
    /* made before the child blocks its signals for its own signal thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (apr_pool_create_unmanaged_ex(&p, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    while (!apr_atomic_read32(&acme_mod_watch_stop)) {
        began = apr_time_now();
        rv = st->watch(st, ACME_SG_CHALLENGES, ACME_WATCH_SPAN, watch_change, &number, p);
        watch_number(0);
        apr_pool_clear(p);
        if (rv == APR_EINTR) {
            break;
        }
        /* a watch that failed, or ended at once, is not made again at once */
        pause = rv == APR_SUCCESS && apr_time_now() - began > apr_time_from_sec(1) ? 0
                : !pause ? apr_time_from_sec(1)
                : pause * 2 > ACME_WATCH_RETRY_MAX ? ACME_WATCH_RETRY_MAX : pause * 2;
        for (began = apr_time_now(); apr_time_now() - began < pause
             && !apr_atomic_read32(&acme_mod_watch_stop);) {
            apr_sleep(apr_time_from_msec(100));
        }
    }
    apr_pool_destroy(p);
    return NULL; /* not apr_thread_exit(): see ACME_THREAD_RETURN in mod_acme_drive.c */
}

static apr_status_t watch_child_exit(void *data)
{
    apr_status_t trv;

    (void)data;
    apr_atomic_set32(&acme_mod_watch_stop, 1);
    if (watch_thread) {
        apr_thread_join(&trv, watch_thread);
        watch_thread = NULL;
    }
    return APR_SUCCESS;
}

static void challenge_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    cache_init(&http_cache, pchild);
    cache_init(&alpn_cache, pchild);
    watch_thread = NULL;
    if (!acme_mod_watch_store || !acme_mod_watch_store->watch || !http_cache.mutex
        || !alpn_cache.mutex) {
        return;
    }
    apr_atomic_set32(&acme_mod_watch_stop, 0);
    rv = apr_thread_create(&watch_thread, NULL, watch_main, acme_mod_watch_store, pchild);
    if (rv != APR_SUCCESS) {
        watch_thread = NULL;
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, ACMELOG(0205) "cannot start the watch of "
                     "the challenges in etcd: this child looks each one up when asked");
        return;
    }
    /* before the child's own pools go: the thread uses the store's */
    apr_pool_cleanup_register(pchild, NULL, watch_child_exit, apr_pool_cleanup_null);
}

void acme_challenge_register_hooks(void)
{
    ap_hook_child_init(challenge_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_read_request(hook_http01, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_protocol_propose(hook_protocol_propose, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_protocol_switch(hook_protocol_switch, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_protocol_get(hook_protocol_get, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_ssl_answer_challenge(hook_answer_challenge, NULL, NULL, APR_HOOK_MIDDLE);
    /* before mod_http2 and the HTTP/1 handler take the connection */
    ap_hook_process_connection(hook_process_connection, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
