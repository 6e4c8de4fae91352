/* mod_acme.c: the module's tables, hook registration, and the parent's
 * config-time work: open the store, match ManagedDomain names to SSL
 * virtual hosts, hand certificates (or a fallback) to mod_ssl. */
#include <unistd.h>
#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_shm.h>
#include <apr_atomic.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <ap_listen.h>
#include <unixd.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_status.h"
#include "acme_store_etcd.h"
#include "acme_etcd.h"
#include "acme_result.h"
#include "acme_job.h"
#include "acme_activate.h"
#include "mod_acme.h"
#include "mod_acme_config.h"
#include "mod_acme_install.h"
#include "mod_acme_store.h"
#include "mod_acme_restart.h"
#include "mod_acme_sched.h"

acme_store_t *acme_mod_store;
acme_store_t *acme_mod_cache;
acme_store_t *acme_mod_lookup_store;
acme_store_t *acme_mod_watch_store;
acme_store_t *acme_mod_sched_store;
acme_store_t *acme_mod_scan_store;
volatile apr_uint32_t acme_mod_watch_stop;
volatile apr_uint32_t acme_mod_sched_stop;
acme_status_cache_t *acme_mod_status_cache;
int acme_mod_store_down;
/* With etcd: the children's store, on clients the parent never uses, so
 * no connection or lock of the parent's crosses the fork. */
static acme_store_t *child_store;
static acme_store_t *child_lookup_store;
static acme_store_t *child_watch_store;
static acme_store_t *child_sched_store;

/* ---- logging bridge ---------------------------------------------------- */

static void log_bridge(void *baton, const char *file, int line, int level, apr_status_t rv,
                       const char *msg)
{
    server_rec *s = baton;

    ap_log_error(file, line, APLOG_MODULE_INDEX, level, rv, s, "%s", msg);
}

/* ---- names of a server -------------------------------------------------- */

static void server_names(apr_array_header_t **pnames, server_rec *s, apr_pool_t *p)
{
    apr_array_header_t *names = apr_array_make(p, 5, sizeof(const char *));
    int i;

    if (s->server_hostname) {
        APR_ARRAY_PUSH(names, const char *) = s->server_hostname;
    }
    for (i = 0; s->names && i < s->names->nelts; ++i) {
        APR_ARRAY_PUSH(names, const char *) = APR_ARRAY_IDX(s->names, i, const char *);
    }
    for (i = 0; s->wild_names && i < s->wild_names->nelts; ++i) {
        APR_ARRAY_PUSH(names, const char *) = APR_ARRAY_IDX(s->wild_names, i, const char *);
    }
    *pnames = names;
}

/* Found by hash, not by acme_name_covers: a start with thousands of
 * domains must not compare every vhost with every domain. */
acme_domain_t *acme_mod_domain_for_name(acme_global_t *g, const char *name, apr_pool_t *p)
{
    acme_domain_t *d;
    const char *dot;
    char *lc;

    if (!name) return NULL;
    lc = apr_pstrdup(p, name);
    ap_str_tolower(lc);
    d = apr_hash_get(g->names, lc, APR_HASH_KEY_STRING);
    dot = strchr(lc, '.');
    if (!d && !acme_name_is_wildcard(lc) && dot && dot != lc) {
        d = apr_hash_get(g->names, apr_pstrcat(p, "*", dot, NULL), APR_HASH_KEY_STRING);
    }
    return d;
}

/* A wildcard name can only be validated with dns-01 and a way to set the
 * TXT records. */
static int dns01_possible(const acme_settings_t *st)
{
    return ap_array_str_contains(st->challenges, "dns-01") && (st->dns_hook || st->dns_update);
}

/* ManagedMembers auto: name, of a vhost that uses d, joins d's names when
 * no domain has it yet (exactly or by a wildcard). A wildcard that d could
 * not validate stays out, so the other names still get their certificate
 * (check_config said why). */
static void add_member(acme_global_t *g, acme_domain_t *d, const char *name, apr_pool_t *p)
{
    char *lc;

    if (acme_mod_domain_for_name(g, name, p)
        || (acme_name_is_wildcard(name) && !dns01_possible(d->settings))) {
        return;
    }
    lc = apr_pstrdup(g->pool, name);
    ap_str_tolower(lc);
    APR_ARRAY_PUSH(d->names, const char *) = lc;
    apr_hash_set(g->names, lc, APR_HASH_KEY_STRING, d);
}

/* Each virtual host gets the managed domain of its ServerName (or, failing
 * that, of its first ServerAlias that is managed). Settings are resolved. */
static void match_servers(acme_global_t *g, server_rec *base, apr_pool_t *p)
{
    apr_pool_t *pv;
    server_rec *s;

    apr_pool_create(&pv, p);
    for (s = base; s; s = s->next) {
        acme_srv_conf_t *sc = acme_config_get(s);
        apr_array_header_t *names;
        int i;

        apr_pool_clear(pv);
        sc->domain = NULL;
        server_names(&names, s, pv);
        for (i = 0; i < names->nelts && !sc->domain; ++i) {
            sc->domain = acme_mod_domain_for_name(g, APR_ARRAY_IDX(names, i, const char *), pv);
        }
        for (i = 0; sc->domain && sc->domain->settings->members && i < names->nelts; ++i) {
            add_member(g, sc->domain, APR_ARRAY_IDX(names, i, const char *), pv);
        }
    }
    apr_pool_destroy(pv);
}

/* ManagedMembers auto with a wildcard alias that only dns-01 could
 * validate: said at `apachectl -t`, which runs no post_config. */
static void check_members(acme_global_t *g, server_rec *base, apr_pool_t *p)
{
    server_rec *s;
    int i;

    for (s = base; s; s = s->next) {
        apr_array_header_t *names;
        acme_domain_t *d = NULL;

        server_names(&names, s, p);
        for (i = 0; i < names->nelts && !d; ++i) {
            d = acme_mod_domain_for_name(g, APR_ARRAY_IDX(names, i, const char *), p);
        }
        for (i = 0; d && d->settings->members && i < names->nelts; ++i) {
            const char *n = APR_ARRAY_IDX(names, i, const char *);
            if (acme_name_is_wildcard(n) && !dns01_possible(d->settings)
                && !acme_mod_domain_for_name(g, n, p)) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ACMELOG(2000)
                             "%s: ManagedMembers auto leaves out the wildcard alias %s of the "
                             "virtual host %s (line %u of %s): only dns-01 can validate it. Add "
                             "dns-01 to ManagedChallenges with ManagedDNSUpdate or "
                             "ManagedDNSHook, or list the names in the ManagedDomain.",
                             d->name, n, s->server_hostname ? s->server_hostname : "-",
                             s->defn_line_number, s->defn_name ? s->defn_name : "-");
            }
        }
    }
}

/* ---- which challenges can work here -------------------------------------- */

static int listening_on(int port)
{
    ap_listen_rec *lr;

    for (lr = ap_listeners; lr; lr = lr->next) {
        if (lr->bind_addr && lr->bind_addr->port == port) return 1;
    }
    return 0;
}

static void compute_challenges(acme_global_t *g, acme_domain_t *d, server_rec *s, apr_pool_t *p)
{
    int i;

    d->eff_challenges = apr_array_make(p, 2, sizeof(const char *));
    d->tls_alpn_ok = 0;
    for (i = 0; i < d->settings->challenges->nelts; ++i) {
        const char *t = APR_ARRAY_IDX(d->settings->challenges, i, const char *);
        int port = !strcmp(t, "http-01") ? g->port_http : g->port_https;

        if (!strcmp(t, "dns-01")) {
            if (!d->settings->dns_hook && !d->settings->dns_update) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ACMELOG(0104)
                             "%s: dns-01 is allowed but neither ManagedDNSUpdate nor "
                             "ManagedDNSHook says how to set the TXT records; dns-01 is not used",
                             d->name);
                continue;
            }
            if (d->settings->dns_hook && d->settings->dns_update) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ACMELOG(0109)
                             "%s: both ManagedDNSUpdate and ManagedDNSHook apply; the TXT "
                             "records are set by RFC 2136 updates, the hook is not run", d->name);
            }
            APR_ARRAY_PUSH(d->eff_challenges, const char *) = t;
            continue;
        }
        if (port == 0) {
            continue; /* the port map says the CA cannot reach it */
        }
        if (!listening_on(port)) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, ACMELOG(0101)
                         "%s: %s is not possible: httpd does not listen on port %d "
                         "(see ManagedPortMap)", d->name, t, port);
            continue;
        }
        if (!strcmp(t, "tls-alpn-01")) d->tls_alpn_ok = 1;
        APR_ARRAY_PUSH(d->eff_challenges, const char *) = t;
    }
    for (i = 0; i < d->names->nelts; ++i) {
        if (acme_name_is_wildcard(APR_ARRAY_IDX(d->names, i, const char *))
            && !ap_array_str_contains(d->eff_challenges, "dns-01")) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ACMELOG(0105)
                         "%s: the wildcard name %s can only be validated with dns-01: add "
                         "dns-01 to ManagedChallenges and configure ManagedDNSUpdate or ManagedDNSHook",
                         d->name, APR_ARRAY_IDX(d->names, i, const char *));
            apr_array_clear(d->eff_challenges);
            break;
        }
    }
}

/* ---- certificates for mod_ssl -------------------------------------------- */

/* domains/_fallback/<d>.cert.pem: d's temporary certificate. */
static const char *fallback_cert_item(const acme_domain_t *d, apr_pool_t *p)
{
    return apr_pstrcat(p, d->name, ACME_FALLBACK_CERT_SUFFIX, NULL);
}

void *acme_mod_process_mem(server_rec *s, const char *key, apr_size_t size)
{
    apr_pool_t *pp = s->process->pool;
    void *m = NULL;

    apr_pool_userdata_get(&m, key, pp);
    if (!m) {
        m = apr_pcalloc(pp, size);
        apr_pool_userdata_set(m, key, apr_pool_cleanup_null, pp);
    }
    return m;
}

apr_hash_t *acme_mod_process_hash(server_rec *s, const char *key)
{
    apr_hash_t **h = acme_mod_process_mem(s, key, sizeof(*h));

    if (!*h) *h = apr_hash_make(s->process->pool);
    return *h;
}

/* Certificate and key pairs that passed the check that mod_ssl's loading
 * needs (acme_pair_check without names or time), by the SHA-256 of their
 * two files' contents. OpenSSL 3.0 takes about half a millisecond to
 * decode a key and a certificate, and every start and restart would do it
 * for every domain, before mod_ssl does it again. They are kept per
 * process and in domains/_checked/pairs.sha256 (the parent's alone,
 * written without fsync: it can be made again), so a new process hashes
 * the files instead of decoding them. A damaged or replaced file has
 * another digest and is checked again. What a configuration pass used is
 * what is kept. */
#define PAIRS_NAME "_checked"
#define PAIRS_ITEM "pairs.sha256"
#define PAIR_DIGEST_LEN 32

typedef struct {
    apr_pool_t *pool;    /* of known */
    apr_hash_t *known;   /* digest -> "" */
    apr_pool_t *upool;
    apr_hash_t *used;    /* what this pass used or learnt; NULL outside one */
    int loaded, dirty;   /* dirty: the file is not what the last pass used */
} pairs_t;

static pairs_t *pairs(server_rec *s)
{
    pairs_t *m = acme_mod_process_mem(s, "acme-pairs", sizeof(pairs_t));
    const char *data;
    apr_size_t len, i;

    if (!m->loaded) {
        m->loaded = 1;
        apr_pool_create(&m->pool, s->process->pool);
        m->known = apr_hash_make(m->pool);
        if (acme_mod_cache->load(acme_mod_cache, ACME_SG_DOMAINS, PAIRS_NAME, PAIRS_ITEM, &data,
                                 &len, m->pool) == APR_SUCCESS) {
            for (i = 0; i + PAIR_DIGEST_LEN <= len; i += PAIR_DIGEST_LEN) {
                apr_hash_set(m->known, data + i, PAIR_DIGEST_LEN, "");
            }
        }
    }
    return m;
}

static void pair_digest(unsigned char out[PAIR_DIGEST_LEN], const char *cert, apr_size_t clen,
                        const char *key, apr_size_t klen)
{
    unsigned char both[2 * PAIR_DIGEST_LEN];

    acme_sha256(both, cert, clen);
    acme_sha256(both + PAIR_DIGEST_LEN, key, klen);
    acme_sha256(out, both, sizeof(both));
}

static void pair_use(pairs_t *m, const unsigned char *digest, int learnt)
{
    if (learnt && !apr_hash_get(m->known, digest, PAIR_DIGEST_LEN)) {
        apr_hash_set(m->known, apr_pmemdup(m->pool, digest, PAIR_DIGEST_LEN), PAIR_DIGEST_LEN,
                     "");
        m->dirty = 1;
    }
    if (m->used && !apr_hash_get(m->used, digest, PAIR_DIGEST_LEN)) {
        apr_hash_set(m->used, apr_pmemdup(m->upool, digest, PAIR_DIGEST_LEN), PAIR_DIGEST_LEN,
                     "");
    }
}

/* Notes a pair found good elsewhere (a staged one, checked at activation). */
void acme_mod_pair_good(server_rec *s, const char *cert, apr_size_t clen, const char *key,
                        apr_size_t klen)
{
    unsigned char digest[PAIR_DIGEST_LEN];

    pair_digest(digest, cert, clen, key, klen);
    pair_use(pairs(s), digest, 1);
}

/* Can mod_ssl load the certificate chain cert with the key key (in PEM)?
 * pkey: key decoded already, or NULL. */
static apr_status_t pair_check_pem(server_rec *s, const char *cert, apr_size_t clen,
                                   const char *key, apr_size_t klen, acme_pkey_t *pkey,
                                   const char **pwhy, apr_pool_t *p)
{
    pairs_t *m = pairs(s);
    unsigned char digest[PAIR_DIGEST_LEN];
    apr_array_header_t *chain;
    apr_status_t rv;

    pair_digest(digest, cert, clen, key, klen);
    if (apr_hash_get(m->known, digest, PAIR_DIGEST_LEN)) {
        pair_use(m, digest, 0);
        return APR_SUCCESS;
    }
    *pwhy = "the certificate cannot be read";
    rv = acme_chain_from_pem(&chain, p, cert, clen);
    if (rv == APR_SUCCESS && chain->nelts < 1) rv = APR_EINVAL;
    if (rv == APR_SUCCESS && !pkey) {
        *pwhy = "the key cannot be read";
        rv = acme_pkey_from_pem(&pkey, p, key, klen);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_pair_check(chain, pkey, NULL, 0, pwhy, p);
    }
    if (rv == APR_SUCCESS) {
        pair_use(m, digest, 1);
    }
    return rv;
}

/* A configuration pass begins (post_config, before any check) or ends
 * (after mod_ssl's): at its end, the pairs it used are what is kept, in
 * the file too when that differs. */
static void pairs_pass(server_rec *s, int begin, apr_pool_t *ptemp)
{
    pairs_t *m = pairs(s);
    apr_hash_index_t *hi;
    char *data, *at;

    if (begin) {
        if (m->upool) apr_pool_destroy(m->upool);
        apr_pool_create(&m->upool, s->process->pool);
        m->used = apr_hash_make(m->upool);
        return;
    }
    if (!m->used) {
        return;
    }
    if (m->dirty || apr_hash_count(m->used) != apr_hash_count(m->known)) {
        at = data = apr_palloc(ptemp, apr_hash_count(m->used) * PAIR_DIGEST_LEN + 1);
        for (hi = apr_hash_first(m->upool, m->used); hi; hi = apr_hash_next(hi)) {
            memcpy(at, apr_hash_this_key(hi), PAIR_DIGEST_LEN);
            at += PAIR_DIGEST_LEN;
        }
        /* a store that cannot be written: the next process decodes again.
         * 0600: digests of private keys are nobody else's business */
        m->dirty = acme_mod_cache->save(acme_mod_cache, ACME_SG_DOMAINS, PAIRS_NAME, PAIRS_ITEM,
                                        data, (apr_size_t)(at - data),
                                        ACME_STORE_SECRET | ACME_STORE_VOLATILE, ptemp)
                   != APR_SUCCESS;
    }
    apr_pool_destroy(m->pool);
    m->pool = m->upool;
    m->known = m->used;
    m->upool = NULL;
    m->used = NULL;
}

/* The pair (cf, kf) of domain name in st: can mod_ssl load it? */
static apr_status_t stored_pair_check(acme_store_t *st, const char *name, const char *cf,
                                      const char *kf, server_rec *s, const char **pwhy,
                                      apr_pool_t *p)
{
    const char *cert, *key;
    apr_size_t clen, klen;
    apr_status_t rv;

    *pwhy = "the certificate cannot be read";
    rv = st->load(st, ACME_SG_DOMAINS, name, cf, &cert, &clen, p);
    if (rv == APR_SUCCESS) {
        *pwhy = "the key cannot be read";
        rv = st->load(st, ACME_SG_DOMAINS, name, kf, &key, &klen, p);
        if (APR_STATUS_IS_ENOENT(rv)) rv = APR_EINVAL;  /* a certificate without its key */
    }
    return rv == APR_SUCCESS ? pair_check_pem(s, cert, clen, key, klen, NULL, pwhy, p) : rv;
}

/* Is there an issued certificate for key type t? It is served even when it
 * does not cover a name added since (or has expired): the renewal job sees
 * that and replaces it; the self-signed fallback would serve nobody better. */
static int has_cert_of_type(acme_domain_t *d, acme_key_type_t t, server_rec *s, apr_pool_t *p)
{
    acme_store_t *st = acme_mod_store_down ? acme_mod_cache : acme_mod_store;
    const char *why, *cf = acme_job_cert_file(p, t), *kf = acme_job_key_file(p, t);
    apr_status_t rv;

    rv = stored_pair_check(st, d->name, cf, kf, s, &why, p);
    if (APR_STATUS_IS_ENOENT(rv)) {
        return 0;
    }
    if (rv != APR_SUCCESS && (st->flags & ACME_STORE_SHARED)) {
        /* etcd unreachable or a bad value in it: the local copy of last time */
        const char *why2;
        if (stored_pair_check(acme_mod_cache, d->name, cf, kf, s, &why2, p) == APR_SUCCESS) {
            return 1;
        }
    }
    /* A pair mod_ssl cannot load would stop the whole server from starting. */
    if (rv != APR_SUCCESS) {
        const char *req = "{\"by\":\"mod_acme: unusable certificate or key\"}";
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ACMELOG(0106)
                     "%s: the %s certificate in %s cannot be used (%s); it is not served and a "
                     "new one is ordered", d->name, acme_key_type_name(t), st->where, why);
        st->save(st, ACME_SG_JOBS, d->name, ACME_JOB_RENEW_REQUEST, req, strlen(req), 0, p);
        return 0;
    }
    return 1;
}

/* With a shared store: which result this server hands to mod_ssl (the
 * activation thread restarts when the store's differs), kept in the cache
 * too, for a start while etcd is down. */
static void note_served(acme_domain_t *d, apr_pool_t *pconf, apr_pool_t *ptemp)
{
    acme_json_t *meta = NULL;

    d->served_staged = NULL;
    if (!(acme_mod_store->flags & ACME_STORE_SHARED)) {
        return;
    }
    if (!acme_mod_store_down
        && acme_store_load_json(acme_mod_store, ACME_SG_DOMAINS, d->name, ACME_JOB_META, &meta,
                                ptemp) == APR_SUCCESS) {
        /* as acme_store_save_json writes it */
        const char *text = apr_pstrcat(ptemp, acme_json_dump(meta, ptemp, 0), "\n", NULL);
        acme_store_save_changed(acme_mod_cache, ACME_SG_DOMAINS, d->name, ACME_JOB_META, text,
                                strlen(text), 0, ptemp);
    }
    else if (acme_store_load_json(acme_mod_cache, ACME_SG_DOMAINS, d->name, ACME_JOB_META,
                                  &meta, ptemp) != APR_SUCCESS) {
        meta = NULL;
    }
    if (meta && acme_json_gets(meta, "staged", NULL)) {
        d->served_staged = apr_pstrdup(pconf, acme_json_gets(meta, "staged", NULL));
    }
}

/* A domain is served by what it has: a key type added later must not take
 * the site back to the fallback until its certificate arrives. In a shared
 * store, a server none of whose key types is stored (the fleet made the
 * certificates with other settings, in a rolling change) serves the stored
 * ones: the fleet does not order its types at once (ACME0410), and the
 * temporary certificate would serve nobody better. One per key algorithm:
 * mod_ssl takes one RSA and one ECDSA certificate. */
static void find_served_types(acme_domain_t *d, server_rec *s, apr_pool_t *pconf,
                              apr_pool_t *ptemp)
{
    int i, rsa = 0, ec = 0, borrow;

    note_served(d, pconf, ptemp);
    d->served_types = apr_array_make(pconf, 2, sizeof(acme_key_type_t));
    for (i = 0; i < d->settings->key_types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(d->settings->key_types, i, acme_key_type_t);
        if (has_cert_of_type(d, t, s, ptemp)) {
            APR_ARRAY_PUSH(d->served_types, acme_key_type_t) = t;
        }
    }
    borrow = !d->served_types->nelts && (acme_mod_store->flags & ACME_STORE_SHARED);
    for (i = ACME_KEY_P256; borrow && i <= ACME_KEY_RSA4096; ++i) {
        int is_rsa = i >= ACME_KEY_RSA2048;
        if (!(is_rsa ? rsa : ec) && has_cert_of_type(d, (acme_key_type_t)i, s, ptemp)) {
            APR_ARRAY_PUSH(d->served_types, acme_key_type_t) = (acme_key_type_t)i;
            *(is_rsa ? &rsa : &ec) = 1;
        }
    }
    d->has_cert = d->served_types->nelts > 0;
    if (d->has_cert) { /* its temporary certificate served its time */
        apr_time_t mt;
        const char *cf = fallback_cert_item(d, ptemp);
        if (acme_mod_cache->mtime(acme_mod_cache, ACME_SG_DOMAINS, ACME_FALLBACK_NAME, cf, &mt,
                                  ptemp) == APR_SUCCESS) {
            acme_mod_cache->remove(acme_mod_cache, ACME_SG_DOMAINS, ACME_FALLBACK_NAME, cf, ptemp);
        }
    }
}

/* The temporary store's directory is kept across generations (its path, in
 * the process pool: plain memory); each generation opens the store in
 * pconf. What a process keeps in s->process->pool must be plain memory: the
 * process pool's own cleanups run at exit after the module was unloaded,
 * so one of this module's functions there would be called unmapped (a
 * segfault at every stop). The directory is removed by a cleanup of pconf
 * when httpd exits. */
static const char **fallback_tmp_dir(server_rec *s)
{
    return acme_mod_process_mem(s, "acme-fallback-dir", sizeof(const char *));
}

static apr_status_t remove_tmp_store_at_exit(void *data)
{
    server_rec *s = data;
    const char **dir = fallback_tmp_dir(s), *err = NULL;
    acme_store_t *tmp;
    apr_pool_t *p;

    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_EXITING || !*dir) {
        return APR_SUCCESS; /* a restart: the next generation uses it */
    }
    if (apr_pool_create(&p, NULL) == APR_SUCCESS) {
        if (acme_store_fs_create(&tmp, p, *dir, &err) == APR_SUCCESS && !err) {
            acme_store_fs_remove_all(tmp, p);
        }
        apr_pool_destroy(p);
    }
    return APR_SUCCESS;
}

/* A store in a private temporary directory, made once per process, for
 * the temporary certificates that the real store refuses to take (a full
 * or read-only disk): httpd starts all the same. */
static acme_store_t *fallback_tmp_store(server_rec *s)
{
    apr_pool_t *pconf = s->process->pconf;
    const char **dir = fallback_tmp_dir(s), *tdir = NULL, *err = NULL;
    acme_store_t *tmp = NULL;
    char *templ;

    apr_pool_userdata_get((void **)&tmp, "acme-fallback-store", pconf);
    if (tmp) {
        return tmp;
    }
    if (!*dir && apr_temp_dir_get(&tdir, pconf) == APR_SUCCESS) {
        templ = apr_pstrcat(s->process->pool, tdir, "/mod_acme-fallback-XXXXXX", NULL);
        *dir = mkdtemp(templ) ? templ : NULL;
    }
    if (!*dir || acme_store_fs_create(&tmp, pconf, *dir, &err) != APR_SUCCESS || err) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ACMELOG(0107)
                     "cannot make a temporary directory for the temporary certificates in %s",
                     *dir ? *dir : tdir ? tdir : "the temporary directory");
        return NULL;
    }
    apr_pool_userdata_set(tmp, "acme-fallback-store", apr_pool_cleanup_null, pconf);
    return tmp;
}

/* One key for every temporary certificate of the server: a key per domain
 * made a first start with many new domains wait for key generation. It is
 * made or loaded once per process and lives in domains/_fallback/; each
 * domain's self-signed certificate is signed with it. Both are written
 * without fsync (they can be made again), so both are checked: the key
 * is decoded again only when its file's mtime changes, and each
 * certificate goes through the memo of checked pairs above. */
typedef struct {
    const char *key_pem;           /* its file's content: plain memory, kept */
    apr_size_t key_len;
    acme_store_t *key_store;       /* where key was last seen or written */
    apr_time_t key_mtime;
    acme_pkey_t *key;              /* key_pem decoded in generation key_gen's pconf */
    int key_gen;
} fallback_mem_t;

static fallback_mem_t *fallback_mem(server_rec *s)
{
    return acme_mod_process_mem(s, "acme-fallback-mem", sizeof(fallback_mem_t));
}

/* Keeps pem as the key (a plain copy in the process pool) and key, this
 * generation's object (in pconf: see remove_tmp_store_at_exit). */
static void fallback_keep(fallback_mem_t *m, server_rec *s, const char *pem, apr_size_t len,
                          acme_pkey_t *key)
{
    if (pem != m->key_pem) {   /* each generation re-decodes the kept PEM: no copy then */
        m->key_pem = apr_pmemdup(s->process->pool, pem, len + 1);
        m->key_len = len;
    }
    m->key = key;
    m->key_gen = ap_state_query(AP_SQ_CONFIG_GEN);
}

/* The shared key, present in st. */
static apr_status_t fallback_key(fallback_mem_t *m, acme_store_t *st, server_rec *s,
                                 apr_pool_t *p)
{
    apr_pool_t *pconf = s->process->pconf;
    apr_time_t mt;
    const char *pem;
    apr_size_t len;
    acme_pkey_t *key;
    apr_status_t rv;

    if (m->key_pem && m->key_gen != ap_state_query(AP_SQ_CONFIG_GEN)) {
        if (acme_pkey_from_pem(&key, pconf, m->key_pem, m->key_len) == APR_SUCCESS) {
            fallback_keep(m, s, m->key_pem, m->key_len, key);
        }
        else {
            m->key_pem = NULL;
            m->key = NULL;
        }
    }
    if (st->mtime(st, ACME_SG_DOMAINS, ACME_FALLBACK_NAME, ACME_FALLBACK_KEY, &mt, p)
        == APR_SUCCESS) {
        if (m->key && m->key_store == st && m->key_mtime == mt) {
            return APR_SUCCESS;
        }
        if (st->load(st, ACME_SG_DOMAINS, ACME_FALLBACK_NAME, ACME_FALLBACK_KEY, &pem, &len, p)
                == APR_SUCCESS
            && acme_pkey_from_pem(&key, pconf, pem, len) == APR_SUCCESS) {
            fallback_keep(m, s, pem, len, key);
            m->key_store = st;
            m->key_mtime = mt;
            return APR_SUCCESS;
        }
    }
    if (!m->key) {
        if ((rv = acme_pkey_gen(&key, pconf, ACME_KEY_P256)) != APR_SUCCESS
            || (rv = acme_pkey_to_pem(&pem, p, key)) != APR_SUCCESS) {
            return rv;
        }
        fallback_keep(m, s, pem, strlen(pem), key);
    }
    if ((rv = st->save(st, ACME_SG_DOMAINS, ACME_FALLBACK_NAME, ACME_FALLBACK_KEY, m->key_pem,
                       m->key_len, ACME_STORE_SECRET | ACME_STORE_VOLATILE, p)) != APR_SUCCESS
        || (rv = st->mtime(st, ACME_SG_DOMAINS, ACME_FALLBACK_NAME, ACME_FALLBACK_KEY,
                           &m->key_mtime, p)) != APR_SUCCESS) {
        return rv;
    }
    m->key_store = st;
    return APR_SUCCESS;
}

/* d's temporary certificate in st, signed with the shared key. */
static apr_status_t fallback_cert(fallback_mem_t *m, acme_store_t *st, acme_domain_t *d,
                                  server_rec *s, apr_pool_t *p)
{
    const char *why, *pem, *cf = fallback_cert_item(d, p);
    apr_size_t len;
    apr_status_t rv;

    if ((rv = fallback_key(m, st, s, p)) != APR_SUCCESS) {
        return rv;
    }
    if (st->load(st, ACME_SG_DOMAINS, ACME_FALLBACK_NAME, cf, &pem, &len, p) == APR_SUCCESS
        && pair_check_pem(s, pem, len, m->key_pem, m->key_len, m->key, &why, p)
               == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if ((rv = acme_cert_self_signed_pem(&pem, p, m->key, d->names,
                                        "mod_acme fallback: certificate not yet issued",
                                        apr_time_from_sec(7 * 86400))) != APR_SUCCESS
        || (rv = st->save(st, ACME_SG_DOMAINS, ACME_FALLBACK_NAME, cf, pem, strlen(pem),
                          ACME_STORE_VOLATILE, p)) != APR_SUCCESS) {
        return rv;
    }
    acme_mod_pair_good(s, pem, strlen(pem), m->key_pem, m->key_len);
    return APR_SUCCESS;
}

/* *pst: the store that holds the temporary certificate and the key. */
static apr_status_t ensure_fallback(acme_store_t **pst, acme_domain_t *d, server_rec *s,
                                    apr_pool_t *p)
{
    fallback_mem_t *m = fallback_mem(s);
    acme_store_t *st = acme_mod_cache, *tmp;  /* local: no need to share it */
    apr_status_t rv;

    *pst = st;
    rv = fallback_cert(m, st, d, s, p);
    if (rv != APR_SUCCESS && (tmp = fallback_tmp_store(s)) != NULL
        && fallback_cert(m, tmp, d, s, p) == APR_SUCCESS) {
        *pst = tmp;
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ACMELOG(0102)
                     "%s: cannot make or store the temporary self-signed certificate in %s",
                     d->name, st->where);
    }
    return rv;
}

/* With etcd: the items of every domain, for the reads of the configuration
 * pass (several per domain), as one view: what changed since the last pass
 * (the parent keeps what it read), in a few requests. Jobs and staging are
 * in it for the children's scheduler, which starts from these copies.
 * p NULL ends it. */
static void snapshot_domains(apr_pool_t *p)
{
    static const acme_store_group_t groups[] = {ACME_SG_DOMAINS, ACME_SG_STAGING, ACME_SG_JOBS};

    if (acme_mod_store && acme_mod_store->view && !acme_mod_store_down) {
        acme_mod_store->view(acme_mod_store, groups, p ? 3 : 0, 0, p);
    }
}

/* The one place where store items become files: mod_ssl reads files. A
 * store without paths has them copied into the local cache first. Only the
 * two paths go into p, which lives as long as the configuration. */
static apr_status_t hand_off(apr_array_header_t *cert_files, apr_array_header_t *key_files,
                             acme_store_t *st, acme_domain_t *d, const char *owner,
                             const char *cert, const char *key, server_rec *s, apr_pool_t *p)
{
    const char *cpath, *kpath;
    apr_status_t rv;
    apr_pool_t *pd;

    if (acme_mod_store_down) {
        st = acme_mod_cache;
    }
    apr_pool_create(&pd, p);
    rv = acme_store_file(&cpath, st, acme_mod_cache, ACME_SG_DOMAINS, owner, cert, 0, pd);
    if (rv == APR_SUCCESS) {
        rv = acme_store_file(&kpath, st, acme_mod_cache, ACME_SG_DOMAINS, owner, key,
                             ACME_STORE_SECRET, pd);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ACMELOG(0108)
                     "%s: cannot make files of %s and %s for mod_ssl", d->name, cert, key);
    }
    else {
        APR_ARRAY_PUSH(cert_files, const char *) = apr_pstrdup(p, cpath);
        APR_ARRAY_PUSH(key_files, const char *) = apr_pstrdup(p, kpath);
    }
    apr_pool_destroy(pd);
    return rv;
}

/* The files of d's issued certificates, one pair per key type served, in
 * cert_files and key_files. APR_SUCCESS when every pair was made. */
static apr_status_t managed_files(apr_array_header_t *cert_files, apr_array_header_t *key_files,
                                  acme_domain_t *d, server_rec *s, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < d->served_types->nelts && rv == APR_SUCCESS; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(d->served_types, i, acme_key_type_t);
        rv = hand_off(cert_files, key_files, acme_mod_store, d, d->name, acme_job_cert_file(p, t),
                      acme_job_key_file(p, t), s, p);
    }
    return rv;
}

/* ---- certificates of SSL vhosts, watched ---------------------------------- */

/* "name:port" of a vhost, as its <VirtualHost> says (s->port is the
 * ServerName's port, 0 when it has none). */
static const char *vhost_id(server_rec *s, apr_pool_t *p)
{
    return apr_psprintf(p, "%s:%d", s->server_hostname ? s->server_hostname : "-",
                        s->addrs ? (int)s->addrs->host_port : (int)s->port);
}

/* The watched entry of the certificate file path, made (and the file read)
 * at its first vhost: many vhosts name the same wildcard certificate. The
 * parent reads it as root, at config time only; only certificates are
 * decoded, and the file's bytes (which may hold a key too) live in a pool
 * destroyed at once. */
static acme_watched_t *watched_file(acme_global_t *g, const char *path, server_rec *s,
                                    apr_pool_t *p)
{
    apr_hash_t *index = NULL;
    acme_watched_t *w;
    apr_array_header_t *chain;
    const acme_cert_t *leaf;
    apr_pool_t *pf;
    apr_status_t rv;
    char err[120];

    apr_pool_userdata_get((void **)&index, "acme-watched-index", p);
    if (!index) {
        index = apr_hash_make(p);
        apr_pool_userdata_setn(index, "acme-watched-index", NULL, p);
    }
    if (!g->watched) {
        g->watched = apr_array_make(p, 4, sizeof(acme_watched_t *));
    }
    w = apr_hash_get(index, path, APR_HASH_KEY_STRING);
    if (w) {
        return w;
    }
    w = apr_pcalloc(p, sizeof(*w));
    w->file = apr_pstrdup(p, path);
    w->name = s->server_hostname ? s->server_hostname : "-";
    w->vhosts = apr_array_make(p, 1, sizeof(const char *));
    apr_hash_set(index, w->file, APR_HASH_KEY_STRING, w);
    APR_ARRAY_PUSH(g->watched, acme_watched_t *) = w;
    if (path[0] != '/') {
        w->error = "not a file (a key store URI?): its expiry cannot be read here";
        return w;
    }
    apr_pool_create(&pf, p);
    rv = acme_chain_load(&chain, pf, path);
    if (rv != APR_SUCCESS) {
        w->error = apr_pstrcat(p, "cannot be read: ",
                               rv == APR_EINVAL || rv == APR_ENOENT
                               ? "no PEM certificate in it, or a damaged one"
                               : apr_strerror(rv, err, sizeof(err)), NULL);
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, ACMELOG(1802)
                     "the certificate file %s (SSLCertificateFile of the virtual host %s) "
                     "%s; its expiry is not shown in the status and metrics",
                     path, vhost_id(s, pf), w->error);
    }
    else {
        leaf = APR_ARRAY_IDX(chain, 0, const acme_cert_t *);
        w->not_before = acme_cert_not_before(leaf);
        w->not_after = acme_cert_not_after(leaf);
        w->issuer = acme_cert_issuer_cn(leaf, p);
        w->subject = acme_cert_subject_cn(leaf, p);
        w->fingerprint = acme_cert_fingerprint(leaf, p);
        if (acme_cert_sans(&w->sans, p, leaf) != APR_SUCCESS) {
            w->sans = NULL;
        }
    }
    apr_pool_destroy(pf);
    return w;
}

/* Notes the certificate files of the SSL vhost s (files: its
 * SSLCertificateFile values) and whether mod_ssl serves them. */
static void watch_files(acme_global_t *g, server_rec *s, const acme_domain_t *d,
                        const apr_array_header_t *files, int served, apr_pool_t *p)
{
    int i;

    for (i = 0; i < files->nelts; ++i) {
        acme_watched_t *w = watched_file(g, APR_ARRAY_IDX(files, i, const char *), s, p);
        APR_ARRAY_PUSH(w->vhosts, const char *) = vhost_id(s, p);
        w->served |= served;
        if (d && !w->managed_by) {
            w->managed_by = d->name;
        }
    }
}

/* A vhost of d that has its own SSLCertificateFile (in cert_files): it keeps
 * serving it until d has an issued certificate, which then replaces it, and
 * never the temporary one. Clearing the vhost's arrays is what makes
 * mod_ssl load ours alone: it loads every file the hook leaves there. */
static int take_over(acme_domain_t *d, server_rec *s, apr_pool_t *p,
                     apr_array_header_t *cert_files, apr_array_header_t *key_files)
{
    acme_srv_conf_t *sc = acme_config_get(s);
    int first = ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG;
    apr_array_header_t *cf = apr_array_make(p, 2, sizeof(const char *));
    apr_array_header_t *kf = apr_array_make(p, 2, sizeof(const char *));
    const char *own = APR_ARRAY_IDX(cert_files, 0, const char *);

    if (d->has_cert && managed_files(cf, kf, d, s, p) == APR_SUCCESS) {
        apr_array_clear(cert_files);
        apr_array_clear(key_files);
        apr_array_cat(cert_files, cf);
        apr_array_cat(key_files, kf);
        if (!first) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, ACMELOG(1801)
                         "%s: the virtual host %s (line %u of %s) now serves the "
                         "certificate mod_acme obtained, in place of its own (%s): its "
                         "SSLCertificateFile and SSLCertificateKeyFile lines can be removed",
                         d->name, vhost_id(s, p), s->defn_line_number,
                         s->defn_name ? s->defn_name : "the configuration", own);
        }
        return OK;
    }
    /* no certificate yet, or its files cannot be made (ACME0108 says why):
     * the site's own is better than the temporary one and a 503 */
    sc->own_cert = own;
    if (!d->vhost_cert) {
        d->vhost_cert = own;
    }
    if (!first) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, ACMELOG(1800)
                     "%s: the virtual host %s keeps serving its own certificate (%s) "
                     "until mod_acme has one for the domain",
                     d->name, vhost_id(s, p), own);
    }
    return DECLINED;
}

static int hook_add_cert_files(server_rec *s, apr_pool_t *p, apr_array_header_t *cert_files,
                               apr_array_header_t *key_files)
{
    acme_srv_conf_t *sc = acme_config_get(s);
    acme_domain_t *d = sc ? sc->domain : NULL;
    const apr_array_header_t *own = apr_array_copy(p, cert_files);
    int rc = DECLINED;

    if (!sc) {
        return DECLINED;
    }
    sc->own_cert = NULL;
    if (d && acme_mod_store) {
        d->driven = 1;
        APR_ARRAY_PUSH(d->servers, server_rec *) = s;
        if (own->nelts > 0) {
            rc = take_over(d, s, p, cert_files, key_files);
        }
        else if (d->has_cert) {
            /* the pairs made before one failed are served all the same */
            rc = managed_files(cert_files, key_files, d, s, p) == APR_SUCCESS ? OK : DECLINED;
        }
        /* else the fallback hook supplies the temporary certificate */
    }
    if (sc->global && own->nelts > 0) {
        watch_files(sc->global, s, d && acme_mod_store ? d : NULL, own, rc != OK, p);
    }
    return rc;
}

static int hook_add_fallback_files(server_rec *s, apr_pool_t *p, apr_array_header_t *cert_files,
                                   apr_array_header_t *key_files)
{
    acme_srv_conf_t *sc = acme_config_get(s);
    acme_domain_t *d = sc ? sc->domain : NULL;
    acme_store_t *st = acme_mod_store;

    apr_pool_t *pd;
    apr_status_t rv;

    if (!d || !st || d->has_cert) {
        return DECLINED;
    }
    /* the work in a pool of its own: p lives as long as the configuration */
    apr_pool_create(&pd, p);
    rv = ensure_fallback(&st, d, s, pd);
    apr_pool_destroy(pd);
    if (rv != APR_SUCCESS) {
        return DECLINED;
    }
    return hand_off(cert_files, key_files, st, d, ACME_FALLBACK_NAME, fallback_cert_item(d, p),
                    ACME_FALLBACK_KEY, s, p) == APR_SUCCESS ? OK : DECLINED;
}

/* ---- post_config --------------------------------------------------------- */

/* Failed etcd requests of every process of this server, since it started:
 * one counter in shared memory that the children inherit. */
static volatile apr_uint32_t *store_errors(server_rec *s)
{
    static apr_uint32_t local;
    apr_pool_t *pp = s->process->pool;
    apr_shm_t *shm = NULL;

    apr_pool_userdata_get((void **)&shm, "acme-store-errors", pp);
    if (!shm) {
        if (apr_shm_create(&shm, sizeof(apr_uint32_t), NULL, pp) != APR_SUCCESS) {
            return &local; /* this process only */
        }
        *(apr_uint32_t *)apr_shm_baseaddr_get(shm) = 0;
        apr_pool_userdata_set(shm, "acme-store-errors", apr_pool_cleanup_null, pp);
    }
    return apr_shm_baseaddr_get(shm);
}

void acme_mod_store_state(int *pup, apr_uint32_t *perrors, server_rec *s, apr_pool_t *p)
{
    acme_store_t *st = acme_mod_store;
    apr_time_t mt;
    apr_status_t rv;

    *perrors = 0;
    *pup = 1;
    if (!st || !(st->flags & ACME_STORE_SHARED)) {
        return; /* the file store: no other process that could be down */
    }
    *perrors = apr_atomic_read32(store_errors(s));
    /* one small read: the batch marker */
    rv = st->mtime(st, ACME_SG_STAGING, ACME_ACTIVATE_BATCH_NAME, ACME_ACTIVATE_BATCH_STAGED, &mt, p);
    *pup = rv == APR_SUCCESS || APR_STATUS_IS_ENOENT(rv);
}

static apr_status_t etcd_store_make(acme_store_t **pst, acme_etcd_t **petcd, acme_global_t *g,
                                    apr_interval_time_t timeout, volatile apr_uint32_t *stop,
                                    server_rec *s, apr_pool_t *p)
{
    acme_etcd_config_t ec;
    acme_result_t *r = acme_result_make(p);
    const char *err = NULL;
    apr_status_t rv;

    acme_etcd_config_init(&ec);
    ec.endpoints = g->store.urls;
    ec.ca_file = g->store.ca_file;
    ec.cert_file = g->store.cert_file;
    ec.key_file = g->store.cert_key_file;
    ec.user = g->store.user;
    ec.password_file = g->store.password_file;
    ec.timeout = timeout;
    ec.stop = stop;
    ec.errors = store_errors(s);
    rv = acme_etcd_create(petcd, p, &ec, NULL, r);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ACMELOG(0010)
                     "ManagedStore etcd: %s", acme_result_describe(r, p));
        return rv;
    }
    rv = acme_store_etcd_create(pst, p, *petcd, g->store.prefix, g->store.key, &err);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ACMELOG(0015)
                     "ManagedStore etcd: %s (see ManagedStorePrefix)", err ? err : "error");
    }
    return rv;
}

/* ManagedStore etcd: the shared store, with ManagedStoreDir as this server's
 * local cache of mod_ssl's files. etcd down is no reason not to start: the
 * cache serves, and renewal and activation wait for etcd. */
static apr_status_t open_etcd_store(acme_global_t *g, server_rec *s, apr_pool_t *pconf,
                                    apr_pool_t *ptemp)
{
    acme_store_t *st;
    acme_etcd_t *etcd, *other;
    acme_result_t *r = acme_result_make(ptemp);
    const char *err = NULL;
    apr_int64_t rev;
    apr_status_t rv;

    if ((rv = etcd_store_make(&st, &etcd, g, 0, NULL, s, pconf)) != APR_SUCCESS
        || (rv = etcd_store_make(&child_store, &other, g, 0, NULL, s, pconf)) != APR_SUCCESS
        || (rv = etcd_store_make(&child_lookup_store, &other, g, ACME_LOOKUP_TIMEOUT, NULL, s,
                                 pconf)) != APR_SUCCESS
        || (rv = etcd_store_make(&child_watch_store, &other, g, 0, &acme_mod_watch_stop, s,
                                 pconf)) != APR_SUCCESS
        || (rv = etcd_store_make(&child_sched_store, &other, g, 0, &acme_mod_sched_stop, s,
                                 pconf))
               != APR_SUCCESS
        || (rv = etcd_store_make(&acme_mod_scan_store, &other, g, 0, NULL, s, pconf))
               != APR_SUCCESS) {
        return rv;
    }
    acme_mod_store = st;
    /* what the configuration pass read, for the next one: a restart reads what changed */
    acme_store_etcd_keep(st, s->process->pool, ACME_KEEP_MAKE);
    acme_store_etcd_keep(child_sched_store, s->process->pool, ACME_KEEP_FIND);
    acme_store_etcd_keep(acme_mod_scan_store, s->process->pool, ACME_KEEP_OWN);
    if (acme_etcd_revision(&rev, etcd, ptemp, r) != APR_SUCCESS) {
        acme_mod_store_down = 1;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ACMELOG(0011)
                     "the etcd store (%s) cannot be reached: %s. This server starts with the "
                     "certificates in its local cache %s; renewals and new certificates wait "
                     "until etcd answers, and resume by themselves then.", st->where,
                     acme_result_describe(r, ptemp), g->store_dir);
        return APR_SUCCESS;
    }
    rv = acme_store_etcd_verify(st, ptemp, &err);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ACMELOG(0012)
                     "the etcd store (%s) cannot be used: %s", st->where, err ? err : "error");
        return rv;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, ACMELOG(0013)
                 "store: etcd at %s, local cache %s", st->where, g->store_dir);
    return APR_SUCCESS;
}

static int check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    acme_global_t *g = acme_config_global(s);
    const char *err = g ? acme_config_check_store(g, ptemp) : NULL;
    int i;

    if (err) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, ACMELOG(0014) "%s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (i = 0; g && i < g->domains->nelts; ++i) {
        acme_config_resolve(g, APR_ARRAY_IDX(g->domains, i, acme_domain_t *), s, pconf);
    }
    if (g) {
        check_members(g, s, ptemp);
    }
    return OK;
}

/* Before any watchdog thread of the child runs. */
static void store_child_init(apr_pool_t *pchild, server_rec *s)
{
    (void)pchild; (void)s;
    if (child_store) {
        acme_mod_store = child_store;
        acme_mod_lookup_store = child_lookup_store;
        acme_mod_sched_store = child_sched_store;
        acme_mod_watch_store = child_watch_store;
    }
}

static int post_config_early(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    acme_global_t *g = acme_config_global(s);
    const char *err = NULL;
    apr_status_t rv;
    int i;

    /* The core logs through the main server: its acme: level (LogLevel
     * acme:debug), not the server's global one, decides what the core
     * formats; ap_log_error then filters with the same module index. */
    acme_log_set(log_bridge, s, ap_get_server_module_loglevel(s, APLOG_MODULE_INDEX));
    apr_pool_cleanup_register(pconf, s, remove_tmp_store_at_exit, apr_pool_cleanup_null);
    acme_mod_store = NULL;
    if (!g || g->domains->nelts == 0) {
        return OK;
    }
    if (!g->store_dir) {
        g->store_dir = ap_server_root_relative(pconf, "acme");
    }
    rv = acme_store_fs_create(&acme_mod_store, pconf, g->store_dir, &err);
    if (acme_status_cache_create(&acme_mod_status_cache, pconf) != APR_SUCCESS) {
        acme_mod_status_cache = NULL; /* every status parses its certificates */
    }
    acme_mod_cache = acme_mod_store;
    acme_mod_lookup_store = acme_mod_watch_store = NULL;
    acme_mod_store_down = 0;
    child_store = child_lookup_store = child_watch_store = NULL;
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ACMELOG(0001)
                     "cannot use the store directory %s: %s. Check that the directory (see "
                     "ManagedStoreDir) exists or can be created, and is on a writable disk.",
                     g->store_dir, err ? err : "error");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (err) {
        /* Serving what the store has beats refusing to start. */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ACMELOG(0007)
                     "the store %s cannot be written (%s; a full or read-only disk?): the "
                     "certificates in it are served, domains without one get a temporary "
                     "certificate, and nothing is obtained or renewed until it can be "
                     "written. Renewal resumes by itself then.", g->store_dir, err);
    }
    else if (acme_store_fs_sweep(acme_mod_store, ACME_STORE_STALE_AGE, ptemp) > 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, ACMELOG(0008)
                     "removed temporary files that interrupted writes left in %s", g->store_dir);
    }
    if (!err && geteuid() == 0) {
        rv = acme_store_fs_set_owner(acme_mod_store, ap_unixd_config.user_id,
                                     ap_unixd_config.group_id, ptemp);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ACMELOG(0002)
                         "cannot give the store's work directories in %s to the server's "
                         "User: the renewal jobs could not write them", g->store_dir);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (g->store.etcd && open_etcd_store(g, s, pconf, ptemp) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (i = 0; i < g->domains->nelts; ++i) {
        acme_config_resolve(g, APR_ARRAY_IDX(g->domains, i, acme_domain_t *), s, pconf);
    }
    match_servers(g, s, ptemp); /* ManagedMembers auto adds names: before the challenges */
    for (i = 0; i < g->domains->nelts; ++i) {
        compute_challenges(g, APR_ARRAY_IDX(g->domains, i, acme_domain_t *), s, pconf);
    }
    pairs_pass(s, 1, ptemp);
    if (!acme_mod_store_down) {
        acme_mod_activate(g, s, ptemp);
    }
    snapshot_domains(ptemp);    /* until post_config_late: mod_ssl's hook reads it too */
    for (i = 0; i < g->domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);
        apr_pool_t *pd;
        /* one domain's certificates at a time: the pool's peak is what
         * the process keeps, in the parent and in every child */
        apr_pool_create(&pd, ptemp);
        find_served_types(d, s, pconf, pd);
        apr_pool_destroy(pd);
        d->driven = 0;
        d->vhost_cert = NULL;
        apr_array_clear(d->servers);
    }
    return OK;
}

/* Does a vhost of d serve the temporary certificate (one without a
 * certificate of its own)? */
static int on_fallback(const acme_domain_t *d)
{
    int i;

    for (i = 0; i < d->servers->nelts; ++i) {
        if (!acme_config_get(APR_ARRAY_IDX(d->servers, i, server_rec *))->own_cert) {
            return 1;
        }
    }
    return 0;
}

static int post_config_late(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s)
{
    acme_global_t *g = acme_config_global(s);
    int first = ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG;
    apr_pool_t *pv;
    server_rec *vs;
    int i;

    if (!g || g->domains->nelts == 0 || !acme_mod_store) {
        return OK;
    }
    snapshot_domains(NULL);     /* the restart thread reads etcd itself */
    pairs_pass(s, 0, ptemp);    /* after mod_ssl's hooks, which made the fallbacks */
    if (!first) {
        for (i = 0; i < g->domains->nelts; ++i) {
            acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);
            if (!d->driven && d->settings->renew_mode != ACME_RENEW_AUTO) {
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, ACMELOG(2001)
                             "ManagedDomain %s is used by no SSL virtual host; ManagedRenewMode "
                             "%s: %s", d->name,
                             d->settings->renew_mode == ACME_RENEW_ALWAYS ? "always" : "manual",
                             d->settings->renew_mode == ACME_RENEW_ALWAYS
                                 ? "its certificate is obtained and renewed all the same"
                                 : "no certificate is ordered for it");
            }
            else if (!d->driven) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ACMELOG(0003)
                             "ManagedDomain %s (line %d of %s) is not used by any SSL virtual "
                             "host: no <VirtualHost> with SSLEngine on has one of its names as "
                             "ServerName or ServerAlias. No certificate is requested for it.",
                             d->name, d->line, d->file);
            }
            if (acme_config_renews(d) && d->eff_challenges->nelts == 0) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ACMELOG(0004)
                             "%s: no challenge type can work: ManagedChallenges allows %s, but "
                             "httpd does not listen where the CA connects (port %d for http-01, "
                             "%d for tls-alpn-01; see ManagedPortMap and Listen)",
                             d->name,
                             apr_array_pstrcat(ptemp, d->settings->challenges, ' '),
                             g->port_http, g->port_https);
            }
            else if (!d->has_cert && on_fallback(d)) {
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, ACMELOG(0005)
                             "%s: no certificate yet; serving a temporary self-signed one "
                             "(requests get 503) until the CA has issued one", d->name);
            }
        }
        /* Names of SSL vhosts that their domain does not cover. */
        apr_pool_create(&pv, ptemp);
        for (vs = s; vs; vs = vs->next) {
            acme_srv_conf_t *sc = acme_config_get(vs);
            apr_array_header_t *names;

            if (!sc->domain || !sc->domain->driven) continue;
            apr_pool_clear(pv);
            server_names(&names, vs, pv);
            for (i = 0; i < names->nelts; ++i) {
                const char *n = APR_ARRAY_IDX(names, i, const char *);
                int j, covered = 0;
                for (j = 0; j < sc->domain->names->nelts && !covered; ++j) {
                    covered = acme_name_covers(APR_ARRAY_IDX(sc->domain->names, j, const char *), n);
                }
                if (!covered) {
                    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs, ACMELOG(0006)
                                 "the virtual host %s uses the certificate of ManagedDomain %s, "
                                 "which does not include the name '%s': clients asking for it "
                                 "will see a name mismatch. Add it to the ManagedDomain.",
                                 vs->server_hostname, sc->domain->name, n);
                }
            }
        }
        apr_pool_destroy(pv);
    }
    acme_challenge_setup_protocols(g, pconf);
    if (!first) {
        acme_install_start(g, s, ptemp); /* before the activation thread exists: it forks */
        if (acme_mod_sched_start(g, s, pconf) == APR_SUCCESS) {
            acme_mod_restart_start(g, s, pconf);
        }
    }
    return OK;
}

/* ---- requests to a site that has no certificate yet ---------------------- */

static int hook_fallback_503(request_rec *r)
{
    acme_srv_conf_t *sc = acme_config_get(r->server);
    acme_domain_t *d = sc ? sc->domain : NULL;

    /* a vhost that serves its own certificate is a working site, not a
     * pending one */
    if (!d || d->has_cert || !d->driven || sc->own_cert || !ap_ssl_conn_is_ssl(r->connection)) {
        return DECLINED;
    }
    apr_table_setn(r->err_headers_out, "Retry-After", "30");
    ap_custom_response(r, HTTP_SERVICE_UNAVAILABLE,
                       "<html><head><title>503 Certificate pending</title></head><body>"
                       "<h1>Certificate pending</h1><p>This site's TLS certificate is being "
                       "obtained from the certificate authority. Please try again in a "
                       "moment.</p></body></html>");
    return HTTP_SERVICE_UNAVAILABLE;
}

static void acme_register_hooks(apr_pool_t *p)
{
    static const char *const before_ssl[] = {"mod_ssl.c", NULL};
    static const char *const after_ssl[] = {"mod_ssl.c", NULL};

    (void)p;
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(store_child_init, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_post_config(post_config_early, NULL, before_ssl, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config_late, after_ssl, NULL, APR_HOOK_MIDDLE);
    ap_hook_ssl_add_cert_files(hook_add_cert_files, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_ssl_add_fallback_cert_files(hook_add_fallback_files, NULL, NULL, APR_HOOK_MIDDLE);
    /* Runs after the challenge hook, so http-01 answers are never blocked. */
    ap_hook_post_read_request(hook_fallback_503, NULL, before_ssl, APR_HOOK_MIDDLE);
    acme_challenge_register_hooks();
    acme_https_register_hooks();
    acme_mod_sched_register_hooks();
    acme_mod_restart_register_hooks();
    acme_status_register_hooks();
}

AP_DECLARE_MODULE(acme) = {
    STANDARD20_MODULE_STUFF,
    NULL,                     /* per-directory config */
    NULL,                     /* merge per-directory */
    acme_config_create_srv,   /* per-server config */
    acme_config_merge_srv,    /* merge per-server */
    acme_cmds,                /* directives */
    acme_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
