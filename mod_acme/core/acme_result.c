/* acme_result.c: the failure record. A CA's problem document, a network
 * error or a local check all end here, classified for the retry logic. */
#include <stdarg.h>
#include <string.h>
#include <apr_strings.h>

#include "acme_json.h"
#include "acme_result.h"

acme_result_t *acme_result_make(apr_pool_t *p)
{
    acme_result_t *r = apr_pcalloc(p, sizeof(*r));

    r->pool = p;
    return r;
}

void acme_result_reset(acme_result_t *r)
{
    apr_pool_t *p = r->pool;

    memset(r, 0, sizeof(*r));
    r->pool = p;
}

apr_status_t acme_result_set(acme_result_t *r, apr_status_t rv, const char *problem,
                             const char *fmt, ...)
{
    va_list ap;

    r->status = rv;
    r->problem = problem ? apr_pstrdup(r->pool, problem) : NULL;
    if (fmt) {
        va_start(ap, fmt);
        r->detail = apr_pvsprintf(r->pool, fmt, ap);
        va_end(ap);
    }
    else {
        r->detail = NULL;
    }
    r->subproblems = NULL;
    return rv;
}

void acme_result_activity(acme_result_t *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    r->activity = apr_pvsprintf(r->pool, fmt, ap);
    va_end(ap);
}

apr_status_t acme_result_from_problem(acme_result_t *r, const acme_json_t *j, int http_status)
{
    const char *type, *detail;
    acme_json_t *subs, *sub;
    apr_size_t i, n;

    r->http_status = http_status;
    if (!j || acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        return APR_EINVAL;
    }
    type = acme_json_gets(j, "type", NULL);
    detail = acme_json_gets(j, "detail", NULL);
    if (!type && !detail) {
        return APR_EINVAL;
    }
    /* RFC 7807: a missing type means "about:blank". */
    r->problem = apr_pstrdup(r->pool, type ? type : "about:blank");
    r->detail = detail ? apr_pstrdup(r->pool, detail) : NULL;
    if (r->status == APR_SUCCESS) {
        r->status = APR_EGENERAL;
    }
    r->subproblems = apr_array_make(r->pool, 2, sizeof(acme_subproblem_t *));
    subs = acme_json_getj(j, r->pool, "subproblems", NULL);
    n = acme_json_array_len(subs);
    for (i = 0; i < n; ++i) {
        acme_subproblem_t *sp;

        sub = acme_json_array_at(subs, r->pool, i);
        if (acme_json_type(sub, NULL) != ACME_JSON_OBJECT) {
            continue; /* ignore junk entries rather than lose the main problem */
        }
        sp = apr_pcalloc(r->pool, sizeof(*sp));
        sp->type = acme_json_gets(sub, "type", NULL);
        sp->detail = acme_json_gets(sub, "detail", NULL);
        sp->id_type = acme_json_gets(sub, "identifier", "type", NULL);
        sp->id_value = acme_json_gets(sub, "identifier", "value", NULL);
        APR_ARRAY_PUSH(r->subproblems, acme_subproblem_t *) = sp;
    }
    return APR_SUCCESS;
}


const char *acme_problem_short(const char *type)
{
    if (!type) {
        return NULL;
    }
    if (!strncmp(type, ACME_PROBLEM_NS, sizeof(ACME_PROBLEM_NS) - 1)) {
        return type + sizeof(ACME_PROBLEM_NS) - 1;
    }
    return type;
}

acme_errclass_t acme_result_classify(const acme_result_t *r)
{
    const char *t;

    if (!r || r->status == APR_SUCCESS) {
        return ACME_ERRCLASS_NONE;
    }
    t = acme_problem_short(r->problem);
    if (t) {
        if (!strcmp(t, "rateLimited")) return ACME_ERRCLASS_RATELIMIT;
        if (!strcmp(t, "userActionRequired") || !strcmp(t, "externalAccountRequired")
            || !strcmp(t, "rejectedIdentifier") || !strcmp(t, "unsupportedIdentifier")
            || !strcmp(t, "invalidContact") || !strcmp(t, "unsupportedContact")
            || !strcmp(t, "accountDoesNotExist") || !strcmp(t, "caa")
            || !strcmp(t, "badSignatureAlgorithm") || !strcmp(t, "badCSR")
            || !strcmp(t, "invalidProfile") || !strcmp(t, "acme:config")
            || !strcmp(t, "acme:dns-config")) {
            return ACME_ERRCLASS_CONFIG;
        }
        if (!strcmp(t, "unauthorized") || !strcmp(t, "incorrectResponse")
            || !strcmp(t, "dns") || !strcmp(t, "connection") || !strcmp(t, "tls")
            || !strcmp(t, "acme:validation")) {
            return ACME_ERRCLASS_VALIDATION;
        }
    }
    if (r->http_status == 503 || r->http_status == 429) {
        return ACME_ERRCLASS_RATELIMIT;
    }
    return ACME_ERRCLASS_TRANSIENT;
}

const char *acme_result_describe(const acme_result_t *r, apr_pool_t *p)
{
    const char *s, *extra = "";
    int i;

    if (r->status == APR_SUCCESS) {
        return r->activity ? apr_psprintf(p, "%s: ok", r->activity) : "ok";
    }
    if (r->problem && r->http_status) {
        extra = apr_psprintf(p, " (%s, HTTP %d)", acme_problem_short(r->problem), r->http_status);
    }
    else if (r->problem) {
        extra = apr_psprintf(p, " (%s)", acme_problem_short(r->problem));
    }
    else if (r->http_status) {
        extra = apr_psprintf(p, " (HTTP %d)", r->http_status);
    }
    s = apr_psprintf(p, "%s%s%s%s", r->activity ? r->activity : "",
                     r->activity ? ": " : "", r->detail ? r->detail : "failed", extra);
    for (i = 0; r->subproblems && i < r->subproblems->nelts; ++i) {
        const acme_subproblem_t *sp = APR_ARRAY_IDX(r->subproblems, i, acme_subproblem_t *);
        s = apr_psprintf(p, "%s; %s%s%s (%s)", s, sp->id_value ? sp->id_value : "",
                         sp->id_value ? ": " : "", sp->detail ? sp->detail : "",
                         sp->type ? acme_problem_short(sp->type) : "?");
    }
    return s;
}

acme_json_t *acme_result_to_json(const acme_result_t *r, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p);
    acme_json_t *subs;
    int i;

    acme_json_setl(j, r->status, "status", NULL);
    if (r->http_status) acme_json_setl(j, r->http_status, "http-status", NULL);
    if (r->problem) acme_json_sets(j, r->problem, "problem", NULL);
    if (r->detail) acme_json_sets(j, r->detail, "detail", NULL);
    if (r->activity) acme_json_sets(j, r->activity, "activity", NULL);
    if (r->retry_after) acme_json_setl(j, apr_time_sec(r->retry_after), "retry-after", NULL);
    if (r->subproblems && r->subproblems->nelts) {
        subs = acme_json_new_array(p);
        for (i = 0; i < r->subproblems->nelts; ++i) {
            const acme_subproblem_t *sp = APR_ARRAY_IDX(r->subproblems, i, acme_subproblem_t *);
            acme_json_t *o = acme_json_new_object(p);
            if (sp->type) acme_json_sets(o, sp->type, "type", NULL);
            if (sp->detail) acme_json_sets(o, sp->detail, "detail", NULL);
            if (sp->id_type) acme_json_sets(o, sp->id_type, "identifier", "type", NULL);
            if (sp->id_value) acme_json_sets(o, sp->id_value, "identifier", "value", NULL);
            acme_json_array_append(subs, o);
        }
        acme_json_setj(j, subs, "subproblems", NULL);
    }
    return j;
}

void acme_result_from_json(acme_result_t *r, const acme_json_t *j)
{
    const char *s;

    acme_result_reset(r);
    if (!j) {
        return;
    }
    r->status = (apr_status_t)acme_json_getl(j, "status", NULL);
    r->http_status = (int)acme_json_getl(j, "http-status", NULL);
    if ((s = acme_json_gets(j, "problem", NULL))) r->problem = apr_pstrdup(r->pool, s);
    if ((s = acme_json_gets(j, "detail", NULL))) r->detail = apr_pstrdup(r->pool, s);
    if ((s = acme_json_gets(j, "activity", NULL))) r->activity = apr_pstrdup(r->pool, s);
    r->retry_after = acme_json_gett(j, "retry-after", NULL);
    if (acme_json_has(j, "subproblems", NULL)) {
        acme_json_t *doc = acme_json_new_object(r->pool);
        acme_json_setj(doc, acme_json_getj(j, r->pool, "subproblems", NULL), "subproblems", NULL);
        acme_json_sets(doc, r->problem ? r->problem : "about:blank", "type", NULL);
        {
            apr_status_t keep = r->status;
            const char *d = r->detail;
            acme_result_from_problem(r, doc, r->http_status);
            r->status = keep;
            r->detail = d;
        }
    }
}
