/* acme_status.h: a managed domain's status, computed in one place from its
 * settings (a job spec), the store and the clock. The scheduler, the
 * server's status pages and metrics, and acmectl only read or render it. */
#ifndef ACME_STATUS_H
#define ACME_STATUS_H

#include "acme_job.h"

/* One state per domain: the first rule in this order that applies
 * (docs/status.md says why this set and this order). */
typedef enum {
    ACME_DS_MISSING_CONFIG, /* the settings keep renewal from running */
    ACME_DS_RENEWING,       /* an order is under way, or a result waits for the restart */
    ACME_DS_EXPIRING,       /* renewal is late: a certificate is near or past its end */
    ACME_DS_ERROR,          /* the last attempt failed; a retry is scheduled */
    ACME_DS_PENDING,        /* a key type has no usable certificate yet */
    ACME_DS_DUE,            /* renewal time reached (or requested); the next check starts it */
    ACME_DS_OK,             /* valid certificates, renewal not due */
    ACME_DS_COUNT
} acme_domain_state_t;

/* "missing-config", "renewing", "expiring", "error", "pending", "due", "ok" */
const char *acme_status_state_name(acme_domain_state_t s);

/* Expiring: the renewal time has passed and less than this part of the
 * lifetime is left. */
#define ACME_EXPIRING_DIVISOR 10

/* One key type's active certificate (domains/<d>/cert.<tag>.pem). */
typedef struct acme_status_cert_t {
    acme_key_type_t type;
    int present;                 /* a certificate could be read */
    int covers;                  /* ... and it covers every name of the domain */
    const char *load_error;      /* the item exists but is no certificate, else NULL */
    const acme_cert_t *leaf;     /* NULL when the facts came from spec->status_cache */
    apr_time_t not_before, not_after;
    apr_time_t renew_at;         /* by the window, or the CA's renewal information */
    const char *issuer, *serial, *fingerprint;
    const char *ari_id;          /* RFC 9773 id, NULL without an AKI */
    apr_array_header_t *sans;    /* const char*, may be NULL */
    struct acme_json_t *ari;     /* job.json's renewal information for this type, or NULL */
} acme_status_cert_t;

typedef struct acme_status_t {
    acme_domain_state_t state;
    const char *reason;          /* why that state, one sentence */
    apr_array_header_t *certs;   /* acme_status_cert_t*, one per key type of the spec */
    const acme_status_cert_t *first; /* the covering certificate that expires first, or NULL */
    int has_cert;                /* every key type has a covering certificate */
    int expiring;                /* some certificate is expiring (also while renewing) */
    apr_array_header_t *due;     /* acme_key_type_t that need a (new) certificate now */
    apr_time_t renew_at;         /* earliest renewal of the active certificates (0: none) */
    apr_time_t not_after;        /* of 'first' (0: none) */
    apr_time_t not_before;
    apr_time_t next_attempt;     /* backoff after errors (0: none) */
    const char *next_kind;       /* "retry", "renew", "due", "activation", "none" */
    apr_time_t next;             /* when that happens (0: not scheduled) */
    int errors;                  /* consecutive failures */
    struct acme_result_t *last_error; /* NULL unless errors > 0 */
    int retry_after_active;      /* the CA's Retry-After of the last error is ahead */
    int staged;                  /* a complete result waits for activation */
    int renew_requested;         /* an operator asked for it (renew.json) */
    int in_flight;               /* orders in flight */
    int run_in_progress;         /* the newest run event is a start */
    int ari_due;                 /* the CA's renewal information should be asked now */
    const char *ca_url;          /* the CA the next attempt uses (failover) */
    const char *cert_ca;         /* the CA that issued the active certificates, or NULL */
    const char *job_state, *job_ca;
    apr_array_header_t *meta_names; /* names in meta.json (active, else staged), or NULL */
    apr_time_t last_success, last_run;
    apr_int64_t renewals_ok, renewals_failed;
    struct acme_json_t *orders;  /* {tag: order URL}, or NULL */
    struct acme_json_t *events;  /* job.json's events, or NULL */
    struct acme_json_t *ari;     /* job.json's "ari", or NULL */
    const char *preflight;       /* the last pre-flight's diagnosis, or NULL (it passed) */
    apr_time_t preflight_time;
    int preflight_holding;       /* the CA is not asked again until it passes */
} acme_status_t;

/* What a process remembers of its certificate files, by their versions
 * (mtimes), so that a status of thousands of domains does not parse
 * thousands of certificates each time (OpenSSL 3 is slow at it). Entries
 * live as long as the pool: one server generation. Thread-safe. Given in
 * spec->status_cache; without one, every status parses. */
typedef struct acme_status_cache_t acme_status_cache_t;
apr_status_t acme_status_cache_create(acme_status_cache_t **pcache, apr_pool_t *p);

/* The status of spec->domain at 'now', from the store alone (no network).
 * config_problem: why the settings keep renewal from running, or NULL.
 * spec->memo, when set, adds the backoff that this process could not save. */
apr_status_t acme_status_get(acme_status_t **pst, struct acme_store_t *store,
                             const acme_job_spec_t *spec, const char *config_problem,
                             apr_time_t now, apr_pool_t *p);

/* Whole days left, rounded down (negative once expired). */
apr_int64_t acme_status_days_left(apr_time_t not_after, apr_time_t now);

/* A readable certificate as JSON: key-type, covers-names, valid-from,
 * valid-until, days-left, issuer, serial, sha256-fingerprint, names. */
struct acme_json_t *acme_status_cert_json(const acme_status_cert_t *c, apr_time_t now,
                                          apr_pool_t *p);

/* An error as JSON: problem, detail, activity, http-status, retry-after,
 * subproblems [{problem, detail, identifier}]. */
struct acme_json_t *acme_status_error_json(const struct acme_result_t *e, apr_pool_t *p);

/* The pre-flight's diagnosis as JSON {diagnosis, time, holding}, or NULL. */
struct acme_json_t *acme_status_preflight_json(const acme_status_t *st, apr_pool_t *p);

#endif /* ACME_STATUS_H */
