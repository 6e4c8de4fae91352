/* mod_acme_restart.c: the parent's side of activation (root). At
 * post_config, staged results are activated (acme_activate.c does the
 * checks and the move); afterwards a thread of the parent hears the renewal
 * child's job messages, decides the graceful restart (acme_restart_due) and
 * signals it. Without the thread, httpd's monitor hook runs the check. */
#include <unistd.h>
#include <signal.h>
#include <pthread.h>
#include <poll.h>
#include <sys/socket.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_atomic.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <mpm_common.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_job.h"
#include "acme_activate.h"
#include "acme_restart.h"
#include "mod_acme.h"
#include "mod_acme_config.h"
#include "mod_acme_store.h"
#include "mod_acme_restart.h"

APLOG_USE_MODULE(acme);

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

/* ---- activation (post_config) --------------------------------------------------- */

static void pair_good(void *baton, const char *cert, apr_size_t clen, const char *key,
                      apr_size_t klen)
{
    acme_mod_pair_good(baton, cert, clen, key, klen);
}

/* d as the core's activation sees it; s (the main thread only): remember
 * each good pair for post_config's check. */
static acme_activate_t *activation_of(acme_domain_t *d, server_rec *s, apr_pool_t *p)
{
    acme_activate_t *a = apr_pcalloc(p, sizeof(*a));

    a->store = acme_mod_store;
    a->domain = d->name;
    a->names = d->names;
    a->key_types = d->settings->key_types;
    a->good = s ? pair_good : NULL;
    a->baton = s;
    return a;
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
 * With take, each one is reported once: a scan follows, whose activation
 * tries again. */
static int busy_activation_due(server_rec *s, apr_time_t now, int take)
{
    apr_hash_t *busy = busy_activations(s, 0);
    apr_hash_index_t *hi;
    int due = 0;

    for (hi = busy ? apr_hash_first(NULL, busy) : NULL; hi; hi = apr_hash_next(hi)) {
        busy_activation_t *b = apr_hash_this_val(hi);
        if (b->at && b->at <= now) {
            if (take) b->at = 0;
            due = 1;
        }
    }
    return due;
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

int acme_mod_activate(acme_global_t *g, server_rec *s, apr_pool_t *ptemp)
{
    acme_store_t *st = acme_mod_store;
    apr_hash_t *staged = acme_activate_staged_names(st, ptemp), *busy = busy_activations(s, 1);
    apr_pool_t *p;
    int i, n = 0;

    apr_pool_create(&p, ptemp); /* one domain at a time */
    for (i = 0; i < g->domains->nelts; ++i, apr_pool_clear(p)) {
        acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);
        busy_activation_t *b = apr_hash_get(busy, d->name, APR_HASH_KEY_STRING);
        int held = 0;

        if (apr_hash_get(staged, d->name, APR_HASH_KEY_STRING)) {
            n += acme_activate_domain(activation_of(d, s, p), &held, p);
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
            if (st->flags & ACME_STORE_SHARED) {
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
        acme_activate_mark(st, p);
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
    int informed;            /* the child's scheduler said it is ready in this generation */
    int garbled;             /* a message that does not parse was logged */
    volatile apr_uint32_t stop;
    volatile apr_uint32_t running; /* the thread has started (see acme_mod_restart_start) */
    apr_time_t held_until;   /* the restart was held back until then (logged once) */
    apr_time_t looked;       /* the last look at what is staged */
    apr_array_header_t *known; /* what it found staged (acme_restart_item_t) */
    apr_array_header_t *told;  /* inflight_t* the child said it staged since */
} restart_ctx_t;

/* A job the child said is in flight; kept (inactive) after its end, so that
 * a child cannot grow the table beyond one entry per managed domain. */
typedef struct {
    acme_restart_item_t item;
    int active;
    acme_restart_item_t staged; /* what it said it staged since the last look */
    int told;                   /* staged is in restart_ctx_t.told */
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
        if (d) n += acme_activate_domain(activation_of(d, NULL, p), NULL, p);
    }
    if (n > 0) {
        acme_activate_mark(st, p);
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
    acme_activate_t *a;

    if (apr_hash_get(rc->checked, key, APR_HASH_KEY_STRING)) {
        return 1;
    }
    a = activation_of(d, NULL, ptemp);
    switch (acme_activate_check(a, &err, &bad, &rv, ptemp)) {
    case ACME_STAGED_BAD:
        acme_activate_refuse(a, bad, rv, err, ptemp);
        return 0;
    case ACME_STAGED_NONE:
        return 0; /* nothing new: the next configuration pass clears it */
    default:
        break;
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

/* A scan looks at every domain's staged and active meta data: with a store
 * that keeps views (etcd), in a view of the two groups (one request each
 * for what changed since the last scan), not a read per domain. Else the
 * store itself. */
static acme_store_t *scan_view(apr_pool_t *ptemp)
{
    static const acme_store_group_t groups[] = {ACME_SG_STAGING, ACME_SG_DOMAINS};
    acme_store_t *v = acme_mod_scan_store;

    if (v && v->view && v->view(v, groups, 2, 0, ptemp) == APR_SUCCESS) {
        return v;
    }
    return acme_mod_store;
}

/* The domains a look checks: with a view (answered from memory), every
 * managed one; else those staging/ lists, so that a look costs what is
 * staged, not what is configured (one listing, not a read per domain). */
static apr_array_header_t *staged_domains(restart_ctx_t *rc, acme_store_t *view,
                                          apr_pool_t *ptemp)
{
    apr_array_header_t *names, *out;
    int i;

    if (view != acme_mod_store) {
        return rc->g->domains;
    }
    out = apr_array_make(ptemp, 8, sizeof(acme_domain_t *));
    view->list(view, ACME_SG_STAGING, NULL, &names, ptemp);
    for (i = 0; i < names->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        acme_domain_t *d = apr_hash_get(rc->g->names, name, APR_HASH_KEY_STRING);
        if (d && !strcmp(d->name, name)) APR_ARRAY_PUSH(out, acme_domain_t *) = d;
    }
    return out;
}

static apr_time_t last_restart(const restart_ctx_t *rc)
{
    const restart_budget_t *b = rc->budget;

    return b->next ? b->at[(b->next - 1) % ACME_RESTART_BUDGET] : 0;
}

/* While the restart is held: the decision on what is known without a look
 * (what the last look found, what the child said it staged since) moves
 * only when a job ends or a first certificate comes; the look waits for
 * that (acme_restart_look_at). Returns 1 (and sets check_at) when it waits. */
static int look_later(restart_ctx_t *rc, int changed, apr_time_t now, apr_pool_t *ptemp)
{
    apr_array_header_t *known;
    apr_time_t at;
    int i;

    if (!rc->held_until || busy_activation_due(rc->s, now, 0)) {
        return 0;
    }
    known = apr_array_copy(ptemp, rc->known);
    for (i = 0; i < rc->told->nelts; ++i) {
        *(acme_restart_item_t *)apr_array_push(known) =
            APR_ARRAY_IDX(rc->told, i, inflight_t *)->staged;
    }
    at = acme_restart_look_at(rc->looked, rc->held_until,
                              acme_restart_due(running_items(rc, ptemp), known, rc->informed,
                                               last_restart(rc), now),
                              changed, now);
    if (at <= now) {
        return 0;
    }
    rc->check_at = at;
    return 1;
}

/* A look is made: what it found is what is known. */
static void looked_at(restart_ctx_t *rc, const apr_array_header_t *staged, apr_time_t now)
{
    int i;

    for (i = 0; i < rc->told->nelts; ++i) {
        APR_ARRAY_IDX(rc->told, i, inflight_t *)->told = 0;
    }
    apr_array_clear(rc->told);
    apr_array_clear(rc->known);
    apr_array_cat(rc->known, staged);
    rc->looked = now;
}

static apr_status_t restart_check(restart_ctx_t *rc, apr_pool_t *ptemp)
{
    acme_store_t *st = acme_mod_store, *view;
    apr_array_header_t *ready, *staged, *domains;
    apr_time_t now = apr_time_now(), due;
    int i;

    rc->check_at = 0;
    if (!st || rc->signalled) {
        return APR_SUCCESS;
    }
    {
        apr_time_t marker = 0;
        st->mtime(st, ACME_SG_STAGING, ACME_ACTIVATE_BATCH_NAME, ACME_ACTIVATE_BATCH_STAGED, &marker,
                 ptemp);
        if (rc->scanned && !rc->first_seen && marker == rc->marker_seen
            && !busy_activation_due(rc->s, now, 1)) {
            return APR_SUCCESS; /* nothing staged since the last look */
        }
        if (look_later(rc, marker != rc->marker_seen, now, ptemp)) {
            return APR_SUCCESS; /* held, and nothing known makes it due sooner */
        }
        rc->scanned = 1;
        rc->marker_seen = marker;
    }
    ready = apr_array_make(ptemp, 5, sizeof(const char *));
    staged = apr_array_make(ptemp, 5, sizeof(acme_restart_item_t));
    view = scan_view(ptemp);
    domains = staged_domains(rc, view, ptemp);
    for (i = 0; i < domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(domains, i, acme_domain_t *);
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
        if (!(st->flags & ACME_STORE_SHARED) && rc->g->auto_restart && !staged_good(rc, d, key, ptemp)) {
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
    if (st->flags & ACME_STORE_SHARED) {
        changed_in_cluster(rc, view, ready, staged, ptemp);
    }
    looked_at(rc, staged, now);
    if (ready->nelts == 0) {
        rc->first_seen = 0;
        rc->restart_at = 0;
        rc->held_until = 0;
        return APR_SUCCESS;
    }
    if (!rc->first_seen) {
        rc->first_seen = now;
    }
    due = acme_restart_due(running_items(rc, ptemp), staged, rc->informed, last_restart(rc), now);
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
    if (st->flags & ACME_STORE_SHARED) {
        /* The whole fleet sees the change at once: spread the restarts. */
        if (!rc->restart_at) {
            rc->restart_at = now + (apr_time_t)acme_random_below(ACME_RESTART_JITTER);
        }
        if (now < rc->restart_at) {
            rc->check_at = rc->restart_at;
            return APR_SUCCESS;
        }
    }
    if (st->flags & ACME_STORE_SHARED) {
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
    if (m.event == ACME_RESTART_READY) {
        rc->informed = 1;   /* from now on, what is not said to run does not */
        return;
    }
    job = apr_hash_get(rc->inflight, d->name, APR_HASH_KEY_STRING);
    if (!job && m.event != ACME_RESTART_END) {
        job = apr_pcalloc(rc->own, sizeof(*job));
        apr_hash_set(rc->inflight, d->name, APR_HASH_KEY_STRING, job);
    }
    if (m.event == ACME_RESTART_BEGIN) {
        job->item.first = m.first;
        job->item.at = apr_time_now();
        job->active = 1;
    }
    else if (m.event == ACME_RESTART_STAGED) {
        /* known until the next look, which sees it in the store */
        job->staged.first = m.first;
        job->staged.at = apr_time_now();
        if (!job->told) {
            job->told = 1;
            APR_ARRAY_PUSH(rc->told, inflight_t *) = job;
        }
    }
    else if (job) {
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
void acme_mod_restart_tell(acme_restart_event_t event, int first, const char *domain)
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
    return NULL; /* not apr_thread_exit(): see ACME_THREAD_RETURN in mod_acme_sched.c */
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

int acme_mod_restart_was_self(server_rec *s)
{
    return (int)apr_atomic_xchg32(self_restart_word(s), 0);
}

apr_status_t acme_mod_restart_start(acme_global_t *g, server_rec *s, apr_pool_t *p)
{
    restart_ctx_t *rc;
    int i;

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
    rc->known = apr_array_make(rc->own, 8, sizeof(acme_restart_item_t));
    rc->told = apr_array_make(rc->own, 8, sizeof(inflight_t *));
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

void acme_mod_restart_register_hooks(void)
{
    ap_hook_monitor(hook_monitor, NULL, NULL, APR_HOOK_MIDDLE);
}
