/* mod_acme_status.c: the managed domains' status, collected once from config and
 * store, shown as a server-status section, JSON (acme-status) and Prometheus text. */
#include <string.h>
#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_optional_hooks.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_status.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_renew.h"
#include "acme_job.h"
#include "mod_acme.h"
#include "mod_acme_config.h"

#define STATUS_HANDLER "acme-status"
#define METRICS_HANDLER "acme-metrics"
#define STATUS_SCHEMA 1
#define DAY_SECONDS 86400

/* States, in the order the rules in docs/status.md test them. */
#define ST_MISSING_CONFIG "missing-config"
#define ST_RENEWING "renewing"
#define ST_ERROR "error"
#define ST_PENDING "pending"
#define ST_OK "ok"
static const char *const all_states[] = {ST_OK, ST_RENEWING, ST_ERROR, ST_MISSING_CONFIG,
                                         ST_PENDING, NULL};

/* One certificate (one key type) of a domain, as found in domains/<d>/. */
typedef struct {
    acme_key_type_t type;
    int present;               /* readable and covering all names */
    apr_time_t not_before;
    apr_time_t not_after;
    const char *issuer;
    const char *serial;
    const char *fingerprint;
    apr_array_header_t *sans;  /* const char* */
} cert_info_t;

typedef struct {
    acme_domain_t *d;
    const char *state;
    const char *reason;        /* why that state, one sentence */
    apr_array_header_t *certs; /* cert_info_t*, one per configured key type */
    int has_cert;              /* every configured key type has one */
    const cert_info_t *first;  /* the certificate that expires first, or NULL */
    int expiring;
    apr_time_t renew_at;       /* 0: none */
    apr_time_t next;           /* next attempt or check (0: none scheduled) */
    const char *next_kind;     /* "retry", "renew", "due", "activation", "none" */
    int errors;
    int staged;
    int renew_requested;
    int run_in_progress;
    int orders_in_flight;
    acme_json_t *orders;       /* {tag: order URL} or NULL */
    acme_result_t *last_error; /* NULL unless errors > 0 */
    int retry_after_active;
    apr_time_t last_success;
    apr_time_t last_run;
    const char *job_state;
    const char *job_ca;
    const char *ca;            /* the CA the next attempt uses (failover) */
    apr_int64_t renewals_ok;
    apr_int64_t renewals_failed;
    acme_json_t *events;       /* job.json "events" or NULL */
} dom_status_t;

/* ---- collecting: config + store --------------------------------------------- */

static void spec_for(acme_job_spec_t *spec, acme_domain_t *d)
{
    acme_settings_t *s = d->settings;

    memset(spec, 0, sizeof(*spec));
    spec->domain = d->name;
    spec->names = d->names;
    spec->ca_url = (s->ca_urls && s->ca_urls->nelts) ? APR_ARRAY_IDX(s->ca_urls, 0, const char *)
                                                     : ACME_DEFAULT_CA;
    spec->ca_urls = s->ca_urls;
    spec->profile = s->profile;
    spec->profile_mandatory = s->profile_mandatory;
    spec->ari = s->ari;
    spec->ca_file = s->ca_file;
    spec->contact = s->contact;
    spec->agree_tos = s->agree_tos;
    spec->challenges = d->eff_challenges ? d->eff_challenges : s->challenges;
    spec->key_types = s->key_types;
    spec->window.is_percent = s->renew_is_percent;
    spec->window.percent = s->renew_percent;
    spec->window.duration = s->renew_duration;
    spec->retry_delay = s->retry_delay;
}

static cert_info_t *cert_info(acme_store_t *st, acme_domain_t *d, acme_key_type_t t, apr_pool_t *p)
{
    cert_info_t *ci = apr_pcalloc(p, sizeof(*ci));
    apr_array_header_t *chain;
    const acme_cert_t *leaf;
    const char *pem;
    apr_size_t len;

    ci->type = t;
    if (st->load(st, ACME_SG_DOMAINS, d->name, acme_job_cert_file(p, t), &pem, &len, p)
            != APR_SUCCESS
        || acme_chain_from_pem(&chain, p, pem, len) != APR_SUCCESS || chain->nelts < 1) {
        return ci;
    }
    leaf = APR_ARRAY_IDX(chain, 0, const acme_cert_t *);
    ci->present = acme_cert_covers(leaf, d->names);
    ci->not_before = acme_cert_not_before(leaf);
    ci->not_after = acme_cert_not_after(leaf);
    ci->issuer = acme_cert_issuer_cn(leaf, p);
    ci->serial = acme_cert_serial_hex(leaf, p);
    ci->fingerprint = acme_cert_fingerprint(leaf, p);
    if (acme_cert_sans(&ci->sans, p, leaf) != APR_SUCCESS) {
        ci->sans = NULL;
    }
    return ci;
}

/* Every run begins with a "renewing" event and ends with "staged" or
 * "errored"; other events (installed, notifications...) say nothing about
 * runs. The newest run event tells whether a run is under way. */
static int run_in_progress(acme_json_t *events, apr_pool_t *p)
{
    apr_size_t n = acme_json_array_len(events);
    const char *type;

    while (n-- > 0) {
        type = acme_json_gets(acme_json_array_at(events, p, n), "type", NULL);
        if (!type) continue;
        if (!strcmp(type, "renewing") || !strcmp(type, "order-created")) return 1;
        if (!strcmp(type, "staged") || !strcmp(type, "errored")) return 0;
    }
    return 0;
}

static int count_cb(void *baton, const char *key, acme_json_t *value)
{
    (void)key;
    if (acme_json_type(value, NULL) == ACME_JSON_STRING) {
        ++*(int *)baton;
    }
    return 0;
}

static void domain_status(dom_status_t **pds, acme_store_t *st, acme_domain_t *d, apr_time_t now,
                          apr_pool_t *p)
{
    dom_status_t *ds = apr_pcalloc(p, sizeof(*ds));
    acme_job_spec_t spec;
    acme_job_status_t *js = NULL;
    acme_json_t *job = NULL;
    int i;

    ds->d = d;
    ds->certs = apr_array_make(p, 2, sizeof(cert_info_t *));
    ds->has_cert = d->settings->key_types->nelts > 0;
    for (i = 0; i < d->settings->key_types->nelts; ++i) {
        cert_info_t *ci = cert_info(st, d, APR_ARRAY_IDX(d->settings->key_types, i,
                                                         acme_key_type_t), p);
        APR_ARRAY_PUSH(ds->certs, cert_info_t *) = ci;
        if (!ci->present) {
            ds->has_cert = 0;
        }
        else if (!ds->first || ci->not_after < ds->first->not_after) {
            ds->first = ci;
        }
    }
    spec_for(&spec, d);
    if (acme_job_status(&js, st, &spec, now, p) == APR_SUCCESS) {
        ds->renew_at = js->renew_at;
        ds->errors = js->errors > 0 ? js->errors : 0;
        ds->staged = js->staged;
        ds->renew_requested = js->renew_requested;
        ds->ca = js->ca_url;
        ds->last_error = js->errors > 0 ? js->last_error : NULL;
    }
    if (acme_store_load_json(st, ACME_SG_JOBS, d->name, ACME_JOB_STATE, &job, p) == APR_SUCCESS) {
        ds->job_state = acme_json_gets(job, "state", NULL);
        ds->job_ca = acme_json_gets(job, "ca", NULL);
        ds->last_success = acme_json_gett(job, "last-success", NULL);
        ds->last_run = acme_json_gett(job, "last-run", NULL);
        /* Counters never go down: a damaged value counts as 0. */
        ds->renewals_ok = acme_json_getl(job, "renewals-ok", NULL);
        ds->renewals_failed = acme_json_getl(job, "renewals-failed", NULL);
        if (ds->renewals_ok < 0) ds->renewals_ok = 0;
        if (ds->renewals_failed < 0) ds->renewals_failed = 0;
        if (acme_json_type(job, "orders", NULL) == ACME_JSON_OBJECT) {
            ds->orders = acme_json_getj(job, p, "orders", NULL);
            acme_json_iter(ds->orders, p, count_cb, &ds->orders_in_flight);
        }
        if (acme_json_type(job, "events", NULL) == ACME_JSON_ARRAY) {
            ds->events = acme_json_getj(job, p, "events", NULL);
            ds->run_in_progress = run_in_progress(ds->events, p);
        }
    }
    ds->retry_after_active = ds->last_error && ds->last_error->retry_after > now;

    if (ds->first && ds->has_cert) {
        apr_interval_time_t life = ds->first->not_after - ds->first->not_before;
        ds->expiring = (ds->renew_at && ds->renew_at <= now)
                       || ds->first->not_after - now < life / 3;
    }

    /* The state: the first rule that applies (docs/status.md). */
    if (!d->driven) {
        ds->state = ST_MISSING_CONFIG;
        ds->reason = "no SSL virtual host uses one of its names as ServerName or ServerAlias";
    }
    else if (!d->eff_challenges || d->eff_challenges->nelts == 0) {
        ds->state = ST_MISSING_CONFIG;
        ds->reason = "no challenge type can work (see ManagedChallenges, ManagedPortMap, Listen)";
    }
    else if (ds->orders_in_flight > 0 || ds->run_in_progress || ds->staged) {
        ds->state = ST_RENEWING;
        ds->reason = ds->staged ? "a new certificate waits for the graceful restart"
                                : "an order is in progress";
    }
    else if (ds->errors > 0) {
        ds->state = ST_ERROR;
        ds->reason = "the last renewal attempt failed";
    }
    else if (!ds->has_cert) {
        ds->state = ST_PENDING;
        ds->reason = "no certificate yet";
    }
    else {
        ds->state = ST_OK;
        ds->reason = "certificate valid";
    }

    /* What happens next, and when. */
    ds->next_kind = "none";
    if (!strcmp(ds->state, ST_MISSING_CONFIG)) {
        ds->next = 0;
    }
    else if (ds->staged) {
        ds->next_kind = "activation";
    }
    else if (ds->errors > 0 && js && js->next_attempt > 0) {
        ds->next = js->next_attempt;
        ds->next_kind = "retry";
    }
    else if (!ds->has_cert || ds->renew_requested) {
        ds->next = now;
        ds->next_kind = "due";
    }
    else if (ds->renew_at) {
        ds->next = ds->renew_at > now ? ds->renew_at : now;
        ds->next_kind = ds->renew_at > now ? "renew" : "due";
    }
    *pds = ds;
}

static apr_array_header_t *collect(acme_global_t *g, apr_time_t now, apr_pool_t *p)
{
    apr_array_header_t *all = apr_array_make(p, 5, sizeof(dom_status_t *));
    acme_store_t *st = acme_mod_store;
    int i;

    if (!g || !st) {
        return all;
    }
    for (i = 0; i < g->domains->nelts; ++i) {
        dom_status_t *ds;
        domain_status(&ds, st, APR_ARRAY_IDX(g->domains, i, acme_domain_t *), now, p);
        APR_ARRAY_PUSH(all, dom_status_t *) = ds;
    }
    return all;
}

/* Whole days left, rounded down (negative once expired). apr_int64_t:
 * APR's formatter has no %lld. */
static apr_int64_t days_left(apr_time_t not_after, apr_time_t now)
{
    apr_interval_time_t left = not_after - now, day = apr_time_from_sec(DAY_SECONDS);
    apr_int64_t days = left / day;

    if (left % day < 0) {
        --days;
    }
    return days;
}

/* ---- JSON ------------------------------------------------------------------- */

static void set_time(acme_json_t *j, apr_pool_t *p, apr_time_t t, const char *key)
{
    if (t > 0) {
        acme_json_sets(j, acme_time_rfc3339(p, t), key, NULL);
    }
}

static apr_array_header_t *key_type_names(const apr_array_header_t *types, apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, types->nelts, sizeof(const char *));
    int i;

    for (i = 0; i < types->nelts; ++i) {
        APR_ARRAY_PUSH(a, const char *) =
            acme_key_type_name(APR_ARRAY_IDX(types, i, acme_key_type_t));
    }
    return a;
}

static acme_json_t *error_json(const acme_result_t *e, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p);
    int i;

    if (e->problem) acme_json_sets(j, e->problem, "problem", NULL);
    if (e->detail) acme_json_sets(j, e->detail, "detail", NULL);
    if (e->activity) acme_json_sets(j, e->activity, "activity", NULL);
    if (e->http_status) acme_json_setl(j, e->http_status, "http-status", NULL);
    set_time(j, p, e->retry_after, "retry-after");
    if (e->subproblems && e->subproblems->nelts) {
        acme_json_t *subs = acme_json_new_array(p);
        for (i = 0; i < e->subproblems->nelts; ++i) {
            const acme_subproblem_t *sp = APR_ARRAY_IDX(e->subproblems, i, acme_subproblem_t *);
            acme_json_t *o = acme_json_new_object(p);
            if (sp->type) acme_json_sets(o, sp->type, "problem", NULL);
            if (sp->detail) acme_json_sets(o, sp->detail, "detail", NULL);
            if (sp->id_value) acme_json_sets(o, sp->id_value, "identifier", NULL);
            acme_json_array_append(subs, o);
        }
        acme_json_setj(j, subs, "subproblems", NULL);
    }
    return j;
}

/* Only the three known string fields: the job may keep more in an event.
 * An entry without a time and a type (a damaged job.json) is left out. */
static acme_json_t *events_json(const acme_json_t *events, apr_pool_t *p)
{
    acme_json_t *out = acme_json_new_array(p);
    apr_size_t i, n = acme_json_array_len(events);
    const char *when, *type, *detail;

    for (i = 0; i < n; ++i) {
        acme_json_t *ev = acme_json_array_at(events, p, i), *o;

        when = acme_json_gets(ev, "time", NULL);
        type = acme_json_gets(ev, "type", NULL);
        detail = acme_json_gets(ev, "detail", NULL);
        if (!when || !type) continue;
        o = acme_json_new_object(p);
        acme_json_sets(o, when, "time", NULL);
        acme_json_sets(o, type, "type", NULL);
        if (detail) acme_json_sets(o, detail, "detail", NULL);
        acme_json_array_append(out, o);
    }
    return out;
}

/* Private keys, EAB values and key file paths are never read here, so they
 * cannot leak: only the settings named below are copied. */
static acme_json_t *domain_json(const dom_status_t *ds, int with_events, apr_time_t now,
                                apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p), *certs = acme_json_new_array(p), *set;
    const acme_settings_t *s = ds->d->settings;
    acme_renew_window_t win;
    int i;

    acme_json_sets(j, ds->d->name, "name", NULL);
    acme_json_setsa(j, ds->d->names, "names", NULL);
    acme_json_sets(j, ds->state, "state", NULL);
    acme_json_sets(j, ds->reason, "state-reason", NULL);
    acme_json_setsa(j, key_type_names(s->key_types, p), "key-types", NULL);
    acme_json_sets(j, ds->ca ? ds->ca
                             : (s->ca_urls && s->ca_urls->nelts)
                                   ? APR_ARRAY_IDX(s->ca_urls, 0, const char *) : ACME_DEFAULT_CA,
                   "ca", NULL);
    acme_json_setb(j, ds->d->driven, "driven", NULL);
    acme_json_setb(j, ds->has_cert, "has-certificate", NULL);

    set = acme_json_new_object(p);
    if (s->ca_urls) acme_json_setsa(set, s->ca_urls, "ca-urls", NULL);
    if (s->contact) acme_json_sets(set, s->contact, "contact", NULL);
    if (s->profile) acme_json_sets(set, s->profile, "profile", NULL);
    acme_json_setb(set, s->ari != 0, "ari", NULL);
    acme_json_setb(set, s->eab_kid != NULL, "eab", NULL);
    acme_json_setb(set, s->agree_tos == 1, "agree-tos", NULL);
    acme_json_setsa(set, s->challenges, "challenges", NULL);
    acme_json_setsa(set, ds->d->eff_challenges ? ds->d->eff_challenges
                                               : apr_array_make(p, 1, sizeof(const char *)),
                    "challenges-possible", NULL);
    win.is_percent = s->renew_is_percent;
    win.percent = s->renew_percent;
    win.duration = s->renew_duration;
    acme_json_sets(set, acme_renew_window_format(p, &win), "renew-window", NULL);
    acme_json_sets(set, acme_duration_format(p, s->retry_delay), "retry-delay", NULL);
    acme_json_setj(j, set, "settings", NULL);

    for (i = 0; i < ds->certs->nelts; ++i) {
        const cert_info_t *ci = APR_ARRAY_IDX(ds->certs, i, const cert_info_t *);
        acme_json_t *c;

        if (!ci->not_after) continue;
        c = acme_json_new_object(p);
        acme_json_sets(c, acme_key_type_name(ci->type), "key-type", NULL);
        acme_json_setb(c, ci->present, "covers-names", NULL);
        set_time(c, p, ci->not_before, "valid-from");
        set_time(c, p, ci->not_after, "valid-until");
        acme_json_setl(c, days_left(ci->not_after, now), "days-left", NULL);
        if (ci->issuer) acme_json_sets(c, ci->issuer, "issuer", NULL);
        if (ci->serial) acme_json_sets(c, ci->serial, "serial", NULL);
        if (ci->fingerprint) acme_json_sets(c, ci->fingerprint, "sha256-fingerprint", NULL);
        if (ci->sans) acme_json_setsa(c, ci->sans, "names", NULL);
        acme_json_array_append(certs, c);
    }
    acme_json_setj(j, certs, "certificates", NULL);
    if (ds->first) {
        set_time(j, p, ds->first->not_before, "valid-from");
        set_time(j, p, ds->first->not_after, "valid-until");
        acme_json_setl(j, days_left(ds->first->not_after, now), "days-left", NULL);
        if (ds->first->issuer) acme_json_sets(j, ds->first->issuer, "issuer", NULL);
    }
    acme_json_setb(j, ds->expiring, "expiring", NULL);
    set_time(j, p, ds->renew_at, "renew-at");
    acme_json_sets(j, ds->next_kind, "next", NULL);
    set_time(j, p, ds->next, "next-attempt");
    acme_json_setl(j, ds->errors, "errors", NULL);
    if (ds->last_error) acme_json_setj(j, error_json(ds->last_error, p), "last-error", NULL);
    acme_json_setb(j, ds->retry_after_active, "retry-after-active", NULL);
    acme_json_setb(j, ds->staged, "staged", NULL);
    acme_json_setb(j, ds->renew_requested, "renew-requested", NULL);
    acme_json_setl(j, ds->orders_in_flight, "orders-in-flight", NULL);
    set_time(j, p, ds->last_success, "last-renewal");
    set_time(j, p, ds->last_run, "last-run");
    if (ds->job_state) acme_json_sets(j, ds->job_state, "job-state", NULL);
    if (ds->job_ca) acme_json_sets(j, ds->job_ca, "job-ca", NULL);
    acme_json_setl(j, ds->renewals_ok, "renewals", "success", NULL);
    acme_json_setl(j, ds->renewals_failed, "renewals", "error", NULL);
    if (with_events) {
        acme_json_setj(j, ds->events ? events_json(ds->events, p) : acme_json_new_array(p),
                       "events", NULL);
    }
    return j;
}

static acme_json_t *all_json(const apr_array_header_t *all, apr_time_t now, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p), *arr = acme_json_new_array(p);
    int i;

    acme_json_setl(j, STATUS_SCHEMA, "schema", NULL);
    acme_json_sets(j, ACME_VERSION, "version", NULL);
    acme_json_sets(j, acme_time_rfc3339(p, now), "now", NULL);
    for (i = 0; i < all->nelts; ++i) {
        acme_json_array_append(arr, domain_json(APR_ARRAY_IDX(all, i, dom_status_t *), 0, now, p));
    }
    acme_json_setj(j, arr, "domains", NULL);
    return j;
}

/* ---- server-status section -------------------------------------------------- */

static const char *esc(apr_pool_t *p, const char *s)
{
    return ap_escape_html2(p, s ? s : "", 0);
}

static const char *html_time(apr_pool_t *p, apr_time_t t)
{
    return t > 0 ? acme_time_rfc3339(p, t) : "-";
}

static const char *next_text(const dom_status_t *ds, apr_pool_t *p)
{
    if (!strcmp(ds->next_kind, "retry")) {
        return apr_pstrcat(p, "retry at ", html_time(p, ds->next), NULL);
    }
    if (!strcmp(ds->next_kind, "renew")) {
        return apr_pstrcat(p, "renew at ", html_time(p, ds->next), NULL);
    }
    if (!strcmp(ds->next_kind, "due")) return "due now";
    if (!strcmp(ds->next_kind, "activation")) return "activation at the next restart";
    return "-";
}

static void html_names(request_rec *r, const apr_array_header_t *names)
{
    int i;

    for (i = 0; i < names->nelts; ++i) {
        ap_rvputs(r, i ? "<br>" : "", esc(r->pool, APR_ARRAY_IDX(names, i, const char *)), NULL);
    }
}

static void html_row(request_rec *r, const dom_status_t *ds, apr_time_t now)
{
    apr_pool_t *p = r->pool;

    ap_rvputs(r, "<tr><td>", esc(p, ds->d->name), "</td><td>", NULL);
    html_names(r, ds->d->names);
    ap_rvputs(r, "</td><td title=\"", esc(p, ds->reason), "\">", esc(p, ds->state), "</td><td>",
              esc(p, apr_array_pstrcat(p, key_type_names(ds->d->settings->key_types, p), ' ')),
              "</td>", NULL);
    if (ds->first) {
        ap_rvputs(r, "<td>", esc(p, html_time(p, ds->first->not_before)), " &ndash; ",
                  esc(p, html_time(p, ds->first->not_after)), "</td>", NULL);
        ap_rprintf(r, "<td>%" APR_INT64_T_FMT "</td>", days_left(ds->first->not_after, now));
        ap_rvputs(r, "<td>", esc(p, ds->first->issuer), "</td>", NULL);
    }
    else {
        ap_rputs("<td>-</td><td>-</td><td>-</td>", r);
    }
    ap_rvputs(r, "<td>", esc(p, html_time(p, ds->last_success)), "</td><td>",
              esc(p, next_text(ds, p)), "</td><td>", NULL);
    if (ds->last_error) {
        ap_rvputs(r, "<span title=\"", esc(p, ds->last_error->problem), "\">",
                  esc(p, ds->last_error->problem ? acme_problem_short(ds->last_error->problem)
                                                 : "error"),
                  "</span>: ", esc(p, ds->last_error->detail), NULL);
    }
    else {
        ap_rputs("-", r);
    }
    ap_rputs("</td></tr>\n", r);
}

static void status_auto(request_rec *r, const apr_array_header_t *all, apr_time_t now)
{
    int i, ok = 0, renewing = 0, errored = 0, expiring = 0;

    for (i = 0; i < all->nelts; ++i) {
        const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
        ok += !strcmp(ds->state, ST_OK);
        renewing += !strcmp(ds->state, ST_RENEWING);
        errored += !strcmp(ds->state, ST_ERROR);
        expiring += ds->expiring;
    }
    ap_rprintf(r, "ManagedDomains: %d\nManagedOK: %d\nManagedRenewing: %d\n"
               "ManagedErrored: %d\nManagedExpiring: %d\n", all->nelts, ok, renewing, errored,
               expiring);
    for (i = 0; i < all->nelts; ++i) {
        const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
        /* Names passed acme_name_is_valid at config time: no spaces, no newlines. */
        if (ds->first) {
            ap_rprintf(r, "ManagedDomain%d: %s %s %" APR_INT64_T_FMT "\n", i, ds->d->name, ds->state,
                       days_left(ds->first->not_after, now));
        }
        else {
            ap_rprintf(r, "ManagedDomain%d: %s %s -\n", i, ds->d->name, ds->state);
        }
    }
}

static int status_hook(request_rec *r, int flags)
{
    acme_global_t *g = acme_config_global(r->server);
    apr_time_t now = apr_time_now();
    apr_array_header_t *all;
    int i;

    if (!g || !g->domains || g->domains->nelts == 0 || !acme_mod_store) {
        return OK;
    }
    all = collect(g, now, r->pool);
    if (flags & AP_STATUS_SHORT) {
        status_auto(r, all, now);
        return OK;
    }
    ap_rputs("<hr>\n<h2>Managed domains</h2>\n", r);
    if (flags & AP_STATUS_NOTABLE) {
        for (i = 0; i < all->nelts; ++i) {
            const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
            ap_rvputs(r, "<p>", esc(r->pool, ds->d->name), ": ", esc(r->pool, ds->state),
                      NULL);
            if (ds->last_error) {
                ap_rvputs(r, " (", esc(r->pool, ds->last_error->detail), ")", NULL);
            }
            ap_rputs("</p>\n", r);
        }
        return OK;
    }
    ap_rputs("<table class=\"managed-domains\" border=\"1\">\n<tr><th>Domain</th><th>Names</th>"
             "<th>State</th><th>Key types</th><th>Valid</th><th>Days left</th><th>Issuer CA</th>"
             "<th>Last renewal</th><th>Next check or retry</th><th>Last error</th></tr>\n", r);
    for (i = 0; i < all->nelts; ++i) {
        html_row(r, APR_ARRAY_IDX(all, i, const dom_status_t *), now);
    }
    ap_rputs("</table>\n", r);
    return OK;
}

/* ---- Prometheus text exposition (format 0.0.4) ------------------------------- */

static const char *label_esc(apr_pool_t *p, const char *s)
{
    apr_size_t n = 0;
    const char *c;
    char *out, *o;

    for (c = s; *c; ++c) {
        n += (*c == '\\' || *c == '"' || *c == '\n') ? 2 : 1;
    }
    o = out = apr_palloc(p, n + 1);
    for (c = s; *c; ++c) {
        if (*c == '\\' || *c == '"') {
            *o++ = '\\';
            *o++ = *c;
        }
        else if (*c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

static void metric_head(request_rec *r, const char *name, const char *type, const char *help)
{
    ap_rvputs(r, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", NULL);
}

static void metrics(request_rec *r, const apr_array_header_t *all, apr_time_t now)
{
    apr_pool_t *p = r->pool;
    int i, j;

    metric_head(r, "acme_certificate_not_after_seconds", "gauge",
                "Expiry (notAfter) of the active certificate as a unix time.");
    for (i = 0; i < all->nelts; ++i) {
        const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
        for (j = 0; j < ds->certs->nelts; ++j) {
            const cert_info_t *ci = APR_ARRAY_IDX(ds->certs, j, const cert_info_t *);
            if (!ci->present) continue;
            ap_rprintf(r, "acme_certificate_not_after_seconds{domain=\"%s\",key_type=\"%s\"} %"
                       APR_TIME_T_FMT "\n", label_esc(p, ds->d->name),
                       label_esc(p, acme_key_type_name(ci->type)), apr_time_sec(ci->not_after));
        }
    }
    metric_head(r, "acme_renewal_next_attempt_seconds", "gauge",
                "Seconds until the next renewal attempt or retry (0: due now).");
    for (i = 0; i < all->nelts; ++i) {
        const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
        apr_time_t left;
        if (!ds->next) continue;
        left = ds->next > now ? apr_time_sec(ds->next - now) : 0;
        ap_rprintf(r, "acme_renewal_next_attempt_seconds{domain=\"%s\"} %" APR_TIME_T_FMT "\n",
                   label_esc(p, ds->d->name), left);
    }
    metric_head(r, "acme_renewals_total", "counter",
                "Renewal runs by result, as counted in the domain's job state.");
    for (i = 0; i < all->nelts; ++i) {
        const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
        const char *dn = label_esc(p, ds->d->name);
        ap_rprintf(r, "acme_renewals_total{domain=\"%s\",result=\"success\"} %" APR_INT64_T_FMT "\n"
                   "acme_renewals_total{domain=\"%s\",result=\"error\"} %" APR_INT64_T_FMT "\n",
                   dn, ds->renewals_ok, dn, ds->renewals_failed);
    }
    metric_head(r, "acme_domain_errors_consecutive", "gauge",
                "Consecutive failed renewal attempts (0 after a success).");
    for (i = 0; i < all->nelts; ++i) {
        const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
        ap_rprintf(r, "acme_domain_errors_consecutive{domain=\"%s\"} %d\n",
                   label_esc(p, ds->d->name), ds->errors);
    }
    metric_head(r, "acme_orders_in_flight", "gauge",
                "ACME orders created and not yet finished or abandoned.");
    for (i = 0; i < all->nelts; ++i) {
        const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
        ap_rprintf(r, "acme_orders_in_flight{domain=\"%s\"} %d\n", label_esc(p, ds->d->name),
                   ds->orders_in_flight);
    }
    metric_head(r, "acme_ca_retry_after_active", "gauge",
                "1 while a Retry-After the CA sent with the last error lies in the future.");
    for (i = 0; i < all->nelts; ++i) {
        const dom_status_t *ds = APR_ARRAY_IDX(all, i, const dom_status_t *);
        ap_rprintf(r, "acme_ca_retry_after_active{domain=\"%s\"} %d\n",
                   label_esc(p, ds->d->name), ds->retry_after_active);
    }
    metric_head(r, "acme_domains", "gauge", "Managed domains by state.");
    for (j = 0; all_states[j]; ++j) {
        int n = 0;
        for (i = 0; i < all->nelts; ++i) {
            n += !strcmp(APR_ARRAY_IDX(all, i, const dom_status_t *)->state, all_states[j]);
        }
        ap_rprintf(r, "acme_domains{state=\"%s\"} %d\n", all_states[j], n);
    }
}

/* ---- the handlers ------------------------------------------------------------- */

/* Status changes with every renewal step: never serve it from a cache. */
static void no_cache(request_rec *r)
{
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
}

/* Answers anything but GET/HEAD itself, so that the Allow header is exactly
 * ours (httpd's own 405 would list TRACE and OPTIONS, which we refuse). */
static int not_allowed(request_rec *r, const char *ctype, const char *body)
{
    ap_discard_request_body(r);
    r->allowed = (AP_METHOD_BIT << M_GET);
    r->status = HTTP_METHOD_NOT_ALLOWED;
    apr_table_setn(r->headers_out, "Allow", "GET, HEAD");
    no_cache(r);
    ap_set_content_type(r, ctype);
    ap_rputs(body, r);
    return OK;
}

/* The part of the URI after the <Location> the handler was set for ("" for
 * the Location itself). The core's merged config names the last section
 * applied; when that is a regex or "/" (a <Location /> merged after ours),
 * the path info stands in: what follows the first path segment that is not
 * in the file system. */
static const char *sub_path(request_rec *r)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
    const char *rest = NULL;

    if (cd && cd->d && !cd->r && cd->d[0] == '/' && r->uri) {
        apr_size_t n = strlen(cd->d);
        while (n > 1 && cd->d[n - 1] == '/') --n;
        if (n > 1 && !strncmp(r->uri, cd->d, n) && (r->uri[n] == '/' || r->uri[n] == '\0')) {
            rest = r->uri + n;
        }
    }
    if (!rest) {
        rest = r->path_info ? r->path_info : "";
    }
    while (*rest == '/') ++rest;
    return rest;
}

static dom_status_t *find_domain(apr_array_header_t *all, const char *name)
{
    int i, j;

    for (i = 0; i < all->nelts; ++i) {
        dom_status_t *ds = APR_ARRAY_IDX(all, i, dom_status_t *);
        for (j = 0; j < ds->d->names->nelts; ++j) {
            if (!strcasecmp(APR_ARRAY_IDX(ds->d->names, j, const char *), name)) return ds;
        }
    }
    return NULL;
}

static int send_json(request_rec *r, int status, const acme_json_t *j)
{
    r->status = status;
    no_cache(r);
    ap_set_content_type(r, "application/json");
    ap_rvputs(r, acme_json_dump(j, r->pool, 0), "\n", NULL);
    return OK;
}

static int status_handler(request_rec *r)
{
    acme_global_t *g = acme_config_global(r->server);
    apr_time_t now = apr_time_now();
    apr_array_header_t *all;
    const char *name;
    char *trimmed;
    apr_size_t n;

    if (r->method_number != M_GET) {
        return not_allowed(r, "application/json",
                           "{\"error\": \"method-not-allowed\", \"allow\": [\"GET\", \"HEAD\"]}\n");
    }
    all = collect(g, now, r->pool);
    name = sub_path(r);
    trimmed = apr_pstrdup(r->pool, name);
    n = strlen(trimmed);
    while (n > 0 && trimmed[n - 1] == '/') trimmed[--n] = '\0';
    if (n == 0) {
        return send_json(r, HTTP_OK, all_json(all, now, r->pool));
    }
    else {
        dom_status_t *ds = strchr(trimmed, '/') ? NULL : find_domain(all, trimmed);
        acme_json_t *j;

        if (!ds) {
            j = acme_json_new_object(r->pool);
            acme_json_sets(j, "not-found", "error", NULL);
            acme_json_sets(j, apr_psprintf(r->pool, "no managed domain has the name '%s'",
                                           trimmed), "detail", NULL);
            return send_json(r, HTTP_NOT_FOUND, j);
        }
        j = domain_json(ds, 1, now, r->pool);
        acme_json_setl(j, STATUS_SCHEMA, "schema", NULL);
        acme_json_sets(j, acme_time_rfc3339(r->pool, now), "now", NULL);
        return send_json(r, HTTP_OK, j);
    }
}

static int metrics_handler(request_rec *r)
{
    acme_global_t *g = acme_config_global(r->server);
    apr_time_t now = apr_time_now();

    if (r->method_number != M_GET) {
        return not_allowed(r, "text/plain; charset=utf-8", "method not allowed: use GET\n");
    }
    no_cache(r);
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    metrics(r, collect(g, now, r->pool), now);
    return OK;
}

static int hook_handler(request_rec *r)
{
    if (!r->handler) {
        return DECLINED;
    }
    if (!strcmp(r->handler, STATUS_HANDLER)) {
        return status_handler(r);
    }
    if (!strcmp(r->handler, METRICS_HANDLER)) {
        return metrics_handler(r);
    }
    return DECLINED;
}

void acme_status_register_hooks(void)
{
    ap_hook_handler(hook_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}
