/* mod_acme_drive.c: the two watchdogs. In one child (unprivileged) a
 * singleton runs the renewal jobs in parallel threads; in the parent (root)
 * a watchdog notices staged certificates and triggers the graceful restart
 * at which post_config activates them. */
#include <unistd.h>
#include <signal.h>
#include <pthread.h>
#include <poll.h>
#include <sys/socket.h>
#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_thread_proc.h>
#include <apr_atomic.h>
#include <apr_thread_cond.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <mpm_common.h>
#include <mod_watchdog.h>
#include <unixd.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_store_etcd.h"
#include "acme_renew.h"
#include "acme_acme.h"
#include "acme_job.h"
#include "acme_status.h"
#include "acme_proc.h"
#include "acme_restart.h"
#include "mod_acme.h"
#include "mod_acme_config.h"

APLOG_USE_MODULE(acme);

#define ACME_WD_JOBS "_acme_jobs_"
/* ACME_THREAD_RETURN: the module's threads return from their function
 * instead of calling apr_thread_exit(). pthread_exit() unwinds without
 * unpoisoning the frames it leaves, and AddressSanitizer then took the
 * thread's own teardown on that stack for an overflow. A thread's pool goes
 * with the pool it was made from. */
#define ACME_KEEP_ARCHIVED 5
/* When staged results are activated: acme_restart_due(), from what the
 * renewal child says of its jobs. It tells the parent's thread when a job
 * begins and ends and when it stages a result; without word from it
 * (results staged by acmectl, or by another server of a cluster) the
 * thread looks this often. */
#define ACME_RESTART_POLL apr_time_from_sec(1)
/* Wake-ups closer than this are taken together: one scan per burst. */
#define ACME_RESTART_COALESCE apr_time_from_msec(20)
/* With etcd: restarts spread over the fleet. */
#define ACME_RESTART_JITTER apr_time_from_sec(4)
#define ACME_BATCH_NAME "_batch"
/* Touched by the child whenever it stages a result: the parent scans the
 * domains only when this changes, not every poll. */
#define ACME_BATCH_STAGED "staged"
/* The scheduler's longest sleep when nothing is due. */
#define ACME_DRIVE_IDLE apr_time_from_sec(60)

/* ---- activation (parent, post_config) ------------------------------------- */

/* Is the staged pair of type t usable? *ppresent: 0 there is none (or it
 * is the active one), 1 there is one, -1 (a shared store only) there is
 * one for other names: another server of the fleet, configured otherwise
 * (a rolling change), made it, and it is neither this server's to activate
 * nor to remove.
 * The child wrote it, and the child's account is every web application's:
 * a result must be a pair for d's names, and newer than what is active (a
 * certificate staged again would otherwise be a restart at the child's
 * will, and an older one a downgrade). s: remember the good pair for post_config's check (the main
 * thread only). */
static apr_status_t validate_staged(acme_domain_t *d, acme_store_t *st, acme_key_type_t t,
                                    int *ppresent, const char **perr, server_rec *s,
                                    apr_pool_t *p)
{
    apr_array_header_t *chain, *active;
    acme_pkey_t *key = NULL;
    const char *cert, *keypem, *cur, *cf = acme_job_cert_file(p, t);
    apr_size_t clen, klen, curlen;
    apr_status_t rv;

    rv = st->load(st, ACME_SG_STAGING, d->name, cf, &cert, &clen, p);
    *ppresent = !APR_STATUS_IS_ENOENT(rv);
    if (!*ppresent) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS || acme_chain_from_pem(&chain, p, cert, clen) != APR_SUCCESS
        || chain->nelts < 1) {
        *perr = "the certificate file cannot be read";
        return rv != APR_SUCCESS ? rv : APR_EINVAL;
    }
    if (st != acme_mod_cache
        && !acme_cert_covers(APR_ARRAY_IDX(chain, 0, const acme_cert_t *), d->names)) {
        *ppresent = -1;
        return APR_SUCCESS;
    }
    if (st->load(st, ACME_SG_STAGING, d->name, acme_job_key_file(p, t), &keypem, &klen, p)
            != APR_SUCCESS
        || acme_pkey_from_pem(&key, p, keypem, klen) != APR_SUCCESS) {
        *perr = "the key file cannot be read";
        return APR_EINVAL;
    }
    if (st->load(st, ACME_SG_DOMAINS, d->name, cf, &cur, &curlen, p) == APR_SUCCESS) {
        if (curlen == clen && !memcmp(cur, cert, clen)) {
            *ppresent = 0; /* the active one: nothing new */
            return APR_SUCCESS;
        }
        if (acme_chain_from_pem(&active, p, cur, curlen) == APR_SUCCESS && active->nelts > 0
            && acme_cert_not_before(APR_ARRAY_IDX(chain, 0, const acme_cert_t *))
                   < acme_cert_not_before(APR_ARRAY_IDX(active, 0, const acme_cert_t *))) {
            *perr = "it is older than the active certificate";
            return APR_EINVAL;
        }
    }
    rv = acme_pair_check(chain, key, d->names, apr_time_now(), perr, p);
    if (rv == APR_SUCCESS && s) {
        acme_mod_pair_good(s, cert, clen, keypem, klen);   /* post_config's check after it */
    }
    return rv;
}

/* The key types activation looks at. A local store holds this server's
 * results; a shared one the fleet's, and a server whose key types differ
 * (a rolling change) checks, activates and keeps every type the others
 * made: it never drops what the fleet serves. */
static const apr_array_header_t *activation_types(acme_domain_t *d, acme_store_t *st,
                                                  apr_pool_t *p)
{
    apr_array_header_t *types;
    int t;

    if (st == acme_mod_cache) {
        return d->settings->key_types;
    }
    types = apr_array_make(p, ACME_KEY_RSA4096, sizeof(acme_key_type_t));
    for (t = ACME_KEY_P256; t <= ACME_KEY_RSA4096; ++t) {
        APR_ARRAY_PUSH(types, acme_key_type_t) = (acme_key_type_t)t;
    }
    return types;
}

/* Checks every key type d has staged: 0 when none is, 1 when all staged
 * ones are good, 2 when they are another server's, for other names (a
 * shared store only), -1 (with *perr, and the type in *pbad) when one is
 * not good. */
static int staged_check(acme_domain_t *d, acme_store_t *st, const char **perr,
                        acme_key_type_t *pbad, apr_status_t *prv, server_rec *s, apr_pool_t *p)
{
    const apr_array_header_t *types = activation_types(d, st, p);
    int i, present, staged = 0, other = 0;

    for (i = 0; i < types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(types, i, acme_key_type_t);
        *prv = validate_staged(d, st, t, &present, perr, s, p);
        if (*prv != APR_SUCCESS) {
            *pbad = t;
            return -1;
        }
        other |= present < 0;
        staged += present > 0;
    }
    return other ? 2 : staged > 0;
}

/* A staged result that fails its checks is refused once: logged, and
 * removed, so that it costs no further restart and the next run orders a
 * good one (within its backoff). */
static void refuse_staged(acme_domain_t *d, acme_store_t *st, acme_key_type_t t, apr_status_t rv,
                          const char *err, server_rec *s, apr_pool_t *p)
{
    ap_log_error(APLOG_MARK, APLOG_ERR, rv == APR_EINVAL ? 0 : rv, s, ACMELOG(0301)
                 "%s: the staged %s certificate is not activated: %s. It is removed; "
                 "a new one will be ordered.", d->name, acme_key_type_name(t), err);
    st->remove(st, ACME_SG_STAGING, d->name, NULL, p);
}

static int activate_domain(acme_domain_t *d, acme_store_t *st, server_rec *s, apr_pool_t *p)
{
    const char *err = NULL, *data;
    apr_size_t len;
    apr_status_t rv = APR_SUCCESS;
    acme_key_type_t bad = 0;
    const apr_array_header_t *types = activation_types(d, st, p);
    int i, staged = staged_check(d, st, &err, &bad, &rv, s, p);

    if (staged < 0) {
        refuse_staged(d, st, bad, rv, err, s, p);
        return 0;
    }
    if (staged == 2) {
        return 0;   /* its maker activates it; acme_drive_activate logs the difference */
    }
    if (!staged) {
        st->remove(st, ACME_SG_STAGING, d->name, NULL, p);
        return 0;
    }
    /* Key types not renewed this time keep their active files: copy them
     * so the domain's directory is replaced as one complete set. */
    for (i = 0; i < types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(types, i, acme_key_type_t);
        const char *cf = acme_job_cert_file(p, t), *kf = acme_job_key_file(p, t);

        if (st->load(st, ACME_SG_STAGING, d->name, cf, &data, &len, p) == APR_SUCCESS) continue;
        if (st->load(st, ACME_SG_DOMAINS, d->name, cf, &data, &len, p) == APR_SUCCESS) {
            st->save(st, ACME_SG_STAGING, d->name, cf, data, len, 0, p);
            if (st->load(st, ACME_SG_DOMAINS, d->name, kf, &data, &len, p) == APR_SUCCESS) {
                st->save(st, ACME_SG_STAGING, d->name, kf, data, len, 1, p);
            }
        }
    }
    rv = st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, d->name, ACME_KEEP_ARCHIVED, p);
    if (APR_STATUS_IS_ENOENT(rv) && st != acme_mod_cache) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, ACMELOG(0304)
                     "%s: another server of the cluster activated the new certificate first",
                     d->name);
        return 1;
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ACMELOG(0302)
                     "%s: cannot activate the staged certificate in %s", d->name,
                     st->where);
        return 0;
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, ACMELOG(0303)
                 "%s: new certificate activated", d->name);
    return 1;
}

/* Whether the coming generation is one this module's own activation
 * restart made (no new configuration), across generations: a word in the
 * process pool, allocated by the main thread, written by the restart
 * thread just before it signals. */
static volatile apr_uint32_t *self_restart_word(server_rec *s)
{
    return acme_mod_process_mem(s, "acme-self-restart", sizeof(apr_uint32_t));
}

/* Staged results that a restart did not activate, across generations
 * (domain -> the mtime of its staged meta.json): restarting for them again
 * would loop. Written only by the main thread in
 * post_config, while no checker runs. */
static apr_hash_t *refused_activations(server_rec *s)
{
    return acme_mod_process_hash(s, "acme-refused-activations");
}

/* Staged results whose activation found the domain claimed by another
 * process (domain -> busy_activation_t). A server killed right after
 * staging holds its claim until the lease runs out, and nothing else would
 * bring its result up: the restart thread tries again then. A claim that
 * stays held (a long job of acmectl's, or a hostile child's) doubles the
 * wait each time, so it cannot turn the retries into a restart every lease.
 * Entries are made by the main thread in post_config; the restart thread
 * only reads and clears the times. */
#define ACME_BUSY_ACTIVATIONS "acme-busy-activations"
#define ACME_BUSY_MAX_WAIT apr_time_from_sec(3600)
typedef struct {
    apr_time_t at;              /* look again then; 0: nothing to look at */
    apr_interval_time_t wait;   /* the last wait, doubled while the claim stays */
} busy_activation_t;

static apr_hash_t *busy_activations(server_rec *s, int make)
{
    apr_hash_t **h = NULL;

    if (make) {
        return acme_mod_process_hash(s, ACME_BUSY_ACTIVATIONS);
    }
    apr_pool_userdata_get((void **)&h, ACME_BUSY_ACTIVATIONS, s->process->pool);
    return h ? *h : NULL;
}

/* The restart thread: is d's activation waiting for another's claim? */
static int busy_activation_waits(server_rec *s, const char *name, apr_time_t now)
{
    apr_hash_t *busy = busy_activations(s, 0);
    busy_activation_t *b = busy ? apr_hash_get(busy, name, APR_HASH_KEY_STRING) : NULL;

    return b && b->at > now;
}

/* The restart thread: has a claim that held an activation back run out?
 * Each one is reported once: a scan follows, whose activation tries again. */
static int busy_activation_due(server_rec *s, apr_time_t now)
{
    apr_hash_t *busy = busy_activations(s, 0);
    apr_hash_index_t *hi;
    int due = 0;

    for (hi = busy ? apr_hash_first(NULL, busy) : NULL; hi; hi = apr_hash_next(hi)) {
        busy_activation_t *b = apr_hash_this_val(hi);
        if (b->at && b->at <= now) {
            b->at = 0;
            due = 1;
        }
    }
    return due;
}

/* Activates d's staged result, if there is one: 1 when the domain's
 * certificate is now the staged one. *pbusy (if not NULL): another process
 * held the domain's claim. */
static int activate_one(acme_domain_t *d, acme_store_t *st, server_rec *s, int *pbusy,
                        apr_pool_t *p)
{
    acme_store_claim_t *c = NULL;
    const char *data;
    apr_size_t len;
    int n;

    if (pbusy) *pbusy = 0;

    if (st->load(st, ACME_SG_STAGING, d->name, ACME_JOB_META, &data, &len, p) != APR_SUCCESS) {
        return 0;
    }
    if (st != acme_mod_cache) {
        /* Servers restarting at the same moment: one activates, and the
         * others must not take its half-moved result for a broken one. */
        char host[APRMAXHOSTLEN + 1];
        if (apr_gethostname(host, sizeof(host), p) != APR_SUCCESS) {
            apr_cpystrn(host, "-", sizeof(host));
        }
        if (st->claim(st, &c, d->name,
                      apr_psprintf(p, "mod_acme-parent-%d@%s", (int)getpid(), host),
                      apr_time_from_sec(30), p) != APR_SUCCESS) {
            if (pbusy) *pbusy = 1;
            return 0;   /* another server is at it, or was: see busy_activations() */
        }
        /* the staged items, read once for the checks below */
        acme_store_etcd_snapshot(st, ACME_SG_STAGING, d->name, p);
        if (st->load(st, ACME_SG_STAGING, d->name, ACME_JOB_META, &data, &len, p)
            != APR_SUCCESS) {
            st->release(st, c, p);
            return 0;   /* activated meanwhile */
        }
    }
    n = activate_domain(d, st, s, p);
    if (c) {
        st->release(st, c, p);
    }
    return n;
}

/* The names that have something staged: one listing, not a read per domain. */
static apr_hash_t *staged_names(acme_store_t *st, apr_pool_t *p)
{
    apr_hash_t *h = apr_hash_make(p);
    apr_array_header_t *names;
    int i;

    if (st->list(st, ACME_SG_STAGING, NULL, &names, p) == APR_SUCCESS) {
        for (i = 0; i < names->nelts; ++i) {
            apr_hash_set(h, APR_ARRAY_IDX(names, i, const char *), APR_HASH_KEY_STRING, "1");
        }
    }
    return h;
}

/* The other servers of the cluster poll this marker. */
static void note_cluster_activation(acme_store_t *st, apr_pool_t *p)
{
    if (st != acme_mod_cache) {
        st->save(st, ACME_SG_STAGING, ACME_BATCH_NAME, ACME_BATCH_STAGED, "1", 1,
                 ACME_STORE_VOLATILE, p);
    }
}

/* A result left staged for another server's names: its difference from
 * this server's settings is logged once per difference and process, not at
 * every restart of the fleet. */
static void note_other_settings(acme_domain_t *d, acme_store_t *st, server_rec *s, apr_pool_t *p)
{
    apr_hash_t *said = acme_mod_process_hash(s, "acme-staged-settings-diff");
    const char *diff, *last = apr_hash_get(said, d->name, APR_HASH_KEY_STRING);
    acme_job_spec_t spec;
    apr_time_t at;

    acme_config_job_spec(&spec, d);
    diff = acme_job_settings_diff(st, ACME_SG_STAGING, &spec, &at, p);
    if (diff && (!last || strcmp(last, diff))) {
        acme_job_settings_warn(d->name, diff);
        apr_hash_set(said, apr_pstrdup(s->process->pool, d->name), APR_HASH_KEY_STRING,
                     apr_pstrdup(s->process->pool, diff));
    }
}

int acme_drive_activate(acme_global_t *g, server_rec *s, apr_pool_t *ptemp)
{
    acme_store_t *st = acme_mod_store;
    apr_hash_t *staged = staged_names(st, ptemp), *busy = busy_activations(s, 1);
    apr_pool_t *p;
    int i, n = 0;

    apr_pool_create(&p, ptemp); /* one domain at a time */
    for (i = 0; i < g->domains->nelts; ++i, apr_pool_clear(p)) {
        acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);
        busy_activation_t *b = apr_hash_get(busy, d->name, APR_HASH_KEY_STRING);
        int held = 0;

        if (apr_hash_get(staged, d->name, APR_HASH_KEY_STRING)) {
            n += activate_one(d, st, s, &held, p);
        }
        if (held && !b) {
            b = apr_pcalloc(s->process->pool, sizeof(*b));
            apr_hash_set(busy, apr_pstrdup(s->process->pool, d->name), APR_HASH_KEY_STRING, b);
        }
        if (b && !held) {
            b->at = b->wait = 0;
        }
        else if (b && !b->at) {
            /* first the longest a claim outlives its holder, then doubled
             * after each look that found it held (not at every pass: a
             * start makes two) */
            b->wait = !b->wait ? ACME_JOB_LEASE
                      : b->wait * 2 < ACME_BUSY_MAX_WAIT ? b->wait * 2 : ACME_BUSY_MAX_WAIT;
            b->at = apr_time_now() + b->wait;
        }
    }
    for (i = 0; i < g->domains->nelts; ++i, apr_pool_clear(p)) {
        acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);
        busy_activation_t *b = apr_hash_get(busy, d->name, APR_HASH_KEY_STRING);
        apr_time_t mt;
        if (b && b->at) {
            continue;   /* not refused: tried again when the claim runs out */
        }
        if (apr_hash_get(staged, d->name, APR_HASH_KEY_STRING)
            && st->mtime(st, ACME_SG_STAGING, d->name, ACME_JOB_META, &mt, p) == APR_SUCCESS) {
            if (st != acme_mod_cache) {
                note_other_settings(d, st, s, p);
            }
            /* Still there: this restart could not activate it. One entry
             * per domain, so the table is as large as the configuration. */
            apr_hash_t *refused = refused_activations(s);
            apr_time_t *at = apr_hash_get(refused, d->name, APR_HASH_KEY_STRING);
            if (!at) {
                at = apr_palloc(s->process->pool, sizeof(*at));
                apr_hash_set(refused, apr_pstrdup(s->process->pool, d->name),
                             APR_HASH_KEY_STRING, at);
            }
            *at = mt;
        }
    }
    if (n > 0) {
        note_cluster_activation(st, p);
    }
    return n;
}

/* ---- parent: restart when results are staged -------------------------------- */

/* The restarts this module made, across generations: at most
 * ACME_RESTART_BUDGET in any hour. Whatever the child stages (its account
 * is every web application's), it cannot restart the root parent more
 * often than that. */
#define ACME_RESTART_BUDGET 10
#define ACME_RESTART_BUDGET_WINDOW apr_time_from_sec(3600)
typedef struct {
    apr_time_t at[ACME_RESTART_BUDGET]; /* a ring: at[next] is the oldest */
    unsigned next;
    int deferred;                       /* the wait is logged once */
} restart_budget_t;

typedef struct {
    acme_global_t *g;        /* read only while the check runs */
    server_rec *s;
    apr_time_t first_seen;
    apr_pool_t *own;         /* the checker's own pool: nothing shared with httpd */
    apr_hash_t *announced;   /* domain -> staged mtime, announced (auto restart off) */
    apr_hash_t *refused;     /* domain -> staged mtime a restart did not activate (read only) */
    apr_hash_t *checked;     /* "domain@mtime" whose staged files passed the checks */
    int signalled;
    int scanned;             /* a full scan was done */
    apr_time_t marker_seen;  /* mtime of the child's "staged" marker at that scan */
    apr_thread_t *thread;    /* the parent's polling thread, NULL: the monitor hook */
    apr_pool_t *tpool;       /* unmanaged pool the thread object lives in */
    pid_t parent_pid;        /* children inherit this struct, not the thread */
    apr_time_t restart_at;   /* shared store: the jittered moment of the restart */
    apr_time_t check_at;     /* a batch is waited for: look again at this time */
    volatile apr_uint32_t *self_restart; /* self_restart_word() */
    restart_budget_t *budget; /* across generations; this thread's alone */
    int wake[2];             /* socket pair: the children write, the thread reads */
    /* What the renewal child says is in flight (d->name -> acme_restart_item_t*,
     * one per managed domain at most; the thread's alone). */
    apr_hash_t *inflight;
    int informed;            /* the child said something in this generation */
    int garbled;             /* a message that does not parse was logged */
    volatile apr_uint32_t stop;
    volatile apr_uint32_t running; /* the thread has started (see acme_drive_start) */
    apr_time_t held_until;   /* the restart was held back until then (logged once) */
} restart_ctx_t;

/* A job the child said is in flight; kept (inactive) after its end, so that
 * a child cannot grow the table beyond one entry per managed domain. */
typedef struct {
    acme_restart_item_t item;
    int active;
} inflight_t;

/* Messages taken from the child per look. */
#define ACME_RESTART_MSGS_PER_LOOK 1024

/* Staged results we already restarted for, across generations: if a
 * restart did not consume them, restarting again would loop. */

/* The restart check of the current generation, run by the monitor hook. */
static restart_ctx_t *restart_ctx;

/* Shared store: another server activated a certificate of one of our
 * domains (domains/<d>/meta.json is not the one this server handed to
 * mod_ssl). Read only after the marker changed. */
static void staged_item(apr_array_header_t *staged, int first, apr_time_t at)
{
    acme_restart_item_t *it = apr_array_push(staged);

    it->first = first;
    it->at = at;
}

static void changed_in_cluster(restart_ctx_t *rc, acme_store_t *st, apr_array_header_t *ready,
                               apr_array_header_t *items, apr_pool_t *ptemp)
{
    int i;

    for (i = 0; i < rc->g->domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(rc->g->domains, i, acme_domain_t *);
        const char *staged;
        acme_json_t *meta;

        if (!acme_config_renews(d)
            || acme_store_load_json(st, ACME_SG_DOMAINS, d->name, ACME_JOB_META, &meta, ptemp)
                   != APR_SUCCESS
            || !(staged = acme_json_gets(meta, "staged", NULL))
            || (d->served_staged && !strcmp(staged, d->served_staged))) {
            continue;
        }
        if (!rc->g->auto_restart) {
            continue; /* the restart that the operator makes copies it */
        }
        APR_ARRAY_PUSH(ready, const char *) = apr_pstrcat(ptemp, d->name, "@cluster", NULL);
        /* no word of the other server's jobs: timed from when this batch was
         * first seen here */
        staged_item(items, !d->has_cert, rc->first_seen ? rc->first_seen : apr_time_now());
    }
}

/* With etcd, a domain's activation takes several requests: done here,
 * while the old generation still serves, and not in the configuration pass,
 * during which nobody answers (the CA validating for another order would
 * wait). What is left staged is activated there, as always. */
static void activate_before_restart(restart_ctx_t *rc, const apr_array_header_t *ready,
                                    apr_pool_t *ptemp)
{
    acme_store_t *st = acme_mod_store;
    apr_pool_t *p;
    int i, n = 0;

    apr_pool_create(&p, ptemp);
    for (i = 0; i < ready->nelts && !apr_atomic_read32(&rc->stop); ++i, apr_pool_clear(p)) {
        const char *key = APR_ARRAY_IDX(ready, i, const char *), *at = strrchr(key, '@');
        acme_domain_t *d;

        if (!at || !strcmp(at, "@cluster")) continue;   /* activated elsewhere */
        d = apr_hash_get(rc->g->names, key, (apr_ssize_t)(at - key));
        if (d) n += activate_one(d, st, rc->s, NULL, p);
    }
    if (n > 0) {
        note_cluster_activation(st, p);
    }
    apr_pool_destroy(p);
}

/* Takes one restart from the budget, or says when the next one may be. */
static int restart_budget_take(restart_ctx_t *rc, apr_time_t now)
{
    restart_budget_t *b = rc->budget;
    apr_time_t oldest = b->at[b->next % ACME_RESTART_BUDGET];

    if (oldest && now - oldest < ACME_RESTART_BUDGET_WINDOW) {
        rc->check_at = oldest + ACME_RESTART_BUDGET_WINDOW;
        if (!b->deferred) {
            char when[APR_RFC822_DATE_LEN];
            apr_rfc822_date(when, rc->check_at);
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, rc->s, ACMELOG(0345)
                         "%d graceful restarts for new certificates in the last hour, the most "
                         "allowed: the next is at %s, or at 'apachectl graceful'",
                         ACME_RESTART_BUDGET, when);
            b->deferred = 1;
        }
        return 0;
    }
    b->at[b->next++ % ACME_RESTART_BUDGET] = now;
    b->deferred = 0;
    return 1;
}

/* The local store: the staged files are checked here, before a restart is
 * spent on them (the child wrote them). Each staged result once. */
static int staged_good(restart_ctx_t *rc, acme_domain_t *d, const char *key, apr_pool_t *ptemp)
{
    const char *err = NULL;
    acme_key_type_t bad = 0;
    apr_status_t rv = APR_SUCCESS;

    if (apr_hash_get(rc->checked, key, APR_HASH_KEY_STRING)) {
        return 1;
    }
    switch (staged_check(d, acme_mod_store, &err, &bad, &rv, NULL, ptemp)) {
    case -1:
        refuse_staged(d, acme_mod_store, bad, rv, err, rc->s, ptemp);
        return 0;
    case 0:
        return 0; /* nothing new: the next configuration pass clears it */
    }
    if (apr_hash_count(rc->checked) >= (unsigned)rc->g->domains->nelts) {
        apr_hash_clear(rc->checked); /* bounded: results are activated, then forgotten */
    }
    apr_hash_set(rc->checked, apr_pstrdup(rc->own, key), APR_HASH_KEY_STRING, "1");
    return 1;
}

/* The jobs the child says are in flight. */
static apr_array_header_t *running_items(restart_ctx_t *rc, apr_pool_t *ptemp)
{
    apr_array_header_t *running = apr_array_make(ptemp, 8, sizeof(acme_restart_item_t));
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(ptemp, rc->inflight); hi; hi = apr_hash_next(hi)) {
        const inflight_t *job = apr_hash_this_val(hi);
        if (job->active) *(acme_restart_item_t *)apr_array_push(running) = job->item;
    }
    return running;
}

/* A scan looks at every domain's staged and active meta data: with etcd,
 * in a view of the two groups (one request each for what changed since the
 * last scan), not a read per domain. Else the store itself. */
static acme_store_t *scan_view(apr_pool_t *ptemp)
{
    static const acme_store_group_t groups[] = {ACME_SG_STAGING, ACME_SG_DOMAINS};

    if (acme_mod_scan_store
        && acme_store_etcd_view(acme_mod_scan_store, groups, 2, 0, ptemp) == APR_SUCCESS) {
        return acme_mod_scan_store;
    }
    return acme_mod_store;
}

static apr_status_t restart_check(restart_ctx_t *rc, apr_pool_t *ptemp)
{
    acme_store_t *st = acme_mod_store, *view;
    apr_array_header_t *ready, *staged;
    apr_time_t now = apr_time_now(), due;
    int i;

    rc->check_at = 0;
    if (!st || rc->signalled) {
        return APR_SUCCESS;
    }
    {
        apr_time_t marker = 0;
        st->mtime(st, ACME_SG_STAGING, ACME_BATCH_NAME, ACME_BATCH_STAGED, &marker, ptemp);
        if (rc->scanned && !rc->first_seen && marker == rc->marker_seen
            && !busy_activation_due(rc->s, now)) {
            return APR_SUCCESS; /* nothing staged since the last look */
        }
        rc->scanned = 1;
        rc->marker_seen = marker;
    }
    ready = apr_array_make(ptemp, 5, sizeof(const char *));
    staged = apr_array_make(ptemp, 5, sizeof(acme_restart_item_t));
    view = scan_view(ptemp);
    for (i = 0; i < rc->g->domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(rc->g->domains, i, acme_domain_t *);
        apr_time_t mt, *refused_at;
        const char *key, *seen;

        if (view->mtime(view, ACME_SG_STAGING, d->name, ACME_JOB_META, &mt, ptemp)
            != APR_SUCCESS) {
            continue;
        }
        key = apr_psprintf(ptemp, "%s@%" APR_TIME_T_FMT, d->name, mt);
        refused_at = apr_hash_get(rc->refused, d->name, APR_HASH_KEY_STRING);
        if ((refused_at && *refused_at == mt) || busy_activation_waits(rc->s, d->name, now)) {
            continue; /* a restart did not activate it: reported at that restart */
        }
        if (st == acme_mod_cache && rc->g->auto_restart && !staged_good(rc, d, key, ptemp)) {
            continue; /* refused now, without a restart */
        }
        if (!rc->g->auto_restart) {
            seen = apr_hash_get(rc->announced, d->name, APR_HASH_KEY_STRING);
            if (!seen || strcmp(seen, key)) {
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, rc->s, ACMELOG(0311)
                             "%s: a new certificate is ready; ManagedAutoRestart is off, so a "
                             "graceful restart (apachectl graceful) will activate it", d->name);
                apr_hash_set(rc->announced, apr_pstrdup(rc->own, d->name),
                             APR_HASH_KEY_STRING, apr_pstrdup(rc->own, key));
            }
            continue;
        }
        APR_ARRAY_PUSH(ready, const char *) = key;
        staged_item(staged, !d->has_cert, mt);
    }
    if (st != acme_mod_cache) {
        changed_in_cluster(rc, view, ready, staged, ptemp);
    }
    if (ready->nelts == 0) {
        rc->first_seen = 0;
        rc->restart_at = 0;
        rc->held_until = 0;
        return APR_SUCCESS;
    }
    if (!rc->first_seen) {
        rc->first_seen = now;
    }
    due = acme_restart_due(running_items(rc, ptemp), staged, rc->informed,
                           rc->budget->next ? rc->budget->at[(rc->budget->next - 1)
                                                             % ACME_RESTART_BUDGET] : 0,
                           now);
    if (due > now) {
        if (due != rc->held_until) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, rc->s, ACMELOG(1952)
                         "%d new certificate(s) ready; %s: restarting when they end, at the "
                         "latest in %d s", ready->nelts,
                         rc->informed ? "the renewal child has jobs in flight"
                                      : "more may be staged",
                         (int)apr_time_sec(due - now + apr_time_from_sec(1) - 1));
            rc->held_until = due;
        }
        rc->check_at = due;
        return APR_SUCCESS;
    }
    if (st != acme_mod_cache) {
        /* The whole fleet sees the change at once: spread the restarts. */
        if (!rc->restart_at) {
            rc->restart_at = now + (apr_time_t)acme_random_below(ACME_RESTART_JITTER);
        }
        if (now < rc->restart_at) {
            rc->check_at = rc->restart_at;
            return APR_SUCCESS;
        }
    }
    if (st != acme_mod_cache) {
        activate_before_restart(rc, ready, ptemp);
    }
    if (!restart_budget_take(rc, now)) {
        return APR_SUCCESS;
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, rc->s, ACMELOG(0312)
                 "%d new certificate(s) ready (%s): restarting gracefully to activate them",
                 ready->nelts, apr_array_pstrcat(ptemp, ready, ' '));
    rc->signalled = 1;
    apr_atomic_set32(rc->self_restart, 1);
    if (kill(getpid(), AP_SIG_GRACEFUL) != 0) {
        apr_atomic_set32(rc->self_restart, 0);
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, rc->s, ACMELOG(0313)
                     "cannot signal the graceful restart; run 'apachectl graceful' to activate "
                     "the new certificates");
    }
    return APR_SUCCESS;
}

/* A message from the renewal child, which is not trusted: bounded (one
 * entry per managed domain), and whatever it says only moves a restart
 * within the bounds of acme_restart_due(). */
static void child_said(restart_ctx_t *rc, const char *buf, apr_size_t len)
{
    acme_restart_msg_t m;
    acme_domain_t *d = NULL;
    inflight_t *job;

    if (acme_restart_msg_parse(&m, buf, len) == APR_SUCCESS) {
        d = apr_hash_get(rc->g->names, m.domain, APR_HASH_KEY_STRING);
    }
    if (!d || strcmp(d->name, m.domain)) {
        if (!rc->garbled) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, rc->s, ACMELOG(1950)
                         "a message from the renewal child is not one of its job messages, "
                         "or names no managed domain: ignored (%s)",
                         acme_str_printable(rc->own, apr_pstrmemdup(rc->own, buf,
                                                                    len < 80 ? len : 80)));
            rc->garbled = 1;
        }
        return;
    }
    rc->informed = 1;
    job = apr_hash_get(rc->inflight, d->name, APR_HASH_KEY_STRING);
    if (m.event == ACME_RESTART_BEGIN) {
        if (!job) {
            job = apr_pcalloc(rc->own, sizeof(*job));
            apr_hash_set(rc->inflight, d->name, APR_HASH_KEY_STRING, job);
        }
        job->item.first = m.first;
        job->item.at = apr_time_now();
        job->active = 1;
    }
    else if (m.event == ACME_RESTART_END && job) {
        job->active = 0;
    }
}

/* Sleeps until a child's message, the stop, or the time of the next look. */
static void wait_for_wake(restart_ctx_t *rc)
{
    apr_time_t now = apr_time_now(), until = now + ACME_RESTART_POLL;
    struct pollfd pfd;
    char buf[ACME_RESTART_MSG_MAX];
    int i;

    if (rc->check_at && rc->check_at < until) {
        until = rc->check_at;
    }
    pfd.fd = rc->wake[0];
    pfd.events = POLLIN;
    if (until > now && poll(&pfd, 1, (int)((until - now + 999) / 1000)) > 0) {
        if (!apr_atomic_read32(&rc->stop)) apr_sleep(ACME_RESTART_COALESCE);
        /* a child that keeps writing does not keep the thread from deciding */
        for (i = 0; i < ACME_RESTART_MSGS_PER_LOOK; ++i) {
            ssize_t n = recv(rc->wake[0], buf, sizeof(buf), MSG_DONTWAIT);
            if (n < 0) break;
            if (!apr_atomic_read32(&rc->stop)) child_said(rc, buf, (apr_size_t)n);
        }
    }
}

/* The renewal child tells the parent's thread what it does. Never blocks;
 * a lost message costs at most a bound of acme_restart_due() (or, for a
 * begin, an order cut by the restart, which the next generation resumes). */
static void tell_parent(acme_restart_event_t event, int first, const char *domain)
{
    char buf[ACME_RESTART_MSG_MAX];
    apr_size_t len;

    if (restart_ctx && restart_ctx->wake[1] >= 0
        && acme_restart_msg_format(buf, &len, event, first, domain) == APR_SUCCESS) {
        (void)send(restart_ctx->wake[1], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

static void *APR_THREAD_FUNC restart_thread(apr_thread_t *t, void *data)
{
    restart_ctx_t *rc = data;
    apr_pool_t *ptemp;
    sigset_t all;

    (void)t;
    /* httpd's signals (our own SIGUSR1 too) belong to its main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (apr_pool_create_unmanaged_ex(&ptemp, NULL, NULL) != APR_SUCCESS) {
        apr_atomic_set32(&rc->running, 1);
        return NULL;
    }
    apr_atomic_set32(&rc->running, 1);
    /* Wait first: httpd forks its children right after post_config, and a
     * thread that is allocating at that moment can leave a lock held in
     * them. Staged results are activated by post_config itself. */
    while (wait_for_wake(rc), !apr_atomic_read32(&rc->stop)) {
        restart_check(rc, ptemp);
        apr_pool_clear(ptemp);
    }
    apr_pool_destroy(ptemp);
    return NULL; /* not apr_thread_exit(): see ACME_THREAD_RETURN */
}

static apr_status_t stop_restart_thread(void *data)
{
    restart_ctx_t *rc = data;
    apr_status_t trv;

    if (getpid() != rc->parent_pid) {
        return APR_SUCCESS; /* a child: the thread is not here */
    }
    apr_atomic_set32(&rc->stop, 1);
    if (rc->thread) {
        (void)send(rc->wake[1], "q", 1, MSG_DONTWAIT | MSG_NOSIGNAL); /* ends its wait */
        apr_thread_join(&trv, rc->thread);
        rc->thread = NULL;
    }
    close(rc->wake[0]);
    close(rc->wake[1]);
    apr_pool_destroy(rc->tpool);
    apr_pool_destroy(rc->own);
    return APR_SUCCESS;
}

static apr_status_t clear_restart_ctx(void *data)
{
    *(restart_ctx_t **)data = NULL;
    return APR_SUCCESS;
}

/* ---- child: the renewal jobs ---------------------------------------------- */

/* A domain gets a job when its renew mode wants a certificate (an SSL vhost
 * uses it, or ManagedRenewMode always) and a challenge can work. */
static int has_job(const acme_domain_t *d)
{
    return acme_config_renews(d) && d->eff_challenges->nelts > 0;
}

struct drive_ctx_t;

typedef struct drive_job_t {
    struct drive_ctx_t *dc;
    acme_domain_t *d;
    acme_job_spec_t spec;
    apr_thread_t *thread;
    apr_pool_t *pool;              /* the running job's, destroyed after join */
    apr_array_header_t *types;
    volatile apr_uint32_t done;
    int running;
    apr_status_t rv;
    acme_result_t *result;
    apr_time_t next_check;
    server_rec *s;
    int ari_due;                   /* the thread asks the CA's renewal information first */
    int first;                     /* not scheduled yet in this server generation */
    int want_run;                  /* the scheduler decided an order is due */
    int ran;                       /* the thread ran an order (not only ARI) */
    int unwritable;                /* the last run found the store unwritable */
    int ari_unwritable;            /* so did the last renewal information query */
    const char *ca_url;            /* the CA of the last run */
    acme_job_memo_t memo;          /* the backoff, also when job.json cannot be saved */
    int told;                      /* the parent was told that this job began */
    int told_first;                /* ... a first certificate */
    int tell_end;                  /* the parent is told that it ended, after the tick's
                                    * new jobs: a freed slot refilled is no gap */
} drive_job_t;

typedef struct drive_ctx_t {
    acme_global_t *g;
    server_rec *s;
    int njobs;                     /* domains with a job */
    /* Made by the child that runs the scheduler, in a pool with an
     * allocator of its own: the pages it writes are never shared with the
     * parent, so no copy-on-write doubles them (drive_stop frees it). */
    apr_pool_t *pool;
    apr_array_header_t *jobs;      /* drive_job_t*, in pool */
    volatile apr_uint32_t stop;
    int running;
    int parallel;
    apr_interval_time_t check_interval;
    int started;
    apr_hash_t *ca_pause;          /* CA URL -> apr_time_t*: Retry-After in force */
    acme_job_guard_t *ca_guard;    /* new orders per CA in the last hour, persisted */
    acme_ca_shared_t *shared;      /* directories, nonces and poll timing per CA */
    int guard_limit;               /* orders per CA per hour, from the domain count */
    int store_unwritable;          /* reported once until a write works again */
    int self_restart;              /* this generation comes from our activation restart */
    apr_time_t next_sweep, next_request_look, next_claim_renewal;
    apr_time_t requests_seen;      /* mtime of acmectl's request marker */
    /* The scheduler's thread and the stoppers (mod_watchdog's STOPPING, the
     * child's exit) must not interleave. */
    apr_thread_mutex_t *mutex;
    volatile int stopped;
    void *volatile thread;         /* apr_thread_t *: the scheduler's */
    apr_thread_mutex_t *wake_mutex;
    apr_thread_cond_t *wake_cond;
    int woken;                     /* under wake_mutex */
} drive_ctx_t;

/* ---- notifications ------------------------------------------------------------ */

#define ACME_NOTIFY_TIMEOUT apr_time_from_sec(30)

/* Runs ManagedNotifyCmd with the event and the domain, without a shell and
 * with an environment that holds nothing of the server's. */
static void notify(drive_ctx_t *dc, const char *event, const char *domain, apr_pool_t *pp)
{
    apr_array_header_t *argv = dc->g->notify_argv;
    const char **args, *env[4];
    acme_proc_result_t res;
    apr_status_t rv;
    apr_pool_t *p;
    int i;

    if (!argv) {
        return;
    }
    apr_pool_create(&p, pp);
    args = apr_palloc(p, sizeof(const char *) * (apr_size_t)(argv->nelts + 3));
    for (i = 0; i < argv->nelts; ++i) {
        args[i] = APR_ARRAY_IDX(argv, i, const char *);
    }
    args[i++] = event;
    args[i++] = domain;
    args[i] = NULL;
    env[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
    env[1] = apr_pstrcat(p, "MOD_ACME_EVENT=", event, NULL);
    env[2] = apr_pstrcat(p, "MOD_ACME_DOMAIN=", domain, NULL);
    env[3] = NULL;
    rv = acme_proc_run(&res, p, args, env, ACME_NOTIFY_TIMEOUT);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, dc->s, ACMELOG(0341)
                     "%s: cannot run ManagedNotifyCmd %s for '%s'", domain, args[0], event);
    }
    else if (res.timed_out) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, dc->s, ACMELOG(0342)
                     "%s: ManagedNotifyCmd for '%s' ran longer than %ds and was killed",
                     domain, event, (int)apr_time_sec(ACME_NOTIFY_TIMEOUT));
    }
    else if (!res.signalled && res.exit_code == 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, dc->s, ACMELOG(0343)
                     "%s: ManagedNotifyCmd '%s' exited 0%s%s", domain, event,
                     *res.output ? ", output: " : "", res.output);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, dc->s, ACMELOG(0344)
                     "%s: ManagedNotifyCmd '%s' %s %d%s%s", domain, event,
                     res.signalled ? "died of signal" : "exited with", res.exit_code,
                     *res.output ? ", output: " : "", res.output);
    }
    apr_pool_destroy(p);
}

static int is_unwritable(const acme_result_t *r)
{
    return r->status != APR_SUCCESS && r->problem
           && !strcmp(r->problem, ACME_PROBLEM_STORE_UNWRITABLE);
}

/* Wakes the scheduler: a job finished, or the child stops. */
static void drive_wake(drive_ctx_t *dc)
{
    apr_thread_mutex_lock(dc->wake_mutex);
    dc->woken = 1;
    apr_thread_cond_signal(dc->wake_cond);
    apr_thread_mutex_unlock(dc->wake_mutex);
}

static void *APR_THREAD_FUNC job_thread(apr_thread_t *t, void *data)
{
    drive_job_t *job = data;
    acme_status_t *st;

    (void)t;
    job->result = acme_result_make(job->pool);
    job->ran = 0;
    job->rv = APR_SUCCESS;
    if (job->ari_due) {
        acme_result_t *ar = acme_result_make(job->pool);
        apr_status_t arv = acme_job_ari_refresh(acme_mod_store, &job->spec, job->pool, ar);

        job->ari_unwritable = arv != APR_SUCCESS && is_unwritable(ar); /* reap() says it */
        if (arv != APR_SUCCESS && !job->ari_unwritable) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, job->s, ACMELOG(0326)
                         "%s: %s; the renewal window applies until the CA answers",
                         job->d->name, acme_result_describe(ar, job->pool));
        }
        /* The CA's answer may make a renewal due now. */
        if (!job->want_run
            && acme_status_get(&st, acme_mod_store, &job->spec, NULL, apr_time_now(), job->pool)
                   == APR_SUCCESS
            && st->due->nelts > 0 && st->next_attempt <= apr_time_now()) {
            job->want_run = 1;
            job->types = st->due;
            job->ca_url = st->ca_url;
        }
    }
    if (job->want_run) {
        job->ran = 1;
        /* Retries while the store is unwritable are announced once. */
        if (!job->unwritable) notify(job->dc, "renewing", job->d->name, job->pool);
        job->rv = acme_job_run(acme_mod_store, &job->spec, job->types, job->pool, job->result);
        if (job->rv == APR_SUCCESS) {
            notify(job->dc, "renewed", job->d->name, job->pool);
        }
        else if (job->rv != APR_EINTR && job->rv != APR_EBUSY && !job->unwritable) {
            notify(job->dc, "errored", job->d->name, job->pool);
        }
    }
    apr_atomic_set32(&job->done, 1);
    drive_wake(job->dc);
    return NULL; /* not apr_thread_exit(): see ACME_THREAD_RETURN */
}

static apr_time_t jittered(apr_time_t now, apr_interval_time_t interval)
{
    /* +-10% so that many servers do not ask the CA at the same second */
    apr_interval_time_t j = interval / 10;

    return now + interval - j + (apr_interval_time_t)acme_random_below((apr_uint64_t)(2 * j + 1));
}

/* The scheduler's looks at the domains' status: with etcd, from a view of
 * the store (acme_store_etcd_view) that the tick renews, so that a look at
 * every domain costs a few requests, not several per domain. A job reads
 * under its claim what it decides on, from acme_mod_store. */
#define ACME_SCHED_VIEW_AGE apr_time_from_sec(5)

static acme_store_t *sched_store(void)
{
    return acme_mod_sched_store ? acme_mod_sched_store : acme_mod_store;
}

static void sched_view(apr_interval_time_t max_age, apr_pool_t *ptemp)
{
    static const acme_store_group_t groups[] = {ACME_SG_DOMAINS, ACME_SG_STAGING, ACME_SG_JOBS};

    if (acme_mod_sched_store) {
        acme_store_etcd_view(acme_mod_sched_store, groups, 3, max_age, ptemp);
    }
}

static void reap(drive_ctx_t *dc, drive_job_t *job, apr_time_t now)
{
    apr_status_t trv;

    apr_thread_join(&trv, job->thread);
    job->running = 0;
    dc->running--;
    if ((job->ran && job->rv != APR_EINTR) || job->ari_due) {
        int unwritable = job->ari_unwritable || (job->ran && is_unwritable(job->result));
        if (unwritable && !dc->store_unwritable) {
            ap_log_error(APLOG_MARK, APLOG_ERR, job->rv, dc->s, ACMELOG(0329)
                         "the store %s cannot be written: the certificates in it are still "
                         "served, but no certificate is obtained or renewed, and nothing is "
                         "asked of the CA, until it can be written (a full or read-only disk? "
                         "wrong owner? etcd down?). Renewal resumes by itself.",
                         acme_mod_store->where);
        }
        else if (!unwritable && dc->store_unwritable) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, dc->s, ACMELOG(0330)
                         "the store %s can be written again: renewals resume",
                         acme_mod_store->where);
        }
        dc->store_unwritable = unwritable;
        job->unwritable = unwritable;
    }
    if (!job->ran || job->unwritable) {
        /* only the renewal information was asked, or reported above */
    }
    else if (job->rv == APR_EBUSY) {
        /* a hand-over is looked at 5 times a second: said once */
        ap_log_error(APLOG_MARK, job->memo.busy_looks > 1 ? APLOG_DEBUG : APLOG_INFO, 0, dc->s,
                     ACMELOG(0336) "%s", acme_result_describe(job->result, job->pool));
    }
    else if (job->rv == APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, dc->s, ACMELOG(0321)
                     "%s: certificate obtained and staged for activation", job->d->name);
    }
    else if (job->rv != APR_EINTR) {
        acme_errclass_t cls = acme_result_classify(job->result);
        /* the problem type is in the text; an errno prefix would mislead */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, dc->s, ACMELOG(0322)
                     "%s: %s%s", job->d->name, acme_result_describe(job->result, job->pool),
                     cls == ACME_ERRCLASS_CONFIG
                         ? ". This needs a configuration change; retrying in 24 hours or at "
                           "the next restart"
                         : "");
        if (cls == ACME_ERRCLASS_RATELIMIT && job->result->retry_after > now && job->ca_url) {
            /* No request to this CA before its Retry-After, from any job. */
            apr_time_t *until = apr_hash_get(dc->ca_pause, job->ca_url, APR_HASH_KEY_STRING);
            if (!until) {
                until = apr_palloc(dc->pool, sizeof(*until));
                apr_hash_set(dc->ca_pause, apr_pstrdup(dc->pool, job->ca_url),
                             APR_HASH_KEY_STRING, until);
            }
            *until = job->result->retry_after;
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, dc->s, ACMELOG(0327)
                         "the CA %s asked to wait until %s: no requests to it before",
                         job->ca_url, acme_time_rfc3339(job->pool, *until));
        }
    }
    if (job->ran && job->rv == APR_SUCCESS) {
        acme_mod_store->save(acme_mod_store, ACME_SG_STAGING, ACME_BATCH_NAME, ACME_BATCH_STAGED,
                             "1", 1, ACME_STORE_VOLATILE, job->pool);
        tell_parent(ACME_RESTART_STAGED, job->told_first, job->d->name);
    }
    /* A job that waits for a claim being handed over is still in flight. */
    job->tell_end = job->told && !(job->rv == APR_EBUSY && job->memo.handover);
    apr_pool_destroy(job->pool);
    job->pool = NULL;
    job->next_check = now; /* re-evaluate from the store */
}

/* "expiring" (acme_status.h), once per certificate. */
static void expiring_notice(drive_ctx_t *dc, drive_job_t *job, acme_status_t *st,
                            apr_pool_t *p)
{
    acme_store_t *store = acme_mod_store;
    acme_json_t *jj;

    if (acme_store_load_json(store, ACME_SG_JOBS, job->d->name, ACME_JOB_STATE, &jj, p)
        != APR_SUCCESS) {
        jj = acme_json_new_object(p);
    }
    if (acme_json_getl(jj, ACME_JK_EXPIRING_NOTIFIED, NULL) == apr_time_sec(st->not_after)) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, dc->s, ACMELOG(0328)
                 "%s: the certificate expires at %s and has not been renewed yet", job->d->name,
                 acme_time_rfc3339(p, st->not_after));
    acme_json_setl(jj, apr_time_sec(st->not_after), ACME_JK_EXPIRING_NOTIFIED, NULL);
    acme_store_save_json(store, ACME_SG_JOBS, job->d->name, ACME_JOB_STATE, jj, p);
    notify(dc, "expiring", job->d->name, p);
}

/* "installed": the restart that activated a certificate has happened. */
static void installed_notice(drive_ctx_t *dc, drive_job_t *job, apr_pool_t *p)
{
    acme_store_t *store = acme_mod_store;
    acme_json_t *meta, *jj;
    const char *staged, *known;

    if (acme_store_load_json(sched_store(), ACME_SG_DOMAINS, job->d->name, ACME_JOB_META, &meta,
                             p) != APR_SUCCESS || !(staged = acme_json_gets(meta, "staged", NULL))) {
        return;
    }
    if (acme_store_load_json(sched_store(), ACME_SG_JOBS, job->d->name, ACME_JOB_STATE, &jj, p)
        != APR_SUCCESS) {
        jj = acme_json_new_object(p);
    }
    known = acme_json_gets(jj, ACME_JK_INSTALLED_NOTIFIED, NULL);
    if (known && !strcmp(known, staged)) {
        return;
    }
    acme_json_sets(jj, staged, ACME_JK_INSTALLED_NOTIFIED, NULL);
    acme_job_event(jj, p, "installed", NULL);
    acme_store_save_json(store, ACME_SG_JOBS, job->d->name, ACME_JOB_STATE, jj, p);
    notify(dc, "installed", job->d->name, p);
}

static void schedule(drive_ctx_t *dc, drive_job_t *job, apr_time_t now, apr_pool_t *ptemp)
{
    acme_status_t *st;
    apr_time_t next;

    if (acme_status_get(&st, sched_store(), &job->spec, NULL, now, ptemp) != APR_SUCCESS) {
        job->next_check = now + apr_time_from_sec(60);
        return;
    }
    if (job->first && !dc->self_restart && st->errors && st->last_error
        && acme_result_classify(st->last_error) == ACME_ERRCLASS_CONFIG) {
        /* A configuration problem waits a day, or for the restart that
         * brings the corrected configuration: this may be that one. Not
         * the module's own activation restarts: a domain that cannot work
         * would be ordered again with every other domain's renewal. */
        st->next_attempt = 0;
    }
    job->first = 0;
    {
        apr_time_t *until = apr_hash_get(dc->ca_pause, st->ca_url, APR_HASH_KEY_STRING);
        if (until && *until > now) {
            job->next_check = *until;
            return;
        }
    }
    if (st->expiring) {
        expiring_notice(dc, job, st, ptemp);
    }
    job->ari_due = st->ari_due;
    job->want_run = st->due->nelts > 0 && st->next_attempt <= now;
    if (job->want_run && dc->running < dc->parallel) {
        /* Only a look: the job counts its newOrder requests itself (a run
         * that fails before one, at its claim or the store, costs none). */
        apr_time_t fits = acme_job_guard_fits(dc->ca_guard, st->ca_url, now, st->due->nelts);
        if (fits) {
            job->want_run = 0;
            if (!job->ari_due) {
                job->next_check = fits;
                return;
            }
        }
    }
    if (job->want_run || job->ari_due) {
        if (dc->running >= dc->parallel) {
            job->next_check = now; /* a slot frees up: the next tick tries again */
            return;
        }
        apr_pool_create(&job->pool, NULL);
        apr_pool_tag(job->pool, "acme_job");
        job->types = apr_array_copy(job->pool, st->due);
        job->ca_url = apr_pstrdup(job->pool, st->ca_url);
        apr_atomic_set32(&job->done, 0);
        if (apr_thread_create(&job->thread, NULL, job_thread, job, job->pool) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, dc->s, ACMELOG(0323)
                         "%s: cannot start the renewal thread", job->d->name);
            apr_pool_destroy(job->pool);
            job->pool = NULL;
            job->next_check = now + apr_time_from_sec(60);
            return;
        }
        if (job->want_run && !job->told) {
            job->told = 1;
            job->told_first = !st->renew_at;
            tell_parent(ACME_RESTART_BEGIN, job->told_first, job->d->name);
        }
        if (job->want_run && !job->unwritable && job->memo.busy_looks == 0) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, dc->s, ACMELOG(0324)
                         "%s: %s", job->d->name,
                         st->renew_requested ? "renewing the certificate as requested"
                         : st->renew_at ? "renewing the certificate"
                                        : "getting a first certificate");
        }
        job->running = 1;
        dc->running++;
        return;
    }
    next = jittered(now, dc->check_interval);
    if (st->due->nelts > 0 && st->next_attempt > now && st->next_attempt < next) {
        next = st->next_attempt;
    }
    if (st->renew_at > now && st->renew_at < next) {
        next = st->renew_at;
    }
    job->next_check = next;
}

/* One pass of the scheduler: reaps finished jobs, starts due ones in free
 * slots, and runs the periodic chores. Returns when it wants to run again
 * (a finished job wakes it earlier). Called with dc->mutex held. */
static apr_time_t drive_tick(drive_ctx_t *dc, apr_pool_t *ptemp)
{
    acme_store_t *st = acme_mod_store;
    apr_time_t now = apr_time_now(), next;
    apr_pool_t *pj;
    int i, reaped = 0;  /* or an operator's request seen: the view is renewed now */

    for (i = 0; i < dc->jobs->nelts; ++i) {
        drive_job_t *job = APR_ARRAY_IDX(dc->jobs, i, drive_job_t *);
        if (job->running && apr_atomic_read32(&job->done)) {
            reap(dc, job, now);
            reaped = 1;
        }
    }
    if (now >= dc->next_sweep) {
        /* hourly: what interrupted writes left behind */
        acme_store_fs_sweep(st, ACME_STORE_STALE_AGE, ptemp);
        dc->next_sweep = now + apr_time_from_sec(3600);
    }
    if (now >= dc->next_request_look) {
        /* An operator's request (acmectl renew) is noticed within seconds;
         * with etcd within 30 s. acmectl touches one marker, so the domains
         * are looked at only when it changed. */
        apr_time_t marker = 0;
        st->mtime(st, ACME_SG_JOBS, ACME_REQUESTS_NAME, ACME_REQUESTS_MARKER, &marker, ptemp);
        if (marker != dc->requests_seen) {
            for (i = 0; i < dc->jobs->nelts; ++i) {
                drive_job_t *job = APR_ARRAY_IDX(dc->jobs, i, drive_job_t *);
                apr_time_t mt;
                if (!job->running && job->next_check > now
                    && st->mtime(st, ACME_SG_JOBS, job->d->name, ACME_JOB_RENEW_REQUEST, &mt,
                                 ptemp) == APR_SUCCESS) {
                    job->next_check = now;
                }
            }
            dc->requests_seen = marker;
            reaped = 1;     /* the requests are seen by the view too */
        }
        dc->next_request_look = now + (st != acme_mod_cache ? apr_time_from_sec(30)
                                                            : apr_time_from_sec(3));
    }
    if (now >= dc->next_claim_renewal) {
        /* A claim lives for ACME_JOB_LEASE: renewed every 10 s while its job
         * runs, so only a stuck or paused process loses it. */
        for (i = 0; i < dc->jobs->nelts; ++i) {
            drive_job_t *job = APR_ARRAY_IDX(dc->jobs, i, drive_job_t *);
            acme_store_claim_t *c = job->running ? job->memo.claim : NULL;
            if (c) st->renew(st, c, ptemp);
        }
        dc->next_claim_renewal = now + apr_time_from_sec(10);
    }
    /* a job's end, and an operator's request, are seen at once */
    sched_view(reaped ? 0 : ACME_SCHED_VIEW_AGE, ptemp);
    next = now + ACME_DRIVE_IDLE;
    if (dc->next_request_look < next) next = dc->next_request_look;
    if (dc->running > 0 && dc->next_claim_renewal < next) next = dc->next_claim_renewal;
    apr_pool_create(&pj, ptemp);
    for (i = 0; i < dc->jobs->nelts && !apr_atomic_read32(&dc->stop); ++i) {
        drive_job_t *job = APR_ARRAY_IDX(dc->jobs, i, drive_job_t *);
        if (job->running) continue;
        if (job->next_check <= now && dc->running < dc->parallel) {
            /* one domain's status at a time: with thousands due at start,
             * the pool's peak would stay in the process */
            schedule(dc, job, now, pj);
            apr_pool_clear(pj);
        }
        /* with every slot taken, a finishing job wakes us instead */
        if (!job->running && job->next_check < next && dc->running < dc->parallel) {
            next = job->next_check;
        }
    }
    for (i = 0; i < dc->jobs->nelts; ++i) {
        drive_job_t *job = APR_ARRAY_IDX(dc->jobs, i, drive_job_t *);
        if (job->tell_end) {
            tell_parent(ACME_RESTART_END, job->told_first, job->d->name);
            job->tell_end = job->told = 0;
        }
    }
    return next;
}

/* The scheduler's thread, in the child that holds the watchdog singleton:
 * mod_watchdog ticks only every 100 ms at best, and a slot that frees up
 * must be refilled at once. */
static void *APR_THREAD_FUNC drive_thread(apr_thread_t *t, void *data)
{
    drive_ctx_t *dc = data;
    apr_pool_t *ptemp;
    apr_time_t next, now;

    (void)t;
    if (apr_pool_create_unmanaged_ex(&ptemp, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    while (!apr_atomic_read32(&dc->stop)) {
        apr_thread_mutex_lock(dc->mutex);
        next = dc->stopped ? 0 : drive_tick(dc, ptemp);
        apr_thread_mutex_unlock(dc->mutex);
        apr_pool_clear(ptemp);
        apr_thread_mutex_lock(dc->wake_mutex);
        while (!dc->woken && !apr_atomic_read32(&dc->stop) && (now = apr_time_now()) < next) {
            apr_thread_cond_timedwait(dc->wake_cond, dc->wake_mutex, next - now);
        }
        dc->woken = 0;
        apr_thread_mutex_unlock(dc->wake_mutex);
    }
    apr_pool_destroy(ptemp);
    return NULL; /* not apr_thread_exit(): see ACME_THREAD_RETURN */
}

/* Stops the scheduler and waits for every job: from mod_watchdog's
 * STOPPING or from the child's exit, whichever comes first. */
static void drive_stop(drive_ctx_t *dc)
{
    apr_thread_t *t;
    apr_status_t trv;
    int i;

    apr_atomic_set32(&dc->stop, 1); /* aborts transfers, ends jobs at their next step */
    drive_wake(dc);
    if ((t = apr_atomic_xchgptr((volatile void **)&dc->thread, NULL)) != NULL) {
        apr_thread_join(&trv, t);
    }
    apr_thread_mutex_lock(dc->mutex);
    if (!dc->stopped) {
        for (i = 0; dc->jobs && i < dc->jobs->nelts; ++i) {
            drive_job_t *job = APR_ARRAY_IDX(dc->jobs, i, drive_job_t *);
            if (job->running) {
                reap(dc, job, apr_time_now());
            }
        }
        dc->stopped = 1;
        dc->jobs = NULL;
        if (dc->pool) apr_pool_destroy(dc->pool);
        dc->pool = NULL;
    }
    apr_thread_mutex_unlock(dc->mutex);
}

/* The jobs, made in the child that runs them (see drive_ctx_t.pool). */
static apr_status_t make_jobs(drive_ctx_t *dc)
{
    const acme_settings_t *last = NULL;
    apr_array_header_t *pubs = NULL;
    drive_job_t *slab;
    apr_status_t rv;
    int i;

    if (dc->pool) {
        return APR_SUCCESS;
    }
    if ((rv = apr_pool_create_unmanaged_ex(&dc->pool, NULL, NULL)) != APR_SUCCESS) {
        dc->pool = NULL;
        return rv;
    }
    dc->ca_pause = apr_hash_make(dc->pool);
    if ((rv = acme_job_guard_create(&dc->ca_guard, dc->pool, acme_mod_store, NULL,
                                    dc->guard_limit)) != APR_SUCCESS) {
        return rv;
    }
    dc->jobs = apr_array_make(dc->pool, dc->njobs, sizeof(drive_job_t *));
    slab = apr_pcalloc(dc->pool, sizeof(*slab) * (apr_size_t)(dc->njobs + 1));
    for (i = 0; i < dc->g->domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(dc->g->domains, i, acme_domain_t *);
        drive_job_t *job;

        if (!has_job(d)) continue;
        job = slab++;
        job->d = d;
        job->s = dc->s;
        acme_config_job_spec(&job->spec, d);
        job->dc = dc;
        job->first = 1;
        job->spec.stop = &dc->stop;
        job->spec.memo = &job->memo;
        job->spec.shared = dc->shared;
        job->spec.guard = dc->ca_guard;
        job->spec.recheck = 1;
        if (d->settings != last) { /* domains without settings of their own share them */
            last = d->settings;
            pubs = acme_config_publishers(dc->pool, last);
        }
        job->spec.publishers = pubs;
        APR_ARRAY_PUSH(dc->jobs, drive_job_t *) = job;
    }
    return APR_SUCCESS;
}

static apr_status_t jobs_watchdog(int state, void *baton, apr_pool_t *ptemp)
{
    drive_ctx_t *dc = baton;
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (state == AP_WATCHDOG_STATE_STOPPING) {
        drive_stop(dc);
    }
    else if (state == AP_WATCHDOG_STATE_STARTING) {
        apr_thread_mutex_lock(dc->mutex);
        if (!dc->stopped && !dc->thread) {
            apr_thread_t *t = NULL;

            if ((rv = make_jobs(dc)) == APR_SUCCESS) {
                acme_job_init(dc->s->process->pool); /* its mutex outlives a generation */
                ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, dc->s, ACMELOG(0325)
                             "renewal jobs start for %d domain(s), at most %d at a time",
                             dc->jobs->nelts, dc->parallel);
                apr_pool_t *pv;
                apr_pool_create(&pv, dc->pool);
                sched_view(0, pv);
                for (i = 0; i < dc->jobs->nelts; ++i) {
                    installed_notice(dc, APR_ARRAY_IDX(dc->jobs, i, drive_job_t *), ptemp);
                    apr_pool_clear(ptemp);
                }
                apr_pool_destroy(pv);   /* ends the view */
                rv = apr_thread_create(&t, NULL, drive_thread, dc, dc->g->pool);
            }
            dc->thread = rv == APR_SUCCESS ? t : NULL;
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, rv, dc->s, ACMELOG(0332)
                             "cannot start the renewal scheduler: certificates are not "
                             "obtained or renewed by this child");
            }
        }
        apr_thread_mutex_unlock(dc->mutex);
    }
    return rv;
}

/* The jobs of the current generation (set at post_config, inherited by the
 * children). */
static drive_ctx_t *drive_ctx;

static apr_status_t clear_drive_ctx(void *data)
{
    (void)data;
    drive_ctx = NULL;
    return APR_SUCCESS;
}

/* A child exits through pchild's destruction and then exit(), which tears
 * down OpenSSL and libc: job threads must be gone before. mod_watchdog's
 * own STOPPING call comes too late for that (its pool is not pchild). */
static apr_status_t drive_child_exit(void *data)
{
    drive_stop(data);
    return APR_SUCCESS;
}

/* A graceful restart: the old child may serve its connections for a long
 * while yet, but its jobs stop now. Each releases its claim as it ends, and
 * the new generation, which looks every ACME_JOB_HANDOVER_POLL, takes it
 * over within a second (the order resumes there). The threads are joined
 * at the child's exit, as always. */
static void drive_child_stopping(apr_pool_t *pchild, int graceful)
{
    (void)pchild;
    (void)graceful;
    if (drive_ctx) {
        apr_atomic_set32(&drive_ctx->stop, 1);
        drive_wake(drive_ctx);
    }
}

static void drive_child_init(apr_pool_t *pchild, server_rec *s)
{
    (void)s;
    if (drive_ctx) {
        apr_pool_cleanup_register(pchild, drive_ctx, drive_child_exit, apr_pool_cleanup_null);
    }
}

apr_status_t acme_drive_start(acme_global_t *g, server_rec *s, apr_pool_t *p)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *wd_get;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *wd_register;
    ap_watchdog_t *wd;
    drive_ctx_t *dc;
    restart_ctx_t *rc;
    apr_status_t rv;
    int i;

    wd_get = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    wd_register = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!wd_get || !wd_register) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, ACMELOG(0331)
                     "mod_watchdog is not loaded: certificates cannot be obtained or renewed. "
                     "Add 'LoadModule watchdog_module modules/mod_watchdog.so' (Debian's "
                     "apache2 has it built in, see 'apache2 -l': is this another httpd?)");
        return APR_ENOTIMPL;
    }
    dc = apr_pcalloc(p, sizeof(*dc));
    dc->g = g;
    dc->s = s;
    dc->parallel = g->parallel > 0 ? g->parallel : ACME_DEFAULT_PARALLEL;
    dc->check_interval = g->check_interval > 0 ? g->check_interval : ACME_DEFAULT_CHECK_INTERVAL;
    /* read once, at this generation's configuration, and cleared for the next */
    dc->self_restart = (int)apr_atomic_xchg32(self_restart_word(s), 0);
    if ((rv = acme_ca_shared_create(&dc->shared, p)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_thread_mutex_create(&dc->mutex, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS
        || (rv = apr_thread_mutex_create(&dc->wake_mutex, APR_THREAD_MUTEX_DEFAULT, p))
               != APR_SUCCESS
        || (rv = apr_thread_cond_create(&dc->wake_cond, p)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < g->domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);

        if (!has_job(d)) continue;
        dc->njobs++;
        dc->guard_limit += d->settings->key_types->nelts;
    }
    dc->guard_limit = acme_rate_guard_limit(dc->guard_limit);
    drive_ctx = dc;
    apr_pool_cleanup_register(p, &drive_ctx, clear_drive_ctx, apr_pool_cleanup_null);
    if (dc->njobs > 0) {
        rv = wd_get(&wd, ACME_WD_JOBS, 0, 1, p);
        if (rv == APR_SUCCESS) {
            /* The singleton decides which child runs the scheduler; its
             * ticks do nothing else (the scheduler has its own thread). */
            rv = wd_register(wd, apr_time_from_sec(10), dc, jobs_watchdog);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, ACMELOG(0346)
                         "cannot start the renewal watchdog");
            return rv;
        }
    }
    if (g->auto_restart == ACME_UNSET) {
        g->auto_restart = 1;
    }
    rc = apr_pcalloc(p, sizeof(*rc));
    rc->g = g;
    rc->s = s;
    rc->refused = refused_activations(s);
    rc->self_restart = self_restart_word(s);
    rc->budget = acme_mod_process_mem(s, "acme-restart-budget", sizeof(*rc->budget));
    if (apr_pool_create_unmanaged_ex(&rc->own, NULL, NULL) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    rc->announced = apr_hash_make(rc->own);
    rc->checked = apr_hash_make(rc->own);
    rc->inflight = apr_hash_make(rc->own);
    restart_ctx = rc;
    apr_pool_cleanup_register(p, &restart_ctx, clear_restart_ctx, apr_pool_cleanup_null);
    /* httpd runs the monitor hook only every 10 seconds; a thread sees
     * staged results within a fraction of a second. It touches no pool of
     * httpd's (only its own), reads the config, stats files and signals. */
    rc->parent_pid = getpid();
    rc->wake[0] = rc->wake[1] = -1;
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, rc->wake) == 0
        && apr_pool_create_unmanaged_ex(&rc->tpool, NULL, NULL) == APR_SUCCESS
        && apr_thread_create(&rc->thread, NULL, restart_thread, rc, rc->tpool) == APR_SUCCESS) {
        /* httpd forks the children next: let the thread get through its
         * start first (a sanitizer's allocator, unlike glibc's, is not
         * locked around fork, and a child inherited it held) */
        for (i = 0; i < 1000 && !apr_atomic_read32(&rc->running); ++i) {
            apr_sleep(apr_time_from_msec(1));
        }
        apr_pool_cleanup_register(p, rc, stop_restart_thread, apr_pool_cleanup_null);
    }
    else {
        rc->thread = NULL;
        if (rc->wake[0] >= 0) {
            close(rc->wake[0]);
            close(rc->wake[1]);
            rc->wake[0] = rc->wake[1] = -1;
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ACMELOG(0334)
                     "cannot start the activation thread; new certificates are noticed by "
                     "httpd's maintenance loop, within about 10 seconds");
    }
    return APR_SUCCESS;
}

/* Without the thread, the parent's maintenance loop runs the check every
 * 10 seconds, as root: the one process that may signal itself to restart. */
static int hook_monitor(apr_pool_t *p, server_rec *s)
{
    apr_pool_t *ptemp;

    if (restart_ctx && !restart_ctx->thread) {
        apr_pool_create(&ptemp, p);
        restart_check(restart_ctx, ptemp);
        apr_pool_destroy(ptemp);
    }
    return DECLINED;
}

void acme_drive_register_hooks(void)
{
    ap_hook_monitor(hook_monitor, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(drive_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(drive_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
}
