/* acme_proc.h: running an operator's program (notifications, DNS hook):
 * no shell, a given environment, a time limit, and its output captured. */
#ifndef ACME_PROC_H
#define ACME_PROC_H

#include <apr_pools.h>
#include <apr_time.h>

#define ACME_PROC_OUTPUT_MAX 2048

typedef struct acme_proc_result_t {
    int exit_code;        /* exit status, or the signal number when signalled */
    int signalled;        /* died of a signal (also when killed at the time limit) */
    int timed_out;        /* killed at the time limit */
    const char *output;   /* first ACME_PROC_OUTPUT_MAX bytes of stdout+stderr, trimmed */
} acme_proc_result_t;

/* Runs argv[0] (a path) with argv and env (NULL-terminated), waits at most
 * timeout. APR_SUCCESS when it ran (look at pres for how it ended). */
apr_status_t acme_proc_run(acme_proc_result_t *pres, apr_pool_t *p, const char *const *argv,
                           const char *const *env, apr_interval_time_t timeout);

#endif /* ACME_PROC_H */
