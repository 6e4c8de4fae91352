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
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <apr_atomic.h>
#include <apr_lib.h>

#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <ap_mpm.h>

#include "acme_util.h"
#include "acme_store.h"
#include "mod_acme.h"
#include "mod_acme_store.h"
#include "mod_acme_config.h"

APLOG_USE_MODULE(acme);

#define ACME_CHALLENGE_PREFIX "/.well-known/acme-challenge/"
#define ACME_TLS_1 "acme-tls/1"
#define ACME_TOKEN_MAX 256

/* With etcd, another server may have published: a key not in the cache is
 * looked up. A child has one etcd client for lookups, which serves them one
 * at a time, and a lookup may wait ACME_LOOKUP_TIMEOUT per endpoint; so an
 * internet client asking for made-up tokens must not be able to make
 * threads wait on it (DESIGN.md: "pin worker threads"). At most
 * ACME_LOOKUP_WAITERS threads of a child are in a lookup, at most
 * ACME_LOOKUPS_PER_SEC lookups start per second, and after a lookup failed
 * none starts for ACME_LOOKUP_PAUSE, then one alone tries again. A CA
 * validates from several places at once: a request for a key that is being
 * looked up waits for that answer, up to ACME_LOOKUP_FOLLOWERS threads. A
 * request that may do neither is answered from the cache at once (a miss:
 * 404). */
#define ACME_LOOKUP_WAITERS 2
#define ACME_LOOKUP_FOLLOWERS 4
#define ACME_LOOKUPS_PER_SEC 50
#define ACME_LOOKUP_PAUSE apr_time_from_sec(5)
/* Each watch first feeds what etcd holds, so a child knows every answer
 * published before it started without a lookup each (a CA's validations
 * of a whole batch reach a new child at once). In a child's first
 * ACME_PRIME_WINDOW, while its first watch is being made, a few requests
 * (a quarter of its threads, at most 8) wait for it, ACME_PRIME_WAIT each;
 * none when the configuration pass found etcd down (then the watch may
 * hang, and a flood of made-up tokens would pin the worker threads). */
#define ACME_PRIME_WINDOW apr_time_from_sec(5)
#define ACME_PRIME_WAIT apr_time_from_msec(500)
#define ACME_PRIME_WAITERS_MAX 8     /* and a quarter of the child's threads */
/* What the store holds (brought by the watch or found by a lookup) is kept
 * apart from the misses, so that no flood of misses can push out an answer.
 * Answers are as many as the store holds; a replaced one stays in the pool
 * until it is compacted, and one neither current nor recent is then let go.
 * Misses are two generations of ACME_MISSES_HALF: when the newer is full,
 * the older is dropped, so the newest misses always stay. */
#define ACME_ANSWERS_SLACK 64
#define ACME_ANSWER_RECENT apr_time_from_sec(600)
#define ACME_MISSES_HALF 1000
/* A watch is made again this often (a connection that died quietly ends
 * with it); after a failure, the next try waits 1 s, doubling up to 30 s. */
#define ACME_WATCH_SPAN apr_time_from_sec(300)
#define ACME_WATCH_RETRY_MAX apr_time_from_sec(30)

typedef struct {
    apr_time_t at;
    const char *value;           /* NULL in the misses */
    apr_uint32_t watch;          /* the watch that brought it (0: a lookup): current
                                  * while that watch runs, whatever its age */
} entry_t;

typedef struct {
    apr_pool_t *pool;            /* holds the hash, keys and entries */
    apr_hash_t *hash;            /* key -> entry_t */
    int made;                    /* entries made in pool, replaced ones included */
} table_t;

/* A copy of one challenge directory, reloaded when the directory's mtime
 * changes (every publish is a rename into it). */
typedef struct {
    const char *dir;             /* "http-01" or "tls-alpn-01" */
    apr_interval_time_t keep_found, keep_missing;   /* shared store: lookups kept so long */
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *answered; /* shared store: a lookup ended */
    const char *asked[ACME_LOOKUP_WAITERS];   /* shared store: keys being looked up */
    apr_pool_t *root;
    apr_pool_t *pool;            /* holds entries; replaced on reload */
    apr_hash_t *entries;         /* aspect -> content */
    apr_time_t mtime;
    int loaded;
    table_t answers;             /* shared store: what it holds */
    table_t misses[2];           /* shared store: keys it did not hold; [0] the newer */
    apr_uint32_t watch;          /* the running watch's number, 0: none */
    int priming;                 /* requests waiting for the child's first watch */
} chall_cache_t;

/* The lookups of a child, shared by both caches (they share the client). */
typedef struct {
    apr_thread_mutex_t *mutex;
    int looking;                 /* threads in a lookup now */
    int following;               /* threads waiting for another's lookup */
    int failing;                 /* the last lookup failed: one alone, after retry_at */
    apr_time_t retry_at;
    apr_time_t window;           /* start of the second being counted */
    int window_lookups;
} lookup_gate_t;

static chall_cache_t http_cache = {.dir = "http-01", .keep_found = apr_time_from_sec(30),
                                   .keep_missing = apr_time_from_sec(2)};
static chall_cache_t alpn_cache = {.dir = "tls-alpn-01", .keep_found = apr_time_from_sec(1),
                                   .keep_missing = apr_time_from_sec(1)};
static lookup_gate_t gate;
static apr_time_t watch_began;   /* when the child started its watch thread (0: none) */
static int prime_waiters;        /* how many requests may wait for it */

static void table_init(table_t *t, apr_pool_t *p)
{
    apr_pool_create(&t->pool, p);
    t->hash = apr_hash_make(t->pool);
    t->made = 0;
}

static entry_t *table_get(const table_t *t, const char *key)
{
    return apr_hash_get(t->hash, key, APR_HASH_KEY_STRING);
}

static void table_set(table_t *t, const char *key, const char *value, apr_size_t len,
                      apr_uint32_t watch, apr_time_t at)
{
    entry_t *e = apr_palloc(t->pool, sizeof(*e));

    e->at = at;
    e->value = value ? apr_pstrmemdup(t->pool, value, len) : NULL;
    e->watch = watch;
    apr_hash_set(t->hash, apr_pstrdup(t->pool, key), APR_HASH_KEY_STRING, e);
    t->made++;
}

/* An entry is current while the watch that brought it runs, or for keep. */
static int entry_current(const chall_cache_t *cc, const entry_t *e, apr_interval_time_t keep,
                         apr_time_t now)
{
    return (e->watch && e->watch == cc->watch) || now - e->at < keep;
}

static void cache_init(chall_cache_t *cc, apr_pool_t *p)
{
    cc->root = p;
    cc->pool = NULL;
    cc->entries = NULL;
    cc->loaded = 0;
    if (apr_thread_mutex_create(&cc->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS
        || apr_thread_cond_create(&cc->answered, p) != APR_SUCCESS) {
        cc->mutex = NULL;
    }
    memset(cc->asked, 0, sizeof(cc->asked));
    table_init(&cc->answers, p);
    table_init(&cc->misses[0], p);
    table_init(&cc->misses[1], p);
    cc->watch = 0;
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

/* Replaced answers pile up in the pool: once they outnumber the live ones,
 * the live ones move to a new pool. One that is neither current nor recent
 * was withdrawn long ago or never asked for again: it is let go. */
static void answers_compact(chall_cache_t *cc, apr_time_t now)
{
    table_t fresh;
    apr_hash_index_t *hi;

    if (cc->answers.made < 2 * (int)apr_hash_count(cc->answers.hash) + ACME_ANSWERS_SLACK) {
        return;
    }
    table_init(&fresh, cc->root);
    for (hi = apr_hash_first(NULL, cc->answers.hash); hi; hi = apr_hash_next(hi)) {
        const entry_t *e = apr_hash_this_val(hi);
        if (entry_current(cc, e, ACME_ANSWER_RECENT, now)) {
            table_set(&fresh, apr_hash_this_key(hi), e->value, strlen(e->value), e->watch,
                      e->at);
        }
    }
    apr_pool_destroy(cc->answers.pool);
    cc->answers = fresh;
}

/* Shared store: remembers what key holds (value NULL: nothing), from the
 * watch (its number) or a lookup (0). With the mutex held. */
static void entry_set(chall_cache_t *cc, const char *key, const char *value, apr_size_t len,
                      apr_uint32_t watch, apr_time_t now)
{
    table_t older;

    if (value) {
        apr_hash_set(cc->misses[0].hash, key, APR_HASH_KEY_STRING, NULL);
        apr_hash_set(cc->misses[1].hash, key, APR_HASH_KEY_STRING, NULL);
        answers_compact(cc, now);
        table_set(&cc->answers, key, value, len, watch, now);
        return;
    }
    apr_hash_set(cc->answers.hash, key, APR_HASH_KEY_STRING, NULL);
    if (cc->misses[0].made >= ACME_MISSES_HALF) {
        older = cc->misses[1];
        apr_pool_clear(older.pool);
        older.hash = apr_hash_make(older.pool);
        older.made = 0;
        cc->misses[1] = cc->misses[0];
        cc->misses[0] = older;
    }
    table_set(&cc->misses[0], key, NULL, 0, watch, now);
}

static entry_t *miss_get(const chall_cache_t *cc, const char *key)
{
    entry_t *m = table_get(&cc->misses[0], key);

    return m ? m : table_get(&cc->misses[1], key);
}

/* Whether this thread may look up now (follow: wait for another's
 * lookup); if so, it calls gate_leave after. */
static int gate_enter(lookup_gate_t *g, int follow, apr_time_t now)
{
    int ok;

    apr_thread_mutex_lock(g->mutex);
    if (now - g->window >= apr_time_from_sec(1)) {
        g->window = now;
        g->window_lookups = 0;
    }
    if (follow) {
        ok = g->following < ACME_LOOKUP_FOLLOWERS;
        g->following += ok;
    }
    else {
        ok = g->window_lookups < ACME_LOOKUPS_PER_SEC
             && (g->failing ? !g->looking && now >= g->retry_at
                 : g->looking < ACME_LOOKUP_WAITERS);
        g->looking += ok;
        g->window_lookups += ok;
    }
    apr_thread_mutex_unlock(g->mutex);
    return ok;
}

/* Whether etcd answered a lookup: a value that does not open (EINVAL; the
 * store logs it, naming the key) is a miss, not a sign that etcd fails. */
static int lookup_answered(apr_status_t rv)
{
    return rv == APR_SUCCESS || APR_STATUS_IS_ENOENT(rv) || rv == APR_EINVAL;
}

static void gate_leave(lookup_gate_t *g, int follow, apr_status_t rv)
{
    int answered = lookup_answered(rv);

    apr_thread_mutex_lock(g->mutex);
    if (follow) {
        g->following--;
        goto leave;
    }
    g->looking--;
    if (!answered) {
        g->retry_at = apr_time_now() + ACME_LOOKUP_PAUSE;
    }
    if (answered == !g->failing) {
        goto leave;
    }
    /* once per change: a flood of requests makes no flood of lines */
    g->failing = !answered;
    if (g->failing) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf, ACMELOG(1600)
                     "challenge lookups in etcd fail (the store's error says why): until one "
                     "succeeds again, a challenge not in this child's cache is answered 404 at "
                     "once, and one lookup is tried every %d s",
                     (int)apr_time_sec(ACME_LOOKUP_PAUSE));
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf, ACMELOG(1601)
                     "challenge lookups in etcd answer again");
    }
leave:
    apr_thread_mutex_unlock(g->mutex);
}

/* The slot of key among the keys being looked up, or -1 (key NULL: a
 * free slot). */
static int asked_slot(const chall_cache_t *cc, const char *key)
{
    int i;

    for (i = 0; i < ACME_LOOKUP_WAITERS; ++i) {
        if (key ? cc->asked[i] && !strcmp(cc->asked[i], key) : !cc->asked[i]) {
            return i;
        }
    }
    return -1;
}

/* Shared store: the cached answer for key, or one from etcd. Called with
 * the mutex held; it is released during the lookup. */
static const char *lookup_get(chall_cache_t *cc, acme_store_t *st, const char *key,
                              apr_pool_t *p)
{
    entry_t *e = table_get(&cc->answers, key), *m = miss_get(cc, key);
    apr_time_t now = apr_time_now();
    const char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;
    int slot;

    if (e && entry_current(cc, e, cc->keep_found, now)) {
        return apr_pstrdup(p, e->value);
    }
    if (m && entry_current(cc, m, cc->keep_missing, now)) {
        return NULL;
    }
    if (!cc->watch && watch_began && !acme_mod_store_down
        && now - watch_began < ACME_PRIME_WINDOW && cc->priming < prime_waiters) {
        cc->priming++;
        while (!cc->watch && apr_time_now() - now < ACME_PRIME_WAIT) {
            apr_thread_cond_timedwait(cc->answered, cc->mutex,
                                      ACME_PRIME_WAIT - (apr_time_now() - now));
        }
        cc->priming--;
        e = table_get(&cc->answers, key);
        if (e && entry_current(cc, e, cc->keep_found, now)) {
            return apr_pstrdup(p, e->value);
        }
    }
    if (asked_slot(cc, key) >= 0) {
        if (gate_enter(&gate, 1, now)) {
            do {
                apr_thread_cond_wait(cc->answered, cc->mutex);
            } while (asked_slot(cc, key) >= 0);
            gate_leave(&gate, 1, APR_SUCCESS);
        }
        e = table_get(&cc->answers, key);
        return e ? apr_pstrdup(p, e->value) : NULL;
    }
    /* a slot frees only after its lookup left the gate: both are checked */
    slot = asked_slot(cc, NULL);
    if (slot < 0 || !gate_enter(&gate, 0, now)) {
        /* etcd is failing or busy: what we had, at once */
        return e ? apr_pstrdup(p, e->value) : NULL;
    }
    cc->asked[slot] = key;
    apr_thread_mutex_unlock(cc->mutex);
    rv = st->load(st, ACME_SG_CHALLENGES, cc->dir, key, &data, &len, p);
    gate_leave(&gate, 0, rv);
    apr_thread_mutex_lock(cc->mutex);
    cc->asked[slot] = NULL;
    apr_thread_cond_broadcast(cc->answered);
    /* the tables may have changed meanwhile (the watch, other requests) */
    e = table_get(&cc->answers, key);
    m = miss_get(cc, key);
    if (!lookup_answered(rv)) {
        return e ? apr_pstrdup(p, e->value) : NULL;
    }
    if (rv != APR_SUCCESS) {
        data = NULL;
        len = 0;
    }
    /* what the running watch brought during the lookup is newer */
    if (!(e && e->watch && e->watch == cc->watch) && !(m && m->watch && m->watch == cc->watch)) {
        entry_set(cc, key, data, len, 0, now);
    }
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
        if (!gate.mutex) {
            return NULL;
        }
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
    acme_domain_t *d;
    apr_size_t len;

    /* The common case costs one prefix compare. */
    if (!r->parsed_uri.path
        || strncmp(r->parsed_uri.path, ACME_CHALLENGE_PREFIX, sizeof(ACME_CHALLENGE_PREFIX) - 1)) {
        return DECLINED;
    }
    /* In a cluster, a token the store holds is answered whatever the Host:
     * during a rolling change, the CA may ask a server that does not have
     * the name yet. For other names, what the store lacks is left to other
     * modules and files. */
    d = managed_domain(r->server, r->hostname);
    if (!d && !acme_mod_lookup_store) {
        return DECLINED; /* not ours: other modules or files may serve it */
    }
    token = r->parsed_uri.path + sizeof(ACME_CHALLENGE_PREFIX) - 1;
    if (r->method_number != M_GET) { /* HEAD is M_GET with header_only */
        if (!d) {
            return DECLINED;
        }
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD");
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (r->parsed_uri.query || !acme_b64url_is_token(token, ACME_TOKEN_MAX)) {
        return d ? HTTP_NOT_FOUND : DECLINED;
    }
    authz = cache_get(&http_cache, token, r->pool);
    if (!authz) {
        if (!d) {
            return DECLINED;
        }
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
        apr_thread_cond_broadcast(caches[i]->answered);
        apr_thread_mutex_unlock(caches[i]->mutex);
    }
}

/* The watch thread's numbers: what a watch feeds before it is established
 * (what etcd held) already belongs to it. */
typedef struct {
    apr_uint32_t current;        /* the last established watch */
    apr_uint32_t next;           /* the watch being made (current once established) */
} watch_count_t;

static apr_status_t watch_change(void *baton, const char *dir, const char *key,
                                 const char *data, apr_size_t len, apr_pool_t *p)
{
    watch_count_t *wc = baton;
    chall_cache_t *cc;

    (void)p;
    if (!dir) {
        wc->current = wc->next;
        watch_number(wc->current);
        return APR_SUCCESS;
    }
    if ((cc = cache_of(dir)) != NULL) {
        apr_thread_mutex_lock(cc->mutex);
        entry_set(cc, key, data, len, wc->next, apr_time_now());
        apr_thread_mutex_unlock(cc->mutex);
    }
    return APR_SUCCESS;
}

static void *APR_THREAD_FUNC watch_main(apr_thread_t *t, void *data)
{
    acme_store_t *st = data;
    apr_interval_time_t pause = 0;
    watch_count_t wc = {0, 0};
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
        wc.next = wc.current + 1 ? wc.current + 1 : 1;
        rv = st->watch(st, ACME_SG_CHALLENGES, ACME_WATCH_SPAN, watch_change, &wc, p);
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
    return NULL; /* not apr_thread_exit(): see ACME_THREAD_RETURN in mod_acme_sched.c */
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
    memset(&gate, 0, sizeof(gate));
    if (apr_thread_mutex_create(&gate.mutex, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS) {
        gate.mutex = NULL;
    }
    watch_thread = NULL;
    watch_began = 0;
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
    {
        int threads = 0;
        ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
        prime_waiters = threads / 4 < 1 ? 1
                        : threads / 4 > ACME_PRIME_WAITERS_MAX ? ACME_PRIME_WAITERS_MAX
                        : threads / 4;
    }
    watch_began = apr_time_now();
    /* A pre-cleanup: APR destroys pchild's subpools (the caches' tables
     * among them) before it runs pchild's cleanups, and the thread writes
     * into those tables until it is joined. */
    apr_pool_pre_cleanup_register(pchild, NULL, watch_child_exit);
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
