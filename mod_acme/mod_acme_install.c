/* mod_acme_install.c: ManagedInstallCmd. The root parent runs it, without a
 * shell, once per activated certificate, from a detached process: a slow or
 * hanging program never holds up the restart, and httpd goes on serving. */
#include <errno.h>
#include <unistd.h>
#include <sys/wait.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>
#include <ap_listen.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_names.h"
#include "acme_job.h"
#include "acme_proc.h"
#include "acme_store.h"
#include "mod_acme.h"
#include "mod_acme_store.h"
#include "mod_acme_install.h"

APLOG_USE_MODULE(acme);

/* What the program is run for: the active certificate's "staged" mark,
 * when the program has not yet been run for it, else NULL. The record is
 * in the domain's directory, which the next activation replaces. */
static const char *install_due(acme_store_t *st, const acme_domain_t *d, apr_pool_t *p)
{
    acme_json_t *meta, *done;
    const char *staged, *ran;

    if (!d->settings->install_cmd
        || acme_store_load_json(st, ACME_SG_DOMAINS, d->name, ACME_JOB_META, &meta, p)
               != APR_SUCCESS
        || !(staged = acme_json_gets(meta, ACME_MK_STAGED, NULL))) {
        return NULL;
    }
    if (acme_store_load_json(st, ACME_SG_DOMAINS, d->name, ACME_INSTALL_JSON, &done, p)
            == APR_SUCCESS
        && (ran = acme_json_gets(done, ACME_IK_STAGED, NULL)) && !strcmp(ran, staged)) {
        /* A run still going (a restart while it runs) is not started
         * again; one whose helper died (it would have ended it at the
         * time limit) is. */
        const char *at = acme_json_gets(done, ACME_IK_TIME, NULL);
        apr_time_t t;
        if (!acme_json_getb(done, ACME_IK_RUNNING, NULL) || !at
            || acme_time_parse_rfc3339(&t, at) != APR_SUCCESS
            || apr_time_now() - t < 2 * ACME_INSTALL_TIMEOUT) {
            return NULL;
        }
    }
    return staged;
}

static void install_record(acme_store_t *st, const acme_domain_t *d, const char *staged,
                           int running, int ok, const char *detail, server_rec *s, apr_pool_t *p)
{
    acme_json_t *rec = acme_json_new_object(p);
    apr_status_t rv;

    acme_json_sets(rec, staged, ACME_IK_STAGED, NULL);
    acme_json_sets(rec, acme_time_rfc3339(p, apr_time_now()), ACME_IK_TIME, NULL);
    if (running) {
        acme_json_setb(rec, 1, ACME_IK_RUNNING, NULL);
    }
    else {
        acme_json_setb(rec, ok, ACME_IK_OK, NULL);
        acme_json_sets(rec, detail, ACME_IK_DETAIL, NULL);
    }
    rv = acme_store_save_json(st, ACME_SG_DOMAINS, d->name, ACME_INSTALL_JSON, rec, p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ACMELOG(2004)
                     "%s: cannot record ManagedInstallCmd's run (%s in %s): it may run again "
                     "at the next restart", d->name, ACME_INSTALL_JSON, st->where);
    }
}

/* The program's environment: nothing of the server's, the domain, its
 * names, its key types, and the files of each (the certificate file holds
 * the certificate followed by its chain). */
static const char *const *install_env(acme_global_t *g, const acme_domain_t *d,
                                      acme_store_t *st, apr_pool_t *p)
{
    apr_array_header_t *env = apr_array_make(p, 12, sizeof(const char *));
    apr_array_header_t *tags = apr_array_make(p, 2, sizeof(const char *));
    const char *dir = apr_pstrcat(p, g->store_dir, "/", acme_store_group_name(ACME_SG_DOMAINS),
                                  "/", d->name, "/", NULL);
    apr_time_t mt;
    int i;

    APR_ARRAY_PUSH(env, const char *) = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                        "/usr/bin:/sbin:/bin";
    APR_ARRAY_PUSH(env, const char *) = "MOD_ACME_EVENT=installed";
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "MOD_ACME_DOMAIN=", d->name, NULL);
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "MOD_ACME_NAMES=",
                                                    apr_array_pstrcat(p, d->names, ' '), NULL);
    for (i = 0; i < d->settings->key_types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(d->settings->key_types, i, acme_key_type_t);
        const char *cf = acme_job_cert_file(p, t), *kf = acme_job_key_file(p, t);
        char *tag = apr_pstrdup(p, acme_key_type_file_tag(t));

        if (st->mtime(st, ACME_SG_DOMAINS, d->name, cf, &mt, p) != APR_SUCCESS) {
            continue; /* no certificate of this type (yet) */
        }
        APR_ARRAY_PUSH(tags, const char *) = apr_pstrdup(p, tag);
        if (tags->nelts == 1) {
            APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "MOD_ACME_CERT_FILE=", dir, cf, NULL);
            APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "MOD_ACME_KEY_FILE=", dir, kf, NULL);
        }
        ap_str_toupper(tag);
        APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "MOD_ACME_CERT_FILE_", tag, "=", dir,
                                                        cf, NULL);
        APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "MOD_ACME_KEY_FILE_", tag, "=", dir,
                                                        kf, NULL);
    }
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, "MOD_ACME_KEY_TYPES=",
                                                    apr_array_pstrcat(p, tags, ' '), NULL);
    APR_ARRAY_PUSH(env, const char *) = NULL;
    return (const char *const *)env->elts;
}

/* Runs d's program and records how it ended: the log and the status say
 * it, and it is not run again for this certificate. */
static void install_run(acme_global_t *g, const acme_domain_t *d, const char *staged,
                        acme_store_t *st, server_rec *s, apr_pool_t *p)
{
    apr_array_header_t *cmd = d->settings->install_cmd;
    const char **argv = apr_pcalloc(p, sizeof(const char *) * (apr_size_t)(cmd->nelts + 1));
    const char *detail = NULL;
    acme_proc_result_t res;
    apr_status_t rv;
    int i, ok = 0;

    for (i = 0; i < cmd->nelts; ++i) {
        argv[i] = APR_ARRAY_IDX(cmd, i, const char *);
    }
    rv = acme_proc_run(&res, p, argv, install_env(g, d, st, p), ACME_INSTALL_TIMEOUT);
    if (rv != APR_SUCCESS) {
        detail = apr_psprintf(p, "cannot run %s: %pm", argv[0], &rv);
    }
    else if (res.timed_out) {
        detail = apr_psprintf(p, "%s ran longer than %ds and was killed", argv[0],
                              (int)apr_time_sec(ACME_INSTALL_TIMEOUT));
    }
    else if (res.signalled || res.exit_code != 0) {
        detail = apr_psprintf(p, "%s %s %d%s%s", argv[0],
                              res.signalled ? "died of signal" : "exited with", res.exit_code,
                              *res.output ? ", output: " : "", res.output);
    }
    else {
        ok = 1;
        detail = apr_psprintf(p, "%s exited 0%s%s", argv[0], *res.output ? ", output: " : "",
                              res.output);
    }
    if (ok) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, ACMELOG(2002)
                     "%s: ManagedInstallCmd done: %s", d->name, detail);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ACMELOG(2003)
                     "%s: ManagedInstallCmd failed: %s. The new certificate is active and "
                     "served by httpd; the program runs again after the next renewal, or "
                     "fix it and remove %s from the domain's directory to run it at the "
                     "next restart", d->name, detail, ACME_INSTALL_JSON);
    }
    install_record(st, d, staged, 0, ok, detail, s, p);
}

void acme_install_start(acme_global_t *g, server_rec *s, apr_pool_t *ptemp)
{
    /* the local cache: the files this server's daemons read, root's */
    acme_store_t *st = acme_mod_cache;
    apr_array_header_t *due = apr_array_make(ptemp, 4, sizeof(acme_domain_t *));
    apr_array_header_t *marks = apr_array_make(ptemp, 4, sizeof(const char *));
    apr_pool_t *p;
    pid_t pid;
    int i;

    if (!st) {
        return;
    }
    for (i = 0; i < g->domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);
        const char *staged = install_due(st, d, ptemp);
        if (staged) {
            APR_ARRAY_PUSH(due, acme_domain_t *) = d;
            APR_ARRAY_PUSH(marks, const char *) = staged;
        }
    }
    if (due->nelts == 0) {
        return;
    }
    if (geteuid() != 0) {
        /* the program is documented to run as root: not as something else */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ACMELOG(2006)
                     "ManagedInstallCmd is not run: httpd was not started as root");
        return;
    }
    for (i = 0; i < due->nelts; ++i) {
        /* before the fork: a restart from now on sees it running */
        install_record(st, APR_ARRAY_IDX(due, i, acme_domain_t *),
                       APR_ARRAY_IDX(marks, i, const char *), 1, 0, NULL, s, ptemp);
    }
    /* Twice forked: the helper belongs to init, so httpd never reaps it
     * and its restarts never wait for it. */
    pid = fork();
    if (pid < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, ACMELOG(2005)
                     "cannot start a process for ManagedInstallCmd; it runs at the next "
                     "restart");
        for (i = 0; i < due->nelts; ++i) {
            st->remove(st, ACME_SG_DOMAINS, APR_ARRAY_IDX(due, i, acme_domain_t *)->name,
                       ACME_INSTALL_JSON, ptemp);
        }
        return;
    }
    if (pid > 0) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        return;
    }
    if (fork() != 0) {
        _exit(0);
    }
    /* the helper: it serves nothing, and must not keep httpd's ports bound */
    ap_close_listeners();
    setsid();
    if (apr_pool_create_unmanaged_ex(&p, NULL, NULL) == APR_SUCCESS) {
        for (i = 0; i < due->nelts; ++i) {
            install_run(g, APR_ARRAY_IDX(due, i, acme_domain_t *),
                        APR_ARRAY_IDX(marks, i, const char *), st, s, p);
        }
    }
    _exit(0);
}
