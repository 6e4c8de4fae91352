/* acme_result.h: the record every failure fills, from the CA's problem
 * document to the error log, status JSON and metrics, unchanged. */
#ifndef ACME_RESULT_H
#define ACME_RESULT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

struct acme_json_t;

#define ACME_PROBLEM_NS "urn:ietf:params:acme:error:"

typedef struct acme_subproblem_t {
    const char *type;
    const char *detail;
    const char *id_type;  /* "dns" / "ip" or NULL */
    const char *id_value;
} acme_subproblem_t;

typedef struct acme_result_t {
    apr_pool_t *pool;
    apr_status_t status;     /* APR_SUCCESS or the failure */
    int http_status;         /* 0 when no HTTP exchange */
    const char *problem;     /* full problem type URN, or a local "acme:..." id */
    const char *detail;      /* human text */
    const char *activity;    /* what we were doing, e.g. "creating order for x" */
    apr_time_t retry_after;  /* absolute time, 0 if the server sent none */
    apr_array_header_t *subproblems; /* acme_subproblem_t* */
} acme_result_t;

/* How a caller should react to a failure. */
typedef enum {
    ACME_ERRCLASS_NONE = 0,   /* success */
    ACME_ERRCLASS_TRANSIENT,  /* retry with backoff: network, serverInternal, badNonce... */
    ACME_ERRCLASS_RATELIMIT,  /* retry after retry_after: rateLimited, 503 */
    ACME_ERRCLASS_CONFIG,     /* retrying cannot fix it: ToS, EAB, unknown profile, rejectedIdentifier */
    ACME_ERRCLASS_VALIDATION  /* a challenge failed: try another type */
} acme_errclass_t;

acme_result_t *acme_result_make(apr_pool_t *p);
void acme_result_reset(acme_result_t *r);
/* Sets status, problem (may be NULL) and a formatted detail. Returns rv. */
apr_status_t acme_result_set(acme_result_t *r, apr_status_t rv, const char *problem,
                             const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void acme_result_activity(acme_result_t *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Fills problem/detail/subproblems from an RFC 7807 problem document.
 * Returns APR_SUCCESS when j looked like a problem document. */
apr_status_t acme_result_from_problem(acme_result_t *r, const struct acme_json_t *j,
                                      int http_status);
acme_errclass_t acme_result_classify(const acme_result_t *r);
/* One line for the log: "activity: detail (problem type, HTTP n)". */
const char *acme_result_describe(const acme_result_t *r, apr_pool_t *p);
/* "urn:ietf:params:acme:error:rateLimited" -> "rateLimited" */
const char *acme_problem_short(const char *type);
/* The result as JSON (for job state and status). */
struct acme_json_t *acme_result_to_json(const acme_result_t *r, apr_pool_t *p);
void acme_result_from_json(acme_result_t *r, const struct acme_json_t *j);

#endif /* ACME_RESULT_H */
