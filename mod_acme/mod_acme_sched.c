/* mod_acme_sched.c: the renewal child's scheduler (unprivileged). The
 * child that holds mod_watchdog's singleton runs the renewal jobs in
 * parallel threads, runs ManagedNotifyCmd for their events, and tells the
 * parent's restart thread (mod_acme_restart.c) what it does. */
#include <unistd.h>
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

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_store.h"
#include "acme_renew.h"
#include "acme_acme.h"
#include "acme_job.h"
#include "acme_jobrec.h"
#include "acme_status.h"
#include "acme_proc.h"
#include "acme_activate.h"
#include "acme_restart.h"
#include "acme_sched.h"
#include "mod_acme.h"
#include "mod_acme_config.h"
#include "mod_acme_store.h"
#include "mod_acme_restart.h"
#include "mod_acme_sched.h"

APLOG_USE_MODULE(acme);

#define ACME_WD_JOBS "_acme_jobs_"
/* ACME_THREAD_RETURN: the module's threads return from their function
 * instead of calling apr_thread_exit(). pthread_exit() unwinds without
 * unpoisoning the frames it leaves, and AddressSanitizer then took the
 * thread's own teardown on that stack for an overflow. A thread's pool goes
 * with the pool it was made from. */
/* The scheduler's longest sleep when nothing is due. */
#define ACME_DRIVE_IDLE apr_time_from_sec(60)

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
    int installed_again;           /* a run held the domain at the "installed" notice */
    apr_time_t expiring_told;      /* the expiry an "expiring" notice was sent for */
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
    int running;                   /* jobs in flight */
    volatile apr_uint32_t waiting; /* ... of them waiting for the CA (job_waits) */
    int parallel;
    apr_interval_time_t check_interval;
    int started;
    int told_ready;                /* the parent knows every job in flight is said */
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

/* A job begins or ends a wait for the CA: while it waits it holds no
 * slot, and the scheduler may start another job at once. */
static void job_waits(void *baton, int waiting)
{
    drive_job_t *job = baton;

    if (waiting) {
        apr_atomic_inc32(&job->dc->waiting);
        drive_wake(job->dc);
    }
    else {
        apr_atomic_dec32(&job->dc->waiting);
    }
}

/* A slot for one more job (acme_sched_slot_free). */
static int slot_free(drive_ctx_t *dc)
{
    return acme_sched_slot_free(dc->running, (int)apr_atomic_read32(&dc->waiting), dc->parallel);
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

/* The scheduler's looks at the domains' status: with a store that keeps
 * views (etcd), from a view that the tick renews, so that a look at every
 * domain costs a few requests, not several per domain. A job reads under
 * its claim what it decides on, from acme_mod_store. */
#define ACME_SCHED_VIEW_AGE apr_time_from_sec(5)

static acme_store_t *sched_store(void)
{
    return acme_mod_sched_store ? acme_mod_sched_store : acme_mod_store;
}

static void sched_view(apr_interval_time_t max_age, apr_pool_t *ptemp)
{
    static const acme_store_group_t groups[] = {ACME_SG_DOMAINS, ACME_SG_STAGING, ACME_SG_JOBS};
    acme_store_t *v = acme_mod_sched_store;

    if (v && v->view && !apr_atomic_read32(&acme_mod_sched_stop)) {
        v->view(v, groups, 3, max_age, ptemp); /* none once stopping: the child's pools go */
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
        acme_mod_store->save(acme_mod_store, ACME_SG_STAGING, ACME_ACTIVATE_BATCH_NAME,
                             ACME_ACTIVATE_BATCH_STAGED, "1", 1, ACME_STORE_VOLATILE, job->pool);
        acme_mod_restart_tell(ACME_RESTART_STAGED, job->told_first, job->d->name);
    }
    apr_pool_destroy(job->pool);
    job->pool = NULL;
    job->next_check = now; /* re-evaluate from the store */
}

/* "expiring" (acme_status.h), once per certificate. */
static void expiring_notice(drive_ctx_t *dc, drive_job_t *job, acme_status_t *st,
                            apr_pool_t *p)
{
    int due;
    apr_status_t rv = acme_jobrec_expiring_mark(&due, acme_mod_store, job->d->name,
                                                st->not_after, p, NULL);

    if (rv != APR_SUCCESS && !APR_STATUS_IS_EBUSY(rv)) {
        /* the mark cannot be written (the store is down or full): the
         * operator still hears of it, once per certificate and process */
        due = job->expiring_told != st->not_after;
    }
    if (!due) {
        return;
    }
    job->expiring_told = st->not_after;
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, dc->s, ACMELOG(0328)
                 "%s: the certificate expires at %s and has not been renewed yet", job->d->name,
                 acme_time_rfc3339(p, st->not_after));
    notify(dc, "expiring", job->d->name, p);
}

/* "installed": the restart that activated a certificate has happened. */
static void installed_notice(drive_ctx_t *dc, drive_job_t *job, apr_pool_t *p)
{
    acme_store_t *store = acme_mod_store;
    acme_json_t *meta;
    const char *staged;
    apr_status_t rv;
    int due;

    if (acme_store_load_json(sched_store(), ACME_SG_DOMAINS, job->d->name, ACME_JOB_META, &meta,
                             p) != APR_SUCCESS || !(staged = acme_json_gets(meta, "staged", NULL))) {
        return;
    }
    rv = acme_jobrec_installed_mark(&due, store, job->d->name, staged, p, NULL);
    job->installed_again = rv == APR_EBUSY; /* schedule() tries again */
    if (rv != APR_SUCCESS || !due) {
        return;
    }
    notify(dc, "installed", job->d->name, p);
}

static void schedule(drive_ctx_t *dc, drive_job_t *job, apr_time_t now, apr_pool_t *ptemp)
{
    acme_status_t *st;
    acme_sched_in_t in;
    acme_sched_t out;
    apr_time_t *until;

    if (job->installed_again) {
        installed_notice(dc, job, ptemp);
    }
    if (acme_status_get(&st, sched_store(), &job->spec, NULL, now, ptemp) != APR_SUCCESS) {
        job->next_check = now + apr_time_from_sec(60);
        return;
    }
    memset(&in, 0, sizeof(in));
    in.st = st;
    in.first_look = job->first;
    in.self_restart = dc->self_restart;
    until = apr_hash_get(dc->ca_pause, st->ca_url, APR_HASH_KEY_STRING);
    in.ca_pause = until ? *until : 0;
    in.slot_free = slot_free(dc);
    if (st->due->nelts > 0 && in.slot_free) {
        in.guard_fits = acme_job_guard_fits(dc->ca_guard, st->ca_url, now, st->due->nelts);
    }
    in.check_interval = dc->check_interval;
    in.jitter = acme_sched_jitter(dc->check_interval);
    in.now = now;
    acme_sched_decide(&out, &in);
    job->first = 0;
    if (out.expiring) {
        expiring_notice(dc, job, st, ptemp);
    }
    if (st->due->nelts == 0) {
        job->memo.handover = 0; /* the claim's holder did the work: nothing to wait for */
    }
    if (out.action != ACME_SCHED_START) {
        job->next_check = out.next;
        return;
    }
    job->ari_due = out.ari;
    job->want_run = out.order;
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
        acme_mod_restart_tell(ACME_RESTART_BEGIN, job->told_first, job->d->name);
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
        /* hourly: what interrupted writes and runs that died left behind */
        if (st->sweep) st->sweep(st, ACME_STORE_STALE_AGE, ptemp);
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
        dc->next_request_look = now + (st->flags & ACME_STORE_SHARED ? apr_time_from_sec(30)
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
        if (job->next_check <= now && slot_free(dc)) {
            /* one domain's status at a time: with thousands due at start,
             * the pool's peak would stay in the process */
            schedule(dc, job, now, pj);
            apr_pool_clear(pj);
        }
        /* with every slot taken, a job that ends or waits wakes us instead */
        if (!job->running && job->next_check < next && slot_free(dc)) {
            next = job->next_check;
        }
    }
    if (!dc->told_ready && i == dc->jobs->nelts && dc->jobs->nelts > 0) {
        /* every domain looked at once: what is not said to run does not */
        dc->told_ready = 1;
        acme_mod_restart_tell(ACME_RESTART_READY, 1,
                              APR_ARRAY_IDX(dc->jobs, 0, drive_job_t *)->d->name);
    }
    for (i = 0; i < dc->jobs->nelts; ++i) {
        drive_job_t *job = APR_ARRAY_IDX(dc->jobs, i, drive_job_t *);
        /* Said after the tick's new jobs: a job started again at once is no
         * gap, nor one that looks again at a claim being handed over. One
         * that the schedule no longer wants (its holder did the work) ends. */
        if (job->told && !job->running && !job->memo.handover) {
            acme_mod_restart_tell(ACME_RESTART_END, job->told_first, job->d->name);
            job->told = 0;
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
    apr_atomic_set32(&acme_mod_sched_stop, 1); /* and the scheduler's own reads */
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
        job->spec.on_wait = job_waits;
        job->spec.wait_baton = job;
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
                             "renewal jobs start for %d domain(s), at most %d working at a "
                             "time, %d in flight", dc->jobs->nelts, dc->parallel,
                             acme_sched_flight_cap(dc->parallel));
                {
                    apr_pool_t *pv;
                    apr_pool_create(&pv, dc->pool);
                    sched_view(0, pv);
                    for (i = 0; i < dc->jobs->nelts; ++i) {
                        installed_notice(dc, APR_ARRAY_IDX(dc->jobs, i, drive_job_t *), ptemp);
                        apr_pool_clear(ptemp);
                    }
                    apr_pool_destroy(pv);   /* ends the view */
                }
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
    apr_atomic_set32(&acme_mod_sched_stop, 1); /* the scheduler's reads of etcd */
    if (drive_ctx) {
        apr_atomic_set32(&drive_ctx->stop, 1);
        drive_wake(drive_ctx);
    }
}

static void drive_child_init(apr_pool_t *pchild, server_rec *s)
{
    (void)s;
    if (drive_ctx) {
        /* before pchild's subpools go too (APR destroys them before its
         * cleanups): the jobs may use what lives there */
        apr_pool_pre_cleanup_register(pchild, drive_ctx, drive_child_exit);
    }
}


apr_status_t acme_mod_sched_start(acme_global_t *g, server_rec *s, apr_pool_t *p)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *wd_get;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *wd_register;
    ap_watchdog_t *wd;
    drive_ctx_t *dc;
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
    dc->self_restart = acme_mod_restart_was_self(s);
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
    return APR_SUCCESS;
}

void acme_mod_sched_register_hooks(void)
{
    ap_hook_child_init(drive_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(drive_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
}
