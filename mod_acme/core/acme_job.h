/* acme_job.h: one managed domain's work: decide what is due, then get an
 * account, run (or resume) the orders and stage the results in the store.
 * Every step is persisted in jobs/<domain>/job.json, so a restart resumes
 * the order in flight instead of starting a new one. */
#ifndef ACME_JOB_H
#define ACME_JOB_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_atomic.h>

#include "acme_crypto.h"
#include "acme_renew.h"
#include "acme_names.h"
#include "acme_store.h"

struct acme_store_t;
struct acme_result_t;
struct acme_json_t;
struct acme_preflight_conf_t;

/* What the server remembers of a job between runs, in memory. It holds the
 * backoff even when job.json cannot be written (a full or read-only disk):
 * without it every failed save would look like "never tried". */
typedef struct acme_job_memo_t {
    int errors;                  /* consecutive failures seen by this process */
    apr_time_t next_attempt;     /* no run before this (0: none) */
    apr_time_t ari_next;         /* no renewal information asked before this */
    struct acme_store_claim_t *volatile claim; /* held while a run works, for renewal */
    int settings_warned;         /* the settings difference was logged (once per generation) */
    apr_time_t busy_since;       /* the claim was first found held by another (0: not waiting) */
    int busy_looks;              /* claims tried and found held since then */
    int handover;                /* the holder is stopping here: looking again within
                                  * ACME_JOB_HANDOVER_POLL */
    int waits;                   /* runs in a row that ended before the CA was asked */
} acme_job_memo_t;

/* The last line of defence against flooding a CA (acme_rate_guard_t), per
 * CA and per server: it counts the newOrder requests this server sends,
 * nothing else, and keeps them in the store (jobs/_guard/<server>.json), so
 * a restart (a new child) does not reset it. It is a cap only: a record
 * that is missing or damaged counts from zero. Thread-safe. */
typedef struct acme_job_guard_t acme_job_guard_t;
/* server: this server's name in the record; NULL: the host name. The
 * record is read now (and again at every take). */
apr_status_t acme_job_guard_create(acme_job_guard_t **pguard, apr_pool_t *p,
                                   struct acme_store_t *store, const char *server, int limit);
/* When 'count' new orders to ca_url would fit (0: now), counting none. */
apr_time_t acme_job_guard_fits(acme_job_guard_t *guard, const char *ca_url, apr_time_t now,
                               int count);
/* Counts one new order to ca_url at now and persists it; or, with the
 * hour's orders used up, fails with ACME_PROBLEM_SAFETY_STOP, r's
 * retry_after set to when one fits again, and logs ACME0335. */
apr_status_t acme_job_guard_take(acme_job_guard_t *guard, const char *ca_url, apr_time_t now,
                                 apr_pool_t *p, struct acme_result_t *r);
#define ACME_PROBLEM_SAFETY_STOP "acme:safety-stop"


/* The clock and the HTTP client a job uses: tests give their own. */
typedef apr_time_t acme_job_clock_cb(void *baton);
struct acme_http_t;
struct acme_http_config_t;
typedef apr_status_t acme_job_http_cb(struct acme_http_t **phttp, apr_pool_t *p,
                                      const struct acme_http_config_t *conf, void *baton);

typedef struct acme_job_spec_t {
    const char *domain;                     /* store name: the first name */
    const apr_array_header_t *names;        /* const char* */
    const char *ca_url;                     /* the CA when ca_urls is NULL */
    const apr_array_header_t *ca_urls;      /* const char*: CAs in failover order, may be NULL */
    const char *ca_file;                    /* extra trust anchors, may be NULL */
    const char *proxy;                      /* ManagedHttpProxy URL for the CA, may be NULL */
    const char *proxy_ca_file;              /* its trust anchors, may be NULL */
    const char *eab_kid;                    /* External Account Binding, may be NULL */
    const char *eab_hmac;                   /* base64url; secret */
    const char *profile;                    /* ACME profile, may be NULL */
    int profile_mandatory;                  /* refuse to order without the profile */
    int ari;                                /* follow ACME Renewal Information */
    const apr_array_header_t *publishers;   /* acme_publisher_t*, one per challenge type */
    const char *contact;                    /* "mailto:...", may be NULL */
    int agree_tos;
    const apr_array_header_t *challenges;   /* const char*, preference order */
    const apr_array_header_t *key_types;    /* acme_key_type_t */
    acme_renew_window_t window;
    apr_interval_time_t retry_delay;
    volatile apr_uint32_t *stop;            /* non-zero: stop at the next step */
    /* Told when the job begins and ends a wait for the CA between polls
     * (acme_client_set_wait_cb); NULL: nobody is. */
    void (*on_wait)(void *baton, int waiting);
    void *wait_baton;
    acme_job_memo_t *memo;                  /* in-memory backoff, may be NULL */
    acme_job_clock_cb *clock;               /* NULL: apr_time_now */
    void *clock_baton;
    struct acme_ca_shared_t *shared;        /* what jobs share per CA, may be NULL */
    struct acme_status_cache_t *status_cache; /* parsed certificate facts, may be NULL */
    acme_job_http_cb *http;                 /* NULL: libcurl */
    void *http_baton;
    const struct acme_preflight_conf_t *preflight; /* ManagedPreflight; NULL: none */
    acme_job_guard_t *guard;                /* counts new orders; NULL: none */
    /* Re-decide after claiming: the run was decided before the claim, and
     * another server (or process) may have renewed the domain meanwhile. */
    int recheck;
} acme_job_spec_t;

/* Call once per process before jobs run in threads. */
apr_status_t acme_job_init(apr_pool_t *p);

/* Runs the job for the key types in 'types'. On success the result is
 * staged (staging/<domain>/ with meta.json written last). On failure the
 * error count and the next attempt (backoff, Retry-After) are persisted,
 * and kept in spec->memo, and r says what went wrong. When job.json cannot
 * be written the CA is not asked at all: r's problem is
 * ACME_PROBLEM_STORE_UNWRITABLE and the next attempt is retry_delay away. */
apr_status_t acme_job_run(struct acme_store_t *store, const acme_job_spec_t *spec,
                          const apr_array_header_t *types, apr_pool_t *p,
                          struct acme_result_t *r);

/* Asks the CA's renewalInfo (RFC 9773) about the active certificates and
 * persists the answer (window, chosen time, next poll) in job.json. A CA
 * without ARI is remembered for a day. Failures are returned, not counted
 * as renewal errors. While another process holds the domain's claim
 * nothing is asked or written (APR_SUCCESS): it looks again after
 * ACME_JOB_BUSY_WAIT. */
apr_status_t acme_job_ari_refresh(struct acme_store_t *store, const acme_job_spec_t *spec,
                                  apr_pool_t *p, struct acme_result_t *r);

/* The CA the next attempt uses: failover moves through spec->ca_urls
 * (job: job.json or NULL). */
const char *acme_job_current_ca(const acme_job_spec_t *spec, const struct acme_json_t *job);
/* The account directory name for a CA URL: readable and unique. */
const char *acme_job_ca_id(apr_pool_t *p, const char *ca_url);
/* The same, for an account bound to an EAB key id (kid may be NULL). */
const char *acme_job_account_id(apr_pool_t *p, const char *ca_url, const char *eab_kid);
/* A CA's pause after a rate limit (its Retry-After), in the store so that
 * one server's 429 pauses every server of a cluster. set never shortens a
 * pause in force; until returns 0 when none is (or it cannot be read). */
apr_status_t acme_job_ca_pause_set(struct acme_store_t *store, const char *ca_url,
                                   apr_time_t until, const char *detail, apr_pool_t *p);
apr_time_t acme_job_ca_pause_until(struct acme_store_t *store, const char *ca_url,
                                   apr_pool_t *p);
/* How this server's settings for the domain (names, CA, key types) differ
 * from those the certificates in group g (domains or staging) were made
 * with (their meta.json), for a log line; NULL when they do not (or nothing
 * is there). *pstaged: when that set was staged. */
const char *acme_job_settings_diff(struct acme_store_t *store, acme_store_group_t g,
                                   const acme_job_spec_t *spec, apr_time_t *pstaged,
                                   apr_pool_t *p);
/* Logs that difference (ACME0410); the caller says how often. */
void acme_job_settings_warn(const char *domain, const char *diff);
/* In a shared store, another server's certificates younger than this are
 * not replaced because this server's settings differ from theirs: servers
 * that differ for good take turns at most this often, not at every check. */
#define ACME_JOB_SETTINGS_GRACE apr_time_from_sec(86400)
/* After this many consecutive failures with one CA the next one is used. */
#define ACME_JOB_FAILOVER_AFTER 3
#define ACME_PROBLEM_STORE_UNWRITABLE "acme:store-unwritable"
/* Another process holds the domain's claim: not a failure, a wait. */
#define ACME_PROBLEM_BUSY "acme:busy"
/* A run's claim on its domain: renewed by the scheduler while it runs. */
#define ACME_JOB_LEASE apr_time_from_sec(30)   /* renewed every 10 s (TTL/3) */
#define ACME_JOB_BUSY_WAIT apr_time_from_sec(10)
/* A claim held by another process of this host (the old child after a
 * graceful restart, acmectl) is released when that process stops its job:
 * looked at this often, for at most ACME_JOB_HANDOVER_WINDOW, then every
 * ACME_JOB_BUSY_WAIT. */
#define ACME_JOB_HANDOVER_POLL apr_time_from_msec(200)
#define ACME_JOB_HANDOVER_WINDOW apr_time_from_sec(15)
/* A run that ends before the CA was asked (the store or etcd fails, the
 * claim is busy) waits twice as long each time in a row, up to these: no
 * CA error is counted, no order charged, and no tight loop either. A busy
 * claim's bound stays below the lease: a dead holder's domain is taken
 * soon after its lease ends. */
#define ACME_JOB_BUSY_WAIT_MAX apr_time_from_sec(20)
/* The CA's directory cannot be fetched for renewal information: asked
 * again after ManagedRetryDelay, doubling, up to this. */
#define ACME_JOB_ARI_WAIT_MAX apr_time_from_sec(3600)
#define ACME_JOB_STORE_WAIT_MAX apr_time_from_sec(300)
/* A challenge POSTed less than this long ago is not POSTed again (the CA
 * may show it "pending" while it validates); one still pending after it
 * never reached the CA. */
#define ACME_JOB_POSTED_FRESH apr_time_from_sec(600)
/* A kept answer (job.json "kept-answers") is withdrawn after this even if
 * the CA cannot say whether its authorization is over. */
#define ACME_JOB_ANSWER_STALE apr_time_from_sec(86400)

/* File names inside domains/<d>/ and staging/<d>/ */
const char *acme_job_cert_file(apr_pool_t *p, acme_key_type_t t);
const char *acme_job_key_file(apr_pool_t *p, acme_key_type_t t);
#define ACME_JOB_EVENTS_MAX 20

/* Appends {time, type, detail} to the "events" array of a job state,
 * keeping the last ACME_JOB_EVENTS_MAX. */
void acme_job_event(struct acme_json_t *job, apr_pool_t *p, const char *type,
                    const char *detail);

#endif /* ACME_JOB_H */
