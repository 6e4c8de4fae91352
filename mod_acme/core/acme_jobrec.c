/* acme_jobrec.c: job.json's one reader and one read-modify-write. Writes
 * are fenced by the domain's claim: the caller's, or one taken for the
 * write alone, so an unfenced write can never overwrite a fenced one. */
#include <string.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_network_io.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_store.h"
#include "acme_names.h"
#include "acme_job.h"
#include "acme_jobrec.h"

static apr_status_t fail(acme_result_t *r, apr_status_t rv, const char *fmt, const char *a,
                         const char *b)
{
    if (r) acme_result_set(r, rv, "acme:store", fmt, a, b);
    return rv;
}

static int nonneg(long long v, long long max)
{
    return v < 0 ? 0 : (int)(v > max ? max : v);
}

static acme_json_t *part(const acme_json_t *j, apr_pool_t *p, const char *key,
                         acme_json_type_t type)
{
    return acme_json_type(j, key, NULL) == type ? acme_json_getj(j, p, key, NULL) : NULL;
}

/* The typed members, from rec->json. */
static void view_fill(acme_jobrec_t *rec, apr_pool_t *p)
{
    const acme_json_t *j = rec->json;
    long long ok = acme_json_getl(j, ACME_JK_RENEWALS_OK, NULL);
    long long failed = acme_json_getl(j, ACME_JK_RENEWALS_FAILED, NULL);

    rec->state = acme_json_gets(j, ACME_JK_STATE, NULL);
    rec->ca = acme_json_gets(j, ACME_JK_CA, NULL);
    rec->errors = nonneg(acme_json_getl(j, ACME_JK_ERRORS, NULL), 1000000);
    rec->next_attempt = acme_json_gett(j, ACME_JK_NEXT_ATTEMPT, NULL);
    rec->last_run = acme_json_gett(j, ACME_JK_LAST_RUN, NULL);
    rec->last_success = acme_json_gett(j, ACME_JK_LAST_SUCCESS, NULL);
    rec->renewals_ok = ok < 0 ? 0 : ok;
    rec->renewals_failed = failed < 0 ? 0 : failed;
    rec->ca_index = nonneg(acme_json_getl(j, ACME_JK_CA_INDEX, NULL), 1000);
    rec->ca_errors = nonneg(acme_json_getl(j, ACME_JK_CA_ERRORS, NULL), 1000000);
    rec->expiring_notified = acme_json_gett(j, ACME_JK_EXPIRING_NOTIFIED, NULL);
    rec->installed_notified = acme_json_gets(j, ACME_JK_INSTALLED_NOTIFIED, NULL);
    rec->last_error = NULL;
    if (acme_json_type(j, ACME_JK_LAST_ERROR, NULL) == ACME_JSON_OBJECT) {
        rec->last_error = acme_result_make(p);
        acme_result_from_json(rec->last_error, acme_json_getj(j, p, ACME_JK_LAST_ERROR, NULL));
    }
    rec->preflight_diagnosis = acme_json_gets(j, ACME_JK_PREFLIGHT, ACME_JK_PF_DIAGNOSIS, NULL);
    rec->preflight_time = acme_json_gett(j, ACME_JK_PREFLIGHT, ACME_JK_PF_TIME, NULL);
    rec->preflight_holding = acme_json_getb(j, ACME_JK_PREFLIGHT, ACME_JK_PF_HOLDING, NULL);
    rec->orders = part(j, p, ACME_JK_ORDERS, ACME_JSON_OBJECT);
    rec->events = part(j, p, ACME_JK_EVENTS, ACME_JSON_ARRAY);
    rec->ari = part(j, p, ACME_JK_ARI, ACME_JSON_OBJECT);
}

static acme_jobrec_t *rec_empty(apr_pool_t *p)
{
    acme_jobrec_t *rec = apr_pcalloc(p, sizeof(*rec));

    rec->json = acme_json_new_object(p);
    return rec;
}

apr_status_t acme_jobrec_parse(acme_jobrec_t **prec, const char *data, apr_size_t len,
                               apr_pool_t *p, acme_result_t *r)
{
    acme_jobrec_t *rec = rec_empty(p);
    acme_json_t *j = NULL;
    const char *jerr = NULL;
    apr_status_t rv = APR_SUCCESS;

    *prec = rec;
    if (len > ACME_JOBREC_MAX) {
        rv = fail(r, APR_EINVAL, "%s is larger than %s bytes", ACME_JOB_STATE,
                  apr_itoa(p, ACME_JOBREC_MAX));
    }
    else if (acme_json_parse(&j, p, data, len, &jerr) != APR_SUCCESS) {
        rv = fail(r, APR_EINVAL, "%s is not JSON: %s", ACME_JOB_STATE, jerr ? jerr : "?");
    }
    else if (acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        rv = fail(r, APR_EINVAL, "%s is not a JSON object%s", ACME_JOB_STATE, "");
    }
    else {
        rec->json = j;
        view_fill(rec, p);
    }
    return rv;
}

apr_status_t acme_jobrec_read(acme_jobrec_t **prec, acme_store_t *store, const char *domain,
                              apr_pool_t *p, acme_result_t *r)
{
    const char *data;
    apr_size_t len;
    apr_status_t rv;

    *prec = NULL;
    rv = store->load(store, ACME_SG_JOBS, domain, ACME_JOB_STATE, &data, &len, p);
    if (rv == APR_SUCCESS) {
        rv = acme_jobrec_parse(prec, data, len, p, r);
        if (rv != APR_SUCCESS && r) {
            r->detail = apr_psprintf(p, "jobs/%s/%s", domain, r->detail);
        }
    }
    else if (APR_STATUS_IS_ENOENT(rv)) {
        *prec = rec_empty(p);
    }
    else if (rv == APR_EINVAL || rv == APR_ENOSPC) {
        /* not a regular file, or larger than the store reads */
        *prec = rec_empty(p);
        rv = fail(r, APR_EINVAL, "jobs/%s/%s is damaged: not a file or value the store can "
                  "read", domain, ACME_JOB_STATE);
    }
    else {
        fail(r, rv, "cannot read jobs/%s/%s", domain, ACME_JOB_STATE);
    }
    return rv;
}

static void store_s(acme_json_t *j, const char *v, const char *was, const char *key)
{
    if (v == was || (v && was && !strcmp(v, was))) {
        return;
    }
    if (v) acme_json_sets(j, v, key, NULL);
    else acme_json_del(j, key, NULL);
}

/* The typed members fn changed, into rec->json. */
static void view_store(acme_jobrec_t *rec, const acme_jobrec_t *was)
{
    acme_json_t *j = rec->json;

    store_s(j, rec->state, was->state, ACME_JK_STATE);
    store_s(j, rec->ca, was->ca, ACME_JK_CA);
    store_s(j, rec->installed_notified, was->installed_notified, ACME_JK_INSTALLED_NOTIFIED);
#define STORE_L(m, key) if (rec->m != was->m) acme_json_setl(j, rec->m, key, NULL)
#define STORE_T(m, key) if (rec->m != was->m) acme_json_setl(j, apr_time_sec(rec->m), key, NULL)
    STORE_L(errors, ACME_JK_ERRORS);
    STORE_L(renewals_ok, ACME_JK_RENEWALS_OK);
    STORE_L(renewals_failed, ACME_JK_RENEWALS_FAILED);
    STORE_L(ca_index, ACME_JK_CA_INDEX);
    STORE_L(ca_errors, ACME_JK_CA_ERRORS);
    STORE_T(next_attempt, ACME_JK_NEXT_ATTEMPT);
    STORE_T(last_run, ACME_JK_LAST_RUN);
    STORE_T(last_success, ACME_JK_LAST_SUCCESS);
    STORE_T(expiring_notified, ACME_JK_EXPIRING_NOTIFIED);
#undef STORE_L
#undef STORE_T
}

/* Reads the record for a write: a missing or damaged one is replaced
 * (a damaged record would otherwise stop the domain for good); warn: say
 * so (the write, not the look before it). */
static apr_status_t load_for_write(acme_jobrec_t **prec, acme_store_t *store,
                                   const char *domain, int warn, apr_pool_t *p,
                                   acme_result_t *r)
{
    acme_result_t *why = acme_result_make(p);
    apr_status_t rv = acme_jobrec_read(prec, store, domain, p, why);

    if (rv == APR_EINVAL && *prec) {
        if (!warn) return APR_SUCCESS;
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, rv, ACMELOG(2350) "%s: %s; it is written "
                 "again from scratch", domain, why->detail);
    }
    else if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)) {
        if (r) acme_result_set(r, rv, why->problem, "%s", why->detail);
        return rv;
    }
    return APR_SUCCESS;
}

/* One read, fn, write through store (fenced). */
static apr_status_t rmw(acme_store_t *store, const char *domain, acme_jobrec_fn *fn,
                        void *baton, apr_pool_t *p, acme_result_t *r)
{
    acme_jobrec_t *rec, was;
    apr_status_t rv;

    if ((rv = load_for_write(&rec, store, domain, 1, p, r)) != APR_SUCCESS) {
        return rv;
    }
    was = *rec;
    rv = fn(rec, baton, p);
    if (rv == ACME_JOBREC_KEEP) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    view_store(rec, &was);
    rv = acme_store_save_json_as(store, ACME_SG_JOBS, domain, ACME_JOB_STATE, rec->json,
                                 rec->save_flags, p);
    if (rv != APR_SUCCESS) {
        fail(r, rv, rv == ACME_STORE_EFENCED ? "jobs/%s/%s not written: the claim on the "
             "domain was lost to another process" : "cannot write jobs/%s/%s", domain,
             ACME_JOB_STATE);
    }
    return rv;
}

/* Who writes without holding a claim: this process, told apart from its
 * own renewal job (whose claim must stay its own). */
static const char *rec_owner(apr_pool_t *p)
{
    char host[APRMAXHOSTLEN + 1];

    if (apr_gethostname(host, sizeof(host), p) != APR_SUCCESS) {
        apr_cpystrn(host, "-", sizeof(host));
    }
    return apr_psprintf(p, "mod_acme-pid-%d-rec@%s", (int)getpid(), host);
}

apr_status_t acme_jobrec_update(acme_store_t *store, const acme_store_claim_t *claim,
                                const char *domain, acme_jobrec_fn *fn, void *baton,
                                apr_pool_t *p, acme_result_t *r)
{
    acme_store_claim_t *brief = NULL;
    acme_jobrec_t *rec;
    apr_status_t rv;

    if (claim) {
        return rmw(acme_store_fenced(p, store, claim), domain, fn, baton, p, r);
    }
    /* A look without the claim first: most calls change nothing. */
    if ((rv = load_for_write(&rec, store, domain, 0, p, r)) != APR_SUCCESS) {
        return rv;
    }
    rv = fn(rec, baton, p);
    if (rv != APR_SUCCESS) {
        return rv == ACME_JOBREC_KEEP ? APR_SUCCESS : rv;
    }
    rv = store->claim(store, &brief, domain, rec_owner(p), ACME_JOBREC_LEASE, p);
    if (rv == APR_EBUSY) {
        if (r) acme_result_set(r, rv, "acme:busy", "jobs/%s/%s not written now: %s holds the "
                               "domain", domain, ACME_JOB_STATE,
                               brief && brief->owner ? brief->owner : "another process");
        return rv;
    }
    if (rv != APR_SUCCESS) {
        return fail(r, rv, "cannot claim %s to write its %s", domain, ACME_JOB_STATE);
    }
    rv = rmw(acme_store_fenced(p, store, brief), domain, fn, baton, p, r);
    store->release(store, brief, p);
    return rv;
}

apr_status_t acme_jobrec_put(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    (void)p;
    rec->json = baton;
    return APR_SUCCESS;
}

typedef struct {
    int due;
    apr_time_t not_after;
    const char *staged;
} mark_t;

static apr_status_t expiring_fn(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    mark_t *m = baton;

    (void)p;
    m->due = apr_time_sec(rec->expiring_notified) != apr_time_sec(m->not_after);
    if (!m->due) {
        return ACME_JOBREC_KEEP;
    }
    rec->expiring_notified = m->not_after;
    return APR_SUCCESS;
}

apr_status_t acme_jobrec_expiring_mark(int *pdue, acme_store_t *store, const char *domain,
                                       apr_time_t not_after, apr_pool_t *p, acme_result_t *r)
{
    mark_t m = {0, not_after, NULL};
    apr_status_t rv = acme_jobrec_update(store, NULL, domain, expiring_fn, &m, p, r);

    *pdue = rv == APR_SUCCESS && m.due;
    return rv;
}

static apr_status_t installed_fn(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    mark_t *m = baton;

    m->due = !rec->installed_notified || strcmp(rec->installed_notified, m->staged);
    if (!m->due) {
        return ACME_JOBREC_KEEP;
    }
    rec->installed_notified = m->staged;
    acme_job_event(rec->json, p, "installed", NULL);
    return APR_SUCCESS;
}

apr_status_t acme_jobrec_installed_mark(int *pdue, acme_store_t *store, const char *domain,
                                        const char *staged, apr_pool_t *p, acme_result_t *r)
{
    mark_t m = {0, 0, staged};
    apr_status_t rv = acme_jobrec_update(store, NULL, domain, installed_fn, &m, p, r);

    *pdue = rv == APR_SUCCESS && m.due;
    return rv;
}
