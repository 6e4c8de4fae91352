/* acme_jobrec.h: the one owner of jobs/<domain>/job.json: a typed view of
 * it, its one reader and its one read-modify-write, fenced by the domain's
 * claim, so no writer (the renewal job, the scheduler's notices, the ARI
 * refresh) can overwrite another's record. */
#ifndef ACME_JOBREC_H
#define ACME_JOBREC_H

#include <apr_pools.h>
#include <apr_time.h>

struct acme_store_t;
struct acme_store_claim_t;
struct acme_json_t;
struct acme_result_t;

/* The members of job.json (acme_names.h) that are read, typed. A member
 * of the wrong type reads as absent (0, NULL). The structured ones are
 * parts of json (NULL when absent or of the wrong type). */
typedef struct acme_jobrec_t {
    const char *state;             /* "staged" | "error" | "config-error" */
    const char *ca;                /* the CA of the last run */
    int errors;                    /* consecutive failures, >= 0 */
    apr_time_t next_attempt;       /* no attempt before (0: none) */
    apr_time_t last_run;
    apr_time_t last_success;
    long long renewals_ok;         /* >= 0 */
    long long renewals_failed;     /* >= 0 */
    int ca_index;                  /* the configured CA in use, >= 0 */
    int ca_errors;                 /* consecutive failures with it, >= 0 */
    apr_time_t expiring_notified;  /* the not-after the "expiring" notice was sent for */
    const char *installed_notified; /* the "staged" time the "installed" notice was sent for */
    struct acme_result_t *last_error; /* the last failure, or NULL */
    const char *preflight_diagnosis; /* the last pre-flight's, or NULL */
    apr_time_t preflight_time;
    int preflight_holding;
    struct acme_json_t *orders;    /* {key-type tag: order URL} */
    struct acme_json_t *events;    /* [{time, type, detail}] */
    struct acme_json_t *ari;       /* {key-type tag: {...}, unsupported-until} */
    /* The whole record: every member, also those this view does not know. */
    struct acme_json_t *json;
    /* How an update writes it (acme_store.h's save flags, 0: durable): fn
     * may make it ACME_STORE_VOLATILE when a later write repeats what it
     * says, so that losing it in a crash loses nothing. */
    int save_flags;
} acme_jobrec_t;

/* Up to this many bytes are read; a larger job.json is damaged. */
#define ACME_JOBREC_MAX (256 * 1024)

/* Parses a record. APR_EINVAL, with r saying why (when r is not NULL),
 * when it is too large, not JSON or not an object; *prec is then an empty
 * record, never NULL. */
apr_status_t acme_jobrec_parse(acme_jobrec_t **prec, const char *data, apr_size_t len,
                               apr_pool_t *p, struct acme_result_t *r);

/* Reads a domain's record: APR_ENOENT when there is none, APR_EINVAL when
 * it is damaged (*prec is then an empty record), else the store's failure
 * (*prec NULL). */
apr_status_t acme_jobrec_read(acme_jobrec_t **prec, struct acme_store_t *store,
                              const char *domain, apr_pool_t *p, struct acme_result_t *r);

/* What an update does to a record: changes rec (its typed members, or
 * rec->json for the rest) and returns APR_SUCCESS to write it,
 * ACME_JOBREC_KEEP to write nothing, or a failure that ends the update.
 * Without a claim it is called twice (see acme_jobrec_update): it must
 * decide from rec alone. */
typedef apr_status_t acme_jobrec_fn(acme_jobrec_t *rec, void *baton, apr_pool_t *p);
#define ACME_JOBREC_KEEP (APR_OS_START_USERERR + 72)

/* The one way to write job.json: reads the record (missing or damaged:
 * an empty one), calls fn, writes what changed (typed members that differ
 * from what was read, and rec->json), keeping members it does not know.
 *  - claim given: its holder's write, fenced by it (ACME_STORE_EFENCED
 *    when the claim was lost). While a claim is held nobody else writes.
 *  - claim NULL: fn first sees the record as read; when it changes
 *    something, the domain's claim is taken for the write only (owner
 *    "<process>-rec@<host>", lease ACME_JOBREC_LEASE), the record read
 *    again under it, fn called again, written fenced, and the claim
 *    released. APR_EBUSY (nothing written) while another holds it.
 * r (may be NULL) says what failed. */
apr_status_t acme_jobrec_update(struct acme_store_t *store,
                                const struct acme_store_claim_t *claim, const char *domain,
                                acme_jobrec_fn *fn, void *baton, apr_pool_t *p,
                                struct acme_result_t *r);
#define ACME_JOBREC_LEASE apr_time_from_sec(10)

/* An update's fn that writes baton (an acme_json_t*, the claim holder's
 * copy of the whole record) as the record. */
apr_status_t acme_jobrec_put(acme_jobrec_t *rec, void *baton, apr_pool_t *p);

/* The scheduler's notices, once each per certificate: marks in the record
 * that "expiring" (of the certificate that ends at not_after) or
 * "installed" (of the result staged at 'staged', with an event) is
 * announced. *pdue is 1 when this call marked it: the caller announces it
 * now, and only then. APR_EBUSY while a run holds the domain (nothing
 * marked: the next look tries again). */
apr_status_t acme_jobrec_expiring_mark(int *pdue, struct acme_store_t *store, const char *domain,
                                       apr_time_t not_after, apr_pool_t *p,
                                       struct acme_result_t *r);
apr_status_t acme_jobrec_installed_mark(int *pdue, struct acme_store_t *store,
                                        const char *domain, const char *staged, apr_pool_t *p,
                                        struct acme_result_t *r);

#endif /* ACME_JOBREC_H */
