/* acme_proc.c: runs an operator's program without a shell, with its own
 * small environment and a time limit; output goes to a temporary file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_file_io.h>

#include "acme_proc.h"

apr_status_t acme_proc_run(acme_proc_result_t *pres, apr_pool_t *pp, const char *const *argv,
                           const char *const *env, apr_interval_time_t timeout)
{
    apr_procattr_t *attr;
    apr_proc_t proc;
    apr_file_t *out = NULL;
    apr_exit_why_e why = APR_PROC_EXIT;
    apr_status_t rv;
    apr_time_t deadline;
    apr_pool_t *p;
    char *tmpl, buf[ACME_PROC_OUTPUT_MAX + 1];
    apr_size_t n = 0;
    int code = -1;

    memset(pres, 0, sizeof(*pres));
    pres->output = "";
    apr_pool_create(&p, pp);
    tmpl = apr_psprintf(p, "%s/acme-proc.XXXXXX", P_tmpdir);
    rv = apr_file_mktemp(&out, tmpl, APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE
                         | APR_FOPEN_EXCL | APR_FOPEN_DELONCLOSE, p);
    if (rv == APR_SUCCESS) rv = apr_procattr_create(&attr, p);
    if (rv == APR_SUCCESS) rv = apr_procattr_cmdtype_set(attr, APR_PROGRAM);
    if (rv == APR_SUCCESS) rv = apr_procattr_io_set(attr, APR_NO_FILE, APR_NO_PIPE, APR_NO_PIPE);
    if (rv == APR_SUCCESS) rv = apr_procattr_child_out_set(attr, out, NULL);
    if (rv == APR_SUCCESS) rv = apr_procattr_child_err_set(attr, out, NULL);
    if (rv == APR_SUCCESS) {
        rv = apr_proc_create(&proc, argv[0], argv, env, attr, p);
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    deadline = apr_time_now() + timeout;
    for (;;) {
        if (apr_proc_wait(&proc, &code, &why, APR_NOWAIT) == APR_CHILD_DONE) break;
        if (apr_time_now() > deadline) {
            apr_proc_kill(&proc, SIGKILL);
            apr_proc_wait(&proc, &code, &why, APR_WAIT);
            pres->timed_out = 1;
            break;
        }
        apr_sleep(apr_time_from_msec(20));
    }
    {
        apr_off_t off = 0;
        apr_file_seek(out, APR_SET, &off);
        n = ACME_PROC_OUTPUT_MAX;
        if (apr_file_read(out, buf, &n) != APR_SUCCESS) n = 0;
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    }
    pres->exit_code = code;
    pres->signalled = (why != APR_PROC_EXIT) || pres->timed_out;
    pres->output = apr_pstrdup(pp, buf);
leave:
    if (out) apr_file_close(out);
    apr_pool_destroy(p);
    return rv;
}
