/* acme_preflight.h: the job's own look at a challenge before the CA is asked:
 * it publishes a throw-away answer, fetches it the way the CA would, and says in words why not. */
#ifndef ACME_PREFLIGHT_H
#define ACME_PREFLIGHT_H

#include <apr_pools.h>
#include <apr_network_io.h>
#include <apr_atomic.h>

struct acme_store_t;
struct acme_http_t;
struct acme_publisher_t;

/* ManagedPreflight on|off|ADDRESS [80:PORT] [443:PORT] */
typedef struct acme_preflight_conf_t {
    int enabled;
    const char *address;     /* connect here instead of resolving the name, or NULL */
    apr_port_t http_port;    /* where the CA's port 80 is (default 80) */
    apr_port_t tls_port;     /* where the CA's port 443 is (default 443) */
} acme_preflight_conf_t;

void acme_preflight_conf_init(acme_preflight_conf_t *conf);
/* Parses the directive's words; *perr says what is wrong. */
apr_status_t acme_preflight_conf_parse(acme_preflight_conf_t *conf, apr_pool_t *p, int argc,
                                       const char *const *argv, const char **perr);

typedef enum {
    ACME_PF_PASSED = 0,
    ACME_PF_UNREACHABLE,     /* no answer at all: resolving, connecting, a timeout */
    ACME_PF_HTTP_STATUS,     /* http-01: an answer that is not 200 */
    ACME_PF_WRONG_ANSWER,    /* http-01: 200, but not our key authorization */
    ACME_PF_TLS_FAILED,      /* tls-alpn-01: the handshake failed */
    ACME_PF_NO_ACME_TLS,     /* tls-alpn-01: the server did not choose acme-tls/1 */
    ACME_PF_WRONG_CERT,      /* tls-alpn-01: acme-tls/1, but not our certificate */
    ACME_PF_NOT_PUBLISHED    /* our own answer could not be published */
} acme_pf_kind_t;

typedef struct acme_preflight_result_t {
    const char *type;        /* "http-01", "tls-alpn-01" */
    const char *name;
    acme_pf_kind_t kind;
    int http_status;         /* ACME_PF_HTTP_STATUS */
    const char *remote;      /* the address that answered, or NULL */
    const char *detail;      /* what the transport said, or NULL */
    apr_port_t ca_port;      /* 80 or 443: the port the CA will use */
    const char *via;         /* ManagedPreflight's address, or NULL (the name was resolved) */
} acme_preflight_result_t;

/* The diagnosis for a user, one sentence with what to check (NULL when passed). */
const char *acme_preflight_message(apr_pool_t *p, const acme_preflight_result_t *res);

/* Types this unit can check (http-01, tls-alpn-01; dns-01's publisher checks itself). */
int acme_preflight_checks(const char *type);

/* curl's CURLOPT_CONNECT_TO entry for the http-01 fetch, or NULL. */
const char *acme_preflight_connect_to(apr_pool_t *p, const acme_preflight_conf_t *conf);

/* One name, one type: publishes a random token and key authorization through pub,
 * fetches it (http-01 through http, which must use acme_preflight_connect_to), withdraws it.
 * APR_SUCCESS when it passed; otherwise *pres says what was seen. */
apr_status_t acme_preflight_check(acme_preflight_result_t **pres,
                                  const acme_preflight_conf_t *conf,
                                  const struct acme_publisher_t *pub,
                                  struct acme_store_t *store, struct acme_http_t *http,
                                  const char *domain, const char *name,
                                  volatile apr_uint32_t *stop, apr_pool_t *p);

/* A short retry while the pre-flight keeps failing: retry_delay doubling per
 * block (blocks >= 1), at most ACME_PREFLIGHT_RETRY_MAX. */
#define ACME_PREFLIGHT_RETRY_MAX apr_time_from_sec(600)
apr_interval_time_t acme_preflight_retry(apr_interval_time_t retry_delay, int blocks);

#define ACME_PROBLEM_PREFLIGHT "acme:preflight"

/* The job's policy, between loading job.json and the first request to the CA.
 * It looks only where it decides something: after the CA refused a validation
 * (failed-challenges, or a last error of class VALIDATION). A first attempt or
 * a renewal goes straight to the CA, and a diagnosis from before stays in
 * job[ACME_JK_PREFLIGHT] (no longer holding) until a pre-flight passes or an
 * order succeeds. After a refusal, the types that fail here are steered
 * around (failed-challenges) while another passes; when none passes, the
 * attempt ends here (APR_EAGAIN, r says why, next-attempt is a short retry). */
struct acme_json_t;
struct acme_job_spec_t;
struct acme_result_t;
apr_status_t acme_preflight_run(struct acme_json_t *job, struct acme_store_t *store,
                                const struct acme_job_spec_t *spec, apr_time_t now,
                                apr_pool_t *p, struct acme_result_t *r);

#endif /* ACME_PREFLIGHT_H */
